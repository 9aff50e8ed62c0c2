//! Workspace apps: on paths (`/@USER/WORKSPACE[.AGENT]/apps/SLUG/...`), on subdomains of the
//! wildcard access URL (`SLUG--AGENT--WORKSPACE--USER.<wildcard>`), and port URLs
//! (`PORT--AGENT--WORKSPACE--USER.<wildcard>`), proxied to the app's port inside the workspace
//! over the server's own tunnel to the agent (`agent_conn`).
//!
//! Only the workspace's owner (and deployment owners) may open an app so far; anyone else gets
//! the same 404 as for a workspace that does not exist. The session token never reaches the
//! app: its cookie and header are removed from the forwarded request.

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::any;
use hyper_util::rt::TokioIo;

use crate::app_client::{self, Upstream};
use crate::app_tokens::{self, Kind};
use crate::auth::CurrentUser;
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/{user}/{workspace}/apps/{slug}", any(add_slash))
        .route("/{user}/{workspace}/apps/{slug}/", any(proxy_root))
        .route("/{user}/{workspace}/apps/{slug}/{*path}", any(proxy_path))
}

/// Relative links in an app only resolve under a trailing slash.
async fn add_slash(Path((user, workspace, slug)): Path<(String, String, String)>) -> Response {
    if !user.starts_with('@') {
        return ApiError::not_found().into_response();
    }
    Redirect::permanent(&format!("/{user}/{workspace}/apps/{slug}/")).into_response()
}

async fn proxy_root(
    State(state): State<AppState>,
    Path((user, workspace, slug)): Path<(String, String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    proxy_path_app(state, user, workspace, slug, String::new(), request).await
}

async fn proxy_path(
    State(state): State<AppState>,
    Path((user, workspace, slug, path)): Path<(String, String, String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    proxy_path_app(state, user, workspace, slug, path, request).await
}

/// The requester, when the request carries a valid session; public apps need none.
async fn requester(state: &AppState, request: Request) -> (Option<CurrentUser>, Request) {
    let (mut parts, body) = request.into_parts();
    let current = CurrentUser::from_request_parts(&mut parts, state)
        .await
        .ok();
    (current, Request::from_parts(parts, body))
}

/// What a request asks for inside the workspace.
enum Target {
    /// A template-declared app, by slug.
    App(String),
    /// Any port on the workspace's loopback (port URLs); `true` for HTTPS (`PORTs--...`).
    Port(u16, bool),
}

/// Who asks.
#[derive(Clone, Copy)]
enum Who<'a> {
    /// No session and no app cookie.
    Anonymous,
    /// A session (header or the dashboard's cookie).
    User(&'a CurrentUser),
    /// A subdomain app cookie: this user, as signed by the server an hour ago at most.
    AppToken(uuid::Uuid),
}

async fn resolve(
    state: &AppState,
    who: Who<'_>,
    username: &str,
    workspace_name: &str,
    agent_name: Option<&str>,
    target: &Target,
) -> Result<Upstream, ApiError> {
    let resolved = resolve_for(state, who, username, workspace_name, agent_name, target).await;
    match (resolved, who) {
        // Without a session, every refusal looks alike: nothing about what exists leaks.
        (Err(err), Who::Anonymous) if err.status() != StatusCode::BAD_GATEWAY => {
            Err(ApiError::unauthorized("Log in to open this app.").detail(
                "Send your session token (Coder-Session-Token header or the session cookie).",
            ))
        }
        (result, _) => result,
    }
}

/// Who may open an app: `owner` (the workspace's owner, and deployment owners),
/// `authenticated` (any signed-in user) or `public` (anyone); port URLs are owner-only.
fn may_open(who: Who<'_>, share: &str, workspace: Resource, owner: uuid::Uuid) -> bool {
    match (share, who) {
        ("public", _) => true,
        (_, Who::Anonymous) => false,
        ("authenticated", _) => true,
        (_, Who::User(current)) => current.subject.can(Action::Connect, workspace),
        (_, Who::AppToken(user_id)) => user_id == owner,
    }
}

async fn resolve_for(
    state: &AppState,
    who: Who<'_>,
    username: &str,
    workspace_name: &str,
    agent_name: Option<&str>,
    target: &Target,
) -> Result<Upstream, ApiError> {
    let owner = state
        .store
        .user_by_username(username)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let workspace = state
        .store
        .workspace_by_owner_and_name(owner.id, workspace_name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let resource = Resource::Workspace {
        owner: workspace.owner_id,
        organization: workspace.organization_id,
    };
    let build = state
        .store
        .latest_workspace_build(workspace.id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let agent = state
        .store
        .workspace_agent_by_build(build.id)
        .await?
        .filter(|agent| agent_name.is_none_or(|name| name == agent.name))
        .ok_or_else(|| {
            ApiError::not_found().detail("The workspace has no such agent; is it running?")
        })?;
    // Someone who may not use the app learns nothing, not even that the workspace exists.
    let slug = match target {
        Target::Port(port, https) => {
            if !may_open(who, "owner", resource, workspace.owner_id) {
                return Err(ApiError::not_found());
            }
            return Ok(Upstream {
                agent_id: agent.id,
                port: *port,
                https: *https,
                base_path: String::new(),
            });
        }
        Target::App(slug) => slug,
    };
    let settings: sdk::AgentSettings =
        serde_json::from_value(agent.settings.clone()).unwrap_or_default();
    let app = settings
        .apps
        .into_iter()
        .find(|app| &app.slug == slug)
        .ok_or_else(|| {
            ApiError::not_found().detail(format!("The workspace has no app {slug:?}."))
        })?;
    if !may_open(who, &app.share, resource, workspace.owner_id) {
        return Err(ApiError::not_found());
    }
    let url = url::Url::parse(&app.url).map_err(|_| {
        ApiError::bad_gateway(format!(
            "The app {slug:?} has no usable URL ({:?}).",
            app.url
        ))
    })?;
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(ApiError::bad_gateway(format!(
                "The app {slug:?} is served over {other}; only http and https apps are proxied."
            )));
        }
    };
    Ok(Upstream {
        agent_id: agent.id,
        port: url.port_or_known_default().unwrap_or(80),
        https,
        base_path: url.path().trim_end_matches('/').to_owned(),
    })
}

/// `WORKSPACE[.AGENT]`.
fn split_agent(workspace: &str) -> (&str, Option<&str>) {
    match workspace.split_once('.') {
        Some((workspace, agent)) => (workspace, Some(agent)),
        None => (workspace, None),
    }
}

async fn proxy_path_app(
    state: AppState,
    user: String,
    workspace: String,
    slug: String,
    path: String,
    request: Request,
) -> Result<Response, ApiError> {
    let username = user.strip_prefix('@').ok_or_else(ApiError::not_found)?;
    if state.config.disable_path_apps {
        return Err(ApiError::not_found().detail(
            "Path-based apps are disabled on this deployment (--disable-path-apps); open the app's subdomain URL.",
        ));
    }
    let prefix = format!("/{user}/{workspace}/apps/{slug}");
    let scope = format!("{}{prefix}", access_host(&state));
    let path = format!("/{path}");
    // Read before awaiting: a request is not `Sync`, so no reference to it may cross an await.
    let signed = cookie(&request, app_tokens::SIGNED_COOKIE);
    if let Some(upstream) = signed_upstream(&state, signed.as_deref(), &scope).await {
        return proxy(&state, &upstream, &path, request).await;
    }
    let browser = wants_html(&request);
    let back = request
        .uri()
        .path_and_query()
        .map_or_else(|| format!("{prefix}/"), ToString::to_string);
    let (current, request) = requester(&state, request).await;
    let (workspace, agent) = split_agent(&workspace);
    let who = current.as_ref().map_or(Who::Anonymous, Who::User);
    match resolve(&state, who, username, workspace, agent, &Target::App(slug)).await {
        Ok(upstream) => {
            let cookie_path = format!("{prefix}/");
            proxy_and_sign(&state, who, &upstream, &scope, &cookie_path, &path, request).await
        }
        // A browser without a session signs in, then comes back here.
        Err(err) if err.status() == StatusCode::UNAUTHORIZED && browser => {
            Ok(Redirect::to(&super::site::login_url(&back)).into_response())
        }
        Err(err) => Err(err),
    }
}

/// The access URL's `host[:port]`.
fn access_host(state: &AppState) -> String {
    let access = &state.config.access_url;
    let host = access.host_str().unwrap_or_default();
    match access.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Forwards `request` to `upstream`, at `path` below the app's own base path, over a pooled
/// connection.
async fn proxy(
    state: &AppState,
    upstream: &Upstream,
    path: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let mut request = request;
    // A WebSocket (or other) upgrade passes through: both sides switch protocols and the
    // bytes are copied until either closes.
    let upgrade = upgrade_protocol(request.headers());
    let client_upgrade = upgrade.as_ref().and_then(|_| {
        request
            .extensions_mut()
            .remove::<hyper::upgrade::OnUpgrade>()
    });
    let (mut parts, body) = request.into_parts();
    let query = parts
        .uri
        .query()
        .map(|query| format!("?{query}"))
        .unwrap_or_default();
    // HTTP/2 requests carry the host in the URI only; the app gets it as a Host header.
    if !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, value);
    }
    parts.uri = upstream
        .uri(&format!("{path}{query}"))
        .map_err(|_| ApiError::bad_request("The app path is not a valid URI."))?;
    parts.version = axum::http::Version::HTTP_11;
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    forwarded_headers(&mut parts.headers, state, peer);
    if let Some(protocol) = &upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, protocol.clone());
    }
    let mut response = state
        .app_client
        .request(Request::from_parts(parts, body))
        .await
        .map_err(|err| ApiError::bad_gateway(app_client::describe(&err, upstream.port)))?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client, upstream)) => {
                    let _ = tunnel::pipe::splice(
                        &mut TokioIo::new(client),
                        &mut TokioIo::new(upstream),
                    )
                    .await;
                }
                Err(err) => tracing::debug!(error = %err, "an app upgrade failed"),
            }
        });
        let (parts, body) = response.into_parts();
        return Ok(Response::from_parts(parts, Body::new(body)));
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The upstream named by the request's signed app token, if it has one for `scope` and the
/// server's tunnel to that agent is up (else the request takes the long way, which re-dials).
async fn signed_upstream(state: &AppState, token: Option<&str>, scope: &str) -> Option<Upstream> {
    let token = token?;
    let now = chrono::Utc::now().timestamp();
    let upstream = state
        .app_tokens
        .verify(token, Kind::Signed, scope, now)?
        .upstream?;
    state
        .agent_conn
        .is_connected(upstream.agent_id)
        .await
        .then_some(upstream)
}

/// Proxies a request authorized the long way, and hands the browser a signed token so that
/// its next requests to this app skip the checks (see [`app_tokens`]).
async fn proxy_and_sign(
    state: &AppState,
    who: Who<'_>,
    upstream: &Upstream,
    scope: &str,
    cookie_path: &str,
    path: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let mut response = proxy(state, upstream, path, request).await?;
    let user_id = match who {
        Who::Anonymous => uuid::Uuid::nil(),
        Who::User(current) => current.user.id,
        Who::AppToken(user_id) => user_id,
    };
    let token = state.app_tokens.sign(&app_tokens::Claims {
        kind: Kind::Signed,
        user_id,
        scope: scope.to_owned(),
        expires: chrono::Utc::now().timestamp() + app_tokens::SIGNED_SECONDS,
        upstream: Some(upstream.clone()),
    });
    let cookie = format!(
        "{}={token}; Path={cookie_path}; Max-Age={}; HttpOnly; SameSite=Lax{}",
        app_tokens::SIGNED_COOKIE,
        app_tokens::SIGNED_SECONDS,
        secure_attribute(state)
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

fn secure_attribute(state: &AppState) -> &'static str {
    if state.config.access_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    }
}

/// The protocol a request asks to switch to (`Connection: upgrade` plus `Upgrade: ...`).
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Subdomain apps and port URLs: with `--wildcard-access-url *.apps.example.com`, the host
/// `SLUG--AGENT--WORKSPACE--USER.apps.example.com` is that app, and
/// `PORT--AGENT--WORKSPACE--USER.apps.example.com` that port; every path on it goes to the app.
/// Other hosts fall through to the API and the site.
pub(crate) async fn subdomains(
    State(state): State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(host) = request_host(&request) else {
        return next.run(request).await;
    };
    let Some(label) = wildcard_label(&state, &host) else {
        return next.run(request).await;
    };
    let Some((target, agent, workspace, user)) = parse_label(&label) else {
        return ApiError::not_found()
            .detail("Subdomain apps are named SLUG--AGENT--WORKSPACE--USER or PORT--AGENT--WORKSPACE--USER.")
            .into_response();
    };
    if let Some(token) = query_param(&request, app_tokens::EXCHANGE_PARAM) {
        return exchange(&state, &request, &host, &token);
    }
    let path = request.uri().path().to_owned();
    let signed = cookie(&request, app_tokens::SIGNED_COOKIE);
    if let Some(upstream) = signed_upstream(&state, signed.as_deref(), &host).await {
        return proxy(&state, &upstream, &path, request)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    let (current, request) = requester(&state, request).await;
    let now = chrono::Utc::now().timestamp();
    let cookie_user = cookie(&request, app_tokens::APP_COOKIE)
        .and_then(|token| state.app_tokens.verify(&token, Kind::App, &host, now))
        .map(|claims| claims.user_id);
    let who = match (&current, cookie_user) {
        (Some(current), _) => Who::User(current),
        (None, Some(user_id)) => Who::AppToken(user_id),
        (None, None) => Who::Anonymous,
    };
    let browser = wants_html(&request);
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), ToString::to_string);
    let result = async {
        let upstream = resolve(&state, who, &user, &workspace, Some(&agent), &target).await?;
        proxy_and_sign(&state, who, &upstream, &host, "/", &path, request).await
    }
    .await;
    match result {
        // A browser without a session here goes to the dashboard to prove who it is.
        Err(err) if err.status() == StatusCode::UNAUTHORIZED && browser => {
            let mut to = state.config.access_url.clone();
            to.set_path("/api/v2/applications/auth-redirect");
            let back = format!(
                "{}://{host}{path_and_query}",
                state.config.access_url.scheme()
            );
            to.query_pairs_mut().append_pair("redirect_uri", &back);
            Redirect::to(to.as_str()).into_response()
        }
        result => result.unwrap_or_else(IntoResponse::into_response),
    }
}

/// Trades an exchange token for the host's app cookie, then sends the browser to the clean URL.
fn exchange(state: &AppState, request: &Request, host: &str, token: &str) -> Response {
    let now = chrono::Utc::now().timestamp();
    let Some(claims) = state.app_tokens.verify(token, Kind::Exchange, host, now) else {
        return ApiError::unauthorized("This app sign-in link is invalid or has expired.")
            .detail("Open the app again from the dashboard.")
            .into_response();
    };
    let app_token = state.app_tokens.sign(&app_tokens::Claims {
        kind: Kind::App,
        user_id: claims.user_id,
        scope: host.to_owned(),
        expires: now + app_tokens::APP_SECONDS,
        upstream: None,
    });
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .filter(|(name, _)| name != app_tokens::EXCHANGE_PARAM)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let mut clean = request.uri().path().to_owned();
    if !query.is_empty() {
        clean.push('?');
        clean.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish(),
        );
    }
    let secure = secure_attribute(state);
    // Host-only (no Domain attribute): no other subdomain, nor the dashboard, ever sees it.
    let cookie = format!(
        "{}={app_token}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        app_tokens::APP_COOKIE,
        app_tokens::APP_SECONDS
    );
    let mut response = Redirect::to(&clean).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `GET /api/v2/applications/auth-redirect?redirect_uri=...`: a signed-in user is sent back to
/// the subdomain app with a one-minute exchange token for that host.
async fn auth_redirect(
    State(state): State<AppState>,
    current: Result<CurrentUser, ApiError>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    // Not signed in to the dashboard either: sign in first, then come back here.
    let current = match current {
        Ok(current) => current,
        Err(err) if err.status() == StatusCode::UNAUTHORIZED => {
            let back = uri.path_and_query().map_or("/", |p| p.as_str());
            return Ok(Redirect::to(&super::site::login_url(back)).into_response());
        }
        Err(err) => return Err(err),
    };
    let target = query
        .get("redirect_uri")
        .and_then(|uri| url::Url::parse(uri).ok())
        .ok_or_else(|| ApiError::bad_request("redirect_uri must be an app URL."))?;
    let host = match (target.host_str(), target.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => return Err(ApiError::bad_request("redirect_uri must be an app URL.")),
    };
    // Only this deployment's app hosts: never a token for somewhere else.
    if wildcard_label(&state, &host).is_none() || !matches!(target.scheme(), "http" | "https") {
        return Err(ApiError::bad_request(
            "redirect_uri is not an app URL of this deployment.",
        ));
    }
    let token = state.app_tokens.sign(&app_tokens::Claims {
        kind: Kind::Exchange,
        user_id: current.user.id,
        scope: host,
        expires: chrono::Utc::now().timestamp() + app_tokens::EXCHANGE_SECONDS,
        upstream: None,
    });
    let mut back = target;
    back.query_pairs_mut()
        .append_pair(app_tokens::EXCHANGE_PARAM, &token);
    Ok(Redirect::to(back.as_str()).into_response())
}

pub(crate) fn api_routes() -> Router<AppState> {
    Router::new().route(
        "/applications/auth-redirect",
        axum::routing::get(auth_redirect),
    )
}

fn query_param(request: &Request, name: &str) -> Option<String> {
    let query = request.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn cookie(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

fn wants_html(request: &Request) -> bool {
    matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) && request
        .headers()
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// The Host the client asked for, port included.
fn request_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| request.uri().host())
        .map(str::to_ascii_lowercase)
}

/// The wildcard's `*` part of `host`, when it matches `--wildcard-access-url`.
fn wildcard_label(state: &AppState, host: &str) -> Option<String> {
    let wildcard = state.config.wildcard_access_url.as_deref()?;
    let pattern = wildcard
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let suffix = pattern.strip_prefix('*')?;
    let host = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let suffix = suffix.rsplit_once(':').map_or(suffix, |(name, _)| name);
    let label = host
        .to_ascii_lowercase()
        .strip_suffix(&suffix.to_ascii_lowercase())?
        .to_owned();
    (!label.is_empty() && !label.contains('.')).then_some(label)
}

/// `SLUG--AGENT--WORKSPACE--USER` or `PORT[s]--AGENT--WORKSPACE--USER`.
fn parse_label(label: &str) -> Option<(Target, String, String, String)> {
    let parts: Vec<&str> = label.split("--").collect();
    let [first, agent, workspace, user] = parts.as_slice() else {
        return None;
    };
    if [first, agent, workspace, user]
        .iter()
        .any(|part| part.is_empty())
    {
        return None;
    }
    let (digits, https) = match first.strip_suffix('s') {
        Some(digits) => (digits, true),
        None => (*first, false),
    };
    let target = match digits.parse::<u16>() {
        Ok(port) if port > 0 => Target::Port(port, https),
        _ => Target::App((*first).to_owned()),
    };
    Some((
        target,
        (*agent).to_owned(),
        (*workspace).to_owned(),
        (*user).to_owned(),
    ))
}

/// Hop-by-hop headers describe one connection, not the message (RFC 9110 §7.6.1).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// Cookies that prove who the user is to us; an app never sees them.
const OUR_COOKIES: [&str; 3] = [
    sdk::SESSION_TOKEN_COOKIE,
    app_tokens::APP_COOKIE,
    app_tokens::SIGNED_COOKIE,
];

/// The request as the app sees it: no session token, and where it came from.
fn forwarded_headers(headers: &mut HeaderMap, state: &AppState, peer: Option<std::net::IpAddr>) {
    // Appended to what a proxy in front of us already recorded.
    if let Some(peer) = peer {
        let chain = match headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
        {
            Some(earlier) => format!("{earlier}, {peer}"),
            None => peer.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            headers.insert("x-forwarded-for", value);
        }
    }
    strip_hop_by_hop(headers);
    headers.remove(sdk::SESSION_TOKEN_HEADER);
    let cookies: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .map(str::trim)
        .filter(|cookie| {
            let name = cookie.split('=').next().unwrap_or_default();
            !cookie.is_empty() && !OUR_COOKIES.contains(&name)
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !cookies.is_empty()
        && let Ok(value) = HeaderValue::from_str(&cookies.join("; "))
    {
        headers.insert(header::COOKIE, value);
    }
    let access = &state.config.access_url;
    if let Some(host) = access.host_str() {
        let host = match access.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        if let Ok(value) = HeaderValue::from_str(&host) {
            headers.insert("x-forwarded-host", value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(access.scheme()) {
        headers.insert("x-forwarded-proto", value);
    }
}

impl ApiError {
    /// 502: the workspace side failed.
    pub(crate) fn bad_gateway(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_GATEWAY, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let Some((Target::App(slug), agent, workspace, user)) =
            parse_label("code--main--dev--alice")
        else {
            panic!("an app label parses");
        };
        assert_eq!(
            (
                slug.as_str(),
                agent.as_str(),
                workspace.as_str(),
                user.as_str()
            ),
            ("code", "main", "dev", "alice")
        );
        assert!(matches!(
            parse_label("8080--main--dev--alice"),
            Some((Target::Port(8080, false), ..))
        ));
        assert!(matches!(
            parse_label("8443s--main--dev--alice"),
            Some((Target::Port(8443, true), ..))
        ));
        assert!(parse_label("code--dev--alice").is_none());
        assert!(parse_label("code----dev--alice").is_none());
        assert!(matches!(
            parse_label("0--main--dev--alice"),
            Some((Target::App(_), ..))
        ));
    }
}

//! Workspace apps: on paths (`/@USER/WORKSPACE[.AGENT]/apps/SLUG/...`), on subdomains of the
//! wildcard access URL (`SLUG--AGENT--WORKSPACE--USER.<wildcard>`), and port URLs
//! (`PORT--AGENT--WORKSPACE--USER.<wildcard>`), proxied to the app's port inside the workspace
//! over the server's own tunnel to the agent (`agent_conn`).
//!
//! Only the workspace's owner (and deployment owners) may open an app so far; anyone else gets
//! the same 404 as for a workspace that does not exist. The session token never reaches the
//! app: its cookie and header are removed from the forwarded request.

use crate::auth::CurrentUser;
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::state::AppState;
use apps::client::Upstream;
use apps::forward::{ProxyError, cookie, query_param, request_host, wants_html};
use apps::names::{Target, parse_label, split_agent};
use apps::tokens::{self as app_tokens, Kind};
use axum::Router;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::any;

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

/// The requester, when the request carries a valid session; public apps need none. A session
/// that could not be checked (the database is away) is an error, not an anonymous visitor: a
/// signed-in user must not be sent to log in again.
async fn requester(
    state: &AppState,
    request: Request,
) -> Result<(Option<CurrentUser>, Request), ApiError> {
    let (mut parts, body) = request.into_parts();
    let current = match CurrentUser::from_request_parts(&mut parts, state).await {
        Ok(current) => Some(current),
        Err(err) if err.status().is_server_error() => return Err(err),
        Err(_) => None,
    };
    Ok((current, Request::from_parts(parts, body)))
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

impl Who<'_> {
    /// The user a signed token names: nil for anonymous access to a public app.
    fn user_id(self) -> uuid::Uuid {
        match self {
            Who::Anonymous => uuid::Uuid::nil(),
            Who::User(current) => current.user.id,
            Who::AppToken(user_id) => user_id,
        }
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
    let grant = header_grant(&request, &scope);
    if let Some(upstream) = signed_upstream(&state, signed.as_deref(), &scope) {
        return Ok(forward(&state, &upstream, &path, request).await?);
    }
    if let Some(upstream) = granted_upstream(&state, grant.as_ref()) {
        return Ok(forward(&state, &upstream, &path, request).await?);
    }
    let browser = wants_html(&request);
    let back = request
        .uri()
        .path_and_query()
        .map_or_else(|| format!("{prefix}/"), ToString::to_string);
    let (current, request) = requester(&state, request).await?;
    let (workspace, agent) = split_agent(&workspace);
    let who = current.as_ref().map_or(Who::Anonymous, Who::User);
    match resolve(&state, who, username, workspace, agent, &Target::App(slug)).await {
        Ok(upstream) => {
            let cookie_path = format!("{prefix}/");
            let signing = Signing {
                scope: &scope,
                cookie_path: &cookie_path,
                grant,
            };
            proxy_and_sign(&state, who, &upstream, signing, &path, request).await
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

/// The upstream named by the request's signed app token, if it has one for `scope` and the
/// server's tunnel to that agent is up (else the request takes the long way, which re-dials).
fn signed_upstream(state: &AppState, token: Option<&str>, scope: &str) -> Option<Upstream> {
    let token = token?;
    let now = chrono::Utc::now().timestamp();
    let upstream = state
        .app_tokens
        .verify(token, Kind::Signed, scope, now)?
        .upstream?;
    state
        .agent_conn
        .is_connected(upstream.agent_id)
        .then_some(upstream)
}

/// Proxies a request authorized the long way, and hands the browser a signed token so that
/// its next requests to this app skip the checks (see [`app_tokens`]).
/// What an authorized request leaves behind for the next ones.
struct Signing<'a> {
    /// The app the token is good for.
    scope: &'a str,
    /// Where the browser sends the cookie back.
    cookie_path: &'a str,
    /// The session header's grant key, for clients without cookies.
    grant: Option<crate::app_grants::GrantKey>,
}

/// The grant key of a request that carries its session token in the header.
fn header_grant(request: &Request, scope: &str) -> Option<crate::app_grants::GrantKey> {
    request
        .headers()
        .get(sdk::SESSION_TOKEN_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(|token| crate::app_grants::key(token.trim(), scope))
}

/// The upstream remembered for this session header and app, while its agent's tunnel is up.
fn granted_upstream(
    state: &AppState,
    grant: Option<&crate::app_grants::GrantKey>,
) -> Option<Upstream> {
    let upstream = state
        .app_grants
        .get(grant?, chrono::Utc::now().timestamp())?;
    state
        .agent_conn
        .is_connected(upstream.agent_id)
        .then_some(upstream)
}

async fn proxy_and_sign(
    state: &AppState,
    who: Who<'_>,
    upstream: &Upstream,
    signing: Signing<'_>,
    path: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let Signing {
        scope,
        cookie_path,
        grant,
    } = signing;
    let mut response = forward(state, upstream, path, request).await?;
    let expires = chrono::Utc::now().timestamp() + app_tokens::SIGNED_SECONDS;
    if let (Some(grant), Who::User(_)) = (grant, who) {
        state.app_grants.insert(grant, upstream.clone(), expires);
    }
    let user_id = who.user_id();
    let token = state.app_tokens.sign(&app_tokens::Claims {
        kind: Kind::Signed,
        user_id,
        scope: scope.to_owned(),
        expires,
        upstream: Some(upstream.clone()),
    });
    if let Some(value) = app_tokens::signed_cookie(&token, cookie_path, secure(state)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Cookies travel only over HTTPS when the deployment is served over it.
fn secure(state: &AppState) -> bool {
    state.config.access_url.scheme() == "https"
}

async fn forward(
    state: &AppState,
    upstream: &Upstream,
    path: &str,
    request: Request,
) -> Result<Response, ProxyError> {
    apps::forward::proxy(
        &state.app_client,
        &state.config.access_url,
        upstream,
        path,
        request,
    )
    .await
}

fn wildcard_label(state: &AppState, host: &str) -> Option<String> {
    apps::names::wildcard_label(state.config.wildcard_access_url.as_deref(), host)
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
    let grant = header_grant(&request, &host);
    if let Some(upstream) = signed_upstream(&state, signed.as_deref(), &host) {
        return forward(&state, &upstream, &path, request)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    if let Some(upstream) = granted_upstream(&state, grant.as_ref()) {
        return forward(&state, &upstream, &path, request)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    let (current, request) = match requester(&state, request).await {
        Ok(requested) => requested,
        Err(err) => return err.into_response(),
    };
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
        let signing = Signing {
            scope: &host,
            cookie_path: "/",
            grant,
        };
        proxy_and_sign(&state, who, &upstream, signing, &path, request).await
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
    apps::tokens::exchange(
        &state.app_tokens,
        request.uri(),
        host,
        token,
        secure(state),
        now,
    )
    .unwrap_or_else(|| {
        ApiError::unauthorized("This app sign-in link is invalid or has expired.")
            .detail("Open the app again from the dashboard.")
            .into_response()
    })
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
    let ours = wildcard_label(&state, &host).is_some() || is_proxy_host(&state, &host).await?;
    if !ours || !matches!(target.scheme(), "http" | "https") {
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

/// Whether `host` (with its port, if any) is a workspace proxy's access host or under its
/// wildcard: the hosts a sign-in may be handed to besides our own app hosts.
async fn is_proxy_host(state: &AppState, host: &str) -> Result<bool, ApiError> {
    for proxy in state.store.workspace_proxies().await? {
        let access = url::Url::parse(&proxy.url).ok();
        let access_host = access.as_ref().and_then(|url| {
            let name = url.host_str()?;
            Some(match url.port() {
                Some(port) => format!("{name}:{port}"),
                None => name.to_owned(),
            })
        });
        let wildcard =
            (!proxy.wildcard_hostname.is_empty()).then_some(proxy.wildcard_hostname.as_str());
        if access_host.is_some_and(|access| access.eq_ignore_ascii_case(host))
            || apps::names::wildcard_label(wildcard, host).is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `POST /api/v2/workspaceproxies/me/issue-signed-app-token`: a workspace proxy asks whether
/// the user behind a request (session token, or the proxy host's app cookie) may open an app;
/// the answer is a signed app token for the proxy to verify and keep as a cookie.
async fn issue_signed_app_token(
    State(state): State<AppState>,
    crate::auth::CurrentProxy(proxy): crate::auth::CurrentProxy,
    crate::json::Json(request): crate::json::Json<sdk::IssueSignedAppTokenRequest>,
) -> Result<axum::Json<sdk::IssueSignedAppTokenResponse>, ApiError> {
    let app = &request.app_request;
    let current = match &request.session_token {
        Some(token) => Some(crate::auth::authenticate(&state, token.expose()).await?),
        None => None,
    };
    let now = chrono::Utc::now().timestamp();
    // An app cookie is bound to the host that set it: the scope's host.
    let scope_host = request.scope.split('/').next().unwrap_or_default();
    let cookie_user = match (&current, &request.app_cookie) {
        (None, Some(cookie)) => {
            match state
                .app_tokens
                .verify(cookie.expose(), Kind::App, scope_host, now)
            {
                Some(claims) => Some(CurrentUser::by_id(&state, claims.user_id).await?.id),
                None => None,
            }
        }
        _ => None,
    };
    let who = match (&current, cookie_user) {
        (Some(current), _) => Who::User(current),
        (None, Some(user_id)) => Who::AppToken(user_id),
        (None, None) => Who::Anonymous,
    };
    let upstream = if app.access_method == "terminal" {
        let current = current.as_ref().ok_or_else(|| {
            ApiError::unauthorized("You are not signed in.")
                .detail("The web terminal needs a session token.")
        })?;
        let agent_id = uuid::Uuid::try_parse(&app.agent)
            .map_err(|_| ApiError::bad_request("agent must be an agent id for the terminal."))?;
        let agent = super::agents::connectable_agent(&state, current, agent_id).await?;
        Upstream {
            agent_id: agent.id,
            port: 0,
            https: false,
            base_path: String::new(),
        }
    } else {
        let target = match app.access_method.as_str() {
            "path" => Target::App(app.app.clone()),
            "subdomain" => apps::names::subdomain_target(&app.app),
            other => {
                return Err(ApiError::bad_request(format!(
                    "Unknown access method {other:?}; expected path, subdomain or terminal."
                )));
            }
        };
        let agent = (!app.agent.is_empty()).then_some(app.agent.as_str());
        resolve(&state, who, &app.username, &app.workspace, agent, &target).await?
    };
    tracing::debug!(proxy = %proxy.name, scope = %request.scope, "issued a signed app token to a workspace proxy");
    let user_id = who.user_id();
    let token = state.app_tokens.sign(&app_tokens::Claims {
        kind: Kind::Signed,
        user_id,
        scope: request.scope.clone(),
        expires: now + app_tokens::SIGNED_SECONDS,
        upstream: Some(upstream),
    });
    Ok(axum::Json(sdk::IssueSignedAppTokenResponse {
        signed_token: sdk::Secret::new(token),
    }))
}

/// `POST /api/v2/applications/reconnecting-pty-signed-token`: the dashboard opens the web
/// terminal through a workspace proxy, which cannot read the dashboard's session cookie; the
/// primary checks the user may reach the agent and signs a one-minute token the proxy verifies
/// itself (sent as the `coder_signed_app_token_23db1dde` query parameter).
async fn reconnecting_pty_signed_token(
    State(state): State<AppState>,
    current: CurrentUser,
    crate::json::Json(request): crate::json::Json<sdk::IssueReconnectingPtySignedTokenRequest>,
) -> Result<axum::Json<sdk::IssueSignedAppTokenResponse>, ApiError> {
    let url = url::Url::parse(&request.url)
        .map_err(|err| ApiError::bad_request(format!("url is not a URL: {err}")))?;
    let expected = format!("/api/v2/workspaceagents/{}/pty", request.agent_id);
    if !matches!(url.scheme(), "http" | "https" | "ws" | "wss") || url.path() != expected {
        return Err(ApiError::bad_request(format!(
            "url must be the agent's terminal URL (a path of {expected})."
        )));
    }
    let agent = super::agents::connectable_agent(&state, &current, request.agent_id).await?;
    let token = state.app_tokens.sign(&app_tokens::Claims {
        kind: Kind::Signed,
        user_id: current.user.id,
        scope: app_tokens::terminal_scope(agent.id),
        expires: chrono::Utc::now().timestamp() + app_tokens::SIGNED_SECONDS,
        upstream: Some(Upstream {
            agent_id: agent.id,
            port: 0,
            https: false,
            base_path: String::new(),
        }),
    });
    Ok(axum::Json(sdk::IssueSignedAppTokenResponse {
        signed_token: sdk::Secret::new(token),
    }))
}

pub(crate) fn api_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/applications/reconnecting-pty-signed-token",
            axum::routing::post(reconnecting_pty_signed_token),
        )
        .route(
            "/applications/auth-redirect",
            axum::routing::get(auth_redirect),
        )
        .route(
            "/workspaceproxies/me/issue-signed-app-token",
            axum::routing::post(issue_signed_app_token),
        )
}

impl ApiError {
    /// 502: the workspace side failed.
    pub(crate) fn bad_gateway(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_GATEWAY, message)
    }
}

impl From<ProxyError> for ApiError {
    fn from(err: ProxyError) -> Self {
        ApiError::new(err.status, err.message)
    }
}

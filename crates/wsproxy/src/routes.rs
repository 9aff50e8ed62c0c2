//! The proxy's HTTP application: health (`/healthz`, `/healthz-report`), the dashboard's
//! latency probe (`/latency-check`, any origin), `/api/v2/buildinfo`, workspace apps (path,
//! subdomain, port URLs) and the web terminal; everything else is a page pointing to the
//! dashboard. The relay (`GET /relay`) is served by the accept loop itself.

use std::sync::Arc;

use apps::client::Upstream;
use apps::forward::{ProxyError, cookie, query_param, request_host, wants_html};
use apps::names::{Target, parse_label, split_agent, wildcard_label};
use apps::tokens::{self, Kind};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use httpd::metrics::HttpMetrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use uuid::Uuid;

use crate::State as ProxyState;

type AppState = Arc<ProxyState>;

pub(crate) fn router(state: AppState) -> Router {
    let http = state.metrics.http.clone();
    Router::new()
        .route("/healthz", get(|| async { "OK" }))
        .route("/healthz-report", get(health_report))
        .route("/latency-check", get(latency_check).options(latency_check))
        .route(
            tunnel::relay::PROBE_PATH,
            get(|| async { ([("access-control-allow-origin", "*")], "") }),
        )
        .route("/api/v2/buildinfo", get(build_info))
        .route("/{user}/{workspace}/apps/{slug}", any(add_slash))
        .route("/{user}/{workspace}/apps/{slug}/", any(path_app_root))
        .route("/{user}/{workspace}/apps/{slug}/{*path}", any(path_app))
        .route("/api/v2/workspaceagents/{id}/pty", get(terminal))
        .fallback(|State(state): State<AppState>| async move { to_dashboard(&state) })
        .layer(from_fn_with_state(state.clone(), subdomains))
        .layer(from_fn_with_state(http, httpd::metrics::track))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            version_header,
        ))
        .with_state(state)
}

/// Every answer says which version served it (the primary tells a proxy from other servers
/// by it).
async fn version_header(State(state): State<AppState>, mut response: Response) -> Response {
    if let Ok(version) = HeaderValue::from_str(&state.config.version) {
        response
            .headers_mut()
            .insert("x-coder-build-version", version);
    }
    response
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
             <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto;padding:0 1em\">\
             <h1>{title}</h1>{body}</body></html>"
        )),
    )
        .into_response()
}

/// What a proxy does not serve: the dashboard and the API live on the primary.
fn to_dashboard(state: &ProxyState) -> Response {
    let dashboard = state.config.primary_access_url.as_str();
    page(
        StatusCode::NOT_FOUND,
        "Head to the dashboard",
        &format!(
            "<p>This is a workspace proxy: it serves workspace apps and terminals, not the \
             dashboard or the API.</p><p><a href=\"{dashboard}\">Go to the dashboard</a></p>"
        ),
    )
}

fn derp_only(state: &ProxyState) -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Relay only",
        &format!(
            "<p>This workspace proxy is DERP-only: it relays tunnels but serves no apps. \
             Open your apps from the <a href=\"{}\">dashboard</a>.</p>",
            state.config.primary_access_url
        ),
    )
}

async fn health_report(State(state): State<AppState>) -> Json<sdk::ProxyHealthReport> {
    Json(crate::primary::health_report(&state).await)
}

/// The dashboard measures its latency to each proxy here, from any origin (a custom header
/// makes the browser send a preflight first, so the measured request runs on a warm connection).
async fn latency_check() -> impl IntoResponse {
    (
        [
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "GET, OPTIONS"),
            ("access-control-allow-headers", "*"),
            ("cache-control", "no-store"),
        ],
        "",
    )
}

async fn build_info(State(state): State<AppState>) -> Json<sdk::BuildInfo> {
    Json(sdk::BuildInfo {
        external_url: state
            .config
            .access_url
            .as_str()
            .trim_end_matches('/')
            .to_owned(),
        version: state.config.version.clone(),
        commit: String::new(),
        dashboard_url: state
            .config
            .primary_access_url
            .as_str()
            .trim_end_matches('/')
            .to_owned(),
        workspace_proxy: true,
        agent_api_version: "1.0".to_owned(),
        deployment_id: state
            .registered
            .get()
            .map(|registered| registered.deployment_id.clone())
            .unwrap_or_default(),
        telemetry: false,
    })
}

/// Relative links in an app only resolve under a trailing slash.
async fn add_slash(Path((user, workspace, slug)): Path<(String, String, String)>) -> Response {
    if !user.starts_with('@') {
        return StatusCode::NOT_FOUND.into_response();
    }
    Redirect::permanent(&format!("/{user}/{workspace}/apps/{slug}/")).into_response()
}

async fn path_app_root(
    State(state): State<AppState>,
    Path((user, workspace, slug)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    path_app_request(state, user, workspace, slug, String::new(), request).await
}

async fn path_app(
    State(state): State<AppState>,
    Path((user, workspace, slug, path)): Path<(String, String, String, String)>,
    request: Request,
) -> Response {
    path_app_request(state, user, workspace, slug, path, request).await
}

async fn path_app_request(
    state: AppState,
    user: String,
    workspace: String,
    slug: String,
    path: String,
    request: Request,
) -> Response {
    let Some(username) = user.strip_prefix('@') else {
        return to_dashboard(&state);
    };
    if state.config.derp_only {
        return derp_only(&state);
    }
    if state.config.disable_path_apps {
        return ProxyError {
            status: StatusCode::NOT_FOUND,
            message: "Path-based apps are disabled on this workspace proxy (--disable-path-apps); open the app's subdomain URL.".into(),
        }
        .into_response();
    }
    let host = access_host(&state);
    let prefix = format!("/{user}/{workspace}/apps/{slug}");
    let (workspace_name, agent) = split_agent(&workspace);
    let app = sdk::AppRequest {
        access_method: "path".into(),
        username: username.to_owned(),
        workspace: workspace_name.to_owned(),
        agent: agent.unwrap_or_default().to_owned(),
        app: slug,
    };
    let scope = format!("{host}{prefix}");
    serve_app(
        &state,
        &host,
        app,
        &scope,
        &format!("{prefix}/"),
        &format!("/{path}"),
        request,
    )
    .await
}

/// The proxy's `host[:port]`.
fn access_host(state: &ProxyState) -> String {
    let access = &state.config.access_url;
    let host = access.host_str().unwrap_or_default();
    match access.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Subdomain apps and port URLs under the proxy's `--wildcard-access-url`.
async fn subdomains(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(host) = request_host(&request) else {
        return next.run(request).await;
    };
    let Some(label) = wildcard_label(state.config.wildcard_access_url.as_deref(), &host) else {
        return next.run(request).await;
    };
    if state.config.derp_only {
        return derp_only(&state);
    }
    let Some((target, agent, workspace, user)) = parse_label(&label) else {
        return ProxyError {
            status: StatusCode::NOT_FOUND,
            message: "Subdomain apps are named SLUG--AGENT--WORKSPACE--USER or PORT--AGENT--WORKSPACE--USER.".into(),
        }
        .into_response();
    };
    let app = match target {
        Target::App(slug) => slug,
        Target::Port(port, https) => format!("{port}{}", if https { "s" } else { "" }),
    };
    let app = sdk::AppRequest {
        access_method: "subdomain".into(),
        username: user,
        workspace,
        agent,
        app,
    };
    let path = request.uri().path().to_owned();
    serve_app(&state, &host, app, &host, "/", &path, request).await
}

/// The session token a request carries: header, cookie, or (WebSockets only, as browsers cannot
/// set headers on them) the query.
fn session_token(request: &Request) -> Option<String> {
    if let Some(token) = request
        .headers()
        .get(sdk::SESSION_TOKEN_HEADER)
        .and_then(|value| value.to_str().ok())
    {
        return Some(token.trim().to_owned());
    }
    if let Some(token) = cookie(request, sdk::SESSION_TOKEN_COOKIE) {
        return Some(token);
    }
    let websocket = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    websocket
        .then(|| query_param(request, sdk::SESSION_TOKEN_QUERY))
        .flatten()
}

fn secure(state: &ProxyState) -> bool {
    state.config.access_url.scheme() == "https"
}

fn not_ready() -> Response {
    ProxyError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "This workspace proxy has not registered with the primary yet.".into(),
    }
    .into_response()
}

/// One app request: a sign-in hand-off, a request with a valid signed token (straight to the
/// agent), or one the primary must authorize first.
async fn serve_app(
    state: &ProxyState,
    host: &str,
    app: sdk::AppRequest,
    scope: &str,
    cookie_path: &str,
    path: &str,
    request: Request,
) -> Response {
    let Some(registered) = state.registered.get() else {
        return not_ready();
    };
    let now = chrono::Utc::now().timestamp();
    if let Some(token) = query_param(&request, tokens::EXCHANGE_PARAM) {
        return tokens::exchange(
            &registered.signer,
            request.uri(),
            host,
            &token,
            secure(state),
            now,
        )
        .unwrap_or_else(|| {
            ProxyError {
                status: StatusCode::UNAUTHORIZED,
                message: "This app sign-in link is invalid or has expired. Open the app again from the dashboard.".into(),
            }
            .into_response()
        });
    }
    let signed = cookie(&request, tokens::SIGNED_COOKIE);
    let cached = signed
        .as_deref()
        .and_then(|token| registered.signer.verify(token, Kind::Signed, scope, now))
        .and_then(|claims| claims.upstream);
    if let Some(upstream) = cached
        && registered.agents.is_connected(upstream.agent_id)
    {
        return forward(state, &upstream, path, request).await;
    }
    let browser = wants_html(&request);
    let here = format!(
        "{}://{host}{}",
        state.config.access_url.scheme(),
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let issued = state
        .primary
        .issue_signed_app_token(&sdk::IssueSignedAppTokenRequest {
            app_request: app,
            session_token: session_token(&request).map(sdk::Secret::new),
            app_cookie: cookie(&request, tokens::APP_COOKIE).map(sdk::Secret::new),
            scope: scope.to_owned(),
        })
        .await;
    let token = match issued {
        Ok(answer) => answer.signed_token,
        // A browser without a session here signs in on the dashboard and comes back.
        Err(sdk::client::ClientError::Api { status: 401, .. }) if browser => {
            let mut to = state.config.primary_access_url.clone();
            to.set_path("/api/v2/applications/auth-redirect");
            to.query_pairs_mut().append_pair("redirect_uri", &here);
            return Redirect::to(to.as_str()).into_response();
        }
        Err(sdk::client::ClientError::Api { status, response }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            return (status, Json(response)).into_response();
        }
        Err(err) => {
            return ProxyError::bad_gateway(format!(
                "This workspace proxy cannot reach the primary to authorize the request: {err}"
            ))
            .into_response();
        }
    };
    let Some(upstream) = registered
        .signer
        .verify(token.expose(), Kind::Signed, scope, now)
        .and_then(|claims| claims.upstream)
    else {
        return ProxyError::bad_gateway(
            "The primary's app token does not verify here: restart this proxy so it registers again.",
        )
        .into_response();
    };
    let mut response = forward(state, &upstream, path, request).await;
    if let Some(value) = tokens::signed_cookie(token.expose(), cookie_path, secure(state)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

async fn forward(
    state: &ProxyState,
    upstream: &Upstream,
    path: &str,
    request: Request,
) -> Response {
    let Some(registered) = state.registered.get() else {
        return not_ready();
    };
    apps::forward::proxy(
        &registered.app_client,
        &state.config.access_url,
        upstream,
        path,
        request,
    )
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// The web terminal from this region: authorized by the primary (the user's session), then
/// bridged to the agent over the proxy's own tunnel.
async fn terminal(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<apps::terminal::PtyQuery>,
    request: Request,
) -> Response {
    if state.config.derp_only {
        return derp_only(&state);
    }
    let Some(registered) = state.registered.get() else {
        return not_ready();
    };
    // The dashboard's way in: a token the primary signed for this agent's terminal.
    let now = chrono::Utc::now().timestamp();
    let presigned = query_param(&request, tokens::SIGNED_TERMINAL_PARAM).map(|token| {
        registered
            .signer
            .verify(&token, Kind::Signed, &tokens::terminal_scope(id), now)
            .is_some()
    });
    match presigned {
        Some(true) => {}
        Some(false) => {
            return ProxyError {
                status: StatusCode::UNAUTHORIZED,
                message: "This terminal link is invalid or has expired. Open the terminal again from the dashboard.".into(),
            }
            .into_response();
        }
        None => {
            // Ambient cookies count only from the proxy's or the primary's own pages.
            let origins = [&state.config.access_url, &state.config.primary_access_url];
            if !apps::forward::websocket_origin_allowed(request.headers(), &origins) {
                return ProxyError {
                    status: StatusCode::FORBIDDEN,
                    message: "The web terminal may only be opened from the dashboard.".into(),
                }
                .into_response();
            }
            let token = session_token(&request);
            if let Some(response) = authorize_terminal(&state, id, token).await {
                return response;
            }
        }
    }
    let (mut parts, _body) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let (send, recv) = match registered.agents.open(id, &query.stream_request()).await {
        Ok(streams) => streams,
        Err(err) => return ProxyError::bad_gateway(err.to_string()).into_response(),
    };
    upgrade.on_upgrade(move |socket| apps::terminal::bridge(socket, send, recv))
}

/// Asks the primary whether the request's session may open the terminal; `Some` is the
/// refusal to send back.
async fn authorize_terminal(
    state: &AppState,
    id: Uuid,
    session_token: Option<String>,
) -> Option<Response> {
    let issued = state
        .primary
        .issue_signed_app_token(&sdk::IssueSignedAppTokenRequest {
            app_request: sdk::AppRequest {
                access_method: "terminal".into(),
                username: String::new(),
                workspace: String::new(),
                agent: id.to_string(),
                app: String::new(),
            },
            session_token: session_token.map(sdk::Secret::new),
            app_cookie: None,
            scope: tokens::terminal_scope(id),
        })
        .await;
    let err = issued.err()?;
    Some(match err {
        sdk::client::ClientError::Api { status, response } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            Json(response),
        )
            .into_response(),
        other => ProxyError::bad_gateway(format!(
            "This workspace proxy cannot reach the primary to authorize the terminal: {other}"
        ))
        .into_response(),
    })
}

/// The proxy's metrics: HTTP requests (Coder's names) and the relay's counters.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) http: Arc<HttpMetrics>,
}

impl Metrics {
    pub(crate) fn new(relay: Option<tunnel::relay::EmbeddedRelay>) -> Self {
        let mut registry = Registry::default();
        let http = Arc::new(HttpMetrics::register(&mut registry));
        if let Some(relay) = relay {
            registry.register_collector(Box::new(RelayCollector(relay)));
        }
        Self { registry, http }
    }
}

pub(crate) fn metrics_router(state: AppState) -> Router {
    httpd::metrics::router(move || httpd::metrics::encode(&state.metrics.registry))
}

/// The relay's counters, read at each scrape, as `coder_wsproxy_derp_*`.
#[derive(Debug)]
struct RelayCollector(tunnel::relay::EmbeddedRelay);

impl Collector for RelayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        let counters = [
            (
                "coder_wsproxy_derp_accepts",
                "Relay connections accepted",
                stats.accepts,
            ),
            (
                "coder_wsproxy_derp_bytes_received",
                "Bytes received from relay clients",
                stats.bytes_received,
            ),
            (
                "coder_wsproxy_derp_bytes_sent",
                "Bytes sent to relay clients",
                stats.bytes_sent,
            ),
            (
                "coder_wsproxy_derp_packets_received",
                "Datagram frames (one packet or a batch) received from relay clients",
                stats.packets_received,
            ),
            (
                "coder_wsproxy_derp_packets_sent",
                "Datagram frames (one packet or a batch) delivered to relay clients",
                stats.packets_sent,
            ),
            (
                "coder_wsproxy_derp_packets_dropped",
                "Datagram frames dropped: recipient gone or its connection failed",
                stats.packets_dropped,
            ),
        ];
        for (name, help, value) in counters {
            let metric = ConstCounter::new(value);
            let metric_encoder =
                encoder.encode_descriptor(name, help, None, metric.metric_type())?;
            metric.encode(metric_encoder)?;
        }
        let current =
            i64::try_from(stats.accepts.saturating_sub(stats.disconnects)).unwrap_or(i64::MAX);
        let gauge = ConstGauge::new(current);
        let metric_encoder = encoder.encode_descriptor(
            "coder_wsproxy_derp_current_connections",
            "Relay connections open now",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric_encoder)
    }
}

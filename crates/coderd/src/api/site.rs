//! Pages outside the API: the dashboard (the embedded single-page app from the `site` crate,
//! served for its routes), the latency probe, the "not found" page, and the sign-in form
//! browsers are sent to when the dashboard or an app needs a session. The form works without
//! JavaScript: a POST that sets the session cookie and returns the browser to where it was.

use axum::extract::{FromRequestParts, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Router};
use serde::Deserialize;

use crate::api::users::{LoginRefused, password_login};
use crate::auth::{self, CurrentUser, PeerAddress};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", axum::routing::get(login_form).post(login_submit))
        .route("/assets/{*path}", axum::routing::get(asset))
        // The dashboard's proxy picker measures this server's latency like a proxy's.
        .route(
            "/latency-check",
            axum::routing::get(latency_check).options(latency_check),
        )
}

/// The dashboard's routes: these paths load the app, which renders them.
const DASHBOARD_PATHS: &[&str] = &[
    "/workspaces",
    "/templates",
    "/users",
    "/deployment",
    "/health",
    "/settings",
    "/setup",
];

fn is_dashboard_path(path: &str) -> bool {
    path == "/"
        || path.starts_with("/@")
        || DASHBOARD_PATHS.iter().any(|prefix| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// What the server answers for paths no route claims: the dashboard for its own paths (GET),
/// else a plain 404 page.
pub(crate) async fn fallback(method: axum::http::Method, uri: Uri) -> Response {
    if (method == axum::http::Method::GET || method == axum::http::Method::HEAD)
        && is_dashboard_path(uri.path())
    {
        return dashboard();
    }
    not_found()
}

fn dashboard() -> Response {
    let index = site::index();
    (
        [
            (header::CONTENT_TYPE, index.content_type),
            (header::CACHE_CONTROL, index.cache_control()),
            // Scripts and styles only from here; fetches and sockets also reach workspace
            // proxies (other origins, any scheme); never framed by another site.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data: https: http:; connect-src 'self' https: http: wss: ws:; \
                 frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        index.bytes,
    )
        .into_response()
}

async fn asset(uri: Uri) -> Response {
    match site::file(uri.path()) {
        Some(file) => (
            [
                (header::CONTENT_TYPE, file.content_type),
                (header::CACHE_CONTROL, file.cache_control()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            file.bytes,
        )
            .into_response(),
        None => not_found(),
    }
}

/// An empty answer any origin may time: the dashboard probes the primary and each proxy.
async fn latency_check() -> impl IntoResponse {
    (
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::HeaderName::from_static("timing-allow-origin"), "*"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        "",
    )
}

pub(crate) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(page(
            "Not found",
            "<p>There is nothing at this address. <a href=\"/workspaces\">Go to the dashboard</a>.</p>",
        )),
    )
        .into_response()
}

/// A server-rendered page in the dashboard's colours (no script, no external files).
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"dark light\"><title>{title}</title><style>\
         body{{font-family:system-ui,sans-serif;background:#0f1115;color:#e6e8ee;margin:0;\
         min-height:100vh;display:grid;place-items:center;padding:1rem;box-sizing:border-box}}\
         main{{background:#171a21;border:1px solid #2a2f3a;border-radius:8px;padding:1.5rem 2rem;\
         width:min(26rem,100%)}}h1{{font-size:1.4rem;margin-top:0}}a{{color:#4d8cff}}\
         label{{display:block;font-weight:500}}input{{font:inherit;width:100%;box-sizing:border-box;\
         margin-top:.25rem;padding:.45rem .6rem;border-radius:6px;border:1px solid #2a2f3a;\
         background:#0f1115;color:inherit}}button{{font:inherit;background:#4d8cff;color:#fff;\
         border:0;border-radius:6px;padding:.5rem 1rem;cursor:pointer}}\
         [role=alert]{{color:#f0575c}}</style></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>"
    )
}

/// Where to go after signing in.
#[derive(Deserialize)]
struct Next {
    #[serde(default)]
    redirect: String,
}

/// `/login?redirect=/path`: `/login?redirect=` plus the URL-encoded path and query to return to.
pub(crate) fn login_url(back: &str) -> String {
    format!(
        "/login?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("redirect", back)
            .finish()
    )
}

/// Only paths on this server: never an open redirect to somewhere else (`//host`, `/\host`
/// and absolute URLs are all refused).
fn safe_target(redirect: &str) -> &str {
    let local = redirect.starts_with('/')
        && !redirect.starts_with("//")
        && !redirect.contains('\\')
        && !redirect.chars().any(char::is_control);
    if local { redirect } else { "/" }
}

async fn login_form(
    State(state): State<AppState>,
    mut parts: axum::http::request::Parts,
    Query(next): Query<Next>,
) -> Response {
    let target = safe_target(&next.redirect);
    // A new deployment: its first user is created in the dashboard's setup page.
    if matches!(state.store.has_users().await, Ok(false)) {
        return Redirect::to("/setup").into_response();
    }
    // Already signed in: straight on.
    if CurrentUser::from_request_parts(&mut parts, &state)
        .await
        .is_ok()
    {
        return Redirect::to(target).into_response();
    }
    Html(form(target, None)).into_response()
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
    #[serde(default)]
    redirect: String,
}

async fn login_submit(
    State(state): State<AppState>,
    PeerAddress(peer): PeerAddress,
    headers: HeaderMap,
    Form(credentials): Form<Credentials>,
) -> Response {
    let target = safe_target(&credentials.redirect).to_owned();
    // Another site may not sign a browser in to this one (login CSRF).
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if origin.is_some_and(|origin| {
        origin.trim_end_matches('/') != state.config.access_url.origin().ascii_serialization()
    }) {
        let body = form(&target, Some("This form was sent from another site."));
        return (StatusCode::FORBIDDEN, Html(body)).into_response();
    }
    let password = sdk::Secret::new(credentials.password);
    match password_login(&state, peer, &credentials.email, &password).await {
        Ok(token) => {
            let cookie = auth::session_cookie(
                &token,
                state.config.session_duration,
                state.config.cookie_is_secure(),
            );
            let mut response = Redirect::to(&target).into_response();
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Err(refused) => {
            let retry = match refused {
                LoginRefused::TooMany(seconds) => Some(seconds),
                _ => None,
            };
            let error = refused.into_error();
            let mut response = (
                error.status(),
                Html(form(&target, Some(&error.user_text()))),
            )
                .into_response();
            if let Some(seconds) = retry {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
    }
}

fn form(target: &str, error: Option<&str>) -> String {
    let error = error
        .map(|message| format!("<p role=\"alert\">{}</p>", escape(message)))
        .unwrap_or_default();
    page(
        "Sign in to Coder",
        &format!(
            "{error}<form method=\"post\" action=\"/login\">\
             <input type=\"hidden\" name=\"redirect\" value=\"{}\">\
             <p><label>Email<br><input name=\"email\" type=\"email\" autocomplete=\"username\" required autofocus></label></p>\
             <p><label>Password<br><input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p>\
             <p><button type=\"submit\">Sign in</button></p></form>",
            escape(target)
        ),
    )
}

/// Text for HTML element content and quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_redirect_targets() {
        assert_eq!(
            safe_target("/@alice/dev/apps/code/?x=1"),
            "/@alice/dev/apps/code/?x=1"
        );
        for hostile in [
            "https://evil.example",
            "//evil.example/x",
            "/\\evil.example",
            "",
            "x",
        ] {
            assert_eq!(safe_target(hostile), "/", "{hostile}");
        }
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert!(form("/\"><script>", None).contains("/&quot;&gt;&lt;script&gt;"));
    }
}

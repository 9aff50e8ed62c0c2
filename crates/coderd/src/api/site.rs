//! Server-rendered pages outside the API: the start page, the "not found" page, and the
//! sign-in form browsers are sent to when an app (or the subdomain app sign-in) needs a
//! session. It works without JavaScript: a form POST that sets the session cookie and returns
//! the browser to where it was going.

use axum::extract::{FromRequestParts, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Router};
use serde::Deserialize;

use crate::api::users::{LoginRefused, password_login};
use crate::auth::{self, CurrentUser, PeerAddress};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", axum::routing::get(index))
        .route("/login", axum::routing::get(login_form).post(login_submit))
}

/// The start page until the dashboard (issue #7) replaces it: honest about what exists.
async fn index() -> impl IntoResponse {
    Html(page(
        "Coder",
        "<p>This Coder server is running. The web dashboard is not built yet; use the CLI:</p>\
         <pre>coder login &lt;this URL&gt;</pre>",
    ))
}

pub(crate) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(page(
            "Not found",
            "<p>There is nothing at this address.</p>",
        )),
    )
        .into_response()
}

pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto;padding:0 1em\">\
         <h1>{title}</h1>{body}</body></html>"
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
        .map(|message| {
            format!(
                "<p role=\"alert\" style=\"color:#b00\">{}</p>",
                escape(message)
            )
        })
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

//! The REST API under `/api/v2`, one module per resource, plus the few routes outside it.

mod agents;
mod api_keys;
mod apps;
pub(crate) use apps::subdomains as subdomain_apps;
mod buildinfo;
mod files;
mod organizations;
mod provisionerdaemons;
mod templates;
mod terminal;
mod users;
mod workspaces;

use axum::Router;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use http::StatusCode;

use crate::error::ApiError;
use crate::state::AppState;

/// Every `/api/v2` route.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(apps::api_routes())
        .merge(buildinfo::routes())
        .merge(users::routes())
        .merge(api_keys::routes())
        .merge(organizations::routes())
        .merge(files::routes())
        .merge(templates::routes())
        .merge(provisionerdaemons::routes())
        .merge(workspaces::routes())
        .merge(agents::routes())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "Route not found.")
                .detail("See the API reference in the README for the routes that exist.")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed on this route.",
            )
        })
}

/// Routes outside the API: health and the start page.
pub(crate) fn site_routes() -> Router<AppState> {
    Router::new()
        .merge(apps::routes())
        .route("/healthz", get(|| async { "OK" }))
        // Tunnel endpoints measure their latency to the embedded relay here.
        .route(
            tunnel::relay::PROBE_PATH,
            get(|| async { ([("access-control-allow-origin", "*")], "") }),
        )
        .route("/", get(index))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Html(page(
                    "Not found",
                    "<p>There is nothing at this address.</p>",
                )),
            )
        })
}

/// The start page until the dashboard (issue #7) replaces it: honest about what exists.
async fn index() -> impl IntoResponse {
    Html(page(
        "Coder",
        "<p>This Coder server is running. The web dashboard is not built yet; use the CLI:</p>\
         <pre>coder login &lt;this URL&gt;</pre>",
    ))
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\">\
         <h1>{title}</h1>{body}</body></html>"
    )
}

//! The REST API under `/api/v2`, one module per resource, plus the few routes outside it.

mod agents;
mod api_keys;
mod apps;
pub(crate) use apps::subdomains as subdomain_apps;
mod buildinfo;
mod files;
mod health;
mod organizations;
mod provisionerdaemons;
mod site;
mod templates;
mod terminal;
mod users;
mod workspace_proxies;
mod workspaces;

use axum::Router;
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
        .merge(health::routes())
        .merge(templates::routes())
        .merge(provisionerdaemons::routes())
        .merge(workspaces::routes())
        .merge(workspace_proxies::routes())
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

/// Routes outside the API: health, the dashboard and its sign-in form, workspace apps.
pub(crate) fn site_routes() -> Router<AppState> {
    Router::new()
        .merge(apps::routes())
        .route("/healthz", get(|| async { "OK" }))
        // Tunnel endpoints measure their latency to the embedded relay here.
        .route(
            tunnel::relay::PROBE_PATH,
            get(|| async { ([("access-control-allow-origin", "*")], "") }),
        )
        .merge(site::routes())
        .fallback(site::fallback)
}

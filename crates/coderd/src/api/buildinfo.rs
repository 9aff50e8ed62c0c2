//! `GET /api/v2/buildinfo` (no authentication), `GET /api/v2/experiments` and
//! `GET /api/v2/derp-map`: what clients read about the deployment.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::auth::CurrentUser;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/buildinfo", get(build_info))
        .route("/experiments", get(experiments))
        .route("/derp-map", get(derp_map))
}

async fn build_info(State(state): State<AppState>) -> Json<sdk::BuildInfo> {
    let access_url = state
        .config
        .access_url
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    Json(sdk::BuildInfo {
        external_url: access_url.clone(),
        version: crate::VERSION.to_owned(),
        commit: option_env!("CODER_BUILD_COMMIT")
            .unwrap_or_default()
            .to_owned(),
        dashboard_url: access_url,
        workspace_proxy: false,
        agent_api_version: "1.0".to_owned(),
        deployment_id: state.deployment_id.to_string(),
        telemetry: state.config.telemetry,
    })
}

async fn experiments(State(state): State<AppState>, _user: CurrentUser) -> Json<Vec<String>> {
    Json(state.config.experiments.clone())
}

/// The relay map (Tailscale's DERP-map format), for clients and agents.
async fn derp_map(
    State(state): State<AppState>,
    _user: CurrentUser,
) -> Result<Json<sdk::DerpMap>, crate::error::ApiError> {
    Ok(Json(super::workspace_proxies::relay_map(&state).await?))
}

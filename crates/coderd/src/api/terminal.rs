//! The web terminal: `GET /api/v2/workspaceagents/{id}/pty?reconnect=UUID&width=W&height=H
//! &command=...` upgrades to a WebSocket bridged to a reconnecting terminal session in the
//! agent, over the server's own tunnel. The browser sends JSON text or binary messages
//! (`{"data": "..."}` to type, `{"height": H, "width": W}` to resize); the server sends the
//! terminal's output as binary messages.

use apps::terminal::PtyQuery;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use uuid::Uuid;

use crate::api::agents::connectable_agent;
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) async fn pty(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
    Query(query): Query<PtyQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // Only the dashboard's own pages (or non-browser clients) may use the session cookie here.
    if !apps::forward::websocket_origin_allowed(&headers, &[&state.config.access_url]) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "The web terminal may only be opened from the dashboard.",
        )
        .detail("The WebSocket's Origin is another site's."));
    }
    let agent = connectable_agent(&state, &current, id).await?;
    // Open the agent side first, so a failure is an HTTP error rather than a closed socket.
    let (send, recv) = state
        .agent_conn
        .open(agent.id, &query.stream_request())
        .await
        .map_err(|err| ApiError::bad_gateway(err.to_string()))?;
    Ok(upgrade.on_upgrade(move |socket| apps::terminal::bridge(socket, send, recv)))
}

//! `/api/v2/workspaceagents`: the agent's own API (`/me/...`, authenticated with its build's
//! agent token: manifest, heartbeat, lifecycle, logs) and what users read about agents.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::{TimeDelta, Utc};
use sdk::{
    AgentAddressEvent, AgentConnectionInfo, AgentHeartbeatRequest, AgentManifest, AgentSettings,
    AuthorizedClients, PatchAgentLogsRequest, TunnelAddress, UpdateLifecycleRequest,
    WorkspaceAgent, WorkspaceAgentLifecycle, WorkspaceAgentLog, WorkspaceAgentStatus,
};
use serde::Deserialize;
use store::{NewAgentLog, WorkspaceAgentRow, WorkspaceRow};
use tunnel::EndpointId;
use uuid::Uuid;

use crate::auth::{CurrentProxy, CurrentUser, hash_secret};
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::json::Json as JsonBody;
use crate::state::AppState;

/// An agent is connected while its heartbeats (every 10 s) keep coming.
const CONNECTED_WITHIN: TimeDelta = TimeDelta::seconds(30);
/// An agent that never connects within this long has timed out.
const CONNECT_TIMEOUT: TimeDelta = TimeDelta::minutes(10);

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaceagents/me/manifest", get(manifest))
        .route("/workspaceagents/me/heartbeat", post(heartbeat))
        .route(
            "/workspaceagents/me/report-lifecycle",
            post(report_lifecycle),
        )
        .route("/workspaceagents/me/logs", patch(append_logs))
        .route("/workspaceagents/me/app-health", post(report_app_health))
        .route("/workspaceagents/me/coordinate", get(agent_coordinate))
        .route("/workspaceagents/me/tunnel-address", post(publish_address))
        .route("/workspaceagents/connection", get(connection_info))
        .route("/workspaceagents/{id}/coordinate", get(client_coordinate))
        .route("/workspaceagents/{id}/pty", get(super::terminal::pty))
        .route(
            "/workspaceagents/{id}/listening-ports",
            get(listening_ports),
        )
        .route("/workspaceagents/{id}", get(show_agent))
        .route("/workspaceagents/{id}/logs", get(agent_logs))
}

pub(crate) fn lifecycle(name: &str) -> WorkspaceAgentLifecycle {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .unwrap_or(WorkspaceAgentLifecycle::Created)
}

pub(crate) fn to_sdk(row: &WorkspaceAgentRow) -> WorkspaceAgent {
    let now = Utc::now();
    let status = match row.last_connected_at {
        Some(last) if now - last <= CONNECTED_WITHIN => WorkspaceAgentStatus::Connected,
        Some(_) => WorkspaceAgentStatus::Disconnected,
        None if now - row.created_at > CONNECT_TIMEOUT => WorkspaceAgentStatus::Timeout,
        None => WorkspaceAgentStatus::Connecting,
    };
    let settings: AgentSettings = serde_json::from_value(row.settings.clone()).unwrap_or_default();
    WorkspaceAgent {
        id: row.id,
        name: row.name.clone(),
        status,
        lifecycle_state: lifecycle(&row.lifecycle_state),
        first_connected_at: row.first_connected_at,
        last_connected_at: row.last_connected_at,
        version: row.version.clone(),
        directory: settings.dir,
        apps: settings
            .apps
            .into_iter()
            .map(|mut app| {
                app.health = match row.app_health.get(&app.slug).and_then(|h| h.as_str()) {
                    Some(health) => health.to_owned(),
                    None if app.healthcheck.is_none() => "disabled".to_owned(),
                    None => "initializing".to_owned(),
                };
                app
            })
            .collect(),
        connection_count: row.connection_count,
        last_connection_path: row.last_connection_path.clone(),
        last_connection_at: row.last_connection_at,
        rx_bytes: row.rx_bytes,
        tx_bytes: row.tx_bytes,
    }
}

/// The agent a request's token belongs to; only the agent of its workspace's latest build
/// of a live workspace is accepted.
pub(crate) struct CurrentAgent {
    agent: WorkspaceAgentRow,
    workspace: WorkspaceRow,
}

impl FromRequestParts<AppState> for CurrentAgent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::unauthorized("Invalid agent token.")
                .detail("The agent needs its build's token in CODER_AGENT_TOKEN.")
        };
        let token = parts
            .headers
            .get(sdk::SESSION_TOKEN_HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|token| !token.is_empty())
            .ok_or_else(invalid)?;
        let agent = state
            .store
            .workspace_agent_by_token_hash(&hash_secret(token))
            .await?
            .ok_or_else(invalid)?;
        let build = state
            .store
            .workspace_build(agent.build_id)
            .await?
            .ok_or_else(invalid)?;
        let workspace = state
            .store
            .workspace(build.workspace_id)
            .await?
            .ok_or_else(invalid)?;
        // A stop or delete build still lets the agent it stops report its shutdown; a newer
        // start build has an agent of its own.
        let latest = state.store.latest_workspace_build(workspace.id).await?;
        let superseded = latest.is_some_and(|latest| {
            latest.id != build.id
                && latest.transition == "start"
                && latest.build_number > build.build_number
        });
        if workspace.deleted || superseded {
            return Err(ApiError::unauthorized(
                "This agent's workspace build is no longer current.",
            ));
        }
        Ok(CurrentAgent { agent, workspace })
    }
}

async fn manifest(
    State(state): State<AppState>,
    current: CurrentAgent,
) -> Result<Json<AgentManifest>, ApiError> {
    let settings: AgentSettings =
        serde_json::from_value(current.agent.settings.clone()).unwrap_or_default();
    let owner = state
        .store
        .user_by_id(current.workspace.owner_id)
        .await?
        .map(|user| user.username)
        .unwrap_or_default();
    Ok(Json(AgentManifest {
        agent_id: current.agent.id,
        workspace_id: current.workspace.id,
        workspace_name: current.workspace.name.clone(),
        owner_name: owner,
        directory: settings.dir,
        environment_variables: settings.env,
        startup_script: settings.startup_script,
        shutdown_script: settings.shutdown_script,
        apps: settings.apps,
        metadata: settings.metadata,
        derp_map: super::workspace_proxies::relay_map(&state).await?,
        disable_direct_connections: state.config.block_direct_connections,
    }))
}

async fn heartbeat(
    State(state): State<AppState>,
    current: CurrentAgent,
    JsonBody(request): JsonBody<AgentHeartbeatRequest>,
) -> Result<StatusCode, ApiError> {
    let version: String = request.version.chars().take(64).collect();
    state
        .store
        .touch_workspace_agent(current.agent.id, Some(&version))
        .await?;
    if let Some(connections) = request.connections {
        let path: String = connections.last_path.chars().take(128).collect();
        state
            .store
            .record_agent_connections(
                current.agent.id,
                connections.open.max(0),
                &path,
                connections.last_at,
                (
                    i64::try_from(connections.rx_bytes).unwrap_or(i64::MAX),
                    i64::try_from(connections.tx_bytes).unwrap_or(i64::MAX),
                ),
            )
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn report_lifecycle(
    State(state): State<AppState>,
    current: CurrentAgent,
    JsonBody(request): JsonBody<UpdateLifecycleRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .set_workspace_agent_lifecycle(current.agent.id, request.state.name())
        .await?;
    state
        .store
        .touch_workspace_agent(current.agent.id, None)
        .await?;
    tracing::info!(agent_id = %current.agent.id, state = request.state.name(), "agent lifecycle");
    Ok(StatusCode::NO_CONTENT)
}

async fn report_app_health(
    State(state): State<AppState>,
    current: CurrentAgent,
    JsonBody(request): JsonBody<sdk::AppHealthRequest>,
) -> Result<StatusCode, ApiError> {
    const STATES: [&str; 4] = ["disabled", "initializing", "healthy", "unhealthy"];
    if let Some((slug, health)) = request
        .healths
        .iter()
        .find(|(_, health)| !STATES.contains(&health.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "App {slug:?} has health {health:?}; expected one of {}.",
            STATES.join(", ")
        )));
    }
    let health = serde_json::to_value(&request.healths).unwrap_or_default();
    state
        .store
        .set_agent_app_health(current.agent.id, &health)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The longest line kept from an agent's script output.
const MAX_LINE: usize = 4096;

async fn append_logs(
    State(state): State<AppState>,
    current: CurrentAgent,
    JsonBody(request): JsonBody<PatchAgentLogsRequest>,
) -> Result<StatusCode, ApiError> {
    if !matches!(
        request.source.as_str(),
        "startup_script" | "shutdown_script"
    ) {
        return Err(ApiError::bad_request(
            "source must be startup_script or shutdown_script.",
        ));
    }
    let logs: Vec<NewAgentLog> = request
        .logs
        .into_iter()
        .map(|log| NewAgentLog {
            source: request.source.clone(),
            level: if log.level == "error" {
                "error"
            } else {
                "info"
            }
            .to_owned(),
            output: log.output.chars().take(MAX_LINE).collect(),
        })
        .collect();
    state
        .store
        .append_agent_logs(current.agent.id, &logs)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The agent, if the caller may connect to its workspace (404 when they may not even see it,
/// 403 when they may only look).
pub(crate) async fn connectable_agent(
    state: &AppState,
    current: &CurrentUser,
    id: Uuid,
) -> Result<WorkspaceAgentRow, ApiError> {
    let (agent, workspace) = agent_and_workspace(state, id).await?;
    let resource = Resource::Workspace {
        owner: workspace.owner_id,
        organization: workspace.organization_id,
    };
    current.subject.authorize(Action::Read, resource)?;
    current.subject.authorize(Action::Connect, resource)?;
    Ok(agent)
}

pub(crate) async fn agent_and_workspace(
    state: &AppState,
    id: Uuid,
) -> Result<(WorkspaceAgentRow, WorkspaceRow), ApiError> {
    let agent = state
        .store
        .workspace_agent(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let build = state
        .store
        .workspace_build(agent.build_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let workspace = state
        .store
        .workspace(build.workspace_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok((agent, workspace))
}

async fn readable_agent(
    state: &AppState,
    current: &CurrentUser,
    id: Uuid,
) -> Result<WorkspaceAgentRow, ApiError> {
    let (agent, workspace) = agent_and_workspace(state, id).await?;
    current.subject.authorize(
        Action::Read,
        Resource::Workspace {
            owner: workspace.owner_id,
            organization: workspace.organization_id,
        },
    )?;
    Ok(agent)
}

async fn show_agent(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<WorkspaceAgent>, ApiError> {
    let agent = readable_agent(&state, &current, id).await?;
    Ok(Json(to_sdk(&agent)))
}

async fn agent_logs(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<WorkspaceAgentLog>>, ApiError> {
    let agent = readable_agent(&state, &current, id).await?;
    let logs = state.store.agent_logs(agent.id, 0).await?;
    Ok(Json(
        logs.into_iter()
            .map(|log| WorkspaceAgentLog {
                id: log.id,
                created_at: log.created_at,
                source: log.source,
                level: log.level,
                output: log.output,
            })
            .collect(),
    ))
}

async fn connection_info(
    State(state): State<AppState>,
    _current: CurrentUser,
) -> Result<Json<AgentConnectionInfo>, ApiError> {
    Ok(Json(AgentConnectionInfo {
        derp_map: super::workspace_proxies::relay_map(&state).await?,
        disable_direct_connections: state.config.block_direct_connections,
    }))
}

#[derive(Deserialize)]
struct CoordinateQuery {
    endpoint_id: String,
}

fn endpoint_id(query: &CoordinateQuery) -> Result<EndpointId, ApiError> {
    query.endpoint_id.parse().map_err(|_| {
        ApiError::bad_request("Invalid endpoint_id.")
            .detail("endpoint_id must be the tunnel endpoint's public key.")
    })
}

/// How often an idle coordinate stream sends a comment, so proxies and the clients' read
/// timeouts see it alive.
const COORDINATE_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// The agent's side: while this stream is open the agent's endpoint is admitted to the relay,
/// and it receives the set of client endpoints allowed to connect to it, whenever it changes.
async fn agent_coordinate(
    State(state): State<AppState>,
    current: CurrentAgent,
    Query(query): Query<CoordinateQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let endpoint = endpoint_id(&query)?;
    let session = state.coordinator.agent_session(current.agent.id, endpoint);
    tracing::debug!(agent_id = %current.agent.id, %endpoint, "agent joined the coordinator");
    let events = futures_util::stream::unfold((session, true), |(mut session, first)| async move {
        if !first && session.clients.changed().await.is_err() {
            return None;
        }
        let endpoint_ids = session
            .clients
            .borrow_and_update()
            .keys()
            .cloned()
            .collect();
        let event = Event::default()
            .event("clients")
            .json_data(AuthorizedClients { endpoint_ids })
            .unwrap_or_default();
        Some((Ok::<_, Infallible>(event), (session, false)))
    });
    Ok(sse(&state, events))
}

async fn publish_address(
    State(state): State<AppState>,
    current: CurrentAgent,
    JsonBody(address): JsonBody<TunnelAddress>,
) -> Result<StatusCode, ApiError> {
    state
        .coordinator
        .publish(current.agent.id, address)
        .map_err(|err| ApiError::conflict(err.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A client's side: only someone who may connect to the workspace learns its agent's address;
/// while the stream is open the client's endpoint is admitted to the relay and the agent.
async fn client_coordinate(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
    Query(query): Query<CoordinateQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let endpoint = endpoint_id(&query)?;
    let agent = connectable_agent(&state, &current, id).await?;
    tracing::debug!(agent_id = %agent.id, %endpoint, user = %current.user.username, "client joined the coordinator");
    Ok(follow_agent(&state, agent.id, endpoint))
}

/// `GET /workspaceproxies/me/coordinate?agent_id=&endpoint_id=`: a workspace proxy's own
/// endpoint joins an agent's clients, as the primary's does for apps and terminals it serves
/// (users are authorized per request, with signed app tokens the primary issues).
pub(crate) async fn proxy_coordinate(
    State(state): State<AppState>,
    CurrentProxy(proxy): CurrentProxy,
    Query(query): Query<ProxyCoordinateQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let endpoint = endpoint_id(&CoordinateQuery {
        endpoint_id: query.endpoint_id,
    })?;
    let agent = state
        .store
        .workspace_agent(query.agent_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tracing::debug!(agent_id = %agent.id, %endpoint, proxy = %proxy.name, "workspace proxy joined the coordinator");
    Ok(follow_agent(&state, agent.id, endpoint))
}

#[derive(Deserialize)]
pub(crate) struct ProxyCoordinateQuery {
    agent_id: Uuid,
    endpoint_id: String,
}

/// Registers `endpoint` as a client of the agent while the stream lasts, and streams the
/// agent's address as it changes.
fn follow_agent(
    state: &AppState,
    agent_id: Uuid,
    endpoint: EndpointId,
) -> impl IntoResponse + use<> {
    let session = state.coordinator.client_session(agent_id, endpoint);
    let events = futures_util::stream::unfold((session, true), |(mut session, first)| async move {
        if !first && session.address.changed().await.is_err() {
            return None;
        }
        let address = session.address.borrow_and_update().clone();
        let event = Event::default()
            .event("agent")
            .json_data(AgentAddressEvent { address })
            .unwrap_or_default();
        Some((Ok::<_, Infallible>(event), (session, false)))
    });
    sse(state, events)
}

/// An endless event stream, ended when the server begins to stop (clients reconnect to
/// whichever server is up) instead of holding the shutdown's drain period.
pub(crate) fn sse<S>(state: &AppState, events: S) -> impl IntoResponse + use<S>
where
    S: futures_util::Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    use futures_util::StreamExt as _;
    let events = events.take_until(state.shutdown.clone().cancelled_owned());
    // Nginx buffers responses unless told otherwise; a coordinate stream must flow at once.
    (
        [("x-accel-buffering", "no")],
        Sse::new(events).keep_alive(KeepAlive::new().interval(COORDINATE_KEEPALIVE)),
    )
}

/// Asks the agent, over the server's tunnel, which ports its workspace listens on.
async fn listening_ports(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<sdk::ListeningPortsResponse>, ApiError> {
    let agent = connectable_agent(&state, &current, id).await?;
    let (_send, mut recv) = state
        .agent_conn
        .open(agent.id, &tunnel::proto::StreamRequest::ListeningPorts)
        .await
        .map_err(|err| ApiError::bad_gateway(err.to_string()))?;
    let response = tunnel::proto::read_header(&mut recv)
        .await
        .map_err(|err| ApiError::bad_gateway(format!("reading the agent's answer: {err}")))?;
    Ok(Json(response))
}

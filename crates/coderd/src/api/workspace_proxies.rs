//! Workspace proxies on the primary: owners manage them (`/workspaceproxies`), everyone lists
//! the usable regions (`/regions`), and a running proxy registers, re-registers and leaves with
//! its token (`/workspaceproxies/me/...`). The relay map every client and agent gets includes
//! the relays of the healthy proxies.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use sdk::{
    CreateWorkspaceProxyRequest, DeregisterWorkspaceProxyRequest, PatchWorkspaceProxy,
    ProxyHealthReport, ProxyHealthStatus, Region, RegionsResponse, RegisterWorkspaceProxyRequest,
    RegisterWorkspaceProxyResponse, UpdateWorkspaceProxyResponse, ValidationError, WorkspaceProxy,
    WorkspaceProxyStatus,
};
use store::{ProxyRegistration, Registered, WorkspaceProxyRow};
use uuid::Uuid;

use crate::auth::{self, CurrentProxy, CurrentUser};
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::json::Json as JsonBody;
use crate::state::AppState;

/// A proxy instance that has not re-registered for this long has gone (it re-registers every
/// 15 s), so another instance may take the token over.
const REPLICA_STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(45);
/// How long a registration waits for the health check that makes the proxy usable.
const REGISTER_HEALTH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaceproxies", get(list).post(create))
        .route(
            "/workspaceproxies/{proxy}",
            get(show).patch(patch).delete(delete),
        )
        .route("/workspaceproxies/me/register", post(register))
        .route("/workspaceproxies/me/deregister", post(deregister))
        .route(
            "/workspaceproxies/me/coordinate",
            get(super::agents::proxy_coordinate),
        )
        .route(
            "/workspaceproxies/me/relay-admissions",
            get(relay_admissions),
        )
        .route("/regions", get(regions))
}

/// The primary's own entry: always there, always healthy.
fn primary(state: &AppState) -> WorkspaceProxy {
    let now = chrono::Utc::now();
    WorkspaceProxy {
        id: Uuid::try_parse(&state.deployment_id).unwrap_or_default(),
        name: sdk::PRIMARY_PROXY_NAME.to_owned(),
        display_name: "Default".to_owned(),
        icon_url: "/emojis/1f3e1.png".to_owned(),
        healthy: true,
        path_app_url: state
            .config
            .access_url
            .as_str()
            .trim_end_matches('/')
            .to_owned(),
        wildcard_hostname: wildcard_host(state.config.wildcard_access_url.as_deref()),
        derp_enabled: state.config.relay_enabled,
        derp_only: false,
        status: WorkspaceProxyStatus {
            status: ProxyHealthStatus::Ok,
            report: ProxyHealthReport::default(),
            checked_at: Some(now),
        },
        created_at: now,
        updated_at: now,
        deleted: false,
        version: crate::VERSION.to_owned(),
    }
}

/// `*.apps.example.com` from `--wildcard-access-url` (which may carry a scheme).
fn wildcard_host(wildcard: Option<&str>) -> String {
    wildcard
        .unwrap_or_default()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .to_owned()
}

pub(crate) fn to_sdk(state: &AppState, row: &WorkspaceProxyRow) -> WorkspaceProxy {
    let status = state.proxy_health.status(row);
    WorkspaceProxy {
        id: row.id,
        name: row.name.clone(),
        display_name: row.display_name.clone(),
        icon_url: row.icon.clone(),
        healthy: status.status == ProxyHealthStatus::Ok,
        path_app_url: row.url.clone(),
        wildcard_hostname: row.wildcard_hostname.clone(),
        derp_enabled: row.derp_enabled,
        derp_only: row.derp_only,
        status,
        created_at: row.created_at,
        updated_at: row.updated_at,
        deleted: row.deleted,
        version: row.version.clone(),
    }
}

/// Letters, digits and single inner hyphens, at most 32 characters: it becomes part of host
/// names and region codes.
fn validate_name(name: &str) -> Option<&'static str> {
    let well_formed = !name.is_empty()
        && name.len() <= 32
        && name
            .split('-')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
    if !well_formed {
        return Some("must be 1-32 letters, digits and single inner hyphens");
    }
    if name.eq_ignore_ascii_case(sdk::PRIMARY_PROXY_NAME) {
        return Some("\"primary\" is reserved for the primary's own entry");
    }
    None
}

fn name_error(detail: &str) -> ApiError {
    ApiError::validation(vec![ValidationError {
        field: "name".to_owned(),
        detail: detail.to_owned(),
    }])
}

fn name_taken(name: &str) -> ApiError {
    ApiError::conflict(format!("A workspace proxy named {name:?} already exists."))
}

async fn create(
    State(state): State<AppState>,
    current: CurrentUser,
    JsonBody(request): JsonBody<CreateWorkspaceProxyRequest>,
) -> Result<impl IntoResponse, ApiError> {
    current
        .subject
        .authorize(Action::Create, Resource::WorkspaceProxies)?;
    let name = request.name.trim();
    if let Some(problem) = validate_name(name) {
        return Err(name_error(problem));
    }
    let display_name = match request.display_name.trim() {
        "" => name,
        display_name => display_name,
    };
    let id = Uuid::new_v4();
    let (token, hash) = auth::new_proxy_token(id);
    let row = match state
        .store
        .insert_workspace_proxy(id, name, display_name, request.icon.trim(), &hash)
        .await
    {
        Ok(row) => row,
        Err(store::Error::UniqueViolation { .. }) => return Err(name_taken(name)),
        Err(err) => return Err(err.into()),
    };
    state.proxy_health.refresh_soon();
    Ok((
        StatusCode::CREATED,
        Json(UpdateWorkspaceProxyResponse {
            proxy: to_sdk(&state, &row),
            proxy_token: Some(token),
        }),
    ))
}

async fn list(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<Vec<WorkspaceProxy>>, ApiError> {
    current
        .subject
        .authorize(Action::Read, Resource::WorkspaceProxies)?;
    let rows = state.store.workspace_proxies().await?;
    let mut proxies = vec![primary(&state)];
    proxies.extend(rows.iter().map(|row| to_sdk(&state, row)));
    Ok(Json(proxies))
}

/// A proxy by id or (any-case) name; `None` for the primary.
async fn find(state: &AppState, proxy: &str) -> Result<Option<WorkspaceProxyRow>, ApiError> {
    if proxy.eq_ignore_ascii_case(sdk::PRIMARY_PROXY_NAME) || proxy == state.deployment_id.as_ref()
    {
        return Ok(None);
    }
    let row = match Uuid::try_parse(proxy) {
        Ok(id) => state.store.workspace_proxy_by_id(id).await?,
        Err(_) => state.store.workspace_proxy_by_name(proxy).await?,
    };
    row.map(Some).ok_or_else(|| {
        ApiError::not_found().detail(format!("No workspace proxy is named {proxy:?}."))
    })
}

async fn show(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(proxy): Path<String>,
) -> Result<Json<WorkspaceProxy>, ApiError> {
    current
        .subject
        .authorize(Action::Read, Resource::WorkspaceProxies)?;
    Ok(Json(match find(&state, &proxy).await? {
        Some(row) => to_sdk(&state, &row),
        None => primary(&state),
    }))
}

async fn patch(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(proxy): Path<String>,
    JsonBody(request): JsonBody<PatchWorkspaceProxy>,
) -> Result<Json<UpdateWorkspaceProxyResponse>, ApiError> {
    current
        .subject
        .authorize(Action::Update, Resource::WorkspaceProxies)?;
    let row = find(&state, &proxy).await?.ok_or_else(|| {
        ApiError::bad_request("The primary is not a workspace proxy and cannot be changed.")
    })?;
    let name = request.name.as_deref().map_or(row.name.as_str(), str::trim);
    if name != row.name
        && let Some(problem) = validate_name(name)
    {
        return Err(name_error(problem));
    }
    let display_name = request
        .display_name
        .as_deref()
        .map_or(row.display_name.as_str(), str::trim);
    let icon = request.icon.as_deref().map_or(row.icon.as_str(), str::trim);
    let mut row = match state
        .store
        .update_workspace_proxy(row.id, name, display_name, icon)
        .await
    {
        Ok(Some(row)) => row,
        Ok(None) => return Err(ApiError::not_found()),
        Err(store::Error::UniqueViolation { .. }) => return Err(name_taken(name)),
        Err(err) => return Err(err.into()),
    };
    let mut proxy_token = None;
    if request.regenerate_token {
        let (token, hash) = auth::new_proxy_token(row.id);
        row = state
            .store
            .update_workspace_proxy_token(row.id, &hash)
            .await?
            .ok_or_else(ApiError::not_found)?;
        proxy_token = Some(token);
    }
    state.proxy_health.refresh_soon();
    Ok(Json(UpdateWorkspaceProxyResponse {
        proxy: to_sdk(&state, &row),
        proxy_token,
    }))
}

async fn delete(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(proxy): Path<String>,
) -> Result<Json<sdk::Response>, ApiError> {
    current
        .subject
        .authorize(Action::Delete, Resource::WorkspaceProxies)?;
    let row = find(&state, &proxy)
        .await?
        .ok_or_else(|| ApiError::bad_request("The primary cannot be deleted."))?;
    state.store.delete_workspace_proxy(row.id).await?;
    state.proxy_health.refresh_soon();
    Ok(Json(sdk::Response::message(format!(
        "Workspace proxy {:?} deleted.",
        row.name
    ))))
}

/// Where everyone can reach apps from: the primary, then each healthy proxy that serves apps.
async fn regions(
    State(state): State<AppState>,
    _current: CurrentUser,
) -> Result<Json<RegionsResponse>, ApiError> {
    let region = |proxy: WorkspaceProxy| Region {
        id: proxy.id,
        name: proxy.name,
        display_name: proxy.display_name,
        icon_url: proxy.icon_url,
        healthy: proxy.healthy,
        path_app_url: proxy.path_app_url,
        wildcard_hostname: proxy.wildcard_hostname,
    };
    let mut regions = vec![region(primary(&state))];
    for row in state.store.workspace_proxies().await? {
        if !row.derp_only && state.proxy_health.healthy(&row) {
            regions.push(region(to_sdk(&state, &row)));
        }
    }
    Ok(Json(RegionsResponse { regions }))
}

/// The first relay region ID for proxies: well above the base map's, on a round number, so
/// adding regions to the base map later does not shift them (999 → 10000, 8500 → 20000).
pub(crate) fn proxy_region_start(base: &sdk::DerpMap) -> i64 {
    let highest = base
        .regions
        .values()
        .map(|region| region.region_id)
        .max()
        .unwrap_or(0)
        .max(0);
    let highest = u64::try_from(highest).unwrap_or_default();
    i64::try_from((highest + 2000).div_ceil(10_000) * 10_000).unwrap_or(i64::MAX)
}

/// A proxy's relay as a region: one node at its access URL.
fn proxy_region(start: i64, row: &WorkspaceProxyRow) -> Option<sdk::DerpRegion> {
    let url = url::Url::parse(&row.url).ok()?;
    let id = start + i64::from(row.region_id);
    let mut region = tunnel::relay_map::embedded_region(
        id,
        &format!("coder_{}", row.name.to_ascii_lowercase()),
        &row.display_name,
        url.host_str()?,
        url.port_or_known_default()?,
        url.scheme() == "http",
    );
    region.embedded_relay = false;
    Some(region)
}

/// The relay map clients and agents get: the base map (with the embedded region) and the
/// relays of the healthy proxies that run one.
pub(crate) async fn relay_map(state: &AppState) -> Result<sdk::DerpMap, ApiError> {
    let mut map = state.config.relay_map.clone();
    let start = proxy_region_start(&map);
    for row in state.store.workspace_proxies().await? {
        if !row.derp_enabled || !state.proxy_health.healthy(&row) {
            continue;
        }
        if let Some(region) = proxy_region(start, &row) {
            map.regions.insert(region.region_id.to_string(), region);
        }
    }
    Ok(map)
}

fn registration_problems(request: &RegisterWorkspaceProxyRequest) -> Vec<ValidationError> {
    let mut problems = Vec::new();
    let mut problem = |field: &str, detail: &str| {
        problems.push(ValidationError {
            field: field.to_owned(),
            detail: detail.to_owned(),
        });
    };
    match url::Url::parse(&request.access_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && matches!(url.path(), "" | "/") => {}
        _ => problem(
            "access_url",
            "must be an http:// or https:// URL without a path",
        ),
    }
    if !request.wildcard_hostname.is_empty() {
        let labels: Vec<&str> = request.wildcard_hostname.split('.').collect();
        let valid = labels.first() == Some(&"*")
            && labels.len() >= 3
            && labels[1..]
                .iter()
                .all(|label| !label.is_empty() && !label.contains('*'));
        if !valid {
            problem(
                "wildcard_hostname",
                "must look like *.apps.example.com (no scheme, one leading *)",
            );
        }
    }
    if request.replica_id.is_nil() {
        problem("replica_id", "must be set");
    }
    if request.derp_only && !request.derp_enabled {
        problem("derp_only", "needs derp_enabled");
    }
    problems
}

/// `POST /workspaceproxies/me/register`: a proxy instance starts, or checks in (every 15 s).
async fn register(
    State(state): State<AppState>,
    CurrentProxy(proxy): CurrentProxy,
    JsonBody(request): JsonBody<RegisterWorkspaceProxyRequest>,
) -> Result<(StatusCode, Json<RegisterWorkspaceProxyResponse>), ApiError> {
    let problems = registration_problems(&request);
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let registration = ProxyRegistration {
        url: request.access_url.trim_end_matches('/').to_owned(),
        wildcard_hostname: request.wildcard_hostname.clone(),
        derp_enabled: request.derp_enabled,
        derp_only: request.derp_only,
        version: request.version.clone(),
        replica_id: request.replica_id,
        hostname: request.hostname.clone(),
    };
    let first = proxy.replica_id != Some(request.replica_id) || proxy.url != registration.url;
    let row = match state
        .store
        .register_workspace_proxy(proxy.id, &registration, REPLICA_STALE_AFTER)
        .await?
    {
        Registered::Ok(row) => row,
        Registered::Taken(row) => {
            return Err(ApiError::conflict(format!(
                "Workspace proxy {:?} is already running (instance {} on host {:?}); two instances may not share one token.",
                row.name,
                row.replica_id.map(|id| id.to_string()).unwrap_or_default(),
                row.replica_hostname
            ))
            .detail("Create a proxy of its own for this instance with `coder wsproxy create`, or stop the other one (its registration lapses 45 s after it stops)."));
        }
        Registered::Missing => return Err(ApiError::not_found()),
    };
    if first {
        tracing::info!(proxy = %row.name, url = %row.url, replica = %request.replica_id, "workspace proxy registered");
        // Usable as soon as its health check passes, not a whole interval later.
        state.proxy_health.refresh(REGISTER_HEALTH_WAIT).await;
    }
    let derp_map = relay_map(&state).await?;
    let start = proxy_region_start(&state.config.relay_map);
    Ok((
        StatusCode::CREATED,
        Json(RegisterWorkspaceProxyResponse {
            app_signing_key: sdk::Secret::new(state.app_signing_key_hex.to_string()),
            derp_region_id: u32::try_from(start + i64::from(row.region_id)).unwrap_or_default(),
            derp_map,
            deployment_id: state.deployment_id.to_string(),
        }),
    ))
}

/// `POST /workspaceproxies/me/deregister`: a proxy instance stops cleanly.
async fn deregister(
    State(state): State<AppState>,
    CurrentProxy(proxy): CurrentProxy,
    JsonBody(request): JsonBody<DeregisterWorkspaceProxyRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .deregister_workspace_proxy(proxy.id, request.replica_id)
        .await?;
    tracing::info!(proxy = %proxy.name, replica = %request.replica_id, "workspace proxy deregistered");
    state.proxy_health.refresh_soon();
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /workspaceproxies/me/relay-admissions`: the endpoints the primary's coordinator admits,
/// for the proxy's relay to admit too (a snapshot, then each change).
async fn relay_admissions(
    State(state): State<AppState>,
    CurrentProxy(_proxy): CurrentProxy,
) -> impl IntoResponse {
    use axum::response::sse::Event;
    use tokio::sync::broadcast::error::RecvError;

    use crate::coordinator::Admission;
    let (now, changes) = state.coordinator.admissions();
    let snapshot = |endpoints: Vec<tunnel::EndpointId>| {
        Event::default()
            .event("snapshot")
            .json_data(sdk::RelayAdmissions {
                endpoints: endpoints.iter().map(ToString::to_string).collect(),
            })
            .unwrap_or_default()
    };
    let first = snapshot(now);
    let coordinator = state.coordinator.clone();
    let events = futures_util::stream::unfold(
        (Some(first), changes, coordinator),
        move |(first, mut changes, coordinator)| async move {
            if let Some(first) = first {
                return Some((
                    Ok::<_, std::convert::Infallible>(first),
                    (None, changes, coordinator),
                ));
            }
            let event = match changes.recv().await {
                Ok(Admission::Allow(endpoint)) => Event::default()
                    .event("allow")
                    .json_data(sdk::RelayAdmissions {
                        endpoints: vec![endpoint.to_string()],
                    })
                    .unwrap_or_default(),
                Ok(Admission::Revoke(endpoint)) => Event::default()
                    .event("revoke")
                    .json_data(sdk::RelayAdmissions {
                        endpoints: vec![endpoint.to_string()],
                    })
                    .unwrap_or_default(),
                // Fell behind: start over from the whole set.
                Err(RecvError::Lagged(_)) => {
                    let (now, fresh) = coordinator.admissions();
                    changes = fresh;
                    snapshot(now)
                }
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(event), (None, changes, coordinator)))
        },
    );
    super::agents::sse(&state, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_regions_start_above_the_base_map() {
        let map = |ids: &[i64]| sdk::DerpMap {
            regions: ids
                .iter()
                .map(|id| {
                    (
                        id.to_string(),
                        sdk::DerpRegion {
                            region_id: *id,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        };
        assert_eq!(proxy_region_start(&map(&[])), 10_000);
        assert_eq!(proxy_region_start(&map(&[999])), 10_000);
        assert_eq!(proxy_region_start(&map(&[1, 8500])), 20_000);
        assert_eq!(proxy_region_start(&map(&[8000])), 10_000);
    }

    #[test]
    fn names() {
        assert_eq!(validate_name("newyork"), None);
        assert_eq!(validate_name("europe-frankfurt"), None);
        for bad in [
            "",
            "-x",
            "x-",
            "a--b",
            "new york",
            "Primary",
            &"x".repeat(33),
        ] {
            assert!(validate_name(bad).is_some(), "{bad:?}");
        }
    }
}

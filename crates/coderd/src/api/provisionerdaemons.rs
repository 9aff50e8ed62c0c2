//! `/api/v2/provisionerdaemons`: the protocol provisioner daemons (built-in and external)
//! speak: claim a job by long poll, stream its logs, send heartbeats, report its outcome.
//! Daemons authenticate with a pre-shared key; a job's calls are accepted only from the daemon
//! that claimed it.

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sdk::{
    AcquireJobRequest, AcquiredJob, CompleteJobRequest, HeartbeatRequest, HeartbeatResponse,
    JobLogsRequest, JobSpec,
};
use store::NewJobLog;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::ApiError;
use crate::json::Json as JsonBody;
use crate::state::AppState;

/// How long `acquire` waits for a job before answering 204.
const ACQUIRE_WAIT: Duration = Duration::from_secs(30);
/// The largest completion body (it carries the Terraform state).
const MAX_COMPLETE_BYTES: usize = 64 << 20;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/provisionerdaemons/acquire", post(acquire))
        .route("/provisionerdaemons/jobs/{id}/logs", post(append_logs))
        .route("/provisionerdaemons/jobs/{id}/heartbeat", post(heartbeat))
        .route(
            "/provisionerdaemons/jobs/{id}/complete",
            post(complete).layer(DefaultBodyLimit::max(MAX_COMPLETE_BYTES)),
        )
}

/// A request from a provisioner daemon holding a valid key.
pub(crate) struct ProvisionerDaemon;

impl FromRequestParts<AppState> for ProvisionerDaemon {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.config.provisioner_keys.is_empty() {
            return Err(ApiError::unauthorized(
                "This deployment accepts no external provisioners.",
            )
            .detail("Start the server with --provisioner-daemon-psk to allow them."));
        }
        let given = parts
            .headers
            .get(sdk::PROVISIONER_PSK_HEADER)
            .map(|value| value.as_bytes())
            .unwrap_or_default();
        let matches = state
            .config
            .provisioner_keys
            .iter()
            .any(|key| bool::from(key.expose().as_bytes().ct_eq(given)));
        if given.is_empty() || !matches {
            return Err(
                ApiError::unauthorized("Invalid provisioner key.").detail(format!(
                    "Send the server's pre-shared key in the {} header \
                 (CODER_PROVISIONER_DAEMON_PSK).",
                    sdk::PROVISIONER_PSK_HEADER
                )),
            );
        }
        Ok(ProvisionerDaemon)
    }
}

async fn acquire(
    State(state): State<AppState>,
    _daemon: ProvisionerDaemon,
    JsonBody(request): JsonBody<AcquireJobRequest>,
) -> Result<Response, ApiError> {
    let tags = serde_json::to_value(&request.tags).map_err(ApiError::internal)?;
    let deadline = tokio::time::Instant::now() + ACQUIRE_WAIT;
    loop {
        // Armed before the check, so a job posted between the check and the wait wakes us.
        let posted = state.job_events.posted.notified();
        tokio::pin!(posted);
        posted.as_mut().enable();
        if let Some(job) = state
            .store
            .acquire_job(request.worker_id, &request.name, &tags)
            .await?
        {
            tracing::info!(job_id = %job.id, worker = %request.name, "provisioner claimed a job");
            return Ok(Json(acquired(&state, job).await?).into_response());
        }
        if tokio::time::timeout_at(deadline, posted).await.is_err() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
}

async fn acquired(state: &AppState, job: store::JobRow) -> Result<AcquiredJob, ApiError> {
    let file = state
        .store
        .file(job.file_id)
        .await?
        .ok_or_else(|| ApiError::internal(MissingFile(job.file_id)))?;
    let spec = match job.job_type.as_str() {
        "template_version_import" => JobSpec::TemplateVersionImport,
        "workspace_build" => build_spec(state, job.id).await?,
        other => return Err(ApiError::internal(UnknownJobType(other.to_owned()))),
    };
    Ok(AcquiredJob {
        job_id: job.id,
        template_source: BASE64.encode(&file.data),
        spec,
    })
}

/// A build job's spec. Mints the build's agent token: the daemon gets it once, in this answer;
/// the database keeps only its hash.
async fn build_spec(state: &AppState, job_id: Uuid) -> Result<JobSpec, ApiError> {
    let missing = || ApiError::internal(MissingBuild(job_id));
    let build = state
        .store
        .workspace_build_by_job(job_id)
        .await?
        .ok_or_else(missing)?;
    let workspace = state
        .store
        .workspace(build.workspace_id)
        .await?
        .ok_or_else(missing)?;
    let owner = state
        .store
        .user_by_id(workspace.owner_id)
        .await?
        .ok_or_else(missing)?;
    let template = state.store.template(workspace.template_id).await?;
    let token = crate::auth::random_string(32);
    state
        .store
        .set_build_agent_token_hash(build.id, &crate::auth::hash_secret(&token))
        .await?;
    let access_url = state
        .config
        .access_url
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let facts = [
        ("access_url", access_url),
        ("workspace_id", workspace.id.to_string()),
        ("workspace_name", workspace.name.clone()),
        ("workspace_owner", owner.username.clone()),
        ("workspace_owner_email", owner.email.clone()),
        (
            "template_name",
            template.map(|template| template.name).unwrap_or_default(),
        ),
        ("agent_token", token),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    Ok(JobSpec::WorkspaceBuild {
        transition: build.transition.clone(),
        facts,
        parameters: serde_json::from_value(build.parameters.clone()).unwrap_or_default(),
        state: build
            .provisioner_state
            .as_ref()
            .map(|state| BASE64.encode(state)),
    })
}

#[derive(Debug, thiserror::Error)]
#[error("the build of job {0} is missing")]
struct MissingBuild(Uuid);

#[derive(Debug, thiserror::Error)]
#[error("the job's file {0} is missing")]
struct MissingFile(Uuid);

#[derive(Debug, thiserror::Error)]
#[error("unknown job type {0:?}")]
struct UnknownJobType(String);

/// The job, if `worker_id` holds it and it is still running; 409 otherwise.
async fn held_job(state: &AppState, job_id: Uuid, worker_id: Uuid) -> Result<(), ApiError> {
    let job = state
        .store
        .job(job_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if job.worker_id != Some(worker_id) || job.completed_at.is_some() {
        return Err(
            ApiError::conflict("This provisioner no longer holds the job.")
                .detail(job.error.unwrap_or_default()),
        );
    }
    Ok(())
}

async fn append_logs(
    State(state): State<AppState>,
    _daemon: ProvisionerDaemon,
    Path(job_id): Path<Uuid>,
    JsonBody(request): JsonBody<JobLogsRequest>,
) -> Result<StatusCode, ApiError> {
    held_job(&state, job_id, request.worker_id).await?;
    let logs: Vec<NewJobLog> = request
        .logs
        .into_iter()
        .map(|log| NewJobLog {
            level: if log.level == "error" {
                "error"
            } else {
                "info"
            }
            .to_owned(),
            stage: log.stage,
            output: log.output,
        })
        .collect();
    state.store.append_job_logs(job_id, &logs).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn heartbeat(
    State(state): State<AppState>,
    _daemon: ProvisionerDaemon,
    Path(job_id): Path<Uuid>,
    JsonBody(request): JsonBody<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    match state.store.heartbeat_job(job_id, request.worker_id).await? {
        Some(canceled) => Ok(Json(HeartbeatResponse { canceled })),
        None => Err(ApiError::conflict(
            "This provisioner no longer holds the job.",
        )),
    }
}

async fn complete(
    State(state): State<AppState>,
    _daemon: ProvisionerDaemon,
    Path(job_id): Path<Uuid>,
    JsonBody(request): JsonBody<CompleteJobRequest>,
) -> Result<StatusCode, ApiError> {
    held_job(&state, job_id, request.worker_id).await?;
    let mut result = request.result;
    // The state belongs to the workspace build, not the job's public result.
    let terraform_state = result.state.take();
    if let Some(build) = state.store.workspace_build_by_job(job_id).await? {
        let terraform_state = terraform_state
            .map(|encoded| BASE64.decode(encoded))
            .transpose()
            .map_err(|err| {
                ApiError::bad_request("The Terraform state is not valid base64.")
                    .detail(err.to_string())
            })?;
        let deleted = build.transition == "delete" && request.error.is_none();
        state
            .store
            .finish_workspace_build(build.id, terraform_state.as_deref(), deleted)
            .await?;
        // A started build with an agent gets its agent record, keyed by the token's hash.
        if build.transition == "start"
            && request.error.is_none()
            && let (Some(agent), Some(hash)) = (&result.agent, &build.agent_token_hash)
        {
            let settings = serde_json::to_value(agent).map_err(ApiError::internal)?;
            state
                .store
                .insert_workspace_agent(build.id, hash, &settings)
                .await?;
        }
    }
    let result = serde_json::to_value(&result).map_err(ApiError::internal)?;
    let completed = state
        .store
        .complete_job(
            job_id,
            request.worker_id,
            request.error.as_deref(),
            Some(&result),
        )
        .await?;
    if !completed {
        return Err(ApiError::conflict(
            "This provisioner no longer holds the job.",
        ));
    }
    tracing::info!(%job_id, failed = request.error.is_some(), "provisioner job completed");
    Ok(StatusCode::NO_CONTENT)
}

//! Workspaces and their builds: create (with the first build), list, show, post a build
//! (`start`, `stop`, `delete`), build history, a build's log (JSON or followed live), cancel.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::Utc;
use sdk::{
    CreateWorkspaceBuildRequest, CreateWorkspaceRequest, ProvisionerJobStatus, ValidationError,
    Workspace, WorkspaceBuild, WorkspaceBuildParameter, WorkspaceStatus, WorkspaceTransition,
    WorkspacesResponse,
};
use serde::Deserialize;
use store::{NewJob, NewWorkspaceBuild, PostBuild, WorkspaceBuildRow, WorkspaceRow};
use uuid::Uuid;

use crate::api::templates::{LogsQuery, check_imported, job_logs, job_result};
use crate::api::users::{check_username, resolve_user, username};
use crate::auth::CurrentUser;
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::jobs;
use crate::json::Json as JsonBody;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/users/{user}/workspaces", post(create_workspace))
        .route("/users/{user}/workspace/{name}", get(workspace_by_name))
        .route("/workspaces", get(list_workspaces))
        .route("/workspaces/{id}", get(show_workspace))
        .route(
            "/workspaces/{id}/builds",
            get(list_builds).post(create_build),
        )
        .route("/workspacebuilds/{id}", get(show_build))
        .route("/workspacebuilds/{id}/logs", get(build_logs))
        .route("/workspacebuilds/{id}/cancel", patch(cancel_build))
}

/// What a sensitive parameter's value reads as.
const SENSITIVE_MASK: &str = "********";

fn resource(workspace: &WorkspaceRow) -> Resource {
    Resource::Workspace {
        owner: workspace.owner_id,
        organization: workspace.organization_id,
    }
}

fn transition(name: &str) -> WorkspaceTransition {
    match name {
        "stop" => WorkspaceTransition::Stop,
        "delete" => WorkspaceTransition::Delete,
        _ => WorkspaceTransition::Start,
    }
}

/// The workspace's status as a build leaves it.
fn status(transition: WorkspaceTransition, job: ProvisionerJobStatus) -> WorkspaceStatus {
    use ProvisionerJobStatus as Job;
    use WorkspaceStatus::*;
    use WorkspaceTransition::{Delete, Start, Stop};
    match (job, transition) {
        (Job::Pending, _) => Pending,
        (Job::Running, Start) => Starting,
        (Job::Running, Stop) => Stopping,
        (Job::Running, Delete) => Deleting,
        (Job::Succeeded, Start) => Running,
        (Job::Succeeded, Stop) => Stopped,
        (Job::Succeeded, Delete) => Deleted,
        (Job::Failed, _) => Failed,
        (Job::Canceling, _) => Canceling,
        (Job::Canceled, _) => Canceled,
    }
}

async fn build_to_sdk(
    state: &AppState,
    workspace: &WorkspaceRow,
    build: &WorkspaceBuildRow,
) -> Result<WorkspaceBuild, ApiError> {
    let job = state
        .store
        .job(build.job_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let version = state
        .store
        .template_version(build.template_version_id)
        .await?;
    // Values of parameters the template marks sensitive are never shown back.
    let mut sensitive = Vec::new();
    if let Some(version) = &version
        && let Some(version_job) = state.store.job(version.job_id).await?
    {
        sensitive = job_result(&version_job)
            .variables
            .into_iter()
            .filter(|variable| variable.sensitive)
            .map(|variable| variable.name)
            .collect();
    }
    let version_name = version.map(|version| version.name).unwrap_or_default();
    let transition = transition(&build.transition);
    let job_sdk = jobs::to_sdk(&job);
    let result = job_result(&job);
    let parameters: BTreeMap<String, String> =
        serde_json::from_value(build.parameters.clone()).unwrap_or_default();
    Ok(WorkspaceBuild {
        id: build.id,
        created_at: build.created_at,
        updated_at: build.updated_at,
        workspace_id: workspace.id,
        workspace_name: workspace.name.clone(),
        workspace_owner_name: username(state, workspace.owner_id).await?,
        template_version_id: build.template_version_id,
        template_version_name: version_name,
        build_number: build.build_number,
        transition,
        initiator_name: username(state, build.initiator_id).await?,
        status: status(transition, job_sdk.status),
        job: job_sdk,
        resources: result.resources,
        agent: result.agent,
        agents: state
            .store
            .workspace_agent_by_build(build.id)
            .await?
            .iter()
            .map(crate::api::agents::to_sdk)
            .collect(),
        parameters: parameters
            .into_iter()
            .map(|(name, value)| WorkspaceBuildParameter {
                value: if sensitive.contains(&name) {
                    SENSITIVE_MASK.to_owned()
                } else {
                    value
                },
                name,
            })
            .collect(),
    })
}

async fn workspace_to_sdk(
    state: &AppState,
    workspace: &WorkspaceRow,
) -> Result<Workspace, ApiError> {
    let build = state
        .store
        .latest_workspace_build(workspace.id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let template = state.store.template(workspace.template_id).await?;
    let (template_name, active_version) = template
        .map(|template| (template.name, template.active_version_id))
        .unwrap_or_default();
    Ok(Workspace {
        id: workspace.id,
        created_at: workspace.created_at,
        updated_at: workspace.updated_at,
        owner_id: workspace.owner_id.into(),
        owner_name: username(state, workspace.owner_id).await?,
        organization_id: workspace.organization_id.into(),
        template_id: workspace.template_id,
        template_name,
        template_active_version_id: active_version,
        name: workspace.name.clone(),
        outdated: build.template_version_id != active_version,
        latest_build: build_to_sdk(state, workspace, &build).await?,
    })
}

async fn readable_workspace(
    state: &AppState,
    current: &CurrentUser,
    id: Uuid,
) -> Result<WorkspaceRow, ApiError> {
    let workspace = state
        .store
        .workspace(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    current
        .subject
        .authorize(Action::Read, resource(&workspace))?;
    Ok(workspace)
}

/// Checks values against the version's parameters: no unknown names, every required one given.
fn check_parameters(
    declared: &[sdk::TemplateVersionVariable],
    values: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    for name in values.keys() {
        if !declared.iter().any(|variable| &variable.name == name) {
            problems.push(ValidationError {
                field: name.clone(),
                detail: "the template has no such parameter".to_owned(),
            });
        }
    }
    for variable in declared {
        if variable.required && !values.contains_key(&variable.name) {
            problems.push(ValidationError {
                field: variable.name.clone(),
                detail: "required: the template gives it no default".to_owned(),
            });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(problems))
    }
}

fn build_job(
    organization_id: Uuid,
    initiator_id: Uuid,
    build_id: Uuid,
    version_job: &store::JobRow,
) -> NewJob {
    NewJob {
        id: Uuid::new_v4(),
        organization_id,
        initiator_id,
        job_type: "workspace_build".to_owned(),
        input: serde_json::json!({ "workspace_build_id": build_id }),
        file_id: version_job.file_id,
        // Builds go to the same provisioners as the version's import.
        tags: version_job.tags.clone(),
    }
}

async fn create_workspace(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(user): Path<String>,
    JsonBody(request): JsonBody<CreateWorkspaceRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let owner = resolve_user(&state, &current, &user).await?;
    let mut problems = Vec::new();
    check_username(&request.name, &mut problems);
    if !problems.is_empty() {
        problems[0].field = "name".to_owned();
        return Err(ApiError::validation(problems));
    }
    let (template, version) = match (request.template_id, request.template_version_id) {
        (_, Some(version_id)) => {
            let version = state
                .store
                .template_version(version_id)
                .await?
                .ok_or_else(|| ApiError::bad_request("The template version does not exist."))?;
            let template_id = version
                .template_id
                .ok_or_else(|| ApiError::bad_request("The version belongs to no template."))?;
            let template = state
                .store
                .template(template_id)
                .await?
                .ok_or_else(ApiError::not_found)?;
            (template, version)
        }
        (Some(template_id), None) => {
            let template = state
                .store
                .template(template_id)
                .await?
                .ok_or_else(|| ApiError::bad_request("The template does not exist."))?;
            let version = state
                .store
                .template_version(template.active_version_id)
                .await?
                .ok_or_else(ApiError::not_found)?;
            (template, version)
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "Give template_id or template_version_id.",
            ));
        }
    };
    current.subject.authorize(
        Action::Read,
        Resource::Templates {
            organization: template.organization_id,
        },
    )?;
    current.subject.authorize(
        Action::Create,
        Resource::Workspace {
            owner: owner.id,
            organization: template.organization_id,
        },
    )?;
    check_imported(&state, &version).await?;
    let version_job = state
        .store
        .job(version.job_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let values: BTreeMap<String, String> = request
        .rich_parameter_values
        .into_iter()
        .map(|parameter| (parameter.name, parameter.value))
        .collect();
    check_parameters(&job_result(&version_job).variables, &values)?;
    let workspace = WorkspaceRow {
        id: Uuid::new_v4(),
        organization_id: template.organization_id,
        owner_id: owner.id,
        template_id: template.id,
        name: request.name.clone(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
        deleted: false,
    };
    let build = NewWorkspaceBuild {
        id: Uuid::new_v4(),
        workspace_id: workspace.id,
        template_version_id: version.id,
        transition: "start".to_owned(),
        initiator_id: current.user.id,
        parameters: serde_json::to_value(&values).map_err(ApiError::internal)?,
    };
    let job = build_job(
        template.organization_id,
        current.user.id,
        build.id,
        &version_job,
    );
    match state.store.insert_workspace(&workspace, &build, &job).await {
        Ok(_) => {}
        Err(store::Error::UniqueViolation { .. }) => {
            return Err(ApiError::conflict(format!(
                "{} already has a workspace named {:?}.",
                owner.username, request.name
            )));
        }
        Err(err) => return Err(err.into()),
    }
    tracing::info!(workspace = %workspace.name, owner = %owner.username, "created a workspace");
    Ok((
        StatusCode::CREATED,
        Json(workspace_to_sdk(&state, &workspace).await?),
    ))
}

async fn workspace_by_name(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((user, name)): Path<(String, String)>,
) -> Result<Json<Workspace>, ApiError> {
    let owner = resolve_user(&state, &current, &user).await?;
    let workspace = state
        .store
        .workspace_by_owner_and_name(owner.id, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    current
        .subject
        .authorize(Action::Read, resource(&workspace))?;
    Ok(Json(workspace_to_sdk(&state, &workspace).await?))
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
}

async fn list_workspaces(
    State(state): State<AppState>,
    current: CurrentUser,
    Query(query): Query<ListQuery>,
) -> Result<Json<WorkspacesResponse>, ApiError> {
    let mut owner = None;
    let mut template = None;
    for term in query.q.split_whitespace() {
        match term.split_once(':') {
            Some(("owner", name)) => {
                owner = Some(resolve_user(&state, &current, name).await?.id);
            }
            Some(("template", name)) => template = Some(name.to_lowercase()),
            _ => {
                return Err(
                    ApiError::bad_request("Invalid workspace search query.").detail(format!(
                        "unknown filter {term:?}; use owner:<user|me> and template:<name>"
                    )),
                );
            }
        }
    }
    let mut workspaces = Vec::new();
    for row in state.store.workspaces(owner).await? {
        if !current.subject.can(Action::Read, resource(&row)) {
            continue;
        }
        let workspace = workspace_to_sdk(&state, &row).await?;
        if template
            .as_ref()
            .is_some_and(|name| workspace.template_name.to_lowercase() != *name)
        {
            continue;
        }
        workspaces.push(workspace);
    }
    Ok(Json(WorkspacesResponse {
        count: workspaces.len(),
        workspaces,
    }))
}

async fn show_workspace(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Workspace>, ApiError> {
    let workspace = readable_workspace(&state, &current, id).await?;
    Ok(Json(workspace_to_sdk(&state, &workspace).await?))
}

async fn list_builds(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<WorkspaceBuild>>, ApiError> {
    let workspace = readable_workspace(&state, &current, id).await?;
    let mut builds = Vec::new();
    for build in state.store.workspace_builds(workspace.id).await? {
        builds.push(build_to_sdk(&state, &workspace, &build).await?);
    }
    Ok(Json(builds))
}

async fn create_build(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<CreateWorkspaceBuildRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let workspace = readable_workspace(&state, &current, id).await?;
    if workspace.deleted {
        return Err(ApiError::bad_request("The workspace is deleted."));
    }
    current
        .subject
        .authorize(Action::Update, resource(&workspace))?;
    let last = state
        .store
        .latest_workspace_build(workspace.id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let version_id = request
        .template_version_id
        .unwrap_or(last.template_version_id);
    let version = state
        .store
        .template_version(version_id)
        .await?
        .filter(|version| version.template_id == Some(workspace.template_id))
        .ok_or_else(|| {
            ApiError::bad_request("The version does not belong to the workspace's template.")
        })?;
    check_imported(&state, &version).await?;
    let version_job = state
        .store
        .job(version.job_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut values: BTreeMap<String, String> =
        serde_json::from_value(last.parameters.clone()).unwrap_or_default();
    let declared = job_result(&version_job).variables;
    // Values of parameters the new version no longer has are dropped, not refused.
    values.retain(|name, _| declared.iter().any(|variable| &variable.name == name));
    values.extend(
        request
            .rich_parameter_values
            .into_iter()
            .map(|parameter| (parameter.name, parameter.value)),
    );
    check_parameters(&declared, &values)?;
    let build = NewWorkspaceBuild {
        id: Uuid::new_v4(),
        workspace_id: workspace.id,
        template_version_id: version.id,
        transition: request.transition.name().to_owned(),
        initiator_id: current.user.id,
        parameters: serde_json::to_value(&values).map_err(ApiError::internal)?,
    };
    let job = build_job(
        workspace.organization_id,
        current.user.id,
        build.id,
        &version_job,
    );
    match state.store.post_workspace_build(&build, &job).await? {
        PostBuild::Posted(row) => Ok((
            StatusCode::CREATED,
            Json(build_to_sdk(&state, &workspace, &row).await?),
        )),
        PostBuild::InProgress { build_number } => Err(ApiError::conflict(format!(
            "Build #{build_number} of this workspace is still in progress."
        ))
        .detail("Wait for it to finish, or cancel it.")),
    }
}

async fn readable_build(
    state: &AppState,
    current: &CurrentUser,
    id: Uuid,
) -> Result<(WorkspaceRow, WorkspaceBuildRow), ApiError> {
    let build = state
        .store
        .workspace_build(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let workspace = readable_workspace(state, current, build.workspace_id).await?;
    Ok((workspace, build))
}

async fn show_build(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<WorkspaceBuild>, ApiError> {
    let (workspace, build) = readable_build(&state, &current, id).await?;
    Ok(Json(build_to_sdk(&state, &workspace, &build).await?))
}

async fn build_logs(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
    Query(query): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let (_, build) = readable_build(&state, &current, id).await?;
    job_logs(state, build.job_id, query).await
}

async fn cancel_build(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<sdk::Response>, ApiError> {
    let (workspace, build) = readable_build(&state, &current, id).await?;
    current
        .subject
        .authorize(Action::Update, resource(&workspace))?;
    match state.store.cancel_job(build.job_id).await? {
        Some(_) => Ok(Json(sdk::Response::message(
            "Job has been marked as canceled.",
        ))),
        None => Err(ApiError::bad_request("The build has already ended.")),
    }
}

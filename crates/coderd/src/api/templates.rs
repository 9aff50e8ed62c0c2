//! Template versions (each with its import job) and templates: create, list, show, delete,
//! the active version, and a version's log (JSON, or followed live as Server-Sent Events).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::Utc;
use futures_util::Stream;
use rand::Rng;
use sdk::{
    CreateTemplateRequest, CreateTemplateVersionRequest, MinimalUser, ProvisionerJobStatus,
    Template, TemplateVersion, TemplateVersionVariable, UpdateActiveTemplateVersion,
    WorkspaceResource,
};
use serde::Deserialize;
use store::{JobRow, NewJob, NewTemplate, OrganizationRow, TemplateRow, TemplateVersionRow};
use uuid::Uuid;

use crate::api::users::username;
use crate::auth::CurrentUser;
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::jobs;
use crate::json::Json as JsonBody;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/organizations/{organization}/templateversions",
            post(create_version),
        )
        .route("/templateversions/{id}", get(show_version))
        .route("/templateversions/{id}/logs", get(version_logs))
        .route("/templateversions/{id}/variables", get(version_variables))
        .route("/templateversions/{id}/resources", get(version_resources))
        .route("/templateversions/{id}/cancel", patch(cancel_version))
        .route(
            "/organizations/{organization}/templates",
            get(list_organization_templates).post(create_template),
        )
        .route(
            "/organizations/{organization}/templates/{name}",
            get(template_by_name),
        )
        .route("/templates", get(list_templates))
        .route(
            "/templates/{id}",
            get(show_template).delete(delete_template),
        )
        .route(
            "/templates/{id}/versions",
            get(list_versions).patch(set_active_version),
        )
}

async fn readable_organization(
    state: &AppState,
    current: &CurrentUser,
    id_or_name: &str,
) -> Result<OrganizationRow, ApiError> {
    let row = state
        .store
        .organization(id_or_name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    current
        .subject
        .authorize(Action::Read, Resource::Organization(row.id))?;
    Ok(row)
}

async fn version_to_sdk(
    state: &AppState,
    row: &TemplateVersionRow,
) -> Result<TemplateVersion, ApiError> {
    let job = state
        .store
        .job(row.job_id)
        .await?
        .ok_or_else(|| ApiError::internal(MissingJob(row.job_id)))?;
    Ok(TemplateVersion {
        id: row.id,
        template_id: row.template_id,
        organization_id: row.organization_id.into(),
        name: row.name.clone(),
        message: row.message.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
        job: jobs::to_sdk(&job),
        created_by: MinimalUser {
            id: row.created_by.into(),
            username: username(state, row.created_by).await?,
        },
    })
}

#[derive(Debug, thiserror::Error)]
#[error("template version's job {0} is missing")]
struct MissingJob(Uuid);

async fn template_to_sdk(state: &AppState, row: &TemplateRow) -> Result<Template, ApiError> {
    Ok(Template {
        id: row.id,
        created_at: row.created_at,
        updated_at: row.updated_at,
        organization_id: row.organization_id.into(),
        name: row.name.clone(),
        display_name: row.display_name.clone(),
        description: row.description.clone(),
        icon: row.icon.clone(),
        active_version_id: row.active_version_id,
        created_by_id: row.created_by.into(),
        created_by_name: username(state, row.created_by).await?,
    })
}

/// The version with this id, if the caller may see its organization's templates.
async fn readable_version(
    state: &AppState,
    current: &CurrentUser,
    id: Uuid,
) -> Result<TemplateVersionRow, ApiError> {
    let row = state
        .store
        .template_version(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    current.subject.authorize(
        Action::Read,
        Resource::Templates {
            organization: row.organization_id,
        },
    )?;
    Ok(row)
}

async fn readable_template(
    state: &AppState,
    current: &CurrentUser,
    id: Uuid,
) -> Result<TemplateRow, ApiError> {
    let row = state
        .store
        .template(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    current.subject.authorize(
        Action::Read,
        Resource::Templates {
            organization: row.organization_id,
        },
    )?;
    Ok(row)
}

/// Template and version names: letters, digits, and single inner `-`, `_` or `.`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn invalid_name() -> ApiError {
    ApiError::validation(vec![sdk::ValidationError {
        field: "name".to_owned(),
        detail: "must be 1-64 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
            .to_owned(),
    }])
}

fn generated_version_name() -> String {
    let suffix: u16 = rand::rng().random();
    format!("{}-{suffix:04x}", Utc::now().format("v%Y%m%d-%H%M%S"))
}

async fn create_version(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(organization): Path<String>,
    JsonBody(request): JsonBody<CreateTemplateVersionRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let organization = readable_organization(&state, &current, &organization).await?;
    current.subject.authorize(
        Action::Create,
        Resource::Templates {
            organization: organization.id,
        },
    )?;
    if !matches!(request.storage_method.as_str(), "" | "file") {
        return Err(ApiError::bad_request("storage_method must be \"file\"."));
    }
    if !matches!(request.provisioner.as_str(), "" | "terraform") {
        return Err(ApiError::bad_request("provisioner must be \"terraform\"."));
    }
    let file = state
        .store
        .file(request.file_id)
        .await?
        .filter(|file| {
            current.subject.can(
                Action::Read,
                Resource::File {
                    owner: file.created_by,
                },
            )
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!("File {} does not exist.", request.file_id))
        })?;
    if let Some(template_id) = request.template_id {
        let template = state.store.template(template_id).await?;
        if template.is_none_or(|template| template.organization_id != organization.id) {
            return Err(ApiError::bad_request(format!(
                "Template {template_id} does not exist in this organization."
            )));
        }
    }
    let name = if request.name.is_empty() {
        generated_version_name()
    } else {
        request.name.clone()
    };
    if !is_valid_name(&name) {
        return Err(invalid_name());
    }
    for (key, value) in &request.tags {
        if !is_valid_name(key) || value.len() > 256 {
            return Err(ApiError::bad_request(format!(
                "Invalid provisioner tag {key:?}."
            )));
        }
    }
    let version_id = Uuid::new_v4();
    let job = NewJob {
        id: Uuid::new_v4(),
        organization_id: organization.id,
        initiator_id: current.user.id,
        job_type: "template_version_import".to_owned(),
        input: serde_json::json!({ "template_version_id": version_id }),
        file_id: file.id,
        tags: serde_json::to_value(&request.tags).map_err(ApiError::internal)?,
    };
    let version = TemplateVersionRow {
        id: version_id,
        template_id: request.template_id,
        organization_id: organization.id,
        name: name.clone(),
        message: request.message.clone(),
        job_id: job.id,
        created_by: current.user.id,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    match state.store.insert_template_version(&version, &job).await {
        Ok(()) => {}
        Err(store::Error::UniqueViolation { .. }) => {
            return Err(ApiError::conflict(format!(
                "The template already has a version named {name:?}."
            )));
        }
        Err(err) => return Err(err.into()),
    }
    let row = state
        .store
        .template_version(version_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok((
        StatusCode::CREATED,
        Json(version_to_sdk(&state, &row).await?),
    ))
}

async fn show_version(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<TemplateVersion>, ApiError> {
    let row = readable_version(&state, &current, id).await?;
    Ok(Json(version_to_sdk(&state, &row).await?))
}

async fn cancel_version(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<sdk::Response>, ApiError> {
    let row = readable_version(&state, &current, id).await?;
    current.subject.authorize(
        Action::Update,
        Resource::Templates {
            organization: row.organization_id,
        },
    )?;
    match state.store.cancel_job(row.job_id).await? {
        Some(_) => Ok(Json(sdk::Response::message(
            "Job has been marked as canceled.",
        ))),
        None => Err(ApiError::bad_request("The job has already ended.")),
    }
}

/// The job's result, once it succeeded.
pub(crate) fn job_result(job: &JobRow) -> sdk::JobResult {
    job.result
        .clone()
        .and_then(|result| serde_json::from_value(result).ok())
        .unwrap_or_default()
}

async fn version_variables(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<TemplateVersionVariable>>, ApiError> {
    let row = readable_version(&state, &current, id).await?;
    let job = state
        .store
        .job(row.job_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(job_result(&job).variables))
}

async fn version_resources(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<WorkspaceResource>>, ApiError> {
    let row = readable_version(&state, &current, id).await?;
    let job = state
        .store
        .job(row.job_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(job_result(&job).resources))
}

#[derive(Deserialize)]
pub(crate) struct LogsQuery {
    #[serde(default)]
    pub(crate) follow: bool,
    #[serde(default)]
    pub(crate) after: i64,
}

async fn version_logs(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
    Query(query): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let row = readable_version(&state, &current, id).await?;
    job_logs(state, row.job_id, query).await
}

/// A job's log: JSON, or with `follow=true` a Server-Sent Events stream of `log` events (each
/// a JSON array of lines) ending with one `end` event carrying the finished job.
pub(crate) async fn job_logs(
    state: AppState,
    job_id: Uuid,
    query: LogsQuery,
) -> Result<Response, ApiError> {
    if !query.follow {
        let logs = state.store.job_logs(job_id, query.after).await?;
        return Ok(Json(logs.iter().map(jobs::log_to_sdk).collect::<Vec<_>>()).into_response());
    }
    // Ends when the server begins to stop (the connection would be cut a drain period later).
    use futures_util::StreamExt as _;
    let shutdown = state.shutdown.clone().cancelled_owned();
    Ok(
        Sse::new(follow(state, job_id, query.after).take_until(shutdown))
            .keep_alive(KeepAlive::default())
            .into_response(),
    )
}

/// How long a follower waits for a wake-up before re-reading anyway (covers notifications lost
/// while the listener reconnects).
const FOLLOW_RECHECK: Duration = Duration::from_secs(5);

enum Follow {
    Streaming {
        after: i64,
        updates: tokio::sync::broadcast::Receiver<Uuid>,
    },
    Done,
}

fn follow(
    state: AppState,
    job_id: Uuid,
    after: i64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    // Subscribe before the first read, so no update between the read and the wait is missed.
    let updates = state.job_events.updated.subscribe();
    futures_util::stream::unfold(Follow::Streaming { after, updates }, move |follow| {
        let state = state.clone();
        async move {
            let Follow::Streaming { after, mut updates } = follow else {
                return None;
            };
            loop {
                let logs = match state.store.job_logs(job_id, after).await {
                    Ok(logs) => logs,
                    Err(err) => return Some((error_event(err), Follow::Done)),
                };
                if let Some(last) = logs.last() {
                    let after = last.id;
                    let lines: Vec<_> = logs.iter().map(jobs::log_to_sdk).collect();
                    let event = Event::default().event("log").json_data(&lines);
                    return Some((
                        Ok(event.unwrap_or_default()),
                        Follow::Streaming { after, updates },
                    ));
                }
                let job = match state.store.job(job_id).await {
                    Ok(Some(job)) => job,
                    Ok(None) => return None,
                    Err(err) => return Some((error_event(err), Follow::Done)),
                };
                if jobs::status(&job).is_done() {
                    let event = Event::default().event("end").json_data(jobs::to_sdk(&job));
                    return Some((Ok(event.unwrap_or_default()), Follow::Done));
                }
                let _ = tokio::time::timeout(FOLLOW_RECHECK, async {
                    loop {
                        match updates.recv().await {
                            Ok(id) if id == job_id => return,
                            Ok(_) => {}
                            // Lagged: we may have missed ours, so re-read.
                            Err(_) => return,
                        }
                    }
                })
                .await;
            }
        }
    })
}

fn error_event(err: store::Error) -> Result<Event, Infallible> {
    tracing::error!(error = %err, "following a job's log failed");
    Ok(Event::default()
        .event("error")
        .data("reading the job's log failed; see the server log"))
}

async fn create_template(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(organization): Path<String>,
    JsonBody(request): JsonBody<CreateTemplateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let organization = readable_organization(&state, &current, &organization).await?;
    current.subject.authorize(
        Action::Create,
        Resource::Templates {
            organization: organization.id,
        },
    )?;
    if !is_valid_name(&request.name) {
        return Err(invalid_name());
    }
    let version = state
        .store
        .template_version(request.template_version_id)
        .await?
        .filter(|version| version.organization_id == organization.id)
        .ok_or_else(|| ApiError::bad_request("The template version does not exist."))?;
    if version.template_id.is_some() {
        return Err(ApiError::bad_request(
            "The template version already belongs to a template.",
        ));
    }
    check_imported(&state, &version).await?;
    let template = NewTemplate {
        id: Uuid::new_v4(),
        organization_id: organization.id,
        name: request.name.clone(),
        display_name: request.display_name,
        description: request.description,
        icon: request.icon,
        active_version_id: version.id,
        created_by: current.user.id,
    };
    match state.store.insert_template(&template).await {
        Ok(row) => Ok((
            StatusCode::CREATED,
            Json(template_to_sdk(&state, &row).await?),
        )),
        Err(store::Error::UniqueViolation { .. }) => Err(ApiError::conflict(format!(
            "A template named {:?} already exists.",
            request.name
        ))),
        Err(err) => Err(err.into()),
    }
}

/// 400 unless the version's import succeeded.
pub(crate) async fn check_imported(
    state: &AppState,
    version: &TemplateVersionRow,
) -> Result<(), ApiError> {
    let job = state
        .store
        .job(version.job_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let status = jobs::status(&job);
    if status != ProvisionerJobStatus::Succeeded {
        return Err(ApiError::bad_request(format!(
            "The template version's import has not succeeded (it is {}).",
            status.name()
        )));
    }
    Ok(())
}

async fn list_organization_templates(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(organization): Path<String>,
) -> Result<Json<Vec<Template>>, ApiError> {
    let organization = readable_organization(&state, &current, &organization).await?;
    current.subject.authorize(
        Action::Read,
        Resource::Templates {
            organization: organization.id,
        },
    )?;
    let mut templates = Vec::new();
    for row in state.store.templates(Some(organization.id)).await? {
        templates.push(template_to_sdk(&state, &row).await?);
    }
    Ok(Json(templates))
}

async fn list_templates(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<Vec<Template>>, ApiError> {
    let mut templates = Vec::new();
    for row in state.store.templates(None).await? {
        let visible = current.subject.can(
            Action::Read,
            Resource::Templates {
                organization: row.organization_id,
            },
        );
        if visible {
            templates.push(template_to_sdk(&state, &row).await?);
        }
    }
    Ok(Json(templates))
}

async fn template_by_name(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((organization, name)): Path<(String, String)>,
) -> Result<Json<Template>, ApiError> {
    let organization = readable_organization(&state, &current, &organization).await?;
    let row = state
        .store
        .template_by_name(organization.id, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let row = readable_template(&state, &current, row.id).await?;
    Ok(Json(template_to_sdk(&state, &row).await?))
}

async fn show_template(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Template>, ApiError> {
    let row = readable_template(&state, &current, id).await?;
    Ok(Json(template_to_sdk(&state, &row).await?))
}

async fn delete_template(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<sdk::Response>, ApiError> {
    let row = readable_template(&state, &current, id).await?;
    current.subject.authorize(
        Action::Delete,
        Resource::Templates {
            organization: row.organization_id,
        },
    )?;
    let in_use = state.store.count_workspaces_by_template(row.id).await?;
    if in_use > 0 {
        return Err(ApiError::conflict(format!(
            "Template {:?} is used by {in_use} workspace(s); delete them first.",
            row.name
        )));
    }
    state.store.delete_template(row.id).await?;
    Ok(Json(sdk::Response::message(format!(
        "Template {:?} has been deleted.",
        row.name
    ))))
}

async fn list_versions(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<TemplateVersion>>, ApiError> {
    let template = readable_template(&state, &current, id).await?;
    let mut versions = Vec::new();
    for row in state.store.template_versions(template.id).await? {
        versions.push(version_to_sdk(&state, &row).await?);
    }
    Ok(Json(versions))
}

async fn set_active_version(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<UpdateActiveTemplateVersion>,
) -> Result<Json<sdk::Response>, ApiError> {
    let template = readable_template(&state, &current, id).await?;
    current.subject.authorize(
        Action::Update,
        Resource::Templates {
            organization: template.organization_id,
        },
    )?;
    let version = state
        .store
        .template_version(request.id)
        .await?
        .filter(|version| version.template_id == Some(template.id))
        .ok_or_else(|| ApiError::bad_request("The version does not belong to this template."))?;
    check_imported(&state, &version).await?;
    state
        .store
        .update_template_active_version(template.id, version.id)
        .await?;
    Ok(Json(sdk::Response::message("Updated the active version!")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, ok: bool) {
        assert_eq!(is_valid_name(name), ok, "{name:?}");
    }

    #[test]
    fn names() {
        check("docker", true);
        check("my_template-2.1", true);
        check("-x", false);
        check("x-", false);
        check("a b", false);
        check("", false);
        assert!(is_valid_name(&generated_version_name()));
    }
}

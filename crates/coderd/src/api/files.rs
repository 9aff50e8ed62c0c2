//! `/api/v2/files`: uploading template sources (tar archives) and reading them back.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::state::AppState;

/// The largest template source accepted.
pub(crate) const MAX_FILE_BYTES: usize = 10 << 20;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/files",
            post(upload).layer(DefaultBodyLimit::max(MAX_FILE_BYTES)),
        )
        .route("/files/{id}", get(download))
}

async fn upload(
    State(state): State<AppState>,
    current: CurrentUser,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    current.subject.authorize(
        Action::Create,
        Resource::File {
            owner: current.user.id,
        },
    )?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if content_type != sdk::TAR_MIME_TYPE {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Upload a tar archive (Content-Type: {}).",
                sdk::TAR_MIME_TYPE
            ),
        ));
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "The file is too large.")
                .detail(format!("the limit is {MAX_FILE_BYTES} bytes"))
        } else {
            ApiError::bad_request("Could not read the upload.").detail(rejection.body_text())
        }
    })?;
    if body.is_empty() {
        return Err(ApiError::bad_request("The file is empty."));
    }
    let hash = hex::encode(Sha256::digest(&body));
    let id = state
        .store
        .insert_file(&hash, current.user.id, content_type, &body)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(sdk::UploadResponse { id })))
}

async fn download(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let file = state
        .store
        .file(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    current.subject.authorize(
        Action::Read,
        Resource::File {
            owner: file.created_by,
        },
    )?;
    Ok(([(header::CONTENT_TYPE, file.mimetype)], file.data))
}

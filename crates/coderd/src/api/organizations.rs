//! `/api/v2/organizations`: the organizations the caller belongs to.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use store::OrganizationRow;

use crate::auth::CurrentUser;
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/organizations", get(list))
        .route("/organizations/{organization}", get(show))
}

pub(crate) fn to_sdk(row: OrganizationRow) -> sdk::Organization {
    sdk::Organization {
        id: row.id.into(),
        name: row.name,
        display_name: row.display_name,
        description: row.description,
        icon: row.icon,
        is_default: row.is_default,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

async fn list(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<Vec<sdk::Organization>>, ApiError> {
    let rows = if current.subject.can(Action::Read, Resource::Deployment) {
        state.store.organizations().await?
    } else {
        state.store.organizations_by_user(current.user.id).await?
    };
    Ok(Json(rows.into_iter().map(to_sdk).collect()))
}

async fn show(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(organization): Path<String>,
) -> Result<Json<sdk::Organization>, ApiError> {
    let row = state
        .store
        .organization(&organization)
        .await?
        .ok_or_else(ApiError::not_found)?;
    current
        .subject
        .authorize(Action::Read, Resource::Organization(row.id))?;
    Ok(Json(to_sdk(row)))
}

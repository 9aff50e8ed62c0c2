//! `/api/v2/users/{user}/keys`: long-lived API tokens (create, list, show, delete). Tokens
//! are personal: only their owner (or a deployment owner) sees or deletes them.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::Utc;
use sdk::{ApiKey, ApiKeyWithOwner, CreateTokenRequest, GenerateApiKeyResponse, LoginType};
use serde::Deserialize;
use store::ApiKeyRow;

use crate::api::users::resolve_user;
use crate::auth::{self, CurrentUser, KeyKind};
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::json::Json as JsonBody;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/users/{user}/keys/tokens",
            get(list_tokens).post(create_token),
        )
        .route("/users/{user}/keys/tokens/{name}", get(token_by_name))
        .route("/users/{user}/keys/{id}", delete(delete_key).get(key_by_id))
}

fn to_sdk(row: &ApiKeyRow) -> ApiKey {
    ApiKey {
        id: sdk::ApiKeyId(row.id.clone()),
        user_id: row.user_id.into(),
        last_used: row.last_used,
        expires_at: row.expires_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
        login_type: if row.login_type == "token" {
            LoginType::Token
        } else {
            LoginType::Password
        },
        scope: row.scope.clone(),
        token_name: row.token_name.clone(),
        lifetime_seconds: row.lifetime_seconds,
    }
}

async fn create_token(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(user): Path<String>,
    JsonBody(request): JsonBody<CreateTokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let owner = resolve_user(&state, &current, &user).await?;
    current
        .subject
        .authorize(Action::Create, Resource::ApiKeys { owner: owner.id })?;
    if !matches!(request.scope.as_str(), "" | "all") {
        return Err(
            ApiError::bad_request("Invalid token scope.").detail(format!(
                "{:?} is not a scope; the only scope is \"all\"",
                request.scope
            )),
        );
    }
    let lifetime = match u64::try_from(request.lifetime) {
        Err(_) => {
            return Err(ApiError::bad_request(
                "Token lifetime must not be negative.",
            ));
        }
        Ok(0) => state
            .config
            .default_token_lifetime
            .min(state.config.max_token_lifetime),
        Ok(nanos) => Duration::from_nanos(nanos),
    };
    if lifetime > state.config.max_token_lifetime {
        return Err(ApiError::bad_request(format!(
            "Token lifetime is longer than this deployment allows ({}).",
            format_duration(state.config.max_token_lifetime)
        )));
    }
    if lifetime < Duration::from_secs(1) {
        return Err(ApiError::bad_request(
            "Token lifetime must be at least one second.",
        ));
    }
    let name = if request.token_name.is_empty() {
        generated_name()
    } else {
        request.token_name
    };
    if !is_valid_token_name(&name) {
        return Err(ApiError::validation(vec![sdk::ValidationError {
            field: "token_name".to_owned(),
            detail: "must be 1-64 letters, digits, '-' or '_', starting with a letter or digit"
                .to_owned(),
        }]));
    }
    match auth::create_api_key(&state, owner.id, KeyKind::Token { name: &name }, lifetime).await {
        Ok((_, key)) => Ok((StatusCode::CREATED, Json(GenerateApiKeyResponse { key }))),
        Err(err) if err.status() == StatusCode::INTERNAL_SERVER_ERROR => {
            // A unique-name violation surfaces here as a store error; check for it explicitly.
            if state.store.token_by_name(owner.id, &name).await?.is_some() {
                Err(ApiError::conflict(format!(
                    "A token named {name:?} already exists."
                )))
            } else {
                Err(err)
            }
        }
        Err(err) => Err(err),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    include_all: bool,
}

async fn list_tokens(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(user): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<ApiKeyWithOwner>>, ApiError> {
    let owner = resolve_user(&state, &current, &user).await?;
    let rows = if query.include_all {
        current
            .subject
            .authorize(Action::Read, Resource::AllApiKeys)?;
        state.store.tokens(None).await?
    } else {
        current
            .subject
            .authorize(Action::Read, Resource::ApiKeys { owner: owner.id })?;
        state.store.tokens(Some(owner.id)).await?
    };
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        let username = if row.user_id == owner.id {
            owner.username.clone()
        } else {
            state
                .store
                .user_by_id(row.user_id)
                .await?
                .map(|user| user.username)
                .unwrap_or_default()
        };
        keys.push(ApiKeyWithOwner {
            key: to_sdk(row),
            username,
        });
    }
    Ok(Json(keys))
}

async fn token_by_name(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((user, name)): Path<(String, String)>,
) -> Result<Json<ApiKeyWithOwner>, ApiError> {
    let owner = resolve_user(&state, &current, &user).await?;
    current
        .subject
        .authorize(Action::Read, Resource::ApiKeys { owner: owner.id })?;
    let row = state
        .store
        .token_by_name(owner.id, &name)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(ApiKeyWithOwner {
        key: to_sdk(&row),
        username: owner.username,
    }))
}

async fn key_by_id(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((user, id)): Path<(String, String)>,
) -> Result<Json<ApiKey>, ApiError> {
    let row = owned_key(&state, &current, &user, &id, Action::Read).await?;
    Ok(Json(to_sdk(&row)))
}

async fn delete_key(
    State(state): State<AppState>,
    current: CurrentUser,
    Path((user, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let row = owned_key(&state, &current, &user, &id, Action::Delete).await?;
    state.store.delete_api_key(&row.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The key `id` of the user `user`, if the caller may act on it; 404 otherwise.
async fn owned_key(
    state: &AppState,
    current: &CurrentUser,
    user: &str,
    id: &str,
    action: Action,
) -> Result<ApiKeyRow, ApiError> {
    let owner = resolve_user(state, current, user).await?;
    current
        .subject
        .authorize(action, Resource::ApiKeys { owner: owner.id })?;
    state
        .store
        .api_key_by_id(id)
        .await?
        .filter(|row| row.user_id == owner.id)
        .ok_or_else(ApiError::not_found)
}

fn is_valid_token_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|byte| byte.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

fn generated_name() -> String {
    format!("token-{}", Utc::now().format("%Y%m%d-%H%M%S"))
}

fn format_duration(duration: Duration) -> String {
    let hours = duration.as_secs() / 3600;
    if hours > 0 && duration.as_secs().is_multiple_of(3600) {
        format!("{hours}h")
    } else {
        format!("{}s", duration.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, ok: bool) {
        assert_eq!(is_valid_token_name(name), ok, "{name:?}");
    }

    #[test]
    fn token_names() {
        check("ci", true);
        check("deploy_key-2", true);
        check("-x", false);
        check("", false);
        check("a b", false);
        check(&"a".repeat(65), false);
        assert!(is_valid_token_name(&generated_name()));
    }
}

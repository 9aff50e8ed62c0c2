//! `/api/v2/users`: the first-user bootstrap, password login and logout, and user
//! management (list, create, show, suspend, activate, roles).

use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use sdk::{
    CreateFirstUserRequest, CreateFirstUserResponse, CreateUserRequest, GetUsersResponse,
    LoginType, LoginWithPasswordRequest, LoginWithPasswordResponse, Role, SlimRole,
    UpdateRolesRequest, UserStatus, ValidationError,
};
use serde::Deserialize;
use store::{NewUser, UserFilter, UserRow};
use uuid::Uuid;

use crate::auth::{self, CurrentUser, KeyKind, PeerAddress};
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::json::Json as JsonBody;
use crate::passwords;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/users/first",
            get(first_user_exists).post(create_first_user),
        )
        .route("/users/login", post(login))
        .route("/users/logout", post(logout))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{user}", get(show_user))
        .route("/users/{user}/status/suspend", put(suspend_user))
        .route("/users/{user}/status/activate", put(activate_user))
        .route("/users/{user}/roles", get(user_roles).put(update_roles))
}

pub(crate) fn to_sdk(row: &UserRow) -> sdk::User {
    let roles = row
        .rbac_roles
        .iter()
        .filter_map(|name| name.parse::<Role>().ok())
        .filter(|role| *role != Role::Member)
        .map(SlimRole::from)
        .collect();
    sdk::User {
        id: row.id.into(),
        username: row.username.clone(),
        name: row.name.clone(),
        email: row.email.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
        last_seen_at: row.last_seen_at,
        status: if row.status == "suspended" {
            UserStatus::Suspended
        } else {
            UserStatus::Active
        },
        login_type: if row.login_type == "none" {
            LoginType::None
        } else {
            LoginType::Password
        },
        organization_ids: row.organization_ids.iter().map(|&id| id.into()).collect(),
        roles,
        avatar_url: row.avatar_url.clone(),
    }
}

/// A user's username, or empty when the user is gone (records outlive users).
pub(crate) async fn username(state: &AppState, id: Uuid) -> Result<String, ApiError> {
    Ok(state
        .store
        .user_by_id(id)
        .await?
        .map(|user| user.username)
        .unwrap_or_default())
}

/// Finds the user a path names: `me`, an id, or a username. 404 when the caller may not
/// read that user, whether or not it exists.
pub(crate) async fn resolve_user(
    state: &AppState,
    current: &CurrentUser,
    name: &str,
) -> Result<UserRow, ApiError> {
    let row = if name == "me" {
        Some(current.user.clone())
    } else if let Ok(id) = Uuid::parse_str(name) {
        state.store.user_by_id(id).await?
    } else {
        state.store.user_by_username(name).await?
    };
    let row = row.ok_or_else(ApiError::not_found)?;
    current
        .subject
        .authorize(Action::Read, Resource::User(row.id))?;
    Ok(row)
}

async fn first_user_exists(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    if state.store.has_users().await? {
        Ok(Json(sdk::Response::message(
            "The initial user has already been created!",
        )))
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "The initial user has not been created!",
        ))
    }
}

async fn create_first_user(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateFirstUserRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut problems = Vec::new();
    check_username(&request.username, &mut problems);
    check_email(&request.email, &mut problems);
    check_password(request.password.expose(), &mut problems);
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let already = || ApiError::conflict("The initial user has already been created!");
    if state.store.has_users().await? {
        return Err(already());
    }
    let hashed_password = passwords::hash(&request.password).await?;
    let user = NewUser {
        id: Uuid::new_v4(),
        email: request.email.trim().to_owned(),
        username: request.username,
        name: request.name,
        hashed_password: Some(hashed_password),
        login_type: "password".to_owned(),
        rbac_roles: vec![Role::Owner.name().to_owned()],
        organization_ids: Vec::new(),
    };
    let Some(row) = state.store.insert_first_user(&user).await? else {
        return Err(already());
    };
    let organization = state.store.default_organization().await?;
    tracing::info!(username = %row.username, "created the first user");
    Ok((
        StatusCode::CREATED,
        Json(CreateFirstUserResponse {
            user_id: row.id.into(),
            organization_id: organization.id.into(),
        }),
    ))
}

async fn login(
    State(state): State<AppState>,
    PeerAddress(peer): PeerAddress,
    JsonBody(request): JsonBody<LoginWithPasswordRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let token = match password_login(&state, peer, &request.email, &request.password).await {
        Ok(token) => token,
        Err(LoginRefused::TooMany(seconds)) => {
            let mut headers = HeaderMap::new();
            headers.insert(header::RETRY_AFTER, seconds.into());
            return Ok((headers, LoginRefused::TooMany(seconds).into_error()).into_response());
        }
        Err(refused) => return Err(refused.into_error()),
    };
    let cookie = auth::session_cookie(
        &token,
        state.config.session_duration,
        state.config.cookie_is_secure(),
    );
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(LoginWithPasswordResponse {
            session_token: token,
        }),
    )
        .into_response())
}

/// Why a password login failed.
pub(crate) enum LoginRefused {
    /// Too many attempts from this address: try again in this many seconds.
    TooMany(u64),
    /// Unknown email, wrong password or a suspended account.
    Denied(ApiError),
    /// The database failed.
    Internal(ApiError),
}

impl LoginRefused {
    pub(crate) fn into_error(self) -> ApiError {
        match self {
            LoginRefused::TooMany(seconds) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many login attempts.")
                    .detail(format!("Try again in {seconds} seconds."))
            }
            LoginRefused::Denied(error) | LoginRefused::Internal(error) => error,
        }
    }
}

/// Checks an email and password (rate-limited per client address) and opens a session; used
/// by the API's login and the sign-in page.
pub(crate) async fn password_login(
    state: &AppState,
    peer: Option<std::net::IpAddr>,
    email: &str,
    password: &sdk::Secret,
) -> Result<sdk::Secret, LoginRefused> {
    if let Some(peer) = peer
        && let Err(wait) = state.login_limiter.check(peer, Instant::now())
    {
        return Err(LoginRefused::TooMany(wait.as_secs().max(1)));
    }
    let internal = |err: ApiError| LoginRefused::Internal(err);
    let user = state
        .store
        .user_by_email(email.trim())
        .await
        .map_err(|err| internal(err.into()))?;
    let hash = user
        .as_ref()
        .and_then(|user| user.hashed_password.as_deref());
    let password_ok = passwords::verify(password, hash).await.map_err(internal)?;
    let user = match user {
        Some(user) if password_ok => user,
        // One message for unknown email and wrong password: no hint which emails exist.
        _ => {
            return Err(LoginRefused::Denied(ApiError::unauthorized(
                "Incorrect email or password.",
            )));
        }
    };
    if user.status == "suspended" {
        return Err(LoginRefused::Denied(ApiError::unauthorized(
            "Your account is suspended. Contact an admin to reactivate your account.",
        )));
    }
    let lifetime = state.config.session_duration;
    let (_, token) = auth::create_api_key(state, user.id, KeyKind::Session, lifetime)
        .await
        .map_err(internal)?;
    Ok(token)
}

async fn logout(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<impl IntoResponse, ApiError> {
    state.store.delete_api_key(&current.key.id).await?;
    Ok((
        [(
            header::SET_COOKIE,
            auth::clear_session_cookie(state.config.cookie_is_secure()),
        )],
        Json(sdk::Response::message("Logged out!")),
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

const MAX_PAGE: i64 = 1000;

async fn list_users(
    State(state): State<AppState>,
    current: CurrentUser,
    Query(query): Query<ListQuery>,
) -> Result<Json<GetUsersResponse>, ApiError> {
    current.subject.authorize(Action::Read, Resource::Users)?;
    let mut filter = UserFilter {
        limit: query.limit.unwrap_or(MAX_PAGE).clamp(0, MAX_PAGE),
        offset: query.offset.unwrap_or(0).max(0),
        ..UserFilter::default()
    };
    let mut words = Vec::new();
    for term in query.q.split_whitespace() {
        match term.split_once(':') {
            Some(("status", status)) if matches!(status, "active" | "suspended") => {
                filter.status = Some(status.to_owned());
            }
            Some((key, _)) => {
                return Err(
                    ApiError::bad_request("Invalid user search query.").detail(format!(
                        "unknown filter {key:?}; use free text or status:active|suspended"
                    )),
                );
            }
            None => words.push(term),
        }
    }
    if !words.is_empty() {
        filter.search = Some(words.join(" "));
    }
    let (rows, count) = state.store.list_users(&filter).await?;
    Ok(Json(GetUsersResponse {
        users: rows.iter().map(to_sdk).collect(),
        count,
    }))
}

async fn create_user(
    State(state): State<AppState>,
    current: CurrentUser,
    JsonBody(request): JsonBody<CreateUserRequest>,
) -> Result<impl IntoResponse, ApiError> {
    current.subject.authorize(Action::Create, Resource::Users)?;
    let login_type = request.login_type.unwrap_or(LoginType::Password);
    let mut problems = Vec::new();
    check_username(&request.username, &mut problems);
    check_email(&request.email, &mut problems);
    match login_type {
        LoginType::Password => check_password(request.password.expose(), &mut problems),
        LoginType::None if !request.password.is_empty() => problems.push(ValidationError {
            field: "password".to_owned(),
            detail: "must be empty when login_type is none".to_owned(),
        }),
        LoginType::None => {}
        LoginType::Token => problems.push(ValidationError {
            field: "login_type".to_owned(),
            detail: "must be password or none".to_owned(),
        }),
    }
    for organization in &request.organization_ids {
        if state
            .store
            .organization(&organization.to_string())
            .await?
            .is_none()
        {
            problems.push(ValidationError {
                field: "organization_ids".to_owned(),
                detail: format!("organization {organization} does not exist"),
            });
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let hashed_password = match login_type {
        LoginType::Password => Some(passwords::hash(&request.password).await?),
        _ => None,
    };
    let user = NewUser {
        id: Uuid::new_v4(),
        email: request.email.trim().to_owned(),
        username: request.username,
        name: request.name,
        hashed_password,
        login_type: if login_type == LoginType::None {
            "none"
        } else {
            "password"
        }
        .to_owned(),
        rbac_roles: Vec::new(),
        organization_ids: request.organization_ids.iter().map(|id| id.0).collect(),
    };
    match state.store.insert_user(&user).await {
        Ok(row) => Ok((StatusCode::CREATED, Json(to_sdk(&row)))),
        Err(store::Error::UniqueViolation { constraint }) => {
            let field = if constraint.contains("email") {
                "email"
            } else {
                "username"
            };
            Err(
                ApiError::conflict(format!("A user with this {field} already exists."))
                    .detail(format!("{field} must be unique")),
            )
        }
        Err(err) => Err(err.into()),
    }
}

async fn show_user(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(user): Path<String>,
) -> Result<Json<sdk::User>, ApiError> {
    let row = resolve_user(&state, &current, &user).await?;
    Ok(Json(to_sdk(&row)))
}

async fn suspend_user(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(user): Path<String>,
) -> Result<Json<sdk::User>, ApiError> {
    set_status(state, current, user, UserStatus::Suspended).await
}

async fn activate_user(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(user): Path<String>,
) -> Result<Json<sdk::User>, ApiError> {
    set_status(state, current, user, UserStatus::Active).await
}

async fn set_status(
    state: AppState,
    current: CurrentUser,
    user: String,
    status: UserStatus,
) -> Result<Json<sdk::User>, ApiError> {
    let row = resolve_user(&state, &current, &user).await?;
    current
        .subject
        .authorize(Action::Update, Resource::UserStatus(row.id))?;
    if row.id == current.user.id && status == UserStatus::Suspended {
        return Err(ApiError::bad_request("You cannot suspend yourself."));
    }
    // Only an owner may act on an owner: a user admin must not lock the owners out.
    if row.rbac_roles.iter().any(|role| role == Role::Owner.name())
        && !current.subject.has_role(Role::Owner)
    {
        return Err(ApiError::forbidden().detail("Only owners may suspend or activate owners."));
    }
    let row = state
        .store
        .update_user_status(row.id, status.name())
        .await?
        .ok_or_else(ApiError::not_found)?;
    tracing::info!(username = %row.username, status = status.name(), "changed user status");
    Ok(Json(to_sdk(&row)))
}

async fn user_roles(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(user): Path<String>,
) -> Result<Json<Vec<SlimRole>>, ApiError> {
    let row = resolve_user(&state, &current, &user).await?;
    Ok(Json(to_sdk(&row).roles))
}

async fn update_roles(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(user): Path<String>,
    JsonBody(request): JsonBody<UpdateRolesRequest>,
) -> Result<Json<sdk::User>, ApiError> {
    let row = resolve_user(&state, &current, &user).await?;
    current
        .subject
        .authorize(Action::Update, Resource::UserRoles(row.id))?;
    let mut roles = Vec::new();
    for name in &request.roles {
        let role: Role = name.parse().map_err(|err: sdk::UnknownRole| {
            ApiError::validation(vec![ValidationError {
                field: "roles".to_owned(),
                detail: err.to_string(),
            }])
        })?;
        if role != Role::Member && !roles.contains(&role) {
            roles.push(role);
        }
    }
    let was_owner = row.rbac_roles.iter().any(|role| role == Role::Owner.name());
    let will_be_owner = roles.contains(&Role::Owner);
    if was_owner != will_be_owner && !current.subject.has_role(Role::Owner) {
        return Err(ApiError::forbidden().detail("Only owners may grant or revoke the owner role."));
    }
    if row.id == current.user.id && was_owner && !will_be_owner {
        return Err(ApiError::bad_request(
            "You cannot remove your own owner role.",
        ));
    }
    roles.sort();
    let names: Vec<String> = roles.iter().map(|role| role.name().to_owned()).collect();
    let row = state
        .store
        .update_user_roles(row.id, &names)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(to_sdk(&row)))
}

fn problem(problems: &mut Vec<ValidationError>, field: &str, detail: &str) {
    problems.push(ValidationError {
        field: field.to_owned(),
        detail: detail.to_owned(),
    });
}

/// Usernames appear in URLs and host names: letters, digits and single inner hyphens.
pub(crate) fn check_username(username: &str, problems: &mut Vec<ValidationError>) {
    let well_formed = !username.is_empty()
        && username.len() <= 32
        && username
            .split('-')
            .all(|part| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_alphanumeric()));
    if !well_formed {
        problem(
            problems,
            "username",
            "must be 1-32 letters or digits, with single hyphens between them",
        );
    } else if username.eq_ignore_ascii_case("me") {
        problem(problems, "username", "\"me\" is reserved");
    }
}

fn check_email(email: &str, problems: &mut Vec<ValidationError>) {
    let email = email.trim();
    let well_formed = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if !well_formed {
        problem(problems, "email", "must be an email address");
    }
}

fn check_password(password: &str, problems: &mut Vec<ValidationError>) {
    let length = password.chars().count();
    if length < 8 {
        problem(problems, "password", "must be at least 8 characters");
    } else if length > 128 {
        problem(problems, "password", "must be at most 128 characters");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(validate: fn(&str, &mut Vec<ValidationError>), input: &str, ok: bool) {
        let mut problems = Vec::new();
        validate(input, &mut problems);
        assert_eq!(problems.is_empty(), ok, "{input:?}: {problems:?}");
    }

    #[test]
    fn usernames() {
        check(check_username, "alice", true);
        check(check_username, "alice-2", true);
        check(check_username, "-alice", false);
        check(check_username, "al--ice", false);
        check(check_username, "al_ice", false);
        check(check_username, "me", false);
        check(check_username, &"a".repeat(33), false);
        check(check_username, "", false);
    }

    #[test]
    fn emails_and_passwords() {
        check(check_email, "a@example.com", true);
        check(check_email, "a@b@c", false);
        check(check_email, "a b@c", false);
        check(check_email, "@c", false);
        check(check_password, "12345678", true);
        check(check_password, "1234567", false);
    }
}

//! Users, roles, the first-user bootstrap and password login.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{OrganizationId, Secret, UserId};

/// A deployment-wide role. Every user implicitly has `member`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Full control of the deployment.
    Owner,
    /// Manages users and their roles (but cannot make owners).
    UserAdmin,
    /// Manages templates and reads every workspace.
    TemplateAdmin,
    /// Uses the deployment: own workspaces, own tokens.
    Member,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 4] = [
        Role::Owner,
        Role::UserAdmin,
        Role::TemplateAdmin,
        Role::Member,
    ];

    /// The name used in the API and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::UserAdmin => "user-admin",
            Role::TemplateAdmin => "template-admin",
            Role::Member => "member",
        }
    }

    /// The name shown to people.
    pub fn display_name(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::UserAdmin => "User Admin",
            Role::TemplateAdmin => "Template Admin",
            Role::Member => "Member",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Returned when a role name is not one of [`Role::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?} (known roles: owner, user-admin, template-admin, member)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == name)
            .ok_or_else(|| UnknownRole(name.to_owned()))
    }
}

/// A role as it appears inside a [`User`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlimRole {
    /// The role's name, e.g. `owner`.
    pub name: String,
    /// The role's display name, e.g. `Owner`.
    pub display_name: String,
}

impl From<Role> for SlimRole {
    fn from(role: Role) -> Self {
        Self {
            name: role.name().to_owned(),
            display_name: role.display_name().to_owned(),
        }
    }
}

/// Whether a user may sign in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// May sign in and use tokens.
    Active,
    /// Every token is refused until an admin reactivates the user.
    Suspended,
}

impl UserStatus {
    /// The name used in the API and in tables.
    pub fn name(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Suspended => "suspended",
        }
    }
}

/// How a user or an API key authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginType {
    /// Email and password.
    Password,
    /// A long-lived API token.
    Token,
    /// No login at all (service accounts).
    None,
}

/// A user of the deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The unique handle used in URLs and on the command line.
    pub username: String,
    /// The full name, possibly empty.
    pub name: String,
    /// The unique email address used to log in.
    pub email: String,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// When the user last changed.
    pub updated_at: DateTime<Utc>,
    /// When the user last made an authenticated request.
    pub last_seen_at: DateTime<Utc>,
    /// Whether the user may sign in.
    pub status: UserStatus,
    /// How the user logs in.
    pub login_type: LoginType,
    /// The organizations the user is a member of.
    pub organization_ids: Vec<OrganizationId>,
    /// The user's deployment-wide roles beyond `member`.
    pub roles: Vec<SlimRole>,
    /// An avatar URL, possibly empty.
    #[serde(default)]
    pub avatar_url: String,
}

/// `POST /api/v2/users/first`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateFirstUserRequest {
    /// The owner's email.
    pub email: String,
    /// The owner's username.
    pub username: String,
    /// The owner's full name.
    #[serde(default)]
    pub name: String,
    /// The owner's password.
    pub password: Secret,
    /// Accepted for compatibility with Coder's clients; there is no trial.
    #[serde(default)]
    pub trial: bool,
}

/// The answer to [`CreateFirstUserRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateFirstUserResponse {
    /// The new owner's id.
    pub user_id: UserId,
    /// The default organization's id.
    pub organization_id: OrganizationId,
}

/// `POST /api/v2/users` (admins).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateUserRequest {
    /// The user's email.
    pub email: String,
    /// The user's username.
    pub username: String,
    /// The user's full name.
    #[serde(default)]
    pub name: String,
    /// The password; required unless `login_type` is `none`.
    #[serde(default)]
    pub password: Secret,
    /// `password` (the default) or `none`.
    #[serde(default)]
    pub login_type: Option<LoginType>,
    /// Organizations to join; the default organization when empty.
    #[serde(default)]
    pub organization_ids: Vec<OrganizationId>,
}

/// `GET /api/v2/users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetUsersResponse {
    /// One page of users, ordered by username.
    pub users: Vec<User>,
    /// How many users match the query in total.
    pub count: i64,
}

/// `PUT /api/v2/users/{user}/roles`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpdateRolesRequest {
    /// The complete new set of deployment-wide roles (`member` is implied).
    pub roles: Vec<String>,
}

/// `POST /api/v2/users/login`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginWithPasswordRequest {
    /// The user's email.
    pub email: String,
    /// The user's password.
    pub password: Secret,
}

/// The answer to [`LoginWithPasswordRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginWithPasswordResponse {
    /// A new session token, `id-secret`.
    pub session_token: Secret,
}

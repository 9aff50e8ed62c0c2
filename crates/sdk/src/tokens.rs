//! Long-lived API tokens (`/api/v2/users/{user}/keys/tokens`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ApiKeyId, LoginType, Secret, UserId};

/// `POST /api/v2/users/{user}/keys/tokens`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CreateTokenRequest {
    /// Lifetime in nanoseconds (Go's `time.Duration` encoding, as Coder's clients send it);
    /// 0 means the server's default.
    #[serde(default)]
    pub lifetime: i64,
    /// The token's scope; only `all` exists.
    #[serde(default)]
    pub scope: String,
    /// A name unique among the user's tokens.
    #[serde(default)]
    pub token_name: String,
}

/// The answer to creating a key: the whole token, shown once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenerateApiKeyResponse {
    /// `id-secret`.
    pub key: Secret,
}

/// An API key as listed; never includes the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The key's public id.
    pub id: ApiKeyId,
    /// The key's owner.
    pub user_id: UserId,
    /// When it was last used.
    pub last_used: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// `password` for login sessions, `token` for named API tokens.
    pub login_type: LoginType,
    /// The key's scope.
    pub scope: String,
    /// The token's name (empty for login sessions).
    pub token_name: String,
    /// The lifetime it was created with.
    pub lifetime_seconds: i64,
}

/// An API key with its owner's username, as `GET .../keys/tokens` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyWithOwner {
    /// The key.
    #[serde(flatten)]
    pub key: ApiKey,
    /// The owner's username.
    pub username: String,
}

//! API keys: login sessions and named long-lived tokens. Only a hash of each secret is stored.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Error, Store};

/// A row of `api_keys`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    /// sha256 of the token's secret half.
    pub hashed_secret: Vec<u8>,
    pub user_id: Uuid,
    /// `password` for login sessions, `token` for named tokens.
    pub login_type: String,
    pub scope: String,
    pub token_name: String,
    pub lifetime_seconds: i64,
    pub expires_at: DateTime<Utc>,
    pub last_used: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The fields of an API key to insert.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub id: String,
    pub hashed_secret: Vec<u8>,
    pub user_id: Uuid,
    pub login_type: String,
    pub scope: String,
    pub token_name: String,
    pub lifetime_seconds: i64,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Inserts an API key.
    pub async fn insert_api_key(&self, key: &NewApiKey) -> Result<ApiKeyRow, Error> {
        Ok(sqlx::query_as(
            "INSERT INTO api_keys (id, hashed_secret, user_id, login_type, scope, token_name,
                                   lifetime_seconds, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
        )
        .bind(&key.id)
        .bind(&key.hashed_secret)
        .bind(key.user_id)
        .bind(&key.login_type)
        .bind(&key.scope)
        .bind(&key.token_name)
        .bind(key.lifetime_seconds)
        .bind(key.expires_at)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The key with this id.
    pub async fn api_key_by_id(&self, id: &str) -> Result<Option<ApiKeyRow>, Error> {
        Ok(sqlx::query_as("SELECT * FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The named token of `user_id` (case-insensitive name).
    pub async fn token_by_name(
        &self,
        user_id: Uuid,
        name: &str,
    ) -> Result<Option<ApiKeyRow>, Error> {
        Ok(sqlx::query_as(
            "SELECT * FROM api_keys
             WHERE user_id = $1 AND login_type = 'token' AND lower(token_name) = lower($2)",
        )
        .bind(user_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The named tokens of one user, or of every user when `user_id` is `None`, newest first.
    pub async fn tokens(&self, user_id: Option<Uuid>) -> Result<Vec<ApiKeyRow>, Error> {
        Ok(sqlx::query_as(
            "SELECT * FROM api_keys
             WHERE login_type = 'token' AND ($1::uuid IS NULL OR user_id = $1)
             ORDER BY created_at DESC",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Deletes a key; false when there was none.
    pub async fn delete_api_key(&self, id: &str) -> Result<bool, Error> {
        let deleted = sqlx::query("DELETE FROM api_keys WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    /// Records a key's use and (for sliding sessions) its new expiry.
    pub async fn update_api_key_usage(
        &self,
        id: &str,
        last_used: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE api_keys SET last_used = $2, expires_at = $3, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(last_used)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

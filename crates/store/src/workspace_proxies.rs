//! Workspace proxies: their settings, token hash and the instance registered with each.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Error, Store};

/// A row of `workspace_proxies`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct WorkspaceProxyRow {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub icon: String,
    /// The proxy's access URL; empty until it first registers.
    pub url: String,
    pub wildcard_hostname: String,
    pub derp_enabled: bool,
    pub derp_only: bool,
    /// Offset of the proxy's relay region above the base relay map's region IDs.
    pub region_id: i32,
    /// sha256 of the token's secret half.
    pub token_hashed_secret: Vec<u8>,
    pub version: String,
    /// The registered instance, if one is running.
    pub replica_id: Option<Uuid>,
    pub replica_hostname: String,
    pub registered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted: bool,
}

/// What a starting (or re-registering) proxy instance reports.
#[derive(Clone, Debug)]
pub struct ProxyRegistration {
    pub url: String,
    pub wildcard_hostname: String,
    pub derp_enabled: bool,
    pub derp_only: bool,
    pub version: String,
    pub replica_id: Uuid,
    pub hostname: String,
}

/// The outcome of a registration.
#[derive(Clone, Debug)]
pub enum Registered {
    /// This instance is the proxy's registered one.
    Ok(WorkspaceProxyRow),
    /// Another instance registered with the same token recently and has not left.
    Taken(WorkspaceProxyRow),
    /// No such live proxy.
    Missing,
}

impl Store {
    /// Creates a proxy with its token's secret hash.
    pub async fn insert_workspace_proxy(
        &self,
        id: Uuid,
        name: &str,
        display_name: &str,
        icon: &str,
        token_hashed_secret: &[u8],
    ) -> Result<WorkspaceProxyRow, Error> {
        Ok(sqlx::query_as(
            "INSERT INTO workspace_proxies (id, name, display_name, icon, token_hashed_secret)
             VALUES ($1, $2, $3, $4, $5) RETURNING *",
        )
        .bind(id)
        .bind(name)
        .bind(display_name)
        .bind(icon)
        .bind(token_hashed_secret)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Every live proxy, by name.
    pub async fn workspace_proxies(&self) -> Result<Vec<WorkspaceProxyRow>, Error> {
        Ok(
            sqlx::query_as(
                "SELECT * FROM workspace_proxies WHERE NOT deleted ORDER BY lower(name)",
            )
            .fetch_all(&self.pool)
            .await?,
        )
    }

    /// The live proxy with this id.
    pub async fn workspace_proxy_by_id(
        &self,
        id: Uuid,
    ) -> Result<Option<WorkspaceProxyRow>, Error> {
        Ok(
            sqlx::query_as("SELECT * FROM workspace_proxies WHERE id = $1 AND NOT deleted")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The live proxy with this name (any case).
    pub async fn workspace_proxy_by_name(
        &self,
        name: &str,
    ) -> Result<Option<WorkspaceProxyRow>, Error> {
        Ok(sqlx::query_as(
            "SELECT * FROM workspace_proxies WHERE lower(name) = lower($1) AND NOT deleted",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Renames a proxy or changes how it is shown.
    pub async fn update_workspace_proxy(
        &self,
        id: Uuid,
        name: &str,
        display_name: &str,
        icon: &str,
    ) -> Result<Option<WorkspaceProxyRow>, Error> {
        Ok(sqlx::query_as(
            "UPDATE workspace_proxies SET name = $2, display_name = $3, icon = $4, updated_at = now()
             WHERE id = $1 AND NOT deleted RETURNING *",
        )
        .bind(id)
        .bind(name)
        .bind(display_name)
        .bind(icon)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Replaces the token: the old one stops working at once, and the running instance (which
    /// holds the old one) is forgotten.
    pub async fn update_workspace_proxy_token(
        &self,
        id: Uuid,
        token_hashed_secret: &[u8],
    ) -> Result<Option<WorkspaceProxyRow>, Error> {
        Ok(sqlx::query_as(
            "UPDATE workspace_proxies
             SET token_hashed_secret = $2, replica_id = NULL, updated_at = now()
             WHERE id = $1 AND NOT deleted RETURNING *",
        )
        .bind(id)
        .bind(token_hashed_secret)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Deletes a proxy (kept as a deleted row, so its name can be reused).
    pub async fn delete_workspace_proxy(&self, id: Uuid) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE workspace_proxies SET deleted = true, replica_id = NULL, updated_at = now()
             WHERE id = $1 AND NOT deleted",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a proxy instance's registration, unless another instance holds the proxy: one
    /// that registered within `stale_after` and has not deregistered.
    pub async fn register_workspace_proxy(
        &self,
        id: Uuid,
        registration: &ProxyRegistration,
        stale_after: chrono::TimeDelta,
    ) -> Result<Registered, Error> {
        let row: Option<WorkspaceProxyRow> = sqlx::query_as(
            "UPDATE workspace_proxies
             SET url = $2, wildcard_hostname = $3, derp_enabled = $4, derp_only = $5,
                 version = $6, replica_id = $7, replica_hostname = $8, registered_at = now(),
                 updated_at = now()
             WHERE id = $1 AND NOT deleted
               AND (replica_id IS NULL OR replica_id = $7 OR registered_at IS NULL
                    OR registered_at < now() - $9::interval)
             RETURNING *",
        )
        .bind(id)
        .bind(&registration.url)
        .bind(&registration.wildcard_hostname)
        .bind(registration.derp_enabled)
        .bind(registration.derp_only)
        .bind(&registration.version)
        .bind(registration.replica_id)
        .bind(&registration.hostname)
        .bind(format!("{} seconds", stale_after.num_seconds()))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(Registered::Ok(row));
        }
        Ok(match self.workspace_proxy_by_id(id).await? {
            Some(row) => Registered::Taken(row),
            None => Registered::Missing,
        })
    }

    /// Forgets the registered instance when it leaves (only if it is still the registered one).
    pub async fn deregister_workspace_proxy(
        &self,
        id: Uuid,
        replica_id: Uuid,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE workspace_proxies SET replica_id = NULL, updated_at = now()
             WHERE id = $1 AND replica_id = $2",
        )
        .bind(id)
        .bind(replica_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

//! Organizations and memberships.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Error, Store};

/// A row of `organizations`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OrganizationRow {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// The default organization, created by the first migration.
    pub async fn default_organization(&self) -> Result<OrganizationRow, Error> {
        Ok(
            sqlx::query_as("SELECT * FROM organizations WHERE is_default")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The organizations `user_id` is a member of, by name.
    pub async fn organizations_by_user(
        &self,
        user_id: Uuid,
    ) -> Result<Vec<OrganizationRow>, Error> {
        Ok(sqlx::query_as(
            "SELECT o.* FROM organizations o
             JOIN organization_members m ON m.organization_id = o.id
             WHERE m.user_id = $1 ORDER BY o.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Every organization, by name.
    pub async fn organizations(&self) -> Result<Vec<OrganizationRow>, Error> {
        Ok(sqlx::query_as("SELECT * FROM organizations ORDER BY name")
            .fetch_all(&self.pool)
            .await?)
    }

    /// The organization with this id or (case-insensitive) name.
    pub async fn organization(&self, id_or_name: &str) -> Result<Option<OrganizationRow>, Error> {
        let by_id = Uuid::parse_str(id_or_name).ok();
        Ok(
            sqlx::query_as("SELECT * FROM organizations WHERE id = $1 OR lower(name) = lower($2)")
                .bind(by_id)
                .bind(id_or_name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

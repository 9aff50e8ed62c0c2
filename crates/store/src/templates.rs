//! Templates and template versions. A version is created with its import job in one
//! transaction; a template is created from a version that imported successfully.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::jobs::{NewJob, insert_job};
use crate::{Error, Store};

/// A row of `templates`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TemplateRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub active_version_id: Uuid,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A row of `template_versions`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TemplateVersionRow {
    pub id: Uuid,
    pub template_id: Option<Uuid>,
    pub organization_id: Uuid,
    pub name: String,
    pub message: String,
    pub job_id: Uuid,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A template to create.
#[derive(Clone, Debug)]
pub struct NewTemplate {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub icon: String,
    pub active_version_id: Uuid,
    pub created_by: Uuid,
}

macro_rules! select_template {
    ($($clauses:expr),*) => {
        concat!(
            "SELECT id, organization_id, name, display_name, description, icon, \
             active_version_id, created_by, created_at, updated_at FROM templates ",
            $($clauses),*
        )
    };
}

impl Store {
    /// Inserts a template version and posts its import job, atomically.
    pub async fn insert_template_version(
        &self,
        version: &TemplateVersionRow,
        job: &NewJob,
    ) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        insert_job(&mut tx, job).await?;
        sqlx::query(
            "INSERT INTO template_versions
                 (id, template_id, organization_id, name, message, job_id, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(version.id)
        .bind(version.template_id)
        .bind(version.organization_id)
        .bind(&version.name)
        .bind(&version.message)
        .bind(version.job_id)
        .bind(version.created_by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The template version with this id.
    pub async fn template_version(&self, id: Uuid) -> Result<Option<TemplateVersionRow>, Error> {
        Ok(
            sqlx::query_as("SELECT * FROM template_versions WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// A template's versions, oldest first.
    pub async fn template_versions(
        &self,
        template_id: Uuid,
    ) -> Result<Vec<TemplateVersionRow>, Error> {
        Ok(sqlx::query_as(
            "SELECT * FROM template_versions WHERE template_id = $1 ORDER BY created_at, id",
        )
        .bind(template_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Creates a template whose active version is `template.active_version_id`, and attaches
    /// that version to it.
    pub async fn insert_template(&self, template: &NewTemplate) -> Result<TemplateRow, Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO templates (id, organization_id, name, display_name, description, icon,
                                    active_version_id, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(template.id)
        .bind(template.organization_id)
        .bind(&template.name)
        .bind(&template.display_name)
        .bind(&template.description)
        .bind(&template.icon)
        .bind(template.active_version_id)
        .bind(template.created_by)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE template_versions SET template_id = $1, updated_at = now() WHERE id = $2",
        )
        .bind(template.id)
        .bind(template.active_version_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.template(template.id)
            .await?
            .ok_or(Error::Query(sqlx::Error::RowNotFound))
    }

    /// The template with this id.
    pub async fn template(&self, id: Uuid) -> Result<Option<TemplateRow>, Error> {
        Ok(
            sqlx::query_as(select_template!("WHERE id = $1 AND NOT deleted"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The template with this (case-insensitive) name in an organization.
    pub async fn template_by_name(
        &self,
        organization_id: Uuid,
        name: &str,
    ) -> Result<Option<TemplateRow>, Error> {
        Ok(sqlx::query_as(select_template!(
            "WHERE organization_id = $1 AND lower(name) = lower($2) AND NOT deleted"
        ))
        .bind(organization_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// An organization's templates (every organization's when `None`), by name.
    pub async fn templates(
        &self,
        organization_id: Option<Uuid>,
    ) -> Result<Vec<TemplateRow>, Error> {
        Ok(sqlx::query_as(select_template!(
            "WHERE ($1::uuid IS NULL OR organization_id = $1) AND NOT deleted ORDER BY lower(name)"
        ))
        .bind(organization_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Makes `version_id` the template's active version.
    pub async fn update_template_active_version(
        &self,
        template_id: Uuid,
        version_id: Uuid,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE templates SET active_version_id = $2, updated_at = now() WHERE id = $1",
        )
        .bind(template_id)
        .bind(version_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a template (its versions and jobs stay, for history).
    pub async fn delete_template(&self, id: Uuid) -> Result<bool, Error> {
        let deleted = sqlx::query(
            "UPDATE templates SET deleted = true, updated_at = now() WHERE id = $1 AND NOT deleted",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected() > 0)
    }
}

//! Workspaces and their builds. A build is posted with its provisioner job in one
//! transaction, under a lock on the workspace so two builds never run at once.

use chrono::{DateTime, Utc};
use serde_json::Value as JsonValue;
use uuid::Uuid;

use crate::jobs::{NewJob, insert_job};
use crate::{Error, Store};

/// A row of `workspaces`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct WorkspaceRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub owner_id: Uuid,
    pub template_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted: bool,
}

/// A row of `workspace_builds`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct WorkspaceBuildRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub template_version_id: Uuid,
    pub build_number: i32,
    /// `start`, `stop` or `delete`.
    pub transition: String,
    pub initiator_id: Uuid,
    pub job_id: Uuid,
    /// The template's parameters, name → value.
    pub parameters: JsonValue,
    pub provisioner_state: Option<Vec<u8>>,
    pub agent_token_hash: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A build to post.
#[derive(Clone, Debug)]
pub struct NewWorkspaceBuild {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub template_version_id: Uuid,
    pub transition: String,
    pub initiator_id: Uuid,
    pub parameters: JsonValue,
}

/// What posting a build did.
#[derive(Debug)]
pub enum PostBuild {
    /// Posted.
    Posted(Box<WorkspaceBuildRow>),
    /// The previous build's job has not ended.
    InProgress { build_number: i32 },
}

impl Store {
    /// Creates a workspace and posts its first build.
    pub async fn insert_workspace(
        &self,
        workspace: &WorkspaceRow,
        build: &NewWorkspaceBuild,
        job: &NewJob,
    ) -> Result<WorkspaceBuildRow, Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO workspaces (id, organization_id, owner_id, template_id, name)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(workspace.id)
        .bind(workspace.organization_id)
        .bind(workspace.owner_id)
        .bind(workspace.template_id)
        .bind(&workspace.name)
        .execute(&mut *tx)
        .await?;
        let row = insert_build(&mut tx, build, job, 1, None).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Posts the next build of a workspace, carrying the last build's Terraform state.
    pub async fn post_workspace_build(
        &self,
        build: &NewWorkspaceBuild,
        job: &NewJob,
    ) -> Result<PostBuild, Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE")
            .bind(build.workspace_id)
            .execute(&mut *tx)
            .await?;
        let last: Option<(i32, Option<Vec<u8>>, bool)> = sqlx::query_as(
            "SELECT b.build_number, b.provisioner_state, j.completed_at IS NOT NULL
             FROM workspace_builds b JOIN provisioner_jobs j ON j.id = b.job_id
             WHERE b.workspace_id = $1 ORDER BY b.build_number DESC LIMIT 1",
        )
        .bind(build.workspace_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (number, state) = match last {
            Some((build_number, _, false)) => return Ok(PostBuild::InProgress { build_number }),
            Some((build_number, state, true)) => (build_number + 1, state),
            None => (1, None),
        };
        let row = insert_build(&mut tx, build, job, number, state).await?;
        tx.commit().await?;
        Ok(PostBuild::Posted(Box::new(row)))
    }

    /// The workspace with this id (deleted ones too: their history stays readable).
    pub async fn workspace(&self, id: Uuid) -> Result<Option<WorkspaceRow>, Error> {
        Ok(sqlx::query_as("SELECT * FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The live workspace of `owner_id` with this (case-insensitive) name.
    pub async fn workspace_by_owner_and_name(
        &self,
        owner_id: Uuid,
        name: &str,
    ) -> Result<Option<WorkspaceRow>, Error> {
        Ok(sqlx::query_as(
            "SELECT * FROM workspaces WHERE owner_id = $1 AND lower(name) = lower($2) AND NOT deleted",
        )
        .bind(owner_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Live workspaces, of one owner or of everyone, by owner then name.
    pub async fn workspaces(&self, owner_id: Option<Uuid>) -> Result<Vec<WorkspaceRow>, Error> {
        Ok(sqlx::query_as(
            "SELECT w.* FROM workspaces w JOIN users u ON u.id = w.owner_id
             WHERE NOT w.deleted AND ($1::uuid IS NULL OR w.owner_id = $1)
             ORDER BY lower(u.username), lower(w.name)",
        )
        .bind(owner_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many live workspaces use a template.
    pub async fn count_workspaces_by_template(&self, template_id: Uuid) -> Result<i64, Error> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM workspaces WHERE template_id = $1 AND NOT deleted",
        )
        .bind(template_id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// A workspace's builds, newest first.
    pub async fn workspace_builds(
        &self,
        workspace_id: Uuid,
    ) -> Result<Vec<WorkspaceBuildRow>, Error> {
        Ok(sqlx::query_as(
            "SELECT * FROM workspace_builds WHERE workspace_id = $1 ORDER BY build_number DESC",
        )
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A workspace's latest build.
    pub async fn latest_workspace_build(
        &self,
        workspace_id: Uuid,
    ) -> Result<Option<WorkspaceBuildRow>, Error> {
        Ok(sqlx::query_as(
            "SELECT * FROM workspace_builds WHERE workspace_id = $1
             ORDER BY build_number DESC LIMIT 1",
        )
        .bind(workspace_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The build with this id.
    pub async fn workspace_build(&self, id: Uuid) -> Result<Option<WorkspaceBuildRow>, Error> {
        Ok(
            sqlx::query_as("SELECT * FROM workspace_builds WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The build a job runs.
    pub async fn workspace_build_by_job(
        &self,
        job_id: Uuid,
    ) -> Result<Option<WorkspaceBuildRow>, Error> {
        Ok(
            sqlx::query_as("SELECT * FROM workspace_builds WHERE job_id = $1")
                .bind(job_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Records the hash of the agent token minted for a build.
    pub async fn set_build_agent_token_hash(
        &self,
        build_id: Uuid,
        hash: &[u8],
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE workspace_builds SET agent_token_hash = $2, updated_at = now() WHERE id = $1",
        )
        .bind(build_id)
        .bind(hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a finished build's Terraform state; a successful delete also marks the
    /// workspace deleted.
    pub async fn finish_workspace_build(
        &self,
        build_id: Uuid,
        state: Option<&[u8]>,
        deleted: bool,
    ) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        let workspace_id: Uuid = sqlx::query_scalar(
            "UPDATE workspace_builds
             SET provisioner_state = coalesce($2, provisioner_state), updated_at = now()
             WHERE id = $1 RETURNING workspace_id",
        )
        .bind(build_id)
        .bind(state)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE workspaces SET updated_at = now(), deleted = deleted OR $2 WHERE id = $1",
        )
        .bind(workspace_id)
        .bind(deleted)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_build(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    build: &NewWorkspaceBuild,
    job: &NewJob,
    build_number: i32,
    state: Option<Vec<u8>>,
) -> Result<WorkspaceBuildRow, Error> {
    insert_job(tx, job).await?;
    Ok(sqlx::query_as(
        "INSERT INTO workspace_builds (id, workspace_id, template_version_id, build_number,
                                       transition, initiator_id, job_id, parameters,
                                       provisioner_state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
    )
    .bind(build.id)
    .bind(build.workspace_id)
    .bind(build.template_version_id)
    .bind(build_number)
    .bind(&build.transition)
    .bind(build.initiator_id)
    .bind(job.id)
    .bind(&build.parameters)
    .bind(state)
    .fetch_one(&mut **tx)
    .await?)
}

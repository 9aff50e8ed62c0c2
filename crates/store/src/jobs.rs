//! The provisioner job queue: posting jobs, claiming them (`FOR UPDATE SKIP LOCKED`, so any
//! number of provisioners take distinct jobs), logs, heartbeats, completion, cancellation and
//! the reaper for jobs whose provisioner went silent. Posting a job and appending logs NOTIFY
//! listeners, so nobody polls.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value as JsonValue;
use uuid::Uuid;

use crate::{Error, Store};

/// Channel notified when a job is posted (payload: its id).
pub const JOB_POSTED_CHANNEL: &str = "provisioner_job_posted";

/// Channel notified when a job gets log lines, changes state or ends (payload: its id). One
/// channel for all jobs, so one listening connection serves every follower.
pub const JOB_UPDATED_CHANNEL: &str = "provisioner_job_updated";

/// A row of `provisioner_jobs`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub initiator_id: Uuid,
    #[sqlx(rename = "type")]
    pub job_type: String,
    pub input: JsonValue,
    pub file_id: Uuid,
    pub tags: JsonValue,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub worker_id: Option<Uuid>,
    pub worker_name: String,
    pub result: Option<JsonValue>,
}

/// A job to post.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub initiator_id: Uuid,
    /// `template_version_import` or `workspace_build`.
    pub job_type: String,
    pub input: JsonValue,
    pub file_id: Uuid,
    pub tags: JsonValue,
}

/// A row of `provisioner_job_logs`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct JobLogRow {
    pub id: i64,
    pub job_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub level: String,
    pub stage: String,
    pub output: String,
}

/// A log line to append.
#[derive(Clone, Debug)]
pub struct NewJobLog {
    pub level: String,
    pub stage: String,
    pub output: String,
}

/// Wakes the job's followers (delivered at commit when sent inside a transaction).
async fn notify_job_updated<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    job_id: Uuid,
) -> Result<(), Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(JOB_UPDATED_CHANNEL)
        .bind(job_id.to_string())
        .execute(executor)
        .await?;
    Ok(())
}

pub(crate) async fn insert_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    job: &NewJob,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO provisioner_jobs (id, organization_id, initiator_id, type, input, file_id, tags)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(job.id)
    .bind(job.organization_id)
    .bind(job.initiator_id)
    .bind(&job.job_type)
    .bind(&job.input)
    .bind(job.file_id)
    .bind(&job.tags)
    .execute(&mut **tx)
    .await?;
    // Delivered at commit, so a provisioner woken by it finds the job.
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(JOB_POSTED_CHANNEL)
        .bind(job.id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// The job with this id.
    pub async fn job(&self, id: Uuid) -> Result<Option<JobRow>, Error> {
        Ok(
            sqlx::query_as("SELECT * FROM provisioner_jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The jobs no provisioner has picked up yet: how many, and how long the oldest has waited
    /// (seconds; 0 when none).
    pub async fn pending_jobs(&self) -> Result<(i64, f64), Error> {
        let row: (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8
             FROM provisioner_jobs
             WHERE started_at IS NULL AND canceled_at IS NULL AND completed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.0, row.1.unwrap_or(0.0)))
    }

    /// Claims the oldest pending job whose tags are all among `tags`, for `worker_id`.
    /// Concurrent callers never get the same job.
    pub async fn acquire_job(
        &self,
        worker_id: Uuid,
        worker_name: &str,
        tags: &JsonValue,
    ) -> Result<Option<JobRow>, Error> {
        Ok(sqlx::query_as(
            "UPDATE provisioner_jobs
             SET started_at = now(), heartbeat_at = now(), updated_at = now(),
                 worker_id = $1, worker_name = $2
             WHERE id = (
                 SELECT id FROM provisioner_jobs
                 WHERE started_at IS NULL AND canceled_at IS NULL AND tags <@ $3::jsonb
                 ORDER BY created_at
                 FOR UPDATE SKIP LOCKED
                 LIMIT 1
             )
             RETURNING *",
        )
        .bind(worker_id)
        .bind(worker_name)
        .bind(tags)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Appends log lines to a job and notifies its followers.
    pub async fn append_job_logs(&self, job_id: Uuid, logs: &[NewJobLog]) -> Result<(), Error> {
        if logs.is_empty() {
            return Ok(());
        }
        let levels: Vec<&str> = logs.iter().map(|log| log.level.as_str()).collect();
        let stages: Vec<&str> = logs.iter().map(|log| log.stage.as_str()).collect();
        let outputs: Vec<&str> = logs.iter().map(|log| log.output.as_str()).collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO provisioner_job_logs (job_id, level, stage, output)
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[])",
        )
        .bind(job_id)
        .bind(&levels)
        .bind(&stages)
        .bind(&outputs)
        .execute(&mut *tx)
        .await?;
        notify_job_updated(&mut *tx, job_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A job's log lines after the line with id `after` (0 for all), in order.
    pub async fn job_logs(&self, job_id: Uuid, after: i64) -> Result<Vec<JobLogRow>, Error> {
        Ok(sqlx::query_as(
            "SELECT * FROM provisioner_job_logs WHERE job_id = $1 AND id > $2 ORDER BY id",
        )
        .bind(job_id)
        .bind(after)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records that `worker_id` still works on the job. `Some(canceled)` while it holds the
    /// job; `None` when the job is no longer its own (completed, or reaped).
    pub async fn heartbeat_job(
        &self,
        job_id: Uuid,
        worker_id: Uuid,
    ) -> Result<Option<bool>, Error> {
        Ok(sqlx::query_scalar(
            "UPDATE provisioner_jobs SET heartbeat_at = now()
             WHERE id = $1 AND worker_id = $2 AND completed_at IS NULL
             RETURNING canceled_at IS NOT NULL",
        )
        .bind(job_id)
        .bind(worker_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Ends a job held by `worker_id`: failed when `error` is given, else succeeded with
    /// `result`. False when the worker no longer holds it.
    pub async fn complete_job(
        &self,
        job_id: Uuid,
        worker_id: Uuid,
        error: Option<&str>,
        result: Option<&JsonValue>,
    ) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE provisioner_jobs
             SET completed_at = now(), updated_at = now(), error = $3, result = $4
             WHERE id = $1 AND worker_id = $2 AND completed_at IS NULL",
        )
        .bind(job_id)
        .bind(worker_id)
        .bind(error)
        .bind(result)
        .execute(&mut *tx)
        .await?;
        notify_job_updated(&mut *tx, job_id).await?;
        tx.commit().await?;
        Ok(updated.rows_affected() > 0)
    }

    /// Cancels a job: a pending one ends at once; a running one is asked to stop (its
    /// provisioner learns it from its next heartbeat). `None` when the job has already ended.
    pub async fn cancel_job(&self, job_id: Uuid) -> Result<Option<JobRow>, Error> {
        let mut tx = self.pool.begin().await?;
        let row: Option<JobRow> = sqlx::query_as(
            "UPDATE provisioner_jobs
             SET canceled_at = coalesce(canceled_at, now()), updated_at = now(),
                 completed_at = CASE WHEN started_at IS NULL THEN now() END,
                 error = CASE WHEN started_at IS NULL THEN 'canceled before it started' END
             WHERE id = $1 AND completed_at IS NULL
             RETURNING *",
        )
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
        notify_job_updated(&mut *tx, job_id).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Fails every running job whose provisioner has not sent a heartbeat for `silent_for`,
    /// and returns their ids.
    pub async fn reap_stale_jobs(&self, silent_for: Duration) -> Result<Vec<Uuid>, Error> {
        let seconds = silent_for.as_secs_f64();
        let ids: Vec<Uuid> = sqlx::query_scalar(
            r#"UPDATE provisioner_jobs
             SET completed_at = now(), updated_at = now(),
                 error = 'the provisioner '
                     || CASE WHEN worker_name = '' THEN '' ELSE '"' || worker_name || '" ' END
                     || 'stopped responding (no heartbeat for ' || $1::float8 || ' seconds)' 
             WHERE started_at IS NOT NULL AND completed_at IS NULL
               AND heartbeat_at < now() - make_interval(secs => $1::float8)
             RETURNING id"#,
        )
        .bind(seconds)
        .fetch_all(&self.pool)
        .await?;
        for id in &ids {
            notify_job_updated(&self.pool, *id).await?;
        }
        Ok(ids)
    }
}

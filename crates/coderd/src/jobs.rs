//! Job events for this server: one LISTEN connection turns PostgreSQL notifications into
//! in-process wake-ups (a posted job wakes long-polling provisioners; a job's new logs or end
//! wake its followers), and the reaper fails jobs whose provisioner went silent.

use std::sync::Arc;
use std::time::Duration;

use store::{JOB_POSTED_CHANNEL, JOB_UPDATED_CHANNEL, Store};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often the reaper looks for silent provisioners.
const REAP_INTERVAL: Duration = Duration::from_secs(5);

/// Wake-ups shared by handlers.
pub(crate) struct JobEvents {
    /// Signalled whenever any job is posted.
    pub(crate) posted: Notify,
    /// The id of every job that got logs, changed state or ended.
    pub(crate) updated: broadcast::Sender<Uuid>,
}

impl JobEvents {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            posted: Notify::new(),
            updated: broadcast::channel(1024).0,
        })
    }
}

/// Feeds `events` from PostgreSQL until cancelled, reconnecting after errors.
pub(crate) async fn listen(store: Store, events: Arc<JobEvents>, cancel: CancellationToken) {
    loop {
        let mut listener = match store
            .listen(&[JOB_POSTED_CHANNEL, JOB_UPDATED_CHANNEL])
            .await
        {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "listening for job events failed; retrying");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        // Anything may have happened while we were not listening: wake everyone to re-check.
        events.posted.notify_waiters();
        loop {
            let notification = tokio::select! {
                () = cancel.cancelled() => return,
                notification = listener.recv() => notification,
            };
            match notification {
                Ok(notification) if notification.channel == JOB_POSTED_CHANNEL => {
                    events.posted.notify_waiters();
                }
                Ok(notification) => {
                    if let Ok(id) = notification.payload.parse() {
                        let _ = events.updated.send(id);
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "job event listener lost its connection");
                    break;
                }
            }
        }
    }
}

/// Fails running jobs whose provisioner sent no heartbeat for `timeout`, until cancelled.
pub(crate) async fn reap(store: Store, timeout: Duration, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(REAP_INTERVAL) => {}
        }
        match store.reap_stale_jobs(timeout).await {
            Ok(ids) => {
                for id in ids {
                    tracing::warn!(job_id = %id, "failed a job whose provisioner stopped responding");
                }
            }
            Err(err) => tracing::warn!(error = %err, "reaping stale jobs failed"),
        }
    }
}

/// A job's status as users see it.
pub(crate) fn status(job: &store::JobRow) -> sdk::ProvisionerJobStatus {
    use sdk::ProvisionerJobStatus::*;
    match (
        job.started_at,
        job.canceled_at,
        job.completed_at,
        &job.error,
    ) {
        (_, Some(_), Some(_), _) => Canceled,
        (_, None, Some(_), Some(_)) => Failed,
        (_, None, Some(_), None) => Succeeded,
        (_, Some(_), None, _) => Canceling,
        (Some(_), None, None, _) => Running,
        (None, None, None, _) => Pending,
    }
}

pub(crate) fn to_sdk(job: &store::JobRow) -> sdk::ProvisionerJob {
    sdk::ProvisionerJob {
        id: job.id,
        created_at: job.created_at,
        started_at: job.started_at,
        completed_at: job.completed_at,
        canceled_at: job.canceled_at,
        error: job.error.clone().unwrap_or_default(),
        status: status(job),
        worker_name: job.worker_name.clone(),
        file_id: job.file_id,
        tags: serde_json::from_value(job.tags.clone()).unwrap_or_default(),
    }
}

pub(crate) fn log_to_sdk(log: &store::JobLogRow) -> sdk::ProvisionerJobLog {
    sdk::ProvisionerJobLog {
        id: log.id,
        created_at: log.created_at,
        log_level: log.level.clone(),
        stage: log.stage.clone(),
        output: log.output.clone(),
    }
}

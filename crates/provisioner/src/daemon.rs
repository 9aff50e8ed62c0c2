//! The provisioner daemon: claims jobs from the server (long poll), runs them, streams their
//! logs in batches, sends heartbeats (which also carry cancellation), and reports outcomes.
//! The server's built-in daemons and `coder provisioner start` both run this loop.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sdk::client::{Client, ClientError};
use sdk::{
    AcquireJobRequest, AcquiredJob, CompleteJobRequest, HeartbeatRequest, JobLogsRequest,
    JobResult, JobSpec, ProvisionerLog, TemplateVersionVariable, WorkspaceResource,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::job::{Job, JobKind, Outcome, Transition};
use crate::terraform::{LogLevel, LogLine};
use crate::{WorkspaceFacts, run};

/// How often a running job's heartbeat is sent (the server fails jobs silent for longer than
/// its timeout, 30 s by default).
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Log lines are sent at least this often while a job runs.
const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(250);
const LOG_BATCH: usize = 200;
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What a daemon is.
#[derive(Clone, Debug)]
pub struct Daemon {
    /// A name for the server's job listings and logs.
    pub name: String,
    /// It takes jobs whose tags are all among these.
    pub tags: BTreeMap<String, String>,
    /// The `terraform` binary.
    pub terraform: PathBuf,
    /// Where job directories are made.
    pub work_root: PathBuf,
}

impl Daemon {
    /// Claims and runs jobs from `client` (authenticated with the provisioner key) until
    /// `cancel` fires. A job running at that moment is cancelled (Terraform stops gracefully)
    /// and reported as failed. Server outages are retried with backoff; a refused key ends the
    /// loop with that error.
    pub async fn run(self, client: Client, cancel: CancellationToken) -> Result<(), ClientError> {
        let worker_id = Uuid::new_v4();
        let mut backoff = Duration::from_millis(250);
        tracing::info!(name = %self.name, tags = ?self.tags, "provisioner daemon started");
        loop {
            let request = AcquireJobRequest {
                worker_id,
                name: self.name.clone(),
                tags: self.tags.clone(),
            };
            let acquired = tokio::select! {
                () = cancel.cancelled() => break,
                acquired = client.acquire_job(&request) => acquired,
            };
            match acquired {
                Ok(Some(job)) => {
                    backoff = Duration::from_millis(250);
                    self.execute(&client, worker_id, job, &cancel).await;
                }
                Ok(None) => backoff = Duration::from_millis(250),
                Err(err @ ClientError::Api { status: 401, .. }) => return Err(err),
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?backoff, "claiming a job failed");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        tracing::info!(name = %self.name, "provisioner daemon stopped");
        Ok(())
    }

    async fn execute(
        &self,
        client: &Client,
        worker_id: Uuid,
        acquired: AcquiredJob,
        daemon_cancel: &CancellationToken,
    ) {
        let job_id = acquired.job_id;
        tracing::info!(%job_id, name = %self.name, "running a job");
        let job_cancel = daemon_cancel.child_token();
        let (logs, mut log_receiver) = mpsc::channel::<LogLine>(1024);
        // A failure is its message and, for a failed apply, the state Terraform left.
        let outcome = async {
            let job = to_job(acquired).map_err(|message| (message, None))?;
            run(
                job,
                &self.terraform,
                &self.work_root,
                logs,
                job_cancel.clone(),
            )
            .await
            .map_err(|err| (err.to_string(), err.partial_state().map(<[u8]>::to_vec)))
        };
        let report = async {
            let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
            let mut flush = tokio::time::interval(LOG_FLUSH_INTERVAL);
            let mut pending = Vec::new();
            let mut logs_open = true;
            while logs_open || !pending.is_empty() {
                tokio::select! {
                    line = log_receiver.recv(), if logs_open => match line {
                        Some(line) => {
                            pending.push(to_wire(line));
                            if pending.len() < LOG_BATCH {
                                continue;
                            }
                        }
                        None => logs_open = false,
                    },
                    _ = flush.tick() => {}
                    _ = heartbeat.tick() => {
                        match client.job_heartbeat(job_id, &HeartbeatRequest { worker_id }).await {
                            Ok(response) if response.canceled => job_cancel.cancel(),
                            Ok(_) => {}
                            Err(ClientError::Api { status: 409, .. }) => {
                                tracing::warn!(%job_id, "the server took the job back; stopping it");
                                job_cancel.cancel();
                            }
                            Err(err) => tracing::warn!(%job_id, error = %err, "heartbeat failed"),
                        }
                        continue;
                    }
                }
                if !pending.is_empty() {
                    let batch = JobLogsRequest {
                        worker_id,
                        logs: std::mem::take(&mut pending),
                    };
                    if let Err(err) = client.send_job_logs(job_id, &batch).await {
                        tracing::warn!(%job_id, error = %err, "sending job logs failed");
                    }
                }
            }
        };
        let (outcome, ()) = tokio::join!(outcome, report);
        let request = match outcome {
            Ok(outcome) => CompleteJobRequest {
                worker_id,
                error: None,
                result: to_result(outcome),
            },
            Err((error, state)) => CompleteJobRequest {
                worker_id,
                error: Some(error),
                // What a failed apply created is still tracked by its state: keep it.
                result: JobResult {
                    state: state.map(|state| BASE64.encode(state)),
                    ..JobResult::default()
                },
            },
        };
        for attempt in 1..=3 {
            match client.complete_job(job_id, &request).await {
                Ok(()) => break,
                Err(err @ ClientError::Api { status: 409, .. }) => {
                    tracing::warn!(%job_id, error = %err, "the server no longer accepts this job's outcome");
                    break;
                }
                Err(err) => {
                    tracing::warn!(%job_id, attempt, error = %err, "reporting the job's outcome failed");
                    tokio::time::sleep(Duration::from_secs(attempt)).await;
                }
            }
        }
        tracing::info!(%job_id, failed = request.error.is_some(), "job finished");
    }
}

fn to_job(acquired: AcquiredJob) -> Result<Job, String> {
    let source = BASE64
        .decode(acquired.template_source)
        .map_err(|err| format!("the job's template source is not valid base64: {err}"))?;
    match acquired.spec {
        JobSpec::TemplateVersionImport => Ok(Job {
            kind: JobKind::Import,
            source,
            facts: import_facts(),
            parameters: BTreeMap::new(),
            state: None,
        }),
        JobSpec::WorkspaceBuild {
            transition,
            facts,
            parameters,
            state,
        } => {
            let transition = match transition.as_str() {
                "start" => Transition::Start,
                "stop" => Transition::Stop,
                "delete" => Transition::Delete,
                other => return Err(format!("unknown transition {other:?}")),
            };
            let fact = |name: &str| facts.get(name).cloned().unwrap_or_default();
            let state = state
                .map(|encoded| BASE64.decode(encoded))
                .transpose()
                .map_err(|err| format!("the job's Terraform state is not valid base64: {err}"))?;
            Ok(Job {
                kind: JobKind::Build { transition },
                source,
                facts: WorkspaceFacts {
                    access_url: fact("access_url"),
                    workspace_id: fact("workspace_id"),
                    workspace_name: fact("workspace_name"),
                    workspace_owner: fact("workspace_owner"),
                    workspace_owner_email: fact("workspace_owner_email"),
                    template_name: fact("template_name"),
                    agent_token: sdk::Secret::new(fact("agent_token")),
                },
                parameters,
                state,
            })
        }
    }
}

/// Placeholder facts for an import's plan, recognisable if a template prints them.
fn import_facts() -> WorkspaceFacts {
    WorkspaceFacts {
        access_url: "https://coder.example.com".to_owned(),
        workspace_id: Uuid::nil().to_string(),
        workspace_name: "template-import".to_owned(),
        workspace_owner: "template-admin".to_owned(),
        workspace_owner_email: "template-admin@example.com".to_owned(),
        template_name: "template".to_owned(),
        agent_token: sdk::Secret::new("template-import-placeholder-token"),
    }
}

fn to_wire(line: LogLine) -> ProvisionerLog {
    ProvisionerLog {
        level: match line.level {
            LogLevel::Info => "info",
            LogLevel::Error => "error",
        }
        .to_owned(),
        stage: line.stage,
        output: line.output,
    }
}

fn to_result(outcome: Outcome) -> JobResult {
    JobResult {
        resources: outcome
            .resources
            .into_iter()
            .map(|resource| WorkspaceResource {
                address: resource.address,
                kind: resource.kind,
                name: resource.name,
            })
            .collect(),
        variables: outcome
            .variables
            .into_iter()
            .map(|variable| TemplateVersionVariable {
                required: variable.default.is_none(),
                name: variable.name,
                description: variable.description,
                default_value: variable.default,
                sensitive: variable.sensitive,
            })
            .collect(),
        agent: outcome.agent,
        state: outcome.state.map(|state| BASE64.encode(state)),
    }
}

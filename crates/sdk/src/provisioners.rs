//! The protocol between provisioner daemons and the server (`/api/v2/provisionerdaemons`):
//! claim a job (long poll), stream its logs, send heartbeats, report its outcome. Built-in and
//! external provisioners speak the same protocol; both authenticate with the pre-shared key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{AgentSettings, TemplateVersionVariable, WorkspaceResource};

/// Header carrying the provisioner pre-shared key.
pub const PROVISIONER_PSK_HEADER: &str = "Coder-Provisioner-Daemon-PSK";

/// `POST /api/v2/provisionerdaemons/acquire`: waits up to about 30 s for a job.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AcquireJobRequest {
    /// This daemon's id for its lifetime; jobs it claims are bound to it.
    pub worker_id: Uuid,
    /// A name for logs and job listings.
    pub name: String,
    /// The daemon's tags: it takes jobs whose tags are all among these.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// What a job asks the daemon to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum JobSpec {
    /// Import a template version.
    TemplateVersionImport,
    /// Build a workspace.
    WorkspaceBuild {
        /// `start`, `stop` or `delete`.
        transition: String,
        /// The workspace's facts, by variable name without the `coder_` prefix.
        facts: BTreeMap<String, String>,
        /// The template's parameters.
        parameters: BTreeMap<String, String>,
        /// The Terraform state from the last build, base64.
        state: Option<String>,
    },
}

/// A claimed job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquiredJob {
    /// The job's id.
    pub job_id: Uuid,
    /// The template's source, a tar archive, base64.
    pub template_source: String,
    /// What to do.
    pub spec: JobSpec,
}

/// A log line a daemon sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionerLog {
    /// `info` or `error`.
    pub level: String,
    /// The step.
    pub stage: String,
    /// The text.
    pub output: String,
}

/// `POST /api/v2/provisionerdaemons/jobs/{id}/logs`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobLogsRequest {
    /// The daemon holding the job.
    pub worker_id: Uuid,
    /// Lines in order.
    pub logs: Vec<ProvisionerLog>,
}

/// `POST /api/v2/provisionerdaemons/jobs/{id}/heartbeat`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// The daemon holding the job.
    pub worker_id: Uuid,
}

/// The answer to a heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The job was cancelled: stop it and complete it with an error.
    pub canceled: bool,
}

/// What a job produced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// Resources planned (imports) or managed (builds).
    #[serde(default)]
    pub resources: Vec<WorkspaceResource>,
    /// The template's parameters (imports).
    #[serde(default)]
    pub variables: Vec<TemplateVersionVariable>,
    /// The agent's settings.
    #[serde(default)]
    pub agent: Option<AgentSettings>,
    /// The new Terraform state (builds), base64.
    #[serde(default)]
    pub state: Option<String>,
}

/// `POST /api/v2/provisionerdaemons/jobs/{id}/complete`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompleteJobRequest {
    /// The daemon holding the job.
    pub worker_id: Uuid,
    /// Why the job failed; `None` on success.
    pub error: Option<String>,
    /// What it produced (on success, and the state of a failed build).
    #[serde(default)]
    pub result: JobResult,
}

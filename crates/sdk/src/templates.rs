//! Files, provisioner jobs and their logs, template versions and templates.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{OrganizationId, UserId};

/// The MIME type of template sources.
pub const TAR_MIME_TYPE: &str = "application/x-tar";

/// The answer to `POST /api/v2/files`: the file's id (Coder calls the field `hash`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadResponse {
    /// The file's id.
    #[serde(rename = "hash")]
    pub id: Uuid,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvisionerJobStatus {
    /// Waiting for a provisioner.
    Pending,
    /// A provisioner works on it.
    Running,
    /// Finished without error.
    Succeeded,
    /// Asked to stop; its provisioner has not stopped yet.
    Canceling,
    /// Stopped on request.
    Canceled,
    /// Finished with an error.
    Failed,
}

impl ProvisionerJobStatus {
    /// Whether the job has ended.
    pub fn is_done(self) -> bool {
        matches!(self, Self::Succeeded | Self::Canceled | Self::Failed)
    }

    /// The name used in the API and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Canceling => "canceling",
            Self::Canceled => "canceled",
            Self::Failed => "failed",
        }
    }
}

/// A provisioner job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionerJob {
    /// Its id.
    pub id: Uuid,
    /// When it was posted.
    pub created_at: DateTime<Utc>,
    /// When a provisioner claimed it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// When it was asked to stop.
    pub canceled_at: Option<DateTime<Utc>>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Where it is.
    pub status: ProvisionerJobStatus,
    /// The provisioner that claimed it.
    pub worker_name: String,
    /// The template source it runs.
    pub file_id: Uuid,
    /// Only provisioners with all these tags take it.
    pub tags: BTreeMap<String, String>,
}

/// One line of a job's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionerJobLog {
    /// Increasing within a job; `?after=ID` resumes after it.
    pub id: i64,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// `info` or `error`.
    pub log_level: String,
    /// The step that printed it (`init`, `plan`, `apply`...).
    pub stage: String,
    /// The text.
    pub output: String,
}

/// A user as other records mention it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinimalUser {
    /// The user's id.
    pub id: UserId,
    /// The user's username.
    pub username: String,
}

/// `POST /api/v2/organizations/{org}/templateversions`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CreateTemplateVersionRequest {
    /// The version's name (generated when empty).
    #[serde(default)]
    pub name: String,
    /// A message describing the change.
    #[serde(default)]
    pub message: String,
    /// The template it belongs to; none for a template's first version.
    #[serde(default)]
    pub template_id: Option<Uuid>,
    /// Only `file` exists.
    #[serde(default)]
    pub storage_method: String,
    /// The uploaded source.
    pub file_id: Uuid,
    /// Only `terraform` exists.
    #[serde(default)]
    pub provisioner: String,
    /// Only provisioners with all these tags import it.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A template version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateVersion {
    /// Its id.
    pub id: Uuid,
    /// Its template, once it has one.
    pub template_id: Option<Uuid>,
    /// Its organization.
    pub organization_id: OrganizationId,
    /// Its name.
    pub name: String,
    /// The change's message.
    pub message: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its import job.
    pub job: ProvisionerJob,
    /// Who pushed it.
    pub created_by: MinimalUser,
}

/// A parameter a template version declares (a Terraform variable beyond the `coder_*` facts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateVersionVariable {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its default as JSON, when it has one.
    pub default_value: Option<serde_json::Value>,
    /// Whether a value must be given (no default).
    pub required: bool,
    /// Whether its value must stay hidden.
    pub sensitive: bool,
}

/// A resource a template version plans, or a workspace build manages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceResource {
    /// Its Terraform address.
    pub address: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its name.
    pub name: String,
}

/// `POST /api/v2/organizations/{org}/templates`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CreateTemplateRequest {
    /// A name unique in the organization.
    pub name: String,
    /// The name shown to people.
    #[serde(default)]
    pub display_name: String,
    /// A description.
    #[serde(default)]
    pub description: String,
    /// An icon URL or path.
    #[serde(default)]
    pub icon: String,
    /// A version that imported successfully; it becomes the active version.
    pub template_version_id: Uuid,
}

/// A template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// Its id.
    pub id: Uuid,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its organization.
    pub organization_id: OrganizationId,
    /// Its name.
    pub name: String,
    /// The name shown to people.
    pub display_name: String,
    /// A description.
    pub description: String,
    /// An icon.
    pub icon: String,
    /// The version new workspaces use.
    pub active_version_id: Uuid,
    /// Who created it.
    pub created_by_id: UserId,
    /// Their username.
    pub created_by_name: String,
}

/// `PATCH /api/v2/templates/{id}/versions`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpdateActiveTemplateVersion {
    /// The version to make active.
    pub id: Uuid,
}

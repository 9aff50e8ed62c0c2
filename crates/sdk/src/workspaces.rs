//! Workspaces and workspace builds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    AgentSettings, OrganizationId, ProvisionerJob, UserId, WorkspaceAgent, WorkspaceResource,
};

/// What a build does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceTransition {
    /// Create or start the workspace's resources.
    Start,
    /// Stop: ephemeral resources go, persistent ones stay.
    Stop,
    /// Destroy everything and delete the workspace.
    Delete,
}

impl WorkspaceTransition {
    /// The name used in the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Delete => "delete",
        }
    }
}

/// A workspace's state as its latest build leaves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceStatus {
    /// The build waits for a provisioner.
    Pending,
    /// A start build runs.
    Starting,
    /// The last start build succeeded.
    Running,
    /// A stop build runs.
    Stopping,
    /// The last stop build succeeded.
    Stopped,
    /// The last build failed.
    Failed,
    /// The build is being cancelled.
    Canceling,
    /// The build was cancelled.
    Canceled,
    /// A delete build runs.
    Deleting,
    /// The workspace is deleted.
    Deleted,
}

impl WorkspaceStatus {
    /// The name used in the API and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Canceling => "canceling",
            Self::Canceled => "canceled",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
        }
    }
}

/// A parameter's value for a build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceBuildParameter {
    /// The parameter (template variable) name.
    pub name: String,
    /// Its value, as Terraform reads a `TF_VAR_`.
    pub value: String,
}

/// A workspace build.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceBuild {
    /// Its id.
    pub id: Uuid,
    /// When it was posted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its workspace.
    pub workspace_id: Uuid,
    /// The workspace's name.
    pub workspace_name: String,
    /// The workspace owner's username.
    pub workspace_owner_name: String,
    /// The template version it builds.
    pub template_version_id: Uuid,
    /// That version's name.
    pub template_version_name: String,
    /// 1 for the first build, then increasing.
    pub build_number: i32,
    /// What it does.
    pub transition: WorkspaceTransition,
    /// Who asked for it.
    pub initiator_name: String,
    /// Its provisioner job.
    pub job: ProvisionerJob,
    /// The workspace's status as this build leaves it.
    pub status: WorkspaceStatus,
    /// The resources Terraform manages after it.
    pub resources: Vec<WorkspaceResource>,
    /// The agent's settings from the template (start builds).
    pub agent: Option<AgentSettings>,
    /// The build's agents, once it has succeeded.
    pub agents: Vec<WorkspaceAgent>,
    /// The parameters it was built with.
    pub parameters: Vec<WorkspaceBuildParameter>,
}

/// A workspace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    /// Its id.
    pub id: Uuid,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its owner.
    pub owner_id: UserId,
    /// The owner's username.
    pub owner_name: String,
    /// Its organization.
    pub organization_id: OrganizationId,
    /// Its template.
    pub template_id: Uuid,
    /// The template's name.
    pub template_name: String,
    /// The template's active version.
    pub template_active_version_id: Uuid,
    /// Its name, unique per owner.
    pub name: String,
    /// Its latest build.
    pub latest_build: WorkspaceBuild,
    /// Whether the latest build uses an older version than the template's active one.
    pub outdated: bool,
}

/// `POST /api/v2/users/{user}/workspaces`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CreateWorkspaceRequest {
    /// A name unique among the owner's workspaces.
    pub name: String,
    /// The template (its active version is used).
    #[serde(default)]
    pub template_id: Option<Uuid>,
    /// A specific version instead.
    #[serde(default)]
    pub template_version_id: Option<Uuid>,
    /// Parameter values.
    #[serde(default)]
    pub rich_parameter_values: Vec<WorkspaceBuildParameter>,
}

/// `POST /api/v2/workspaces/{id}/builds`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateWorkspaceBuildRequest {
    /// What to do.
    pub transition: WorkspaceTransition,
    /// The version to build (default: the last build's).
    #[serde(default)]
    pub template_version_id: Option<Uuid>,
    /// Parameter values to change.
    #[serde(default)]
    pub rich_parameter_values: Vec<WorkspaceBuildParameter>,
}

/// `GET /api/v2/workspaces`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkspacesResponse {
    /// The workspaces.
    pub workspaces: Vec<Workspace>,
    /// How many there are.
    pub count: usize,
}

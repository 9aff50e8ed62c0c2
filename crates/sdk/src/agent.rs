//! The workspace agent's settings, as a template declares them (its `coder_agent` output) and
//! as the server hands them to the agent. Unknown keys are errors, so typos are reported.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The agent's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Run by the agent when it starts.
    #[serde(default)]
    pub startup_script: String,
    /// Run by the agent when the workspace stops.
    #[serde(default)]
    pub shutdown_script: String,
    /// Environment for every session.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory of sessions.
    #[serde(default)]
    pub dir: String,
    /// Web applications in the workspace.
    #[serde(default)]
    pub apps: Vec<AgentApp>,
    /// Values the agent collects by running scripts.
    #[serde(default)]
    pub metadata: Vec<MetadataItem>,
}

/// A web application the agent serves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentApp {
    /// The app's name in URLs: lowercase letters, digits and inner hyphens.
    pub slug: String,
    /// The name shown to people.
    #[serde(default)]
    pub display_name: String,
    /// Where the app listens inside the workspace, e.g. `http://localhost:8080`.
    #[serde(default)]
    pub url: String,
    /// A command to run instead of a URL (opened in the web terminal).
    #[serde(default)]
    pub command: String,
    /// Serve on its own subdomain instead of a path.
    #[serde(default)]
    pub subdomain: bool,
    /// Who may open it: `owner`, `authenticated` or `public`.
    #[serde(default = "default_share")]
    pub share: String,
    /// How the agent checks the app is up.
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    /// Its health as the agent last reported it (`disabled` without a healthcheck,
    /// `initializing`, `healthy`, `unhealthy`); filled in by the server, empty in templates.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub health: String,
}

/// `POST /api/v2/workspaceagents/me/app-health`: each app's health, by slug.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppHealthRequest {
    /// Slug → `disabled`, `initializing`, `healthy` or `unhealthy`.
    pub healths: BTreeMap<String, String>,
}

fn default_share() -> String {
    "owner".to_owned()
}

/// An app's health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// The URL probed.
    pub url: String,
    /// Seconds between probes.
    #[serde(default = "default_interval")]
    pub interval: u32,
    /// Failed probes in a row before the app is unhealthy.
    #[serde(default = "default_threshold")]
    pub threshold: u32,
}

fn default_interval() -> u32 {
    5
}

fn default_threshold() -> u32 {
    3
}

/// A value the agent collects by running a script.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataItem {
    /// A unique key.
    pub key: String,
    /// The name shown to people.
    #[serde(default)]
    pub display_name: String,
    /// The script whose output is the value.
    pub script: String,
    /// Seconds between runs.
    #[serde(default = "default_interval")]
    pub interval: u32,
    /// Seconds before a run is abandoned.
    #[serde(default = "default_timeout")]
    pub timeout: u32,
}

fn default_timeout() -> u32 {
    10
}

/// Where an agent is in its life, as it reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceAgentLifecycle {
    /// Not started yet.
    Created,
    /// Running its startup script.
    Starting,
    /// The startup script ran too long.
    StartTimeout,
    /// The startup script failed.
    StartError,
    /// Ready to use.
    Ready,
    /// Running its shutdown script.
    ShuttingDown,
    /// The shutdown script ran too long.
    ShutdownTimeout,
    /// The shutdown script failed.
    ShutdownError,
    /// Stopped.
    Off,
}

impl WorkspaceAgentLifecycle {
    /// The name used in the API and tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Starting => "starting",
            Self::StartTimeout => "start_timeout",
            Self::StartError => "start_error",
            Self::Ready => "ready",
            Self::ShuttingDown => "shutting_down",
            Self::ShutdownTimeout => "shutdown_timeout",
            Self::ShutdownError => "shutdown_error",
            Self::Off => "off",
        }
    }
}

/// Whether the server hears from an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceAgentStatus {
    /// Never heard from yet.
    Connecting,
    /// Heard from recently.
    Connected,
    /// Was connected, has gone quiet.
    Disconnected,
    /// Never connected, for too long.
    Timeout,
}

/// An agent as users see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceAgent {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Whether the server hears from it.
    pub status: WorkspaceAgentStatus,
    /// What it reports.
    pub lifecycle_state: WorkspaceAgentLifecycle,
    /// When it first connected.
    pub first_connected_at: Option<DateTime<Utc>>,
    /// When it was last heard from.
    pub last_connected_at: Option<DateTime<Utc>>,
    /// The agent's version.
    pub version: String,
    /// The sessions' working directory.
    pub directory: String,
    /// Its apps.
    pub apps: Vec<AgentApp>,
    /// Tunnels users hold to it now (as of its last report).
    #[serde(default)]
    pub connection_count: i32,
    /// The path of the latest tunnel: `p2p`, or `relay (<region name>)`; empty before any.
    #[serde(default)]
    pub last_connection_path: String,
    /// When the latest tunnel was made.
    #[serde(default)]
    pub last_connection_at: Option<DateTime<Utc>>,
    /// Bytes received through its tunnels since the agent started.
    #[serde(default)]
    pub rx_bytes: i64,
    /// Bytes sent through its tunnels since the agent started.
    #[serde(default)]
    pub tx_bytes: i64,
}

/// What an agent needs to run (`GET /api/v2/workspaceagents/me/manifest`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentManifest {
    /// The agent's id.
    pub agent_id: Uuid,
    /// Its workspace.
    pub workspace_id: Uuid,
    /// The workspace's name.
    pub workspace_name: String,
    /// The workspace owner's username.
    pub owner_name: String,
    /// The sessions' working directory.
    pub directory: String,
    /// Environment for sessions and scripts.
    pub environment_variables: BTreeMap<String, String>,
    /// Run at start.
    pub startup_script: String,
    /// Run at shutdown.
    pub shutdown_script: String,
    /// Apps to serve and check.
    pub apps: Vec<AgentApp>,
    /// Metadata to collect.
    pub metadata: Vec<MetadataItem>,
    /// The relays the agent's tunnel endpoint uses.
    #[serde(default)]
    pub derp_map: crate::DerpMap,
    /// `--block-direct-connections`: the agent takes no direct paths.
    #[serde(default)]
    pub disable_direct_connections: bool,
}

/// `POST /api/v2/workspaceagents/me/report-lifecycle`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpdateLifecycleRequest {
    /// The new state.
    pub state: WorkspaceAgentLifecycle,
}

/// `POST /api/v2/workspaceagents/me/heartbeat`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentHeartbeatRequest {
    /// The agent's version.
    pub version: String,
    /// Its tunnels now.
    #[serde(default)]
    pub connections: Option<AgentConnectionStats>,
}

/// What an agent reports about the tunnels users hold to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConnectionStats {
    /// Open tunnels.
    pub open: i32,
    /// The latest tunnel's path now: `p2p` or `relay (<region name>)`; empty before any.
    pub last_path: String,
    /// When the latest tunnel was made.
    pub last_at: Option<DateTime<Utc>>,
    /// Bytes received through its tunnels since the agent started.
    #[serde(default)]
    pub rx_bytes: u64,
    /// Bytes sent through its tunnels since the agent started.
    #[serde(default)]
    pub tx_bytes: u64,
}

/// One line an agent sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLogEntry {
    /// `info` or `error`.
    pub level: String,
    /// The text.
    pub output: String,
}

/// `PATCH /api/v2/workspaceagents/me/logs`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PatchAgentLogsRequest {
    /// Which script: `startup_script` or `shutdown_script`.
    pub source: String,
    /// Lines in order.
    pub logs: Vec<AgentLogEntry>,
}

/// A line of an agent's log as users read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceAgentLog {
    /// Increasing.
    pub id: i64,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// Which script printed it.
    pub source: String,
    /// `info` or `error`.
    pub level: String,
    /// The text.
    pub output: String,
}

/// A port a process in the workspace listens on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListeningPort {
    /// The process's name.
    pub process_name: String,
    /// `tcp`.
    pub network: String,
    /// The port.
    pub port: u16,
}

/// `GET /api/v2/workspaceagents/{id}/listening-ports`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListeningPortsResponse {
    /// The ports, in order.
    pub ports: Vec<ListeningPort>,
}

//! The workspace agent's settings, as a template declares them (its `coder_agent` output) and
//! as the server hands them to the agent. Unknown keys are errors, so typos are reported.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

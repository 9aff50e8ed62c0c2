//! `GET /api/v2/buildinfo`.

use serde::{Deserialize, Serialize};

/// What a server (primary or workspace proxy) says about itself. Needs no authentication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// The URL users reach this deployment at.
    pub external_url: String,
    /// The version string, semver with build metadata.
    pub version: String,
    /// The git commit this binary was built from, or empty.
    #[serde(default)]
    pub commit: String,
    /// The dashboard's URL (the primary's access URL).
    pub dashboard_url: String,
    /// True when the answering server is a workspace proxy rather than the primary.
    pub workspace_proxy: bool,
    /// The agent API version the server speaks.
    pub agent_api_version: String,
    /// The deployment's unique id.
    pub deployment_id: String,
    /// Whether telemetry is enabled (it is off unless the operator turns it on).
    #[serde(default)]
    pub telemetry: bool,
}

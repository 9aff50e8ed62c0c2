//! Workspace proxies: `/api/v2/workspaceproxies` (owners), `/api/v2/regions` (everyone), and
//! the endpoints a running proxy calls on the primary with its token
//! (`/api/v2/workspaceproxies/me/...`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{DerpMap, Secret};

/// The header a workspace proxy authenticates with: `ID:SECRET`.
pub const PROXY_TOKEN_HEADER: &str = "Coder-External-Proxy-Token";
/// The reserved name of the primary's own entry.
pub const PRIMARY_PROXY_NAME: &str = "primary";

/// A proxy's health, as the primary last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyHealthStatus {
    /// Answers its health report without errors.
    Ok,
    /// Registered, but its health report cannot be fetched.
    Unreachable,
    /// Answers, with errors (or is not a proxy).
    Unhealthy,
    /// Created and never deployed.
    Unregistered,
    /// Not checked yet.
    Unknown,
}

impl ProxyHealthStatus {
    /// The status as the CLI prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyHealthStatus::Ok => "ok",
            ProxyHealthStatus::Unreachable => "unreachable",
            ProxyHealthStatus::Unhealthy => "unhealthy",
            ProxyHealthStatus::Unregistered => "unregistered",
            ProxyHealthStatus::Unknown => "unknown",
        }
    }
}

/// What a proxy says about itself at `/healthz-report`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyHealthReport {
    /// Problems that make the proxy unusable.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Problems worth knowing about (e.g. a version different from the primary's).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// The primary's last check of a proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceProxyStatus {
    /// The derived status.
    pub status: ProxyHealthStatus,
    /// The proxy's own report, when it answered.
    #[serde(default)]
    pub report: ProxyHealthReport,
    /// When the primary last checked; `None` before the first check.
    pub checked_at: Option<DateTime<Utc>>,
}

/// A workspace proxy (or the primary's own entry, named `primary`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceProxy {
    /// The proxy's id (the primary's entry uses the deployment id).
    pub id: Uuid,
    /// The proxy's unique name.
    pub name: String,
    /// The name shown to users.
    pub display_name: String,
    /// An icon URL or path (e.g. `/emojis/2194.png`).
    pub icon_url: String,
    /// Usable now (health `ok`).
    pub healthy: bool,
    /// The proxy's access URL; path apps live under it. Empty until it registers.
    pub path_app_url: String,
    /// The proxy's wildcard host for subdomain apps (`*.east.example.com`), or empty.
    pub wildcard_hostname: String,
    /// Whether the proxy runs a relay.
    pub derp_enabled: bool,
    /// Whether the proxy serves only its relay (no apps).
    pub derp_only: bool,
    /// The derived status.
    pub status: WorkspaceProxyStatus,
    /// When the proxy was created.
    pub created_at: DateTime<Utc>,
    /// When the proxy was last changed or registered.
    pub updated_at: DateTime<Utc>,
    /// Whether the proxy was deleted.
    pub deleted: bool,
    /// The version the running proxy reported.
    pub version: String,
}

/// `POST /api/v2/workspaceproxies`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateWorkspaceProxyRequest {
    /// The proxy's unique name.
    pub name: String,
    /// The name shown to users.
    #[serde(default)]
    pub display_name: String,
    /// An icon URL or path (e.g. `/emojis/2194.png`).
    #[serde(default)]
    pub icon: String,
}

/// `PATCH /api/v2/workspaceproxies/{proxy}`: fields left out are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchWorkspaceProxy {
    /// The proxy's unique name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The name shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// An icon URL or path (e.g. `/emojis/2194.png`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// Replace the token (the old one stops working at once).
    #[serde(default)]
    pub regenerate_token: bool,
}

/// The answer to a create or patch: the proxy, and its token when a new one was made (shown
/// once).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpdateWorkspaceProxyResponse {
    /// The proxy as it is now.
    pub proxy: WorkspaceProxy,
    /// The new token (`ID:SECRET`), shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_token: Option<Secret>,
}

/// A place users can reach their workspaces' apps from: the primary or a healthy proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// The proxy's id (the primary's entry uses the deployment id).
    pub id: Uuid,
    /// The proxy's unique name.
    pub name: String,
    /// The name shown to users.
    pub display_name: String,
    /// An icon URL or path (e.g. `/emojis/2194.png`).
    pub icon_url: String,
    /// Usable now.
    pub healthy: bool,
    /// Where path apps are served from.
    pub path_app_url: String,
    /// The wildcard host for subdomain apps, or empty.
    pub wildcard_hostname: String,
}

/// `GET /api/v2/regions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionsResponse {
    /// The primary first, then every healthy proxy that serves apps.
    pub regions: Vec<Region>,
}

/// `POST /api/v2/workspaceproxies/me/register`: a starting or running proxy instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterWorkspaceProxyRequest {
    /// The URL users reach the proxy at.
    pub access_url: String,
    /// The wildcard host for subdomain apps, or empty.
    #[serde(default)]
    pub wildcard_hostname: String,
    /// Whether the proxy runs a relay.
    pub derp_enabled: bool,
    /// Whether the proxy serves only its relay (no apps).
    #[serde(default)]
    pub derp_only: bool,
    /// Made at process start; identifies this instance.
    pub replica_id: Uuid,
    /// The machine's host name, to tell instances apart in errors.
    #[serde(default)]
    pub hostname: String,
    /// The proxy's version.
    pub version: String,
}

/// What a registered proxy needs to serve its region.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegisterWorkspaceProxyResponse {
    /// Verifies and signs app tokens, as the primary does (hex).
    pub app_signing_key: Secret,
    /// The proxy's relay region's ID in the relay map.
    pub derp_region_id: u32,
    /// The whole relay map, this proxy's region included when it is healthy.
    pub derp_map: DerpMap,
    /// The primary's deployment id.
    pub deployment_id: String,
}

/// `POST /api/v2/workspaceproxies/me/deregister`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeregisterWorkspaceProxyRequest {
    /// The instance's id, made at process start.
    pub replica_id: Uuid,
}

/// Which app a request on a proxy is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRequest {
    /// `path` (`/@USER/WORKSPACE[.AGENT]/apps/SLUG/`) or `subdomain` (an app slug or a port).
    pub access_method: String,
    /// The workspace owner's username.
    pub username: String,
    /// The workspace name.
    pub workspace: String,
    /// The agent name; empty for the workspace's only agent.
    #[serde(default)]
    pub agent: String,
    /// The app's slug, or a port (`8080`, `8443s` for HTTPS) on subdomains.
    pub app: String,
}

/// `POST /api/v2/workspaceproxies/me/issue-signed-app-token`: the proxy asks the primary to
/// authorize a user's request to an app.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IssueSignedAppTokenRequest {
    /// The app the user asked for.
    pub app_request: AppRequest,
    /// The user's session token, if the request carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
    /// The proxy's app cookie for the request's host (a subdomain sign-in), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_cookie: Option<Secret>,
    /// What the token will be bound to: the app's host, or the proxy host and path prefix.
    pub scope: String,
}

/// `POST /api/v2/applications/reconnecting-pty-signed-token`: the dashboard asks for a token
/// to open an agent's terminal at `url` (a workspace proxy's). The answer is an
/// [`IssueSignedAppTokenResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueReconnectingPtySignedTokenRequest {
    /// The terminal URL the token will be sent to.
    pub url: String,
    /// The agent whose terminal it opens.
    #[serde(rename = "agentID")]
    pub agent_id: Uuid,
}

/// The signed app token, for the proxy to set as a cookie.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IssueSignedAppTokenResponse {
    /// The token, for the `coder_signed_app_token` cookie.
    pub signed_token: Secret,
}

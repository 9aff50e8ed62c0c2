//! The wire format of Coder's REST API: request and response types with Coder's JSON field
//! names, ID newtypes, and (behind the `client` feature) a typed HTTP client.
//!
//! This crate depends on no workspace crate and is the only place API JSON shapes are defined;
//! the server converts its database rows into these types by hand.
#![deny(missing_docs)]

mod agent;
mod buildinfo;
#[cfg(feature = "client")]
pub mod client;
mod coordinate;
mod derp;
mod error;
mod ids;
mod organizations;
mod provisioners;
mod secret;
mod templates;
mod tokens;
mod users;
mod workspace_proxies;
mod workspaces;

pub use agent::{
    AgentApp, AgentConnectionStats, AgentHeartbeatRequest, AgentLogEntry, AgentManifest,
    AgentSettings, AppHealthRequest, Healthcheck, ListeningPort, ListeningPortsResponse,
    MetadataItem, PatchAgentLogsRequest, UpdateLifecycleRequest, WorkspaceAgent,
    WorkspaceAgentLifecycle, WorkspaceAgentLog, WorkspaceAgentStatus,
};
pub use buildinfo::BuildInfo;
pub use coordinate::{
    AgentAddressEvent, AgentConnectionInfo, AuthorizedClients, RelayAdmissions, TunnelAddress,
};
pub use derp::{DerpMap, DerpNode, DerpRegion};
pub use error::{Response, ValidationError};
pub use ids::{ApiKeyId, OrganizationId, UserId};
pub use organizations::Organization;
pub use provisioners::{
    AcquireJobRequest, AcquiredJob, CompleteJobRequest, HeartbeatRequest, HeartbeatResponse,
    JobLogsRequest, JobResult, JobSpec, PROVISIONER_PSK_HEADER, ProvisionerLog,
};
pub use secret::Secret;
pub use templates::{
    CreateTemplateRequest, CreateTemplateVersionRequest, MinimalUser, ProvisionerJob,
    ProvisionerJobLog, ProvisionerJobStatus, TAR_MIME_TYPE, Template, TemplateVersion,
    TemplateVersionVariable, UpdateActiveTemplateVersion, UploadResponse, WorkspaceResource,
};
pub use tokens::{ApiKey, ApiKeyWithOwner, CreateTokenRequest, GenerateApiKeyResponse};
pub use users::{
    CreateFirstUserRequest, CreateFirstUserResponse, CreateUserRequest, GetUsersResponse,
    LoginType, LoginWithPasswordRequest, LoginWithPasswordResponse, Role, SlimRole, UnknownRole,
    UpdateRolesRequest, User, UserStatus,
};
pub use workspace_proxies::{
    AppRequest, CreateWorkspaceProxyRequest, DeregisterWorkspaceProxyRequest,
    IssueReconnectingPtySignedTokenRequest, IssueSignedAppTokenRequest,
    IssueSignedAppTokenResponse, PRIMARY_PROXY_NAME, PROXY_TOKEN_HEADER, PatchWorkspaceProxy,
    ProxyHealthReport, ProxyHealthStatus, Region, RegionsResponse, RegisterWorkspaceProxyRequest,
    RegisterWorkspaceProxyResponse, UpdateWorkspaceProxyResponse, WorkspaceProxy,
    WorkspaceProxyStatus,
};
pub use workspaces::{
    CreateWorkspaceBuildRequest, CreateWorkspaceRequest, Workspace, WorkspaceBuild,
    WorkspaceBuildParameter, WorkspaceStatus, WorkspaceTransition, WorkspacesResponse,
};

/// Header carrying a session token or API token on every authenticated request.
pub const SESSION_TOKEN_HEADER: &str = "Coder-Session-Token";
/// Cookie carrying the session token for browsers.
pub const SESSION_TOKEN_COOKIE: &str = "coder_session_token";
/// Query parameter carrying the session token where headers cannot be set (WebSockets).
pub const SESSION_TOKEN_QUERY: &str = "coder_session_token";
/// Response header naming the server's version.
pub const BUILD_VERSION_HEADER: &str = "X-Coder-Build-Version";
/// Response header carrying the request's id, also quoted in internal-error messages.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";

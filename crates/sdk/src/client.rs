//! A typed client for the REST API, used by the CLI, the agent, the workspace proxy and tests.
//!
//! Every method is cancel-safe in the sense that dropping its future abandons the request;
//! the server sees a closed connection and rolls back nothing it had not committed.

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::{
    AcquireJobRequest, AcquiredJob, ApiKeyWithOwner, BuildInfo, CompleteJobRequest,
    CreateFirstUserRequest, CreateFirstUserResponse, CreateTemplateRequest,
    CreateTemplateVersionRequest, CreateTokenRequest, CreateUserRequest, GenerateApiKeyResponse,
    GetUsersResponse, HeartbeatRequest, HeartbeatResponse, JobLogsRequest,
    LoginWithPasswordRequest, LoginWithPasswordResponse, Organization, PROVISIONER_PSK_HEADER,
    ProvisionerJob, ProvisionerJobLog, Response, SESSION_TOKEN_HEADER, Secret, TAR_MIME_TYPE,
    Template, TemplateVersion, TemplateVersionVariable, UpdateActiveTemplateVersion,
    UpdateRolesRequest, UploadResponse, User, WorkspaceResource,
};
use crate::{
    CreateWorkspaceBuildRequest, CreateWorkspaceRequest, Workspace, WorkspaceBuild,
    WorkspacesResponse,
};

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status and (usually) a JSON [`Response`].
    #[error("{}", describe_api_error(*.status, .response))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error body.
        response: Response,
    },
    /// The request never got an answer (connection refused, TLS, timeout...).
    #[error("request to {url} failed")]
    Transport {
        /// The URL requested.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not what this client understands.
    #[error("unexpected answer from {url} (HTTP {status})")]
    Decode {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// A URL could not be built from the base URL and a path.
    #[error("invalid URL {0:?}")]
    InvalidUrl(String),
}

fn describe_api_error(status: u16, response: &Response) -> String {
    let mut text = if response.message.is_empty() {
        format!("the server answered HTTP {status}")
    } else {
        response.message.clone()
    };
    if !response.detail.is_empty() {
        // "Message. Detail." reads better than "Message.: Detail.".
        text.push_str(if text.ends_with('.') { " " } else { ": " });
        text.push_str(&response.detail);
    }
    for validation in &response.validations {
        text.push_str(&format!("\n  {}: {}", validation.field, validation.detail));
    }
    text
}

impl ClientError {
    /// The HTTP status of an API error, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the server (or the proxy in front of it) was away rather than refusing: worth
    /// asking again shortly.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ClientError::Transport { .. }) || matches!(self.status(), Some(502..=504))
    }
}

/// How long [`Client::follow_job_logs`] keeps following a broken log stream again without
/// reaching the server (a restart takes seconds).
pub const FOLLOW_AGAIN_FOR: std::time::Duration = std::time::Duration::from_secs(60);
/// How often it tries meanwhile.
const FOLLOW_AGAIN_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A client of one deployment, optionally authenticated with a session token.
#[derive(Clone, Debug)]
pub struct Client {
    base_url: Url,
    http: reqwest::Client,
    session_token: Option<Secret>,
    provisioner_key: Option<Secret>,
    proxy_token: Option<Secret>,
}

impl Client {
    /// A client of the deployment at `base_url` using the given HTTP client (which decides TLS
    /// roots, timeouts and proxies).
    pub fn new(base_url: Url, http: reqwest::Client) -> Self {
        Self {
            base_url,
            http,
            session_token: None,
            provisioner_key: None,
            proxy_token: None,
        }
    }

    /// The same client, authenticated as a provisioner daemon with the pre-shared key.
    pub fn with_provisioner_key(mut self, key: Secret) -> Self {
        self.provisioner_key = Some(key);
        self
    }

    /// The same client, authenticated as a workspace proxy with its token (`ID:SECRET`).
    pub fn with_proxy_token(mut self, token: Secret) -> Self {
        self.proxy_token = Some(token);
        self
    }

    /// The same client, authenticated with `token`.
    pub fn with_session_token(mut self, token: Secret) -> Self {
        self.session_token = Some(token);
        self
    }

    /// The deployment's URL.
    pub fn url(&self) -> &Url {
        &self.base_url
    }

    /// The session token in use, if any.
    pub fn session_token(&self) -> Option<&Secret> {
        self.session_token.as_ref()
    }

    fn endpoint(&self, path: &str) -> Result<Url, ClientError> {
        self.base_url
            .join(path)
            .map_err(|_| ClientError::InvalidUrl(format!("{}{}", self.base_url, path)))
    }

    /// Sends a request and returns the status and raw body, turning error statuses into
    /// [`ClientError::Api`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<(StatusCode, bytes_body::Body), ClientError> {
        let url = self.endpoint(path)?;
        let mut request = self.http.request(method, url.clone());
        if let Some(token) = &self.session_token {
            request = request.header(SESSION_TOKEN_HEADER, token.expose());
        }
        if let Some(key) = &self.provisioner_key {
            request = request.header(PROVISIONER_PSK_HEADER, key.expose());
        }
        if let Some(token) = &self.proxy_token {
            request = request.header(crate::PROXY_TOKEN_HEADER, token.expose());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |source| ClientError::Transport {
            url: url.to_string(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        if status.is_client_error() || status.is_server_error() {
            let response = serde_json::from_slice::<Response>(&body).unwrap_or_else(|_| {
                Response::message(String::from_utf8_lossy(&body).trim().to_owned())
            });
            return Err(ClientError::Api {
                status: status.as_u16(),
                response,
            });
        }
        Ok((
            status,
            bytes_body::Body {
                url,
                bytes: body.to_vec(),
            },
        ))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let (status, body) = self.send(method, path, body).await?;
        serde_json::from_slice(&body.bytes).map_err(|source| ClientError::Decode {
            url: body.url.to_string(),
            status: status.as_u16(),
            source,
        })
    }

    /// `GET /api/v2/buildinfo`.
    pub async fn build_info(&self) -> Result<BuildInfo, ClientError> {
        self.json(Method::GET, "/api/v2/buildinfo", None::<&()>)
            .await
    }

    /// Whether the first user exists (`GET /api/v2/users/first`).
    pub async fn has_first_user(&self) -> Result<bool, ClientError> {
        match self
            .send(Method::GET, "/api/v2/users/first", None::<&()>)
            .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::Api { status: 404, .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// `POST /api/v2/users/first`.
    pub async fn create_first_user(
        &self,
        request: &CreateFirstUserRequest,
    ) -> Result<CreateFirstUserResponse, ClientError> {
        self.json(Method::POST, "/api/v2/users/first", Some(request))
            .await
    }

    /// `POST /api/v2/users/login`.
    pub async fn login_with_password(
        &self,
        request: &LoginWithPasswordRequest,
    ) -> Result<LoginWithPasswordResponse, ClientError> {
        self.json(Method::POST, "/api/v2/users/login", Some(request))
            .await
    }

    /// `POST /api/v2/users/logout`: revokes the session token in use.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.send(Method::POST, "/api/v2/users/logout", None::<&()>)
            .await
            .map(drop)
    }

    /// `GET /api/v2/users/{user}`; `user` is a username, an id or `me`.
    pub async fn user(&self, user: &str) -> Result<User, ClientError> {
        self.json(Method::GET, &format!("/api/v2/users/{user}"), None::<&()>)
            .await
    }

    /// `GET /api/v2/users`.
    pub async fn users(&self, query: &str) -> Result<GetUsersResponse, ClientError> {
        let mut path = "/api/v2/users".to_owned();
        if !query.is_empty() {
            let mut url = self.endpoint(&path)?;
            url.query_pairs_mut().append_pair("q", query);
            path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        }
        self.json(Method::GET, &path, None::<&()>).await
    }

    /// `POST /api/v2/users`.
    pub async fn create_user(&self, request: &CreateUserRequest) -> Result<User, ClientError> {
        self.json(Method::POST, "/api/v2/users", Some(request))
            .await
    }

    /// `PUT /api/v2/users/{user}/status/suspend`.
    pub async fn suspend_user(&self, user: &str) -> Result<User, ClientError> {
        self.json(
            Method::PUT,
            &format!("/api/v2/users/{user}/status/suspend"),
            None::<&()>,
        )
        .await
    }

    /// `PUT /api/v2/users/{user}/status/activate`.
    pub async fn activate_user(&self, user: &str) -> Result<User, ClientError> {
        self.json(
            Method::PUT,
            &format!("/api/v2/users/{user}/status/activate"),
            None::<&()>,
        )
        .await
    }

    /// `PUT /api/v2/users/{user}/roles`.
    pub async fn update_user_roles(
        &self,
        user: &str,
        request: &UpdateRolesRequest,
    ) -> Result<User, ClientError> {
        self.json(
            Method::PUT,
            &format!("/api/v2/users/{user}/roles"),
            Some(request),
        )
        .await
    }

    /// `POST /api/v2/users/{user}/keys/tokens`.
    pub async fn create_token(
        &self,
        user: &str,
        request: &CreateTokenRequest,
    ) -> Result<GenerateApiKeyResponse, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v2/users/{user}/keys/tokens"),
            Some(request),
        )
        .await
    }

    /// `GET /api/v2/users/{user}/keys/tokens`.
    pub async fn tokens(&self, user: &str) -> Result<Vec<ApiKeyWithOwner>, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v2/users/{user}/keys/tokens"),
            None::<&()>,
        )
        .await
    }

    /// Every user's tokens (`GET /api/v2/users/me/keys/tokens?include_all=true`, owners only).
    pub async fn all_tokens(&self) -> Result<Vec<ApiKeyWithOwner>, ClientError> {
        self.json(
            Method::GET,
            "/api/v2/users/me/keys/tokens?include_all=true",
            None::<&()>,
        )
        .await
    }

    /// `GET /api/v2/users/{user}/keys/tokens/{name}`.
    pub async fn token_by_name(
        &self,
        user: &str,
        name: &str,
    ) -> Result<ApiKeyWithOwner, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v2/users/{user}/keys/tokens/{name}"),
            None::<&()>,
        )
        .await
    }

    /// `DELETE /api/v2/users/{user}/keys/{id}`.
    pub async fn delete_api_key(&self, user: &str, id: &str) -> Result<(), ClientError> {
        self.send(
            Method::DELETE,
            &format!("/api/v2/users/{user}/keys/{id}"),
            None::<&()>,
        )
        .await
        .map(drop)
    }

    /// `POST /api/v2/workspaceproxies` (owners).
    pub async fn create_workspace_proxy(
        &self,
        request: &crate::CreateWorkspaceProxyRequest,
    ) -> Result<crate::UpdateWorkspaceProxyResponse, ClientError> {
        self.json(Method::POST, "/api/v2/workspaceproxies", Some(request))
            .await
    }

    /// `GET /api/v2/workspaceproxies` (owners): the primary first, then every proxy.
    pub async fn workspace_proxies(&self) -> Result<Vec<crate::WorkspaceProxy>, ClientError> {
        self.json(Method::GET, "/api/v2/workspaceproxies", None::<&()>)
            .await
    }

    /// `GET /api/v2/workspaceproxies/{proxy}` (by id or name).
    pub async fn workspace_proxy(&self, proxy: &str) -> Result<crate::WorkspaceProxy, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v2/workspaceproxies/{proxy}"),
            None::<&()>,
        )
        .await
    }

    /// `PATCH /api/v2/workspaceproxies/{proxy}`.
    pub async fn patch_workspace_proxy(
        &self,
        proxy: &str,
        request: &crate::PatchWorkspaceProxy,
    ) -> Result<crate::UpdateWorkspaceProxyResponse, ClientError> {
        self.json(
            Method::PATCH,
            &format!("/api/v2/workspaceproxies/{proxy}"),
            Some(request),
        )
        .await
    }

    /// `DELETE /api/v2/workspaceproxies/{proxy}`.
    pub async fn delete_workspace_proxy(&self, proxy: &str) -> Result<(), ClientError> {
        self.send(
            Method::DELETE,
            &format!("/api/v2/workspaceproxies/{proxy}"),
            None::<&()>,
        )
        .await
        .map(drop)
    }

    /// `GET /api/v2/regions`: where the caller can reach apps from.
    pub async fn regions(&self) -> Result<crate::RegionsResponse, ClientError> {
        self.json(Method::GET, "/api/v2/regions", None::<&()>).await
    }

    /// `POST /api/v2/workspaceproxies/me/register` (proxy token).
    pub async fn register_workspace_proxy(
        &self,
        request: &crate::RegisterWorkspaceProxyRequest,
    ) -> Result<crate::RegisterWorkspaceProxyResponse, ClientError> {
        self.json(
            Method::POST,
            "/api/v2/workspaceproxies/me/register",
            Some(request),
        )
        .await
    }

    /// `POST /api/v2/workspaceproxies/me/deregister` (proxy token).
    pub async fn deregister_workspace_proxy(
        &self,
        request: &crate::DeregisterWorkspaceProxyRequest,
    ) -> Result<(), ClientError> {
        self.send(
            Method::POST,
            "/api/v2/workspaceproxies/me/deregister",
            Some(request),
        )
        .await
        .map(drop)
    }

    /// `POST /api/v2/workspaceproxies/me/issue-signed-app-token` (proxy token).
    pub async fn issue_signed_app_token(
        &self,
        request: &crate::IssueSignedAppTokenRequest,
    ) -> Result<crate::IssueSignedAppTokenResponse, ClientError> {
        self.json(
            Method::POST,
            "/api/v2/workspaceproxies/me/issue-signed-app-token",
            Some(request),
        )
        .await
    }

    /// `GET /api/v2/organizations`: the organizations the caller belongs to.
    pub async fn organizations(&self) -> Result<Vec<Organization>, ClientError> {
        self.json(Method::GET, "/api/v2/organizations", None::<&()>)
            .await
    }
}

impl Client {
    /// `POST /api/v2/files` with a tar archive.
    pub async fn upload_tar(&self, archive: Vec<u8>) -> Result<UploadResponse, ClientError> {
        let url = self.endpoint("/api/v2/files")?;
        let mut request = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, TAR_MIME_TYPE)
            .body(archive);
        if let Some(token) = &self.session_token {
            request = request.header(SESSION_TOKEN_HEADER, token.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.to_string(),
                source,
            })?;
        decode(url, response).await
    }

    /// `POST /api/v2/organizations/{org}/templateversions`.
    pub async fn create_template_version(
        &self,
        organization: &str,
        request: &CreateTemplateVersionRequest,
    ) -> Result<TemplateVersion, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v2/organizations/{organization}/templateversions"),
            Some(request),
        )
        .await
    }

    /// `GET /api/v2/templateversions/{id}`.
    pub async fn template_version(&self, id: uuid::Uuid) -> Result<TemplateVersion, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v2/templateversions/{id}"),
            None::<&()>,
        )
        .await
    }

    /// `GET /api/v2/templateversions/{id}/variables`.
    pub async fn template_version_variables(
        &self,
        id: uuid::Uuid,
    ) -> Result<Vec<TemplateVersionVariable>, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v2/templateversions/{id}/variables"),
            None::<&()>,
        )
        .await
    }

    /// `GET /api/v2/templateversions/{id}/resources`.
    pub async fn template_version_resources(
        &self,
        id: uuid::Uuid,
    ) -> Result<Vec<WorkspaceResource>, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v2/templateversions/{id}/resources"),
            None::<&()>,
        )
        .await
    }

    /// Follows a job's log (`GET {path}?follow=true`, Server-Sent Events), calling `on_log`
    /// for each line as it arrives, and returns the finished job. A stream that breaks (the
    /// server restarting, say) is followed again from the last line seen, for up to
    /// [`FOLLOW_AGAIN_FOR`] without a sign of the server.
    pub async fn follow_job_logs(
        &self,
        path: &str,
        mut on_log: impl FnMut(&ProvisionerJobLog),
    ) -> Result<ProvisionerJob, ClientError> {
        let mut after = None;
        let mut broken_since = None;
        loop {
            let query = match after {
                Some(id) => format!("{path}?follow=true&after={id}"),
                None => format!("{path}?follow=true"),
            };
            let attempt = async {
                let mut events = self.events(&query).await?;
                while let Some((name, data)) = events.next_raw().await? {
                    // Only a stream that carries something counts as the server being back:
                    // one that keeps ending at once still runs out of time.
                    broken_since = None;
                    match name.as_str() {
                        "log" => {
                            let lines: Vec<ProvisionerJobLog> = parse_event(&events.url, &data)?;
                            lines.iter().for_each(&mut on_log);
                            after = lines.last().map(|line| line.id).or(after);
                        }
                        "end" => return parse_event(&events.url, &data).map(Some),
                        "error" => {
                            return Err(ClientError::Api {
                                status: 500,
                                response: Response::message(data),
                            });
                        }
                        _ => {}
                    }
                }
                Ok(None)
            }
            .await;
            let broken = match attempt {
                Ok(Some(job)) => return Ok(job),
                Ok(None) => ClientError::Api {
                    status: 502,
                    response: Response::message("the log stream ended before the job did"),
                },
                Err(err) if err.is_unavailable() => err,
                Err(err) => return Err(err),
            };
            let since = *broken_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() >= FOLLOW_AGAIN_FOR {
                return Err(broken);
            }
            tokio::time::sleep(FOLLOW_AGAIN_EVERY).await;
        }
    }

    /// `POST /api/v2/organizations/{org}/templates`.
    pub async fn create_template(
        &self,
        organization: &str,
        request: &CreateTemplateRequest,
    ) -> Result<Template, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v2/organizations/{organization}/templates"),
            Some(request),
        )
        .await
    }

    /// `GET /api/v2/organizations/{org}/templates/{name}`; `None` when there is none.
    pub async fn template_by_name(
        &self,
        organization: &str,
        name: &str,
    ) -> Result<Option<Template>, ClientError> {
        match self
            .json(
                Method::GET,
                &format!("/api/v2/organizations/{organization}/templates/{name}"),
                None::<&()>,
            )
            .await
        {
            Ok(template) => Ok(Some(template)),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `GET /api/v2/templates`: every template the caller can see.
    pub async fn templates(&self) -> Result<Vec<Template>, ClientError> {
        self.json(Method::GET, "/api/v2/templates", None::<&()>)
            .await
    }

    /// `GET /api/v2/templates/{id}/versions`.
    pub async fn template_versions(
        &self,
        template_id: uuid::Uuid,
    ) -> Result<Vec<TemplateVersion>, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v2/templates/{template_id}/versions"),
            None::<&()>,
        )
        .await
    }

    /// `PATCH /api/v2/templates/{id}/versions`.
    pub async fn set_active_template_version(
        &self,
        template_id: uuid::Uuid,
        version_id: uuid::Uuid,
    ) -> Result<(), ClientError> {
        self.send(
            Method::PATCH,
            &format!("/api/v2/templates/{template_id}/versions"),
            Some(&UpdateActiveTemplateVersion { id: version_id }),
        )
        .await
        .map(drop)
    }

    /// `DELETE /api/v2/templates/{id}`.
    pub async fn delete_template(&self, template_id: uuid::Uuid) -> Result<(), ClientError> {
        self.send(
            Method::DELETE,
            &format!("/api/v2/templates/{template_id}"),
            None::<&()>,
        )
        .await
        .map(drop)
    }

    /// `POST /api/v2/users/{user}/workspaces`.
    pub async fn create_workspace(
        &self,
        user: &str,
        request: &CreateWorkspaceRequest,
    ) -> Result<Workspace, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v2/users/{user}/workspaces"),
            Some(request),
        )
        .await
    }

    /// `GET /api/v2/workspaces?q=...`.
    pub async fn workspaces(&self, query: &str) -> Result<WorkspacesResponse, ClientError> {
        let mut url = self.endpoint("/api/v2/workspaces")?;
        url.query_pairs_mut().append_pair("q", query);
        let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        self.json(Method::GET, &path, None::<&()>).await
    }

    /// `GET /api/v2/users/{user}/workspace/{name}`.
    pub async fn workspace_by_owner_and_name(
        &self,
        owner: &str,
        name: &str,
    ) -> Result<Workspace, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v2/users/{owner}/workspace/{name}"),
            None::<&()>,
        )
        .await
    }

    /// `POST /api/v2/workspaces/{id}/builds`.
    pub async fn create_workspace_build(
        &self,
        workspace_id: uuid::Uuid,
        request: &CreateWorkspaceBuildRequest,
    ) -> Result<WorkspaceBuild, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v2/workspaces/{workspace_id}/builds"),
            Some(request),
        )
        .await
    }

    /// `GET /api/v2/workspaces/{id}/builds`, newest first.
    pub async fn workspace_builds(
        &self,
        workspace_id: uuid::Uuid,
    ) -> Result<Vec<WorkspaceBuild>, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v2/workspaces/{workspace_id}/builds"),
            None::<&()>,
        )
        .await
    }

    /// `GET /api/v2/workspacebuilds/{id}`.
    pub async fn workspace_build(&self, id: uuid::Uuid) -> Result<WorkspaceBuild, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v2/workspacebuilds/{id}"),
            None::<&()>,
        )
        .await
    }

    /// `PATCH /api/v2/workspacebuilds/{id}/cancel`.
    pub async fn cancel_workspace_build(&self, id: uuid::Uuid) -> Result<(), ClientError> {
        self.send(
            Method::PATCH,
            &format!("/api/v2/workspacebuilds/{id}/cancel"),
            None::<&()>,
        )
        .await
        .map(drop)
    }

    /// `GET /api/v2/workspaceagents/me/manifest` (authenticated with the agent token).
    pub async fn agent_manifest(&self) -> Result<crate::AgentManifest, ClientError> {
        self.json(
            Method::GET,
            "/api/v2/workspaceagents/me/manifest",
            None::<&()>,
        )
        .await
    }

    /// `GET /api/v2/workspaceagents/connection`: the relay map and direct-path policy.
    pub async fn agent_connection_info(&self) -> Result<crate::AgentConnectionInfo, ClientError> {
        self.json(
            Method::GET,
            "/api/v2/workspaceagents/connection",
            None::<&()>,
        )
        .await
    }

    /// `POST /api/v2/workspaceagents/me/tunnel-address` (agent token): publishes the agent's
    /// current tunnel address to the coordinator.
    pub async fn agent_publish_address(
        &self,
        address: &crate::TunnelAddress,
    ) -> Result<(), ClientError> {
        self.send(
            Method::POST,
            "/api/v2/workspaceagents/me/tunnel-address",
            Some(address),
        )
        .await
        .map(drop)
    }

    /// `GET /api/v2/workspaceagents/me/coordinate?endpoint_id=..` (agent token): the agent's
    /// side of the coordinator, a stream of `clients` events.
    pub async fn agent_coordinate(&self, endpoint_id: &str) -> Result<EventStream, ClientError> {
        self.events(&format!(
            "/api/v2/workspaceagents/me/coordinate?endpoint_id={endpoint_id}"
        ))
        .await
    }

    /// `GET /api/v2/workspaceagents/{id}/coordinate?endpoint_id=..`: a client's side of the
    /// coordinator, a stream of `agent` events; while it is open the agent and the relay admit
    /// `endpoint_id`.
    pub async fn coordinate(
        &self,
        agent_id: uuid::Uuid,
        endpoint_id: &str,
    ) -> Result<EventStream, ClientError> {
        self.events(&format!(
            "/api/v2/workspaceagents/{agent_id}/coordinate?endpoint_id={endpoint_id}"
        ))
        .await
    }

    /// `GET /api/v2/workspaceproxies/me/coordinate` (proxy token): the proxy's endpoint joins
    /// the agent's clients; a stream of `agent` events.
    pub async fn proxy_coordinate(
        &self,
        agent_id: uuid::Uuid,
        endpoint_id: &str,
    ) -> Result<EventStream, ClientError> {
        self.events(&format!(
            "/api/v2/workspaceproxies/me/coordinate?agent_id={agent_id}&endpoint_id={endpoint_id}"
        ))
        .await
    }

    /// `GET /api/v2/workspaceproxies/me/relay-admissions` (proxy token): `snapshot`, `allow`
    /// and `revoke` events with [`crate::RelayAdmissions`].
    pub async fn relay_admissions(&self) -> Result<EventStream, ClientError> {
        self.events("/api/v2/workspaceproxies/me/relay-admissions")
            .await
    }

    /// Opens a Server-Sent Events stream.
    async fn events(&self, path: &str) -> Result<EventStream, ClientError> {
        let url = self.endpoint(path)?;
        let mut request = self.http.get(url.clone());
        if let Some(token) = &self.session_token {
            request = request.header(SESSION_TOKEN_HEADER, token.expose());
        }
        if let Some(token) = &self.proxy_token {
            request = request.header(crate::PROXY_TOKEN_HEADER, token.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.to_string(),
                source,
            })?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let body = response.bytes().await.unwrap_or_default();
            let response = serde_json::from_slice::<Response>(&body).unwrap_or_else(|_| {
                Response::message(String::from_utf8_lossy(&body).trim().to_owned())
            });
            return Err(ClientError::Api { status, response });
        }
        Ok(EventStream {
            url,
            response,
            parser: sse::Parser::default(),
            pending: std::collections::VecDeque::new(),
        })
    }

    /// `POST /api/v2/workspaceagents/me/app-health`.
    pub async fn agent_report_app_health(
        &self,
        request: &crate::AppHealthRequest,
    ) -> Result<(), ClientError> {
        self.send(
            Method::POST,
            "/api/v2/workspaceagents/me/app-health",
            Some(request),
        )
        .await
        .map(drop)
    }

    /// `POST /api/v2/workspaceagents/me/heartbeat`.
    pub async fn agent_heartbeat(
        &self,
        request: &crate::AgentHeartbeatRequest,
    ) -> Result<(), ClientError> {
        self.send(
            Method::POST,
            "/api/v2/workspaceagents/me/heartbeat",
            Some(request),
        )
        .await
        .map(drop)
    }

    /// `POST /api/v2/workspaceagents/me/report-lifecycle`.
    pub async fn agent_report_lifecycle(
        &self,
        request: &crate::UpdateLifecycleRequest,
    ) -> Result<(), ClientError> {
        self.send(
            Method::POST,
            "/api/v2/workspaceagents/me/report-lifecycle",
            Some(request),
        )
        .await
        .map(drop)
    }

    /// `PATCH /api/v2/workspaceagents/me/logs`.
    pub async fn agent_send_logs(
        &self,
        request: &crate::PatchAgentLogsRequest,
    ) -> Result<(), ClientError> {
        self.send(
            Method::PATCH,
            "/api/v2/workspaceagents/me/logs",
            Some(request),
        )
        .await
        .map(drop)
    }

    /// `GET /api/v2/workspaceagents/{id}/logs`.
    pub async fn workspace_agent_logs(
        &self,
        agent_id: uuid::Uuid,
    ) -> Result<Vec<crate::WorkspaceAgentLog>, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v2/workspaceagents/{agent_id}/logs"),
            None::<&()>,
        )
        .await
    }

    /// `GET /api/v2/workspaceagents/{id}`.
    pub async fn workspace_agent(
        &self,
        agent_id: uuid::Uuid,
    ) -> Result<crate::WorkspaceAgent, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v2/workspaceagents/{agent_id}"),
            None::<&()>,
        )
        .await
    }

    /// `POST /api/v2/provisionerdaemons/acquire`: a job, or `None` after the server's wait.
    pub async fn acquire_job(
        &self,
        request: &AcquireJobRequest,
    ) -> Result<Option<AcquiredJob>, ClientError> {
        let (status, body) = self
            .send(
                Method::POST,
                "/api/v2/provisionerdaemons/acquire",
                Some(request),
            )
            .await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        serde_json::from_slice(&body.bytes)
            .map(Some)
            .map_err(|source| ClientError::Decode {
                url: body.url.to_string(),
                status: status.as_u16(),
                source,
            })
    }

    /// `POST /api/v2/provisionerdaemons/jobs/{id}/logs`.
    pub async fn send_job_logs(
        &self,
        job_id: uuid::Uuid,
        request: &JobLogsRequest,
    ) -> Result<(), ClientError> {
        self.send(
            Method::POST,
            &format!("/api/v2/provisionerdaemons/jobs/{job_id}/logs"),
            Some(request),
        )
        .await
        .map(drop)
    }

    /// `POST /api/v2/provisionerdaemons/jobs/{id}/heartbeat`.
    pub async fn job_heartbeat(
        &self,
        job_id: uuid::Uuid,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v2/provisionerdaemons/jobs/{job_id}/heartbeat"),
            Some(request),
        )
        .await
    }

    /// `POST /api/v2/provisionerdaemons/jobs/{id}/complete`.
    pub async fn complete_job(
        &self,
        job_id: uuid::Uuid,
        request: &CompleteJobRequest,
    ) -> Result<(), ClientError> {
        self.send(
            Method::POST,
            &format!("/api/v2/provisionerdaemons/jobs/{job_id}/complete"),
            Some(request),
        )
        .await
        .map(drop)
    }
}

fn parse_event<T: DeserializeOwned>(url: &Url, data: &str) -> Result<T, ClientError> {
    serde_json::from_str(data).map_err(|source| ClientError::Decode {
        url: url.to_string(),
        status: 200,
        source,
    })
}

async fn decode<T: DeserializeOwned>(
    url: Url,
    response: reqwest::Response,
) -> Result<T, ClientError> {
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|source| ClientError::Transport {
            url: url.to_string(),
            source,
        })?;
    if status.is_client_error() || status.is_server_error() {
        let response = serde_json::from_slice::<Response>(&body).unwrap_or_else(|_| {
            Response::message(String::from_utf8_lossy(&body).trim().to_owned())
        });
        return Err(ClientError::Api {
            status: status.as_u16(),
            response,
        });
    }
    serde_json::from_slice(&body).map_err(|source| ClientError::Decode {
        url: url.to_string(),
        status: status.as_u16(),
        source,
    })
}

/// A minimal Server-Sent Events parser: named events with (possibly multi-line) data.
/// A stream of Server-Sent Events.
#[derive(Debug)]
pub struct EventStream {
    url: Url,
    response: reqwest::Response,
    parser: sse::Parser,
    pending: std::collections::VecDeque<(String, String)>,
}

impl EventStream {
    /// The next event's name and its decoded data; `Ok(None)` when the server ends the
    /// stream. Events of other types are skipped by the caller.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<(String, T)>, ClientError> {
        match self.next_raw().await? {
            Some((name, data)) => Ok(Some((name, parse_event(&self.url, &data)?))),
            None => Ok(None),
        }
    }

    /// The next event's name and data, undecoded.
    async fn next_raw(&mut self) -> Result<Option<(String, String)>, ClientError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let chunk = self
                .response
                .chunk()
                .await
                .map_err(|source| ClientError::Transport {
                    url: self.url.to_string(),
                    source,
                })?;
            let Some(chunk) = chunk else {
                return Ok(None);
            };
            self.pending.extend(
                self.parser
                    .push(&chunk)
                    .into_iter()
                    .map(|event| (event.name, event.data)),
            );
        }
    }
}

mod sse {
    #[derive(Debug, Default)]
    pub(super) struct Parser {
        buffer: Vec<u8>,
    }

    pub(super) struct Event {
        pub(super) name: String,
        pub(super) data: String,
    }

    impl Parser {
        /// Feeds bytes; returns the events they complete.
        pub(super) fn push(&mut self, bytes: &[u8]) -> Vec<Event> {
            self.buffer.extend_from_slice(bytes);
            let mut events = Vec::new();
            while let Some(end) = find_blank_line(&self.buffer) {
                let block: Vec<u8> = self.buffer.drain(..end.0).collect();
                self.buffer.drain(..end.1 - end.0);
                let text = String::from_utf8_lossy(&block);
                let mut name = String::from("message");
                let mut data = Vec::new();
                for line in text.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                    }
                }
                if !data.is_empty() {
                    events.push(Event {
                        name,
                        data: data.join("\n"),
                    });
                }
            }
            events
        }
    }

    /// The end of the first event block and the start of the next.
    fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
        let lf = buffer
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|at| (at, at + 2));
        let crlf = buffer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|at| (at, at + 4));
        match (lf, crlf) {
            (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn events_split_across_chunks() {
            let mut parser = Parser::default();
            assert!(parser.push(b"event: log\ndata: [1").is_empty());
            let events = parser.push(b"]\n\n: keep-alive\n\nevent: end\ndata: {}\n\n");
            let got: Vec<(&str, &str)> = events
                .iter()
                .map(|e| (e.name.as_str(), e.data.as_str()))
                .collect();
            assert_eq!(got, [("log", "[1]"), ("end", "{}")]);
        }
    }
}

/// A response body remembered with the URL it came from, for error messages.
mod bytes_body {
    pub(super) struct Body {
        pub(super) url: url::Url,
        pub(super) bytes: Vec<u8>,
    }
}

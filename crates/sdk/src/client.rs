//! A typed client for the REST API, used by the CLI, the agent, the workspace proxy and tests.
//!
//! Every method is cancel-safe in the sense that dropping its future abandons the request;
//! the server sees a closed connection and rolls back nothing it had not committed.

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::{
    ApiKeyWithOwner, BuildInfo, CreateFirstUserRequest, CreateFirstUserResponse,
    CreateTokenRequest, CreateUserRequest, GenerateApiKeyResponse, GetUsersResponse,
    LoginWithPasswordRequest, LoginWithPasswordResponse, Organization, Response,
    SESSION_TOKEN_HEADER, Secret, UpdateRolesRequest, User,
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
}

/// A client of one deployment, optionally authenticated with a session token.
#[derive(Clone, Debug)]
pub struct Client {
    base_url: Url,
    http: reqwest::Client,
    session_token: Option<Secret>,
}

impl Client {
    /// A client of the deployment at `base_url` using the given HTTP client (which decides TLS
    /// roots, timeouts and proxies).
    pub fn new(base_url: Url, http: reqwest::Client) -> Self {
        Self {
            base_url,
            http,
            session_token: None,
        }
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

    /// `GET /api/v2/organizations`: the organizations the caller belongs to.
    pub async fn organizations(&self) -> Result<Vec<Organization>, ClientError> {
        self.json(Method::GET, "/api/v2/organizations", None::<&()>)
            .await
    }
}

/// A response body remembered with the URL it came from, for error messages.
mod bytes_body {
    pub(super) struct Body {
        pub(super) url: url::Url,
        pub(super) bytes: Vec<u8>,
    }
}

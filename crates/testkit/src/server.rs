//! The real server in-process, on a fresh database and `127.0.0.1:0`.

use std::time::Duration;

use sdk::client::Client;
use sdk::{CreateFirstUserRequest, CreateUserRequest, LoginWithPasswordRequest, Role, Secret};
use url::Url;

use crate::{PASSWORD, TestDb};

/// A running server; dropping it stops it.
pub struct TestServer {
    /// The server's URL.
    pub url: Url,
    /// The Prometheus endpoint's URL.
    pub metrics_url: Url,
    /// The database it uses.
    pub db_url: String,
    handle: Option<coderd::Handle>,
}

/// A logged-in user: its API client and what it is.
pub struct UserClient {
    pub client: Client,
    pub user: sdk::User,
    pub token: Secret,
}

/// The configuration tests use, with the defaults `coder server` has.
pub fn config(access_url: Url, db_url: &str) -> coderd::Config {
    coderd::Config {
        relay_map: embedded_relay_map(&access_url),
        access_url,
        wildcard_access_url: None,
        database: coderd::Database::Url(Secret::new(db_url)),
        session_duration: Duration::from_secs(24 * 3600),
        max_token_lifetime: Duration::from_secs(876_600 * 3600),
        default_token_lifetime: Duration::from_secs(7 * 24 * 3600),
        secure_auth_cookie: false,
        max_request_body_bytes: 1 << 20,
        login_attempts_per_minute: 10,
        experiments: Vec::new(),
        telemetry: false,
        provisioner_keys: vec![Secret::new(PROVISIONER_PSK)],
        provisioner_heartbeat_timeout: Duration::from_secs(30),
        relay_enabled: true,
        block_direct_connections: false,
        disable_path_apps: false,
        proxy_health_interval: std::time::Duration::from_secs(60),
    }
}

/// The relay map of a server at `url` with only its embedded relay (region 999, as
/// `coder server` has by default).
pub(crate) fn embedded_relay_map(url: &Url) -> sdk::DerpMap {
    let region = tunnel::relay_map::embedded_region(
        999,
        "coder",
        "Coder Embedded Relay",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(80),
        url.scheme() == "http",
    );
    tunnel::relay_map::merge(sdk::DerpMap::default(), Some(region)).expect("a valid relay map")
}

/// The pre-shared key in-process test servers accept from provisioner daemons.
pub const PROVISIONER_PSK: &str = "test-provisioner-pre-shared-key";

impl TestServer {
    /// Starts a server on a new database.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server on a new database, after `adjust` changes its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut coderd::Config)) -> Self {
        crate::init_crypto();
        let db = TestDb::new().await;
        Self::start_on(&db.url, adjust).await
    }

    /// Starts a server on an existing database.
    pub async fn start_on(db_url: &str, adjust: impl FnOnce(&mut coderd::Config)) -> Self {
        crate::init_crypto();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let prometheus = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}", http.local_addr().unwrap())).unwrap();
        let metrics_url = Url::parse(&format!(
            "http://{}/metrics",
            prometheus.local_addr().unwrap()
        ))
        .unwrap();
        let mut config = config(url.clone(), db_url);
        adjust(&mut config);
        let handle = coderd::spawn(
            config,
            coderd::Listeners {
                http: Some(http),
                tls: None,
                prometheus: Some(prometheus),
            },
        )
        .await
        .expect("starting the test server");
        Self {
            url,
            metrics_url,
            db_url: db_url.to_owned(),
            handle: Some(handle),
        }
    }

    /// An unauthenticated client.
    pub fn client(&self) -> Client {
        Client::new(self.url.clone(), reqwest::Client::new())
    }

    /// Creates the first user (`admin`, an owner) and logs in.
    pub async fn first_user(&self) -> UserClient {
        self.client()
            .create_first_user(&CreateFirstUserRequest {
                email: "admin@example.com".to_owned(),
                username: "admin".to_owned(),
                name: "Admin".to_owned(),
                password: Secret::new(PASSWORD),
                trial: false,
            })
            .await
            .expect("creating the first user");
        self.login("admin@example.com").await
    }

    /// Logs in as the user with this email (password [`PASSWORD`]).
    pub async fn login(&self, email: &str) -> UserClient {
        let token = self
            .client()
            .login_with_password(&LoginWithPasswordRequest {
                email: email.to_owned(),
                password: Secret::new(PASSWORD),
            })
            .await
            .unwrap_or_else(|err| panic!("logging in as {email}: {err}"))
            .session_token;
        let client = self.client().with_session_token(token.clone());
        let user = client.user("me").await.unwrap();
        UserClient {
            client,
            user,
            token,
        }
    }

    /// Has `admin` create `username` with `roles`, then logs in as it.
    pub async fn user_with_roles(
        &self,
        admin: &Client,
        username: &str,
        roles: &[Role],
    ) -> UserClient {
        let email = format!("{username}@example.com");
        admin
            .create_user(&CreateUserRequest {
                email: email.clone(),
                username: username.to_owned(),
                name: String::new(),
                password: Secret::new(PASSWORD),
                login_type: None,
                organization_ids: Vec::new(),
            })
            .await
            .unwrap_or_else(|err| panic!("creating {username}: {err}"));
        if !roles.is_empty() {
            admin
                .update_user_roles(
                    username,
                    &sdk::UpdateRolesRequest {
                        roles: roles.iter().map(|role| role.name().to_owned()).collect(),
                    },
                )
                .await
                .unwrap();
        }
        self.login(&email).await
    }

    /// The embedded relay (tests admit endpoints to it directly until the coordinator does).
    pub fn relay(&self) -> Option<&coderd::EmbeddedRelay> {
        self.handle
            .as_ref()
            .and_then(|handle| handle.relay.as_ref())
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
    }
}

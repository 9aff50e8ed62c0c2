//! `coder wsproxy server`: a workspace proxy. It serves, from its own region, what browsers and
//! the CLI reach workspaces through — workspace apps (path, subdomain, port URLs), the web
//! terminal, and a relay — and nothing else: the dashboard and the API stay on the primary.
//!
//! It never touches the database. With its token it registers with the primary (and again
//! every 15 s), which answers with the key that signs app tokens and the relay map; it asks the
//! primary to authorize each user's first request to an app (the answer is a signed token it
//! keeps as a cookie), finds agents through the primary's coordinator, and admits to its relay
//! exactly the endpoints the primary's coordinator admits. It deregisters when it stops.
//!
//! Modules: [`primary`] (registration and the health report), [`admissions`] (the relay's
//! allow list), [`addresses`] (agents' addresses), [`routes`] (the HTTP application).

mod addresses;
mod admissions;
mod primary;
mod routes;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sdk::Secret;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use url::Url;
use uuid::Uuid;

pub use httpd::Listeners;
pub use primary::RegistrationError;

/// The version this proxy reports (the primary's `coderd::VERSION`, passed in by the CLI).
#[derive(Clone, Debug)]
pub struct Config {
    /// The primary's access URL (`--primary-access-url`).
    pub primary_access_url: Url,
    /// The proxy's token, `ID:SECRET` (`--proxy-session-token`).
    pub proxy_session_token: Secret,
    /// Where users reach this proxy (`--access-url`).
    pub access_url: Url,
    /// `*.east.example.com` for subdomain apps, if any (`--wildcard-access-url`).
    pub wildcard_access_url: Option<String>,
    /// Serve only the relay (`--derp-only`).
    pub derp_only: bool,
    /// Run the relay (`--derp-server-enable`).
    pub relay_enabled: bool,
    /// Dial agents through relays only (`--block-direct-connections`).
    pub block_direct_connections: bool,
    /// Serve apps only on subdomains (`--disable-path-apps`).
    pub disable_path_apps: bool,
    /// This binary's version.
    pub version: String,
    /// How to reach the primary (TLS roots, timeouts).
    pub http: reqwest::Client,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Neither an HTTP nor an HTTPS listener was given.
    #[error("no listener: give an HTTP or an HTTPS address")]
    NoListener,
    /// A listener's address could not be read.
    #[error("reading a listener's address")]
    ListenerAddress(#[source] std::io::Error),
    /// The primary did not answer `/api/v2/buildinfo`.
    #[error("the primary at {url} cannot be reached")]
    PrimaryUnreachable {
        url: String,
        #[source]
        source: sdk::client::ClientError,
    },
    /// The primary URL points at a workspace proxy.
    #[error(
        "{0} is a workspace proxy, not the primary: set --primary-access-url to the dashboard's URL"
    )]
    NotPrimary(String),
    /// The first registration failed.
    #[error(transparent)]
    Register(#[from] RegistrationError),
}

/// What every part of the proxy shares.
pub(crate) struct State {
    pub(crate) config: Config,
    pub(crate) primary: sdk::client::Client,
    /// This process's id among the proxy's instances.
    pub(crate) replica_id: Uuid,
    /// Set by the first registration.
    pub(crate) registered: OnceLock<Registered>,
    /// Why the last re-registration failed, while it keeps failing.
    pub(crate) registration_error: std::sync::Mutex<Option<String>>,
    pub(crate) metrics: routes::Metrics,
}

/// What the first registration gave the proxy.
pub(crate) struct Registered {
    pub(crate) signer: apps::tokens::Signer,
    pub(crate) agents: apps::agents::AgentConnector,
    pub(crate) app_client: apps::client::AppClient,
    pub(crate) deployment_id: String,
}

/// A running proxy. [`Handle::shutdown`] deregisters and stops in order.
#[must_use = "dropping the handle stops the proxy"]
pub struct Handle {
    state: Arc<State>,
    relay: Option<tunnel::relay::EmbeddedRelay>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    failed: tokio::sync::watch::Receiver<Option<String>>,
    /// The HTTP listener's address.
    pub http_address: Option<SocketAddr>,
    /// The HTTPS listener's address.
    pub tls_address: Option<SocketAddr>,
    /// The Prometheus listener's address.
    pub prometheus_address: Option<SocketAddr>,
}

/// How long shutdown may take before tasks are aborted.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks the primary, starts serving, registers, and keeps the registration, the relay's
/// allow list and the agents' addresses in step with the primary.
pub async fn spawn(config: Config, listeners: Listeners) -> Result<Handle, StartError> {
    if listeners.http.is_none() && listeners.tls.is_none() {
        return Err(StartError::NoListener);
    }
    let primary = sdk::client::Client::new(config.primary_access_url.clone(), config.http.clone())
        .with_proxy_token(config.proxy_session_token.clone());
    let info = primary
        .build_info()
        .await
        .map_err(|source| StartError::PrimaryUnreachable {
            url: config.primary_access_url.to_string(),
            source,
        })?;
    if info.workspace_proxy {
        return Err(StartError::NotPrimary(
            config.primary_access_url.to_string(),
        ));
    }
    let relay = config
        .relay_enabled
        .then(|| tunnel::relay::EmbeddedRelay::new(tunnel::relay::AllowList::default()));
    let state = Arc::new(State {
        primary,
        replica_id: Uuid::new_v4(),
        registered: OnceLock::new(),
        registration_error: std::sync::Mutex::new(None),
        metrics: routes::Metrics::new(relay.clone()),
        config,
    });
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    // Serve first: the primary checks our health report while we register.
    let router = routes::router(state.clone());
    let address =
        |listener: &TcpListener| listener.local_addr().map_err(StartError::ListenerAddress);
    let (mut http_address, mut tls_address, mut prometheus_address) = (None, None, None);
    if let Some(listener) = listeners.http {
        http_address = Some(address(&listener)?);
        tasks.spawn(httpd::serve(
            listener,
            None,
            router.clone(),
            relay.clone(),
            cancel.clone(),
        ));
    }
    if let Some((listener, tls)) = listeners.tls {
        tls_address = Some(address(&listener)?);
        tasks.spawn(httpd::serve(
            listener,
            Some(TlsAcceptor::from(tls)),
            router.clone(),
            relay.clone(),
            cancel.clone(),
        ));
    }
    if let Some(listener) = listeners.prometheus {
        prometheus_address = Some(address(&listener)?);
        tasks.spawn(httpd::serve(
            listener,
            None,
            routes::metrics_router(state.clone()),
            None,
            cancel.clone(),
        ));
    }
    let first = match primary::register_first(&state).await {
        Ok(first) => first,
        Err(err) => {
            cancel.cancel();
            while tasks.join_next().await.is_some() {}
            return Err(err.into());
        }
    };
    tracing::info!(
        primary = %state.config.primary_access_url,
        region_id = first.derp_region_id,
        "registered with the primary"
    );
    let (failed_tx, failed) = tokio::sync::watch::channel(None);
    tasks.spawn(primary::keep_registered(
        state.clone(),
        cancel.clone(),
        failed_tx,
    ));
    if let Some(relay) = &relay {
        tasks.spawn(admissions::follow(
            state.clone(),
            relay.clone(),
            cancel.clone(),
        ));
    }
    Ok(Handle {
        relay,
        state,
        cancel,
        tasks,
        failed,
        http_address,
        tls_address,
        prometheus_address,
    })
}

impl Handle {
    /// Resolves when the proxy gives up (its re-registrations kept failing), with why.
    pub async fn failed(&mut self) -> String {
        loop {
            if let Some(reason) = self.failed.borrow_and_update().clone() {
                return reason;
            }
            if self.failed.changed().await.is_err() {
                return "the registration loop ended".to_owned();
            }
        }
    }

    /// Deregisters (so the primary stops sending users here), stops accepting, and lets open
    /// requests finish briefly.
    pub async fn shutdown(mut self) {
        primary::deregister(&self.state).await;
        self.cancel.cancel();
        // The proxy's tunnels to agents close first, while the relay they may ride is up.
        let before_cut = async {
            if let Some(registered) = self.state.registered.get() {
                registered.agents.close().await;
            }
            if let Some(relay) = &self.relay {
                relay.shutdown().await;
            }
        };
        httpd::serve::drain(&mut self.tasks, SHUTDOWN_TIMEOUT, before_cut).await;
    }
}

//! `coder server`: the control plane. Owns the REST API under `/api/v2`, authentication
//! (session tokens) and authorization (roles), the listeners (HTTP, HTTPS, Prometheus) and the
//! database's lifecycle (an external PostgreSQL or the built-in cluster).
//!
//! It reaches PostgreSQL only through `store` and speaks only `sdk` types on the wire. Main
//! types: [`Config`], [`spawn`] → [`Handle`], [`app`] (the router, for in-process tests),
//! [`ApiError`].

mod api;
mod app_grants;
mod auth;
mod authz;
mod config;
mod coordinator;
mod error;
mod jobs;
mod json;
pub mod metrics;
mod passwords;
mod proxy_health;
mod ratelimit;
mod state;
pub use httpd::Listeners;
pub use httpd::tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request};
use axum::middleware::{from_fn, from_fn_with_state};
use store::Store;
use store::builtin::BuiltinError;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use config::{Config, Database};
pub use error::ApiError;
pub use state::AppState;
/// The built-in cluster, for `coder server postgres-builtin-serve`.
pub use store::builtin::BuiltinPostgres;
/// The relay served on the API's listeners.
pub use tunnel::relay::EmbeddedRelay;

/// The version every API answer and `coder --version` report: `CODER_BUILD_VERSION` at build
/// time (release builds set it), else `0.0.0-devel` as Coder's development builds say. Crate
/// versions stay 0.0.0; this is the product's.
pub const VERSION: &str = match option_env!("CODER_BUILD_VERSION") {
    Some(version) => version,
    None => "0.0.0-devel",
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The built-in PostgreSQL could not be started.
    #[error("starting the built-in PostgreSQL")]
    Builtin(#[from] BuiltinError),
    /// The database could not be reached or migrated.
    #[error("preparing the database")]
    Database(#[from] store::Error),
    /// Neither an HTTP nor an HTTPS listener was given.
    #[error("no listener: give an HTTP or an HTTPS address")]
    NoListener,
    /// A listener's address could not be read.
    #[error("reading a listener's address")]
    ListenerAddress(#[source] std::io::Error),
}

impl StartError {
    /// Whether the cause is PostgreSQL's binaries missing from the machine.
    pub fn is_missing_postgres(&self) -> bool {
        matches!(self, StartError::Builtin(BuiltinError::BinariesNotFound))
    }
}

/// A running server. Dropping it aborts everything; [`Handle::shutdown`] stops in order.
#[must_use = "dropping the handle stops the server"]
pub struct Handle {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    store: Store,
    builtin: Option<BuiltinPostgres>,
    /// The HTTP listener's address.
    pub http_address: Option<SocketAddr>,
    /// The HTTPS listener's address.
    pub tls_address: Option<SocketAddr>,
    /// The Prometheus listener's address.
    pub prometheus_address: Option<SocketAddr>,
    /// The built-in PostgreSQL's directory, when it is in use.
    pub builtin_postgres_dir: Option<PathBuf>,
    /// The embedded relay, when enabled.
    pub relay: Option<tunnel::relay::EmbeddedRelay>,
    discovery: Option<tunnel::relay::AddressDiscovery>,
    agent_conn: apps::agents::AgentConnector,
}

/// How long the whole shutdown may take before tasks are aborted.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the database (built-in or external), migrates it, and serves on `listeners`.
pub async fn spawn(config: Config, listeners: Listeners) -> Result<Handle, StartError> {
    if listeners.http.is_none() && listeners.tls.is_none() {
        return Err(StartError::NoListener);
    }
    let (url, builtin) = match &config.database {
        Database::Url(url) => (url.expose().to_owned(), None),
        Database::Builtin { dir } => {
            tracing::info!(dir = %dir.display(), "starting the built-in PostgreSQL");
            let builtin = BuiltinPostgres::start(dir).await?;
            (builtin.url().to_owned(), Some(builtin))
        }
    };
    let mut config = config;
    let discovery = start_address_discovery(&mut config, &listeners).await;
    let prepared = async {
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        let state = AppState::new(config, store.clone()).await?;
        Ok::<_, store::Error>((store, state))
    }
    .await;
    let (store, state) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => {
            if let Some(builtin) = builtin {
                let _ = builtin.stop().await;
            }
            return Err(err.into());
        }
    };
    let builtin_postgres_dir = builtin.as_ref().map(|builtin| builtin.dir().to_owned());
    let cancel = state.shutdown.clone();
    let mut tasks = JoinSet::new();
    let router = app(state.clone());
    tasks.spawn(jobs::listen(
        store.clone(),
        state.job_events.clone(),
        cancel.clone(),
    ));
    tasks.spawn(jobs::reap(
        store.clone(),
        state.config.provisioner_heartbeat_timeout,
        cancel.clone(),
    ));
    tasks.spawn(
        state
            .proxy_health
            .clone()
            .run(store.clone(), state.metrics(), cancel.clone()),
    );
    let address =
        |listener: &TcpListener| listener.local_addr().map_err(StartError::ListenerAddress);
    let mut handle_addresses = (None, None, None);
    if let Some(listener) = listeners.http {
        handle_addresses.0 = Some(address(&listener)?);
        tasks.spawn(httpd::serve(
            listener,
            None,
            router.clone(),
            state.relay.clone(),
            cancel.clone(),
        ));
    }
    if let Some((listener, tls)) = listeners.tls {
        handle_addresses.1 = Some(address(&listener)?);
        let acceptor = TlsAcceptor::from(tls);
        tasks.spawn(httpd::serve(
            listener,
            Some(acceptor),
            router.clone(),
            state.relay.clone(),
            cancel.clone(),
        ));
    }
    if let Some(listener) = listeners.prometheus {
        handle_addresses.2 = Some(address(&listener)?);
        let metrics_router = metrics::router(state.metrics());
        tasks.spawn(httpd::serve(
            listener,
            None,
            metrics_router,
            None,
            cancel.clone(),
        ));
    }
    Ok(Handle {
        cancel,
        tasks,
        store,
        builtin,
        http_address: handle_addresses.0,
        tls_address: handle_addresses.1,
        prometheus_address: handle_addresses.2,
        builtin_postgres_dir,
        relay: state.relay.clone(),
        discovery,
        agent_conn: state.agent_conn.clone(),
    })
}

impl Handle {
    /// Stops accepting, lets open requests finish (briefly), closes the database pool and
    /// stops the built-in PostgreSQL.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(discovery) = self.discovery.take() {
            discovery.shutdown().await;
        }
        // The server's own tunnels to agents close while the relay they may ride is still up.
        let before_cut = async {
            self.agent_conn.close().await;
            if let Some(relay) = &self.relay {
                relay.shutdown().await;
            }
        };
        httpd::serve::drain(&mut self.tasks, SHUTDOWN_TIMEOUT, before_cut).await;
        self.store.close().await;
        if let Some(builtin) = self.builtin.take()
            && let Err(err) = builtin.stop().await
        {
            tracing::warn!(error = %err, "stopping the built-in PostgreSQL failed");
        }
    }
}

/// Starts the embedded relay's QUIC address discovery on the API listener's address (UDP, same
/// port number) and adds it to the embedded region of the relay map. Without it endpoints
/// behind NATs never learn their public address, so only a failure to bind is tolerated (with
/// a warning): tunnels then still work, through the relay or on one LAN.
async fn start_address_discovery(
    config: &mut Config,
    listeners: &Listeners,
) -> Option<tunnel::relay::AddressDiscovery> {
    if !config.relay_enabled {
        return None;
    }
    let listener = listeners
        .http
        .as_ref()
        .or(listeners.tls.as_ref().map(|(listener, _)| listener))?;
    let address = listener.local_addr().ok()?;
    let mut hosts: Vec<String> = config
        .access_url
        .host_str()
        .map(str::to_owned)
        .into_iter()
        .collect();
    if !address.ip().is_unspecified() {
        hosts.push(address.ip().to_string());
    }
    hosts.dedup();
    let discovery = match tunnel::relay::AddressDiscovery::spawn(address, hosts).await {
        Ok(discovery) => discovery,
        Err(err) => {
            tracing::warn!(%address, error = %err, "relay address discovery is off: endpoints behind NATs will not learn their public addresses");
            return None;
        }
    };
    for region in config.relay_map.regions.values_mut() {
        if region.embedded_relay {
            for node in &mut region.nodes {
                node.stun_port = i32::from(discovery.port());
                node.quic_cert = Some(discovery.cert_pem().to_owned());
            }
        }
    }
    tracing::info!(
        port = discovery.port(),
        "relay address discovery listening (UDP)"
    );
    Some(discovery)
}

/// The whole HTTP application. Tests drive it with `oneshot`; [`spawn`] serves it.
pub fn app(state: AppState) -> Router {
    let max_body = state.config.max_request_body_bytes;
    let metrics = state.metrics();
    let request_id = HeaderName::from_static("x-request-id");
    let version = HeaderValue::from_static(VERSION);
    Router::new()
        .nest("/api/v2", api::routes())
        .merge(api::site_routes())
        .layer(from_fn_with_state(state.clone(), api::subdomain_apps))
        .layer(from_fn_with_state(metrics.http(), httpd::metrics::track))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request<_>| {
                            let request_id = request
                                .headers()
                                .get(sdk::REQUEST_ID_HEADER)
                                .and_then(|id| id.to_str().ok())
                                .unwrap_or_default();
                            tracing::debug_span!(
                                "request",
                                %request_id,
                                method = %request.method(),
                                path = %request.uri().path(),
                            )
                        })
                        .on_request(())
                        .on_response(
                            |response: &axum::response::Response,
                             latency: Duration,
                             _: &tracing::Span| {
                                tracing::debug!(
                                    status = response.status().as_u16(),
                                    latency_ms = latency.as_secs_f64() * 1000.0,
                                    "request completed"
                                );
                            },
                        )
                        .on_failure(()),
                )
                .layer(from_fn(error::log_internal_errors))
                .layer(SetResponseHeaderLayer::overriding(
                    HeaderName::from_static("x-coder-build-version"),
                    version,
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    HeaderName::from_static("x-content-type-options"),
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(DefaultBodyLimit::max(max_body)),
        )
        .with_state(state)
}

//! `AppState`: what every handler can reach.

use std::sync::Arc;

use store::Store;

use crate::config::Config;
use crate::coordinator::Coordinator;
use crate::jobs::JobEvents;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use apps::agents::AgentConnector;

/// Shared by all handlers. Every extractor and middleware clones it, so it is one `Arc`:
/// cloning the fields themselves (a score of reference counts and a signing key) cost about a
/// tenth of the server's CPU per proxied app request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub(crate) store: Store,
    pub(crate) config: Arc<Config>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) login_limiter: Arc<RateLimiter>,
    pub(crate) deployment_id: Arc<str>,
    pub(crate) job_events: Arc<JobEvents>,
    /// The embedded relay, when enabled; the coordinator admits endpoints to it.
    pub(crate) relay: Option<tunnel::relay::EmbeddedRelay>,
    pub(crate) coordinator: Coordinator,
    /// The server's own tunnels to agents (workspace apps).
    pub(crate) agent_conn: AgentConnector,
    /// Pooled HTTP connections to apps, over `agent_conn`'s tunnels.
    pub(crate) app_client: apps::client::AppClient,
    /// Signs the tokens that let browsers into subdomain apps.
    pub(crate) app_tokens: apps::tokens::Signer,
    /// The key behind `app_tokens` (hex), handed to registered workspace proxies.
    pub(crate) app_signing_key_hex: Arc<str>,
    /// Apps recently authorized for session headers (see `app_grants`).
    pub(crate) app_grants: Arc<crate::app_grants::AppGrants>,
    /// The workspace proxies' last health checks.
    pub(crate) proxy_health: crate::proxy_health::ProxyHealth,
    /// Fires when the server begins to stop: endless responses (event streams) end with it.
    pub(crate) shutdown: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// State for a server on an already migrated database.
    pub async fn new(config: Config, store: Store) -> Result<Self, store::Error> {
        let deployment_id = store.deployment_id().await?;
        let fresh: [u8; 32] = rand::random();
        let app_key = store.app_signing_key(&hex::encode(fresh)).await?;
        let app_tokens = apps::tokens::Signer::new(
            &hex::decode(&app_key).unwrap_or_else(|_| app_key.clone().into_bytes()),
        );
        let relay = config
            .relay_enabled
            .then(|| tunnel::relay::EmbeddedRelay::new(tunnel::relay::AllowList::default()));
        let coordinator = Coordinator::new(relay.clone());
        let agent_conn = AgentConnector::new(
            coordinator.clone(),
            config.relay_map.clone(),
            !config.block_direct_connections,
        );
        Ok(Self(Arc::new(Shared {
            app_signing_key_hex: app_key.into(),
            app_grants: Arc::default(),
            proxy_health: crate::proxy_health::ProxyHealth::new(config.proxy_health_interval),
            coordinator,
            app_client: apps::client::client(agent_conn.clone()),
            agent_conn,
            app_tokens,
            relay,
            login_limiter: Arc::new(RateLimiter::new(config.login_attempts_per_minute)),
            config: Arc::new(config),
            store,
            metrics: Arc::new(Metrics::new()),
            deployment_id: deployment_id.into(),
            job_events: JobEvents::new(),
            shutdown: tokio_util::sync::CancellationToken::new(),
        })))
    }

    /// The embedded relay, when enabled.
    pub fn relay(&self) -> Option<&tunnel::relay::EmbeddedRelay> {
        self.relay.as_ref()
    }

    /// The metrics registry, for the Prometheus listener.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }
}

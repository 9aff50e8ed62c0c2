//! End-to-end encrypted tunnels between users, workspaces and servers: iroh endpoints set up to
//! run fully offline (our relay map only; no public relays, DNS or discovery), and the relay
//! that admits only endpoints the control plane knows.
//!
//! It owns no policy: callers decide which endpoint ids the relay admits and where endpoints
//! find each other (the coordinator, issue #4). Main types: [`EndpointOptions`], [`bind`],
//! [`relay::Relay`], [`relay::AllowList`], [`Path`].
#![deny(missing_docs)]

pub mod address;
mod batching;
pub mod pipe;
pub mod proto;
pub mod relay;
pub mod relay_map;
pub mod resume;

use std::net::SocketAddr;

use iroh::endpoint::{PortmapperConfig, presets};
use iroh::{NetReportConfig, RelayConfig, RelayMap, RelayMode};
use iroh_relay::RelayQuicConfig;
use iroh_relay::tls::CaTlsConfig;

pub use iroh::Watcher;
pub use iroh::address_lookup::MemoryLookup;
pub use iroh::endpoint::{Connection, RecvStream, SendStream};
pub use iroh::{Endpoint, EndpointAddr, EndpointId, RelayUrl, SecretKey, TransportAddr};

/// How to set up an endpoint.
#[derive(Clone, Debug)]
pub struct EndpointOptions {
    /// Its identity; its public half is the endpoint id others dial.
    pub secret_key: SecretKey,
    /// The relays it may use (its home relay is chosen among them by latency).
    pub relays: Vec<relay_map::RelaySpec>,
    /// The protocols it accepts (ALPNs); empty for dial-only endpoints.
    pub alpns: Vec<Vec<u8>>,
    /// Whether it may use direct (UDP) paths; without them every byte goes through a relay.
    pub direct: bool,
    /// The UDP address direct paths use; `None` binds every interface (IPv4 and IPv6).
    pub bind: Option<SocketAddr>,
    /// Addresses of peers, fed by the coordinator as they change.
    pub lookup: Option<MemoryLookup>,
}

/// Why an endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The endpoint failed to bind its sockets.
    #[error("binding the tunnel endpoint")]
    Bind(#[source] iroh::endpoint::BindError),
    /// The bind address is not usable.
    #[error("invalid tunnel bind address {0}")]
    BindAddress(SocketAddr),
}

/// How long a home relay may stay unreachable before the endpoint moves elsewhere: a short
/// blip reconnects by itself.
const HOME_RELAY_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a relay that went away as a home stays out of the endpoint's set (the relay map
/// drops a dead workspace proxy's relay at the primary's next health check; one that comes
/// back returns after this).
const SUSPENSION: std::time::Duration = std::time::Duration::from_secs(60);

/// The relays an endpoint uses: the deployment's relay map (workspace proxies' relays join it
/// while they are healthy and leave it when not), minus home relays that went away. Relays
/// already known keep their configuration, so live relay connections are untouched.
#[derive(Debug)]
pub struct Relays {
    current: Vec<RelayUrl>,
    suspended: Vec<(RelayUrl, std::time::Instant)>,
}

impl Relays {
    /// The relays an endpoint was bound with.
    pub fn new(current: Vec<RelayUrl>) -> Self {
        Self {
            current,
            suspended: Vec::new(),
        }
    }

    /// Makes `endpoint`'s relays `relays`, less the suspended ones. Returns whether they
    /// changed.
    pub async fn apply(&mut self, endpoint: &Endpoint, relays: &[relay_map::RelaySpec]) -> bool {
        self.suspended
            .retain(|(_, since)| since.elapsed() < SUSPENSION);
        let wanted: Vec<&relay_map::RelaySpec> = relays
            .iter()
            .filter(|relay| !self.suspended.iter().any(|(url, _)| url == &relay.url))
            .collect();
        let mut changed = false;
        for relay in &wanted {
            if !self.current.contains(&relay.url) {
                // New relays come without address discovery: its certificate is trusted only
                // from the map the endpoint was bound with.
                endpoint
                    .insert_relay(
                        relay.url.clone(),
                        std::sync::Arc::new(RelayConfig::new(relay.url.clone(), None)),
                    )
                    .await;
                changed = true;
            }
        }
        for url in &self.current {
            if !wanted.iter().any(|relay| &relay.url == url) {
                endpoint.remove_relay(url).await;
                changed = true;
            }
        }
        self.current = wanted.iter().map(|relay| relay.url.clone()).collect();
        changed
    }

    /// Takes `url`, a home relay that went away, out of `endpoint`'s set for a while, so that
    /// the endpoint homes on another one now rather than at iroh's next periodic check (20-26
    /// s, long enough for relayed connections to time out). Keeps the last relay.
    pub async fn suspend(&mut self, endpoint: &Endpoint, url: &RelayUrl) {
        if self.current.len() < 2 || !self.current.contains(url) {
            return;
        }
        tracing::info!(relay = %url, "the home relay went away: moving to another");
        endpoint.remove_relay(url).await;
        self.current.retain(|current| current != url);
        self.suspended
            .push((url.clone(), std::time::Instant::now()));
    }
}

/// Resolves with the home relay's URL once a home relay the endpoint was connected to has been
/// unreachable for a couple of seconds. Pending forever if the endpoint goes away.
pub async fn home_relay_lost(endpoint: &Endpoint) -> RelayUrl {
    let mut status = endpoint.home_relay_status();
    let mut connected: Vec<RelayUrl> = Vec::new();
    loop {
        let now = status.get();
        for relay in now.iter().filter(|relay| relay.is_connected()) {
            if !connected.contains(relay.url()) {
                connected.push(relay.url().clone());
            }
        }
        let lost = now
            .iter()
            .find(|relay| !relay.is_connected() && connected.contains(relay.url()))
            .map(|relay| relay.url().clone());
        if let Some(url) = lost {
            tokio::time::sleep(HOME_RELAY_GRACE).await;
            let still = status
                .get()
                .iter()
                .any(|relay| relay.url() == &url && !relay.is_connected());
            if still {
                return url;
            }
            continue;
        }
        if status.updated().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Binds an endpoint that talks only to the given relays and never looks anything up on the
/// internet (air-gapped installs reach nothing outside).
pub async fn bind(options: EndpointOptions) -> Result<Endpoint, BindError> {
    // Address discovery needs UDP of our own: a relay-only endpoint skips it.
    let discovery = options.direct;
    let trusted: Vec<_> = options
        .relays
        .iter()
        .filter_map(|relay| relay.discovery.as_ref().map(|(_, cert)| cert.clone()))
        .collect();
    let relays = RelayMap::from_iter(options.relays.into_iter().map(|relay| {
        let quic = relay
            .discovery
            .filter(|_| discovery)
            .map(|(port, _)| RelayQuicConfig::new(port));
        RelayConfig::new(relay.url, quic)
    }));
    // HTTPS probes find the home relay; the captive-portal check would fetch port 80 of the
    // relay's host whatever its port, so it stays off.
    let mut net_report = NetReportConfig::minimal();
    net_report.https_probes = true;
    let mut builder = Endpoint::builder(presets::Minimal)
        .crypto_provider(crypto_provider())
        .secret_key(options.secret_key)
        .relay_mode(RelayMode::Custom(relays))
        .portmapper_config(PortmapperConfig::Disabled)
        .net_report_config(net_report)
        .alpns(options.alpns);
    // Relays over HTTPS are trusted as the system trusts them (its store, SSL_CERT_FILE), like
    // the API itself; address discovery's self-signed certificates come from the relay map.
    let trusted = if discovery { trusted } else { Vec::new() };
    builder = builder.ca_tls_config(CaTlsConfig::system().with_extra_roots(trusted));
    if let Some(lookup) = options.lookup {
        builder = builder.address_lookup(lookup);
    }
    if !options.direct {
        builder = builder
            .clear_ip_transports()
            .add_custom_transport(std::sync::Arc::new(batching::Batching));
    } else if let Some(address) = options.bind {
        builder = builder
            .clear_ip_transports()
            .bind_addr(address)
            .map_err(|_| BindError::BindAddress(address))?;
    }
    builder.bind().await.map_err(BindError::Bind)
}

/// ring, preferring AES-128-GCM: tunnels are CPU-bound, and AES-128 does 10 rounds where
/// AES-256 (rustls's first choice) does 14, for the same security margin TLS 1.3 mandates.
fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    std::sync::Arc::new(provider)
}

/// The path a connection's packets take now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Path {
    /// Straight to the peer (peer-to-peer).
    Direct(SocketAddr),
    /// Through this relay.
    Relay(RelayUrl),
    /// Not yet known.
    Unknown,
}

/// Whether `connection` goes through a relay that `peer` (its latest address) no longer homes
/// on. iroh keeps an established connection on its selected path, so such a connection carries
/// nothing until it times out: callers dial again instead (a new connection, once the stranded
/// one is closed, starts from the peer's new address).
pub fn rides_abandoned_relay(connection: &Connection, peer: &EndpointAddr) -> bool {
    let Path::Relay(url) = path(connection) else {
        return false;
    };
    let mut relays = peer.relay_urls().peekable();
    relays.peek().is_some() && relays.all(|relay| relay != &url)
}

/// The connection's selected path.
pub fn path(connection: &Connection) -> Path {
    let paths = connection.paths();
    for path in &paths {
        if !path.is_selected() {
            continue;
        }
        return match path.remote_addr() {
            iroh::TransportAddr::Ip(address) => Path::Direct(*address),
            iroh::TransportAddr::Relay(url) => Path::Relay(url.clone()),
            _ => Path::Unknown,
        };
    }
    Path::Unknown
}

//! End-to-end encrypted tunnels between users, workspaces and servers: iroh endpoints set up to
//! run fully offline (our relay map only; no public relays, DNS or discovery), and the relay
//! that admits only endpoints the control plane knows.
//!
//! It owns no policy: callers decide which endpoint ids the relay admits and where endpoints
//! find each other (the coordinator, issue #4). Main types: [`EndpointOptions`], [`bind`],
//! [`relay::Relay`], [`relay::AllowList`], [`Path`].
#![deny(missing_docs)]

pub mod address;
pub mod pipe;
pub mod proto;
pub mod relay;
pub mod relay_map;

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

/// Makes `endpoint`'s relays exactly `relays` as the relay map changes (workspace proxies'
/// relays join while they are healthy and leave when they are not). Relays already known keep
/// their configuration, so live relay connections are untouched. Returns whether it changed.
/// `current` holds the relays the endpoint uses now (start from those it was bound with).
pub async fn set_relays(
    endpoint: &Endpoint,
    current: &mut Vec<RelayUrl>,
    relays: &[relay_map::RelaySpec],
) -> bool {
    let mut changed = false;
    for relay in relays {
        if !current.contains(&relay.url) {
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
    for url in current.iter() {
        if !relays.iter().any(|relay| &relay.url == url) {
            endpoint.remove_relay(url).await;
            changed = true;
        }
    }
    *current = relays.iter().map(|relay| relay.url.clone()).collect();
    changed
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
        builder = builder.clear_ip_transports();
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

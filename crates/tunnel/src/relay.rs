//! The relay (the seeds' "DERP"): iroh's relay server, closed to endpoints the control plane
//! has not allowed. It is kept behind this small interface so that sharing the API's port,
//! or relays that several server replicas share, can change without touching callers.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use iroh::{EndpointId, RelayUrl};
use iroh_relay::KeyCache;
use iroh_relay::server::http_server::{Handlers, RelayService, RelayServiceWithNotify};
use iroh_relay::server::{
    Access, AccessControl, ClientRequest, Metrics, QuicConfig, RelayConfig, Server, ServerConfig,
    SpawnError,
};

pub use iroh_relay::server::streams::MaybeTlsStream;

/// The endpoint ids the relay admits; shared and changeable while the relay runs.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    ids: Arc<RwLock<HashSet<EndpointId>>>,
}

impl AllowList {
    /// Admits `id` from its next connection attempt on.
    pub fn allow(&self, id: EndpointId) {
        self.ids
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(id);
    }

    /// Stops admitting `id` from its next connection attempt on; [`EmbeddedRelay::revoke`]
    /// also closes the connections it has.
    pub fn revoke(&self, id: EndpointId) {
        self.ids
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&id);
    }

    /// Whether `id` is admitted.
    pub fn contains(&self, id: &EndpointId) -> bool {
        self.ids
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .contains(id)
    }
}

#[derive(Debug)]
struct Gate(AllowList);

impl AccessControl for Gate {
    async fn on_connect(&self, request: &ClientRequest) -> Access {
        let id = request.endpoint_id();
        if self.0.contains(&id) {
            Access::Allow
        } else {
            tracing::debug!(endpoint = %id, "relay refused an unknown endpoint");
            Access::Deny {
                reason: Some("this relay admits only endpoints its deployment knows".to_owned()),
            }
        }
    }
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The server failed to bind or start.
    #[error("starting the relay")]
    Spawn(#[source] SpawnError),
    /// It started without an HTTP address (cannot happen with our configuration).
    #[error("the relay has no address")]
    NoAddress,
    /// The address discovery certificate could not be made.
    #[error("making the address discovery certificate: {0}")]
    Certificate(String),
}

/// A running relay. Dropping it stops it; [`Relay::shutdown`] waits for that.
#[must_use = "dropping the relay stops it"]
#[derive(Debug)]
pub struct Relay {
    server: Server,
    url: RelayUrl,
}

impl Relay {
    /// Starts a plain-HTTP relay on `address` admitting only `allowed` endpoints.
    pub async fn spawn(address: SocketAddr, allowed: AllowList) -> Result<Self, RelayError> {
        let mut relay = RelayConfig::new(address);
        relay.access = Arc::new(Gate(allowed));
        let mut config = ServerConfig::default();
        config.relay = Some(relay);
        let server = Server::spawn(config).await.map_err(RelayError::Spawn)?;
        let address = server.http_addr().ok_or(RelayError::NoAddress)?;
        let url = format!("http://{address}")
            .parse()
            .map_err(|_| RelayError::NoAddress)?;
        Ok(Self { server, url })
    }

    /// The URL endpoints dial.
    pub fn url(&self) -> &RelayUrl {
        &self.url
    }

    /// Counters since the relay started.
    pub fn stats(&self) -> RelayStats {
        RelayStats::from(&*self.server.metrics().server)
    }

    /// Stops the relay.
    pub async fn shutdown(self) {
        if let Err(err) = self.server.shutdown().await {
            tracing::warn!(error = %err, "the relay did not stop cleanly");
        }
    }
}

/// The relay's QUIC address discovery (QAD): endpoints ask it over UDP which address and port
/// their packets come from, which is how an endpoint behind a NAT learns the public address
/// its peer should punch towards. It tells each asker only its own address, so it admits
/// anyone. It needs TLS even beside a plain-HTTP relay: it brings its own self-signed
/// certificate, which clients receive with the relay map.
#[must_use = "dropping it stops address discovery"]
#[derive(Debug)]
pub struct AddressDiscovery {
    server: Server,
    port: u16,
    cert_pem: String,
}

impl AddressDiscovery {
    /// Listens on UDP `address` with a certificate for `host_names` (DNS names or IP
    /// addresses: what the relay's URL names).
    pub async fn spawn(address: SocketAddr, host_names: Vec<String>) -> Result<Self, RelayError> {
        let certified = rcgen::generate_simple_self_signed(host_names)
            .map_err(|err| RelayError::Certificate(err.to_string()))?;
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|err| RelayError::Certificate(err.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .map_err(|err| RelayError::Certificate(err.to_string()))?;
        let mut quic = QuicConfig::new(address);
        quic.server_config = Some(tls);
        let mut config = ServerConfig::default();
        config.quic = Some(quic);
        let server = Server::spawn(config).await.map_err(RelayError::Spawn)?;
        let port = server.quic_addr().ok_or(RelayError::NoAddress)?.port();
        Ok(Self {
            server,
            port,
            cert_pem: certified.cert.pem(),
        })
    }

    /// The UDP port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its certificate (PEM), for clients to trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Stops it.
    pub async fn shutdown(self) {
        if let Err(err) = self.server.shutdown().await {
            tracing::warn!(error = %err, "address discovery did not stop cleanly");
        }
    }
}

/// The path relay clients upgrade on.
pub const RELAY_PATH: &str = "/relay";

/// The path endpoints probe to measure their latency to a relay; the HTTP server hosting an
/// embedded relay must answer it with 200 (no endpoint picks a home relay it cannot probe).
pub const PROBE_PATH: &str = iroh_relay::http::RELAY_PROBE_PATH;

/// A relay served by someone else's HTTP server (the API's own listener): it handles the
/// `GET /relay` upgrade of connections served over [`MaybeTlsStream`] with HTTP/1.1.
#[derive(Clone, Debug)]
pub struct EmbeddedRelay {
    service: RelayService,
    allowed: AllowList,
    metrics: Arc<Metrics>,
}

/// What a relay has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Client connections accepted.
    pub accepts: u64,
    /// Client connections ended.
    pub disconnects: u64,
    /// Payload bytes sent to clients.
    pub bytes_sent: u64,
    /// Payload bytes received from clients.
    pub bytes_received: u64,
    /// Datagram frames delivered to clients (a frame carries one packet or a batch).
    pub packets_sent: u64,
    /// Datagram frames received from clients.
    pub packets_received: u64,
    /// Datagram frames dropped (the recipient was not connected or its connection failed).
    pub packets_dropped: u64,
}

impl From<&Metrics> for RelayStats {
    fn from(m: &Metrics) -> Self {
        Self {
            accepts: m.accepts.get(),
            disconnects: m.disconnects.get(),
            bytes_sent: m.bytes_sent.get(),
            bytes_received: m.bytes_recv.get(),
            packets_sent: m.send_packets_sent.get(),
            packets_received: m.send_packets_recv.get(),
            packets_dropped: m.send_packets_dropped.get(),
        }
    }
}

impl EmbeddedRelay {
    /// A relay admitting only `allowed` endpoints.
    pub fn new(allowed: AllowList) -> Self {
        let metrics = Arc::new(Metrics::default());
        let service = RelayService::new(
            Handlers::default(),
            http::HeaderMap::new(),
            None,
            KeyCache::new(1024),
            Arc::new(Gate(allowed.clone())),
            metrics.clone(),
        );
        Self {
            service,
            allowed,
            metrics,
        }
    }

    /// Counters since the relay started.
    pub fn stats(&self) -> RelayStats {
        RelayStats::from(&*self.metrics)
    }

    /// Whether a request is for the relay.
    pub fn is_relay_request<B>(request: &http::Request<B>) -> bool {
        request.method() == http::Method::GET && request.uri().path() == RELAY_PATH
    }

    /// The hyper service answering relay requests.
    pub fn service(&self) -> RelayServiceWithNotify {
        RelayServiceWithNotify::new(self.service.clone(), Arc::new(tokio::sync::Notify::new()))
    }

    /// The endpoints it admits.
    pub fn allowed(&self) -> &AllowList {
        &self.allowed
    }

    /// Stops admitting `id` and closes its live relay connections.
    pub fn revoke(&self, id: EndpointId) {
        self.allowed.revoke(id);
        self.service.clients().disconnect(id, None);
    }

    /// Closes every relay connection.
    pub async fn shutdown(&self) {
        self.service.shutdown().await;
    }
}

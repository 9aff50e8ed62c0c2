//! The relay (the seeds' "DERP"): iroh's relay server, closed to endpoints the control plane
//! has not allowed. It is kept behind this small interface so that sharing the API's port,
//! or relays that several server replicas share, can change without touching callers.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use iroh::{EndpointId, RelayUrl};
use iroh_relay::server::{
    Access, AccessControl, ClientRequest, RelayConfig, Server, ServerConfig, SpawnError,
};

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

    /// Stops admitting `id`. A connection it already has stays open until it ends.
    // FIXME(#4): disconnect live relay connections too, once the relay is embedded in the
    // API's listener (iroh-relay exposes its client registry only at that level).
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
    #[error("the relay has no HTTP address")]
    NoAddress,
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

    /// Stops the relay.
    pub async fn shutdown(self) {
        if let Err(err) = self.server.shutdown().await {
            tracing::warn!(error = %err, "the relay did not stop cleanly");
        }
    }
}

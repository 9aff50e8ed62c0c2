//! The coordinator's messages: how agents publish their tunnel address and learn which
//! clients may connect, and how clients learn an agent's address.

use serde::{Deserialize, Serialize};

use crate::DerpMap;

/// Where an endpoint can be reached: its id (the public key it proves in the tunnel's TLS),
/// its home relay and the UDP addresses it has seen for itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelAddress {
    /// The endpoint id (hex public key).
    pub endpoint_id: String,
    /// The home relay's URL, once it has one.
    #[serde(default)]
    pub relay_url: Option<String>,
    /// Direct (UDP) addresses, `IP:PORT`.
    #[serde(default)]
    pub direct_addresses: Vec<String>,
}

/// `GET /api/v2/workspaceagents/connection`: what a client needs before dialling any agent.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AgentConnectionInfo {
    /// The relays.
    pub derp_map: DerpMap,
    /// `--block-direct-connections`: every tunnel goes through a relay.
    #[serde(default)]
    pub disable_direct_connections: bool,
}

/// The `clients` event of `GET /api/v2/workspaceagents/me/coordinate`: every client endpoint
/// allowed to connect to this agent now (the whole set each time).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizedClients {
    /// Endpoint ids.
    pub endpoint_ids: Vec<String>,
}

/// The `agent` event of `GET /api/v2/workspaceagents/{id}/coordinate`: the agent's address,
/// or `None` while the agent is not connected to the coordinator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentAddressEvent {
    /// The agent's current address.
    pub address: Option<TunnelAddress>,
}

/// `GET /api/v2/workspaceproxies/me/relay-admissions` (Server-Sent Events): the endpoint ids a
/// workspace proxy's relay admits. A `snapshot` event replaces the whole set; `allow` and
/// `revoke` events add and remove the ids they list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayAdmissions {
    /// Endpoint ids (public keys).
    pub endpoints: Vec<String>,
}

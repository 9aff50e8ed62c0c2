//! The relay map, in Tailscale's DERP-map JSON format (what `--derp-config-path` and
//! `--derp-config-url` read and `GET /api/v2/derp-map` returns).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Relay regions by id (the JSON keys are the ids as strings).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerpMap {
    /// The regions.
    #[serde(rename = "Regions", default)]
    pub regions: BTreeMap<String, DerpRegion>,
}

/// One region: a relay (or several nodes of one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerpRegion {
    /// Its numeric id, unique in the map.
    #[serde(rename = "RegionID")]
    pub region_id: i64,
    /// A short code, e.g. `coder`.
    #[serde(rename = "RegionCode", default)]
    pub region_code: String,
    /// Its name for people.
    #[serde(rename = "RegionName", default)]
    pub region_name: String,
    /// Whether this is the relay embedded in the server.
    #[serde(rename = "EmbeddedRelay", default)]
    pub embedded_relay: bool,
    /// Its nodes.
    #[serde(rename = "Nodes", default)]
    pub nodes: Vec<DerpNode>,
}

/// One relay server of a region.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerpNode {
    /// Its name.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Its region's id.
    #[serde(rename = "RegionID", default)]
    pub region_id: i64,
    /// Where it is reached.
    #[serde(rename = "HostName")]
    pub host_name: String,
    /// Its port (0: 443, or 80 with `ForceHTTP`).
    #[serde(rename = "DERPPort", default)]
    pub derp_port: u16,
    /// Its address-discovery port (UDP; Tailscale's STUN port, QUIC address discovery for
    /// our relays); -1 when it has none.
    #[serde(rename = "STUNPort", default)]
    pub stun_port: i32,
    /// The certificate (PEM) its address discovery presents, when that is not signed by a
    /// public authority (the embedded relay's is self-signed).
    #[serde(
        rename = "CoderQUICCert",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub quic_cert: Option<String>,
    /// Only STUN, no relay.
    #[serde(rename = "STUNOnly", default)]
    pub stun_only: bool,
    /// Plain HTTP instead of HTTPS (tests and TLS-terminating load balancers).
    #[serde(rename = "ForceHTTP", default)]
    pub force_http: bool,
}

impl DerpNode {
    /// The port the relay listens on.
    pub fn relay_port(&self) -> u16 {
        match (self.derp_port, self.force_http) {
            (0, true) => 80,
            (0, false) => 443,
            (port, _) => port,
        }
    }

    /// The URL a relay client dials: `https://host[:port]`, or `http://` with `ForceHTTP`.
    pub fn relay_url(&self) -> String {
        let scheme = if self.force_http { "http" } else { "https" };
        let default_port = if self.force_http { 80 } else { 443 };
        if self.derp_port == 0 || self.derp_port == default_port {
            format!("{scheme}://{}", self.host_name)
        } else {
            format!("{scheme}://{}:{}", self.host_name, self.derp_port)
        }
    }
}

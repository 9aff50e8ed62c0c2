//! Building the relay map: the operator's base map (a DERP-map JSON) plus the server's
//! embedded region, and the relay URLs endpoints use from it.

use sdk::{DerpMap, DerpRegion};

/// Why a relay map is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RelayMapError {
    /// Two regions share an id.
    #[error("region ID {id} is used by both the embedded relay and the relay map")]
    RegionConflict {
        /// The id.
        id: i64,
    },
    /// A region's key does not match its `RegionID`.
    #[error("region {key:?} has RegionID {id}; they must match")]
    KeyMismatch {
        /// The JSON key.
        key: String,
        /// The region's id.
        id: i64,
    },
}

/// The base map with the embedded region added (when there is one).
pub fn merge(base: DerpMap, embedded: Option<DerpRegion>) -> Result<DerpMap, RelayMapError> {
    let mut map = base;
    for (key, region) in &map.regions {
        if key.parse::<i64>().ok() != Some(region.region_id) {
            return Err(RelayMapError::KeyMismatch {
                key: key.clone(),
                id: region.region_id,
            });
        }
    }
    if let Some(region) = embedded {
        let key = region.region_id.to_string();
        if map.regions.contains_key(&key) {
            return Err(RelayMapError::RegionConflict {
                id: region.region_id,
            });
        }
        map.regions.insert(key, region);
    }
    Ok(map)
}

/// Whether the map has a relay to carry tunnels (a map without one still lets workspace
/// proxies' relays, which join it while healthy, and direct paths carry them).
pub fn has_relay(map: &DerpMap) -> bool {
    map.regions
        .values()
        .flat_map(|region| &region.nodes)
        .any(|node| !node.stun_only)
}

/// The embedded relay's region: one node at the server's own host and port (`http` means
/// the relay is reached without TLS).
pub fn embedded_region(
    id: i64,
    code: &str,
    name: &str,
    host: &str,
    port: u16,
    http: bool,
) -> DerpRegion {
    DerpRegion {
        region_id: id,
        region_code: code.to_owned(),
        region_name: name.to_owned(),
        embedded_relay: true,
        nodes: vec![sdk::DerpNode {
            name: format!("{id}a"),
            region_id: id,
            host_name: host.to_owned(),
            derp_port: port,
            stun_port: -1,
            stun_only: false,
            force_http: http,
            quic_cert: None,
        }],
    }
}

/// A relay as an endpoint uses it.
#[derive(Clone, Debug)]
pub struct RelaySpec {
    /// Where its relay protocol is served.
    pub url: iroh::RelayUrl,
    /// Its QUIC address discovery: UDP port and the certificate to trust for it.
    pub discovery: Option<(u16, rustls::pki_types::CertificateDer<'static>)>,
}

impl From<iroh::RelayUrl> for RelaySpec {
    /// A relay without address discovery.
    fn from(url: iroh::RelayUrl) -> Self {
        Self {
            url,
            discovery: None,
        }
    }
}

/// Every relay in the map (with its address discovery when it has one), in region order;
/// nodes whose URL or certificate do not parse are skipped with a warning.
pub fn relays(map: &DerpMap) -> Vec<RelaySpec> {
    use rustls::pki_types::pem::PemObject;
    map.regions
        .values()
        .flat_map(|region| &region.nodes)
        .filter(|node| !node.stun_only)
        .filter_map(|node| {
            let url = match node.relay_url().parse() {
                Ok(url) => url,
                Err(_) => {
                    tracing::warn!(host = %node.host_name, "skipping a relay whose URL does not parse");
                    return None;
                }
            };
            let port = u16::try_from(node.stun_port).ok().filter(|port| *port != 0);
            let cert = node.quic_cert.as_deref().and_then(|pem| {
                rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
                    .inspect_err(|err| tracing::warn!(error = %err, "ignoring a relay's unparsable certificate"))
                    .ok()
            });
            let discovery = port.zip(cert);
            Some(RelaySpec { url, discovery })
        })
        .collect()
}

/// The name of the region a relay URL belongs to (its code when it has no name, the URL
/// itself when no region has it).
pub fn region_name(map: &DerpMap, url: &iroh::RelayUrl) -> String {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default();
    map.regions
        .values()
        .find(|region| {
            region.nodes.iter().any(|node| {
                node.host_name == host && (port.is_none() || port == Some(node.relay_port()))
            })
        })
        .map(|region| {
            if region.region_name.is_empty() {
                region.region_code.clone()
            } else {
                region.region_name.clone()
            }
        })
        .unwrap_or_else(|| url.to_string())
}

/// Every relay URL in the map, in region order.
pub fn relay_urls(map: &DerpMap) -> Vec<String> {
    map.regions
        .values()
        .flat_map(|region| &region.nodes)
        .filter(|node| !node.stun_only)
        .map(|node| node.relay_url())
        .collect()
}

#[cfg(test)]
mod tests {
    use sdk::DerpNode;

    use super::*;

    fn region(id: i64, host: &str) -> DerpRegion {
        DerpRegion {
            region_id: id,
            region_code: format!("r{id}"),
            region_name: format!("Region {id}"),
            embedded_relay: false,
            nodes: vec![DerpNode {
                name: format!("{id}a"),
                region_id: id,
                host_name: host.to_owned(),
                derp_port: 0,
                stun_port: -1,
                stun_only: false,
                force_http: false,
                quic_cert: None,
            }],
        }
    }

    #[test]
    fn merges_and_detects_conflicts() {
        let base: DerpMap = serde_json::from_str(
            r#"{"Regions": {"1": {"RegionID": 1, "RegionCode": "myderp", "RegionName": "My DERP",
                "Nodes": [{"Name": "1", "RegionID": 1, "HostName": "your-hostname.com"}]}}}"#,
        )
        .unwrap();
        let merged = merge(base.clone(), Some(region(999, "coder.example.com"))).unwrap();
        assert_eq!(
            relay_urls(&merged),
            ["https://your-hostname.com", "https://coder.example.com"]
        );
        assert_eq!(
            merge(base.clone(), Some(region(1, "x"))),
            Err(RelayMapError::RegionConflict { id: 1 })
        );
        let empty = merge(DerpMap::default(), None).unwrap();
        assert!(!has_relay(&empty));
        let mut mismatched = base;
        mismatched.regions.insert("7".into(), region(8, "y"));
        assert!(matches!(
            merge(mismatched, None),
            Err(RelayMapError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn node_urls() {
        let mut node = region(1, "relay.local").nodes.remove(0);
        assert_eq!(node.relay_url(), "https://relay.local");
        node.force_http = true;
        node.derp_port = 3000;
        assert_eq!(node.relay_url(), "http://relay.local:3000");
    }
}

//! Converting between iroh's endpoint addresses and the coordinator's wire form.

use std::net::SocketAddr;

use iroh::{EndpointAddr, TransportAddr};
use sdk::TunnelAddress;

/// An address the coordinator passed on that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid tunnel address: {0}")]
pub struct AddressError(String);

/// The wire form of an endpoint's address.
pub fn to_wire(address: &EndpointAddr) -> TunnelAddress {
    let mut wire = TunnelAddress {
        endpoint_id: address.id.to_string(),
        ..TunnelAddress::default()
    };
    for transport in &address.addrs {
        match transport {
            TransportAddr::Relay(url) => wire.relay_url = Some(url.to_string()),
            TransportAddr::Ip(ip) => wire.direct_addresses.push(ip.to_string()),
            _ => {}
        }
    }
    wire.direct_addresses.sort();
    wire
}

/// The iroh address of the wire form.
pub fn from_wire(wire: &TunnelAddress) -> Result<EndpointAddr, AddressError> {
    let id = wire
        .endpoint_id
        .parse()
        .map_err(|_| AddressError(format!("endpoint id {:?}", wire.endpoint_id)))?;
    let mut address = EndpointAddr::new(id);
    if let Some(url) = &wire.relay_url {
        let url = url
            .parse()
            .map_err(|_| AddressError(format!("relay URL {url:?}")))?;
        address = address.with_relay_url(url);
    }
    for ip in &wire.direct_addresses {
        let ip: SocketAddr = ip
            .parse()
            .map_err(|_| AddressError(format!("direct address {ip:?}")))?;
        address = address.with_ip_addr(ip);
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let id = iroh::SecretKey::from_bytes(&[3; 32]).public();
        let address = EndpointAddr::new(id)
            .with_relay_url("http://127.0.0.1:3000/".parse().unwrap())
            .with_ip_addr("198.18.0.2:4000".parse().unwrap());
        let wire = to_wire(&address);
        assert_eq!(wire.direct_addresses, vec!["198.18.0.2:4000"]);
        assert_eq!(from_wire(&wire).unwrap(), address);
        let broken = TunnelAddress {
            endpoint_id: "nope".into(),
            ..TunnelAddress::default()
        };
        assert!(from_wire(&broken).is_err());
    }
}

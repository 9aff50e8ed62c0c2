//! Tunnels through a real relay on loopback, fully offline.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

use std::time::Duration;

use iroh::Endpoint;
use tunnel::relay::{AllowList, Relay};
use tunnel::{EndpointAddr, EndpointOptions, Path, SecretKey};

const ALPN: &[u8] = b"coder/test-echo";

async fn relay(allowed: &AllowList) -> Relay {
    Relay::spawn("127.0.0.1:0".parse().unwrap(), allowed.clone())
        .await
        .unwrap()
}

async fn endpoint(relay: &Relay, allowed: &AllowList, direct: bool) -> Endpoint {
    let secret_key = SecretKey::generate();
    allowed.allow(secret_key.public());
    let endpoint = tunnel::bind(EndpointOptions {
        secret_key,
        relays: vec![relay.url().clone().into()],
        alpns: vec![ALPN.to_vec()],
        direct,
        // Direct paths stay on loopback: tests send nothing to other addresses.
        bind: Some("127.0.0.1:0".parse().unwrap()),
        lookup: None,
    })
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(10), endpoint.online())
        .await
        .expect("the endpoint reaches its relay");
    endpoint
}

/// Accepts one connection and echoes one stream.
fn serve_echo(endpoint: Endpoint) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let connection = endpoint.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = connection.accept_bi().await.unwrap();
        tokio::io::copy(&mut recv, &mut send).await.unwrap();
        send.finish().unwrap();
        connection.closed().await;
    })
}

async fn echo(client: &Endpoint, server: EndpointAddr, payload: &[u8]) -> (Vec<u8>, Path) {
    let connection = tokio::time::timeout(Duration::from_secs(10), client.connect(server, ALPN))
        .await
        .expect("connected in time")
        .unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let writing = async {
        send.write_all(payload).await.unwrap();
        send.finish().unwrap();
    };
    let (_, echoed) = tokio::join!(writing, recv.read_to_end(payload.len() + 1));
    let path = tunnel::path(&connection);
    connection.close(0u32.into(), b"done");
    (echoed.unwrap(), path)
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|idx| (idx * 7 + idx / 251) as u8).collect()
}

#[tokio::test]
async fn relayed_tunnels_carry_data_both_ways() {
    let allowed = AllowList::default();
    let relay = relay(&allowed).await;
    let server = endpoint(&relay, &allowed, false).await;
    let client = endpoint(&relay, &allowed, false).await;
    let address = EndpointAddr::new(server.id()).with_relay_url(relay.url().clone());
    let serving = serve_echo(server);
    let data = payload(4 << 20);
    let (echoed, path) = echo(&client, address, &data).await;
    assert!(echoed == data, "4 MiB come back intact");
    assert_eq!(path, Path::Relay(relay.url().clone()));
    serving.await.unwrap();
    // Endpoints without UDP sockets still hand the relay batches of packets: one frame per
    // 1.4 KB packet made the relay the bottleneck of every relayed tunnel.
    let stats = relay.stats();
    let packets = stats.bytes_received / 1200;
    assert!(
        stats.packets_received * 2 < packets,
        "{} frames carried {} bytes",
        stats.packets_received,
        stats.bytes_received
    );
}

#[tokio::test]
async fn tunnels_go_direct_when_they_can() {
    let allowed = AllowList::default();
    let relay = relay(&allowed).await;
    let server = endpoint(&relay, &allowed, true).await;
    let client = endpoint(&relay, &allowed, true).await;
    // Only the relay is known to the client: the direct path is found by the tunnel itself.
    let address = EndpointAddr::new(server.id()).with_relay_url(relay.url().clone());
    let serving = tokio::spawn(async move {
        let connection = server.accept().await.unwrap().await.unwrap();
        connection.closed().await;
    });
    let connection = client.connect(address, ALPN).await.unwrap();
    // Paths change asynchronously; watch the connection's path list rather than sleeping.
    let mut paths = connection.paths_stream();
    let mut path = tunnel::path(&connection);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !matches!(path, Path::Direct(_)) {
        if tokio::time::timeout_at(deadline, futures_lite_next(&mut paths))
            .await
            .is_err()
        {
            break;
        }
        path = tunnel::path(&connection);
    }
    assert!(
        matches!(path, Path::Direct(address) if address.ip().is_loopback()),
        "on one machine the tunnel goes direct, over loopback: {path:?}"
    );
    connection.close(0u32.into(), b"done");
    serving.await.unwrap();
}

#[tokio::test]
async fn the_relay_refuses_unknown_endpoints_until_allowed() {
    let allowed = AllowList::default();
    let relay = relay(&allowed).await;
    let stranger_key = SecretKey::generate();
    let stranger = tunnel::bind(EndpointOptions {
        secret_key: stranger_key.clone(),
        relays: vec![relay.url().clone().into()],
        alpns: Vec::new(),
        direct: false,
        bind: None,
        lookup: None,
    })
    .await
    .unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(3), stranger.online()).await;
    assert!(
        refused.is_err(),
        "an unknown endpoint never gets a home relay"
    );
    allowed.allow(stranger_key.public());
    tokio::time::timeout(Duration::from_secs(30), stranger.online())
        .await
        .expect("once allowed, it gets in on its next attempt");
}

/// Waits for the next item of a stream (the path list changed).
async fn futures_lite_next<S: futures_util::Stream + Unpin>(stream: &mut S) {
    use futures_util::StreamExt;
    let _ = stream.next().await;
}

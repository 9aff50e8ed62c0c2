//! The relay embedded in the server, on the API's own port.

use std::time::Duration;

use testkit::TestServer;
use tunnel::{EndpointAddr, EndpointOptions, RelayUrl, SecretKey};

const ALPN: &[u8] = b"coder/test-relay";

async fn endpoint(relay: &RelayUrl, key: SecretKey) -> iroh::Endpoint {
    tunnel::bind(EndpointOptions {
        secret_key: key,
        relays: vec![relay.clone().into()],
        alpns: vec![ALPN.to_vec()],
        direct: false,
        bind: None,
        lookup: None,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_relay_shares_the_api_port_and_admits_only_known_endpoints() {
    let server = TestServer::start().await;
    let relay = server.relay().expect("the relay is on by default").clone();
    let relay_url: RelayUrl = server.url.as_str().parse().unwrap();

    let stranger = endpoint(&relay_url, SecretKey::generate()).await;
    let refused = tokio::time::timeout(Duration::from_secs(3), stranger.online()).await;
    assert!(
        refused.is_err(),
        "an endpoint the deployment does not know is refused"
    );

    let (server_key, client_key) = (SecretKey::generate(), SecretKey::generate());
    relay.allowed().allow(server_key.public());
    relay.allowed().allow(client_key.public());
    let server_end = endpoint(&relay_url, server_key).await;
    let client_end = endpoint(&relay_url, client_key).await;
    tokio::time::timeout(Duration::from_secs(10), server_end.online())
        .await
        .expect("an allowed endpoint gets its home relay on the API's port");
    let address = EndpointAddr::new(server_end.id()).with_relay_url(relay_url.clone());
    let serving = tokio::spawn(async move {
        let connection = server_end.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = connection.accept_bi().await.unwrap();
        tokio::io::copy(&mut recv, &mut send).await.unwrap();
        send.finish().unwrap();
        connection.closed().await;
    });
    let connection =
        tokio::time::timeout(Duration::from_secs(10), client_end.connect(address, ALPN))
            .await
            .unwrap()
            .unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(b"through the API port").await.unwrap();
    send.finish().unwrap();
    let echoed = recv.read_to_end(1024).await.unwrap();
    assert_eq!(echoed, b"through the API port");
    assert_eq!(tunnel::path(&connection), tunnel::Path::Relay(relay_url));
    connection.close(0u32.into(), b"done");
    serving.await.unwrap();

    // The API on the same port is unaffected.
    assert!(server.client().build_info().await.is_ok());
}

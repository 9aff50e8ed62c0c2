//! The agent's tunnel endpoint: it joins the coordinator (publishing its address, learning
//! which clients may connect), accepts tunnels from those clients only, and serves each stream
//! the service its header names.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sdk::client::Client;
use sdk::{AgentManifest, AuthorizedClients};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tunnel::proto::{self, Direction, StreamReply, StreamRequest};
use tunnel::{
    Connection, Endpoint, EndpointId, EndpointOptions, RecvStream, SecretKey, SendStream, Watcher,
};

use crate::process::Environment;
use crate::ssh::SshServer;
use crate::ssh_sessions::SshSessions;
use crate::terminal::Terminals;

/// How long a connecting client may wait for the coordinator's word that it is allowed (its
/// registration and its first packet race).
const AUTHORIZATION_WAIT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The tunnels users hold to this agent, for its heartbeats.
#[derive(Clone)]
pub(crate) struct Tracker {
    state: Arc<std::sync::Mutex<TrackerState>>,
    /// The relay map, to name relay paths (it changes as workspace proxies come and go).
    derp_map: Arc<std::sync::RwLock<sdk::DerpMap>>,
    /// Fires when a tunnel opens, so its path is reported soon rather than at the next beat.
    pub(crate) opened: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct TrackerState {
    next_id: u64,
    open: Vec<(u64, Connection, chrono::DateTime<chrono::Utc>)>,
    last_path: String,
    last_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Bytes of tunnels already closed: received, sent.
    closed_traffic: (u64, u64),
}

impl Tracker {
    pub(crate) fn new(derp_map: sdk::DerpMap) -> Self {
        Self {
            state: Arc::default(),
            derp_map: Arc::new(std::sync::RwLock::new(derp_map)),
            opened: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, connection: Connection) -> u64 {
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        state.open.push((id, connection, chrono::Utc::now()));
        drop(state);
        self.opened.notify_one();
        id
    }

    fn remove(&self, id: u64) {
        let mut state = self.lock();
        // The latest tunnel's path is kept when it closes, even between two heartbeats.
        self.note_latest(&mut state);
        let closing: Vec<(u64, u64)> = state
            .open
            .iter()
            .filter(|(open, _, _)| *open == id)
            .map(|(_, connection, _)| traffic(connection))
            .collect();
        for (rx, tx) in closing {
            state.closed_traffic.0 += rx;
            state.closed_traffic.1 += tx;
        }
        state.open.retain(|(open, _, _)| *open != id);
    }

    fn note_latest(&self, state: &mut TrackerState) {
        let Some((_, connection, at)) = state.open.last() else {
            return;
        };
        let path = match tunnel::path(connection) {
            tunnel::Path::Direct(_) => "p2p".to_owned(),
            tunnel::Path::Relay(url) => format!(
                "relay ({})",
                tunnel::relay_map::region_name(
                    &self
                        .derp_map
                        .read()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                    &url
                )
            ),
            tunnel::Path::Unknown => return,
        };
        state.last_at = Some(*at);
        state.last_path = path;
    }

    /// Open tunnels and the latest one's path now (or when it closed).
    pub(crate) fn stats(&self) -> sdk::AgentConnectionStats {
        let mut state = self.lock();
        self.note_latest(&mut state);
        let (rx_bytes, tx_bytes) =
            state
                .open
                .iter()
                .fold(state.closed_traffic, |(rx, tx), (_, connection, _)| {
                    let (more_rx, more_tx) = traffic(connection);
                    (rx + more_rx, tx + more_tx)
                });
        sdk::AgentConnectionStats {
            open: i32::try_from(state.open.len()).unwrap_or(i32::MAX),
            last_path: state.last_path.clone(),
            last_at: state.last_at,
            rx_bytes,
            tx_bytes,
        }
    }
}

/// A tunnel's bytes so far (UDP payloads, all paths): received, sent.
fn traffic(connection: &Connection) -> (u64, u64) {
    let stats = connection.stats();
    (stats.udp_rx.bytes, stats.udp_tx.bytes)
}

/// Binds the endpoint and serves tunnels until `stop` fires.
pub(crate) async fn serve(
    client: Client,
    manifest: AgentManifest,
    tracker: Tracker,
    stop: CancellationToken,
) {
    let relays = tunnel::relay_map::relays(&manifest.derp_map);
    let endpoint = match tunnel::bind(EndpointOptions {
        secret_key: SecretKey::generate(),
        relays,
        alpns: vec![proto::AGENT_ALPN.to_vec()],
        direct: !manifest.disable_direct_connections,
        bind: None,
        lookup: None,
    })
    .await
    {
        Ok(endpoint) => endpoint,
        Err(err) => {
            tracing::error!(error = %err, "the tunnel endpoint could not start; SSH and port forwarding are unavailable");
            return;
        }
    };
    tracing::info!(endpoint_id = %endpoint.id(), "tunnel endpoint ready");
    let (authorized, allowed) = watch::channel(HashSet::new());
    let environment = Environment::new(&manifest);
    let services = Arc::new(Services {
        terminals: Terminals::new(Arc::new(environment.clone())),
        ssh_sessions: Arc::new(SshSessions::new(SshServer::new(environment))),
    });
    let initial: Vec<tunnel::RelayUrl> = tunnel::relay_map::relays(&manifest.derp_map)
        .into_iter()
        .map(|relay| relay.url)
        .collect();
    tokio::select! {
        () = stop.cancelled() => {}
        () = coordinate(&client, &endpoint, authorized) => {}
        () = accept(&endpoint, allowed, services, tracker.clone()) => {}
        () = follow_relay_map(&client, &endpoint, initial, &tracker) => {}
    }
    endpoint.close().await;
}

/// How often the relay map is fetched again: workspace proxies' relays join it while healthy.
const RELAY_MAP_REFRESH: Duration = Duration::from_secs(15);

/// Keeps the endpoint's relays in step with the deployment's relay map, so the agent can make
/// a newly registered proxy's relay its home when it is nearest, and leaves a dead one.
async fn follow_relay_map(
    client: &Client,
    endpoint: &Endpoint,
    initial: Vec<tunnel::RelayUrl>,
    tracker: &Tracker,
) {
    let mut relays = tunnel::Relays::new(initial);
    let mut refresh = tokio::time::interval(RELAY_MAP_REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    refresh.tick().await;
    loop {
        tokio::select! {
            _ = refresh.tick() => {}
            // A home relay that goes away (a workspace proxy dying) is left within seconds and
            // the new address published, so relayed tunnels move rather than time out.
            lost = tunnel::home_relay_lost(endpoint) => {
                relays.suspend(endpoint, &lost).await;
                continue;
            }
        }
        // The manifest carries the relay map (the agent's token opens nothing else that does).
        let info = match client.agent_manifest().await {
            Ok(info) => info,
            Err(err) => {
                tracing::debug!(error = %err, "refreshing the relay map failed");
                continue;
            }
        };
        let map = tunnel::relay_map::relays(&info.derp_map);
        if relays.apply(endpoint, &map).await {
            tracing::info!(relays = map.len(), "the relay map changed");
        }
        *tracker
            .derp_map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = info.derp_map;
    }
}

/// Keeps a coordinate stream open (reconnecting with backoff), publishes the endpoint's
/// address whenever it changes and after every reconnect, and keeps `authorized` current.
async fn coordinate(
    client: &Client,
    endpoint: &Endpoint,
    authorized: watch::Sender<HashSet<EndpointId>>,
) {
    let id = endpoint.id().to_string();
    let mut backoff = Duration::from_millis(100);
    let mut addresses = endpoint.watch_addr();
    loop {
        match client.agent_coordinate(&id).await {
            Ok(mut events) => {
                backoff = Duration::from_millis(100);
                // The open stream admits this endpoint to the relay; publish once it has its
                // home relay there (the path that always works), or after a few seconds
                // without one (direct addresses still serve clients on the same network).
                let _ = tokio::time::timeout(Duration::from_secs(5), endpoint.online()).await;
                let mut published = None;
                loop {
                    let address = tunnel::address::to_wire(&addresses.get());
                    if published.as_ref() != Some(&address) {
                        match client.agent_publish_address(&address).await {
                            Ok(()) => published = Some(address),
                            Err(err) => {
                                tracing::warn!(error = %err, "publishing the tunnel address failed");
                                break;
                            }
                        }
                    }
                    tokio::select! {
                        event = events.next::<AuthorizedClients>() => match event {
                            Ok(Some((_, clients))) => {
                                let ids = clients
                                    .endpoint_ids
                                    .iter()
                                    .filter_map(|id| id.parse().ok())
                                    .collect();
                                authorized.send_replace(ids);
                            }
                            Ok(None) => break,
                            Err(err) => {
                                tracing::info!(error = %err, "the coordinate stream broke; reconnecting");
                                break;
                            }
                        },
                        changed = addresses.updated() => if changed.is_err() { return },
                    }
                }
            }
            Err(err) => {
                tracing::info!(error = %err, retry_in = ?backoff, "joining the coordinator failed")
            }
        }
        // Clients already connected keep their tunnels; the set is only replaced, never
        // cleared, while the coordinator is away.
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn accept(
    endpoint: &Endpoint,
    allowed: watch::Receiver<HashSet<EndpointId>>,
    services: Arc<Services>,
    tracker: Tracker,
) {
    while let Some(incoming) = endpoint.accept().await {
        let allowed = allowed.clone();
        let services = services.clone();
        let tracker = tracker.clone();
        tokio::spawn(async move {
            let connection = match incoming.await {
                Ok(connection) => connection,
                Err(err) => {
                    tracing::debug!(error = %err, "an incoming tunnel failed");
                    return;
                }
            };
            let peer = connection.remote_id();
            if !is_authorized(allowed, peer).await {
                tracing::warn!(%peer, "refused a tunnel from an endpoint the coordinator did not authorize");
                connection.close(1u32.into(), b"not authorized");
                return;
            }
            tracing::info!(%peer, path = ?tunnel::path(&connection), "client connected");
            let id = tracker.add(connection.clone());
            serve_connection(connection, services).await;
            tracker.remove(id);
            tracing::info!(%peer, "client disconnected");
        });
    }
}

async fn is_authorized(
    mut allowed: watch::Receiver<HashSet<EndpointId>>,
    peer: EndpointId,
) -> bool {
    tokio::time::timeout(
        AUTHORIZATION_WAIT,
        allowed.wait_for(|ids| ids.contains(&peer)),
    )
    .await
    .is_ok_and(|found| found.is_ok())
}

struct Services {
    ssh_sessions: Arc<SshSessions>,
    terminals: Terminals,
}

async fn serve_connection(connection: Connection, services: Arc<Services>) {
    while let Ok((send, recv)) = connection.accept_bi().await {
        let services = services.clone();
        tokio::spawn(async move {
            if let Err(err) = serve_stream(send, recv, &services).await {
                tracing::debug!(error = %err, "a tunnel stream ended with an error");
            }
        });
    }
}

async fn serve_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    services: &Services,
) -> anyhow::Result<()> {
    let request: StreamRequest = proto::read_header(&mut recv).await?;
    match request {
        StreamRequest::SshSession {
            id,
            resume,
            progress,
        } => {
            let Ok(id) = id.parse::<uuid::Uuid>() else {
                return refuse(&mut send, format!("SSH session id {id:?} is not a UUID")).await;
            };
            services
                .ssh_sessions
                .attach(id, resume, progress, send, recv)
                .await?;
        }
        StreamRequest::Tcp { port } => match dial_local(port).await {
            Ok(mut tcp) => {
                proto::write_header(&mut send, &StreamReply::default()).await?;
                tunnel::pipe::splice_tcp(&mut send, &mut recv, &mut tcp).await?;
            }
            Err(err) => refuse(&mut send, format!("connecting to port {port}: {err}")).await?,
        },
        StreamRequest::Udp { port } => {
            let socket = UdpSocket::bind("127.0.0.1:0").await?;
            socket.connect(("127.0.0.1", port)).await?;
            proto::write_header(&mut send, &StreamReply::default()).await?;
            relay_datagrams(socket, send, recv).await?;
        }
        StreamRequest::Speedtest {
            direction,
            duration_ms,
        } => {
            proto::write_header(&mut send, &StreamReply::default()).await?;
            let duration = Duration::from_millis(duration_ms.min(300_000));
            speedtest(direction, duration, send, recv).await?;
        }
        StreamRequest::Terminal {
            id,
            command,
            rows,
            cols,
        } => {
            let Ok(id) = id.parse::<uuid::Uuid>() else {
                return refuse(&mut send, format!("terminal id {id:?} is not a UUID")).await;
            };
            proto::write_header(&mut send, &StreamReply::default()).await?;
            services
                .terminals
                .attach(id, &command, rows, cols, send, recv)
                .await?;
        }
        StreamRequest::ListeningPorts => {
            proto::write_header(&mut send, &StreamReply::default()).await?;
            let ports = tokio::task::spawn_blocking(crate::ports::listening).await?;
            proto::write_header(&mut send, &sdk::ListeningPortsResponse { ports }).await?;
            send.finish()?;
        }
        StreamRequest::Echo => {
            proto::write_header(&mut send, &StreamReply::default()).await?;
            tunnel::pipe::copy(&mut recv, &mut send).await?;
            send.finish()?;
        }
    }
    Ok(())
}

async fn refuse(send: &mut SendStream, error: String) -> anyhow::Result<()> {
    proto::write_header(
        send,
        &StreamReply {
            error: Some(error),
            progress: None,
        },
    )
    .await?;
    send.finish()?;
    Ok(())
}

/// Connects to a port on the workspace's loopback, IPv4 first.
async fn dial_local(port: u16) -> std::io::Result<TcpStream> {
    let tcp = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(tcp) => tcp,
        Err(v4) => TcpStream::connect(("::1", port)).await.map_err(|_| v4)?,
    };
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// Forwards length-framed datagrams from the stream to the socket and back.
async fn relay_datagrams(
    socket: UdpSocket,
    mut send: SendStream,
    mut recv: RecvStream,
) -> anyhow::Result<()> {
    let socket = Arc::new(socket);
    let inbound = {
        let socket = socket.clone();
        async move {
            while let Ok(datagram) = proto::read_datagram(&mut recv).await {
                socket.send(&datagram).await?;
            }
            anyhow::Ok(())
        }
    };
    let outbound = async move {
        let mut buffer = vec![0; 65535];
        loop {
            let n = socket.recv(&mut buffer).await?;
            proto::write_datagram(&mut send, &buffer[..n]).await?;
        }
        #[allow(unreachable_code)]
        anyhow::Ok(())
    };
    tokio::select! {
        result = inbound => result,
        result = outbound => result,
    }
}

async fn speedtest(
    direction: Direction,
    duration: Duration,
    mut send: SendStream,
    mut recv: RecvStream,
) -> anyhow::Result<()> {
    match direction {
        Direction::Down => {
            let chunk = vec![0u8; 64 * 1024];
            let deadline = tokio::time::Instant::now() + duration;
            while tokio::time::Instant::now() < deadline {
                send.write_all(&chunk).await?;
            }
            send.finish()?;
        }
        Direction::Up => {
            let mut buffer = vec![0u8; 64 * 1024];
            let mut total: u64 = 0;
            loop {
                let n = AsyncReadExt::read(&mut recv, &mut buffer).await?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            send.write_u64(total).await?;
            send.finish()?;
        }
    }
    Ok(())
}

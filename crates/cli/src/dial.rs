//! Reaching a workspace's agent: find its agent, join the coordinator for the agent's address,
//! and open an end-to-end encrypted tunnel to it (direct when the network allows, else
//! through a relay). The coordinator stream stays open in the background so address changes
//! reach the tunnel, and the tunnel survives the coordinator going away.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sdk::client::Client;
use sdk::{AgentAddressEvent, Workspace, WorkspaceAgent, WorkspaceAgentStatus, WorkspaceStatus};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tunnel::proto::{self, StreamRequest};
use tunnel::{
    Connection, Endpoint, EndpointOptions, MemoryLookup, RecvStream, SecretKey, SendStream,
};

use crate::commands::workspaces;
use crate::output;
use crate::session;

/// How long to wait for the agent's address and for the tunnel.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How the tunnel may travel.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DialOptions {
    /// Never use a direct path (the deployment may force this too).
    pub(crate) relay_only: bool,
}

/// An open tunnel to a workspace's agent.
pub(crate) struct AgentTunnel {
    pub(crate) workspace: Workspace,
    pub(crate) endpoint: Endpoint,
    pub(crate) connection: Connection,
    /// The relay map's regions, to name a relay path (kept current while the tunnel lives).
    derp_map: Arc<RwLock<sdk::DerpMap>>,
    /// Whether direct paths were ruled out, and by whom.
    pub(crate) direct_blocked: Option<&'static str>,
    /// The agent's address as the coordinator last told it.
    agent_address: watch::Receiver<tunnel::EndpointAddr>,
    coordination: JoinHandle<()>,
    relay_updates: JoinHandle<()>,
}

impl Drop for AgentTunnel {
    fn drop(&mut self) {
        self.coordination.abort();
        self.relay_updates.abort();
    }
}

/// How often a long-lived tunnel fetches the relay map again (workspace proxies' relays join it
/// while healthy and leave it when not).
const RELAY_MAP_REFRESH: Duration = Duration::from_secs(15);

/// Keeps the endpoint's relays in step with the deployment's relay map.
async fn follow_relay_map(client: Client, endpoint: Endpoint, derp_map: Arc<RwLock<sdk::DerpMap>>) {
    let mut relays = {
        let map = derp_map.read().unwrap_or_else(PoisonError::into_inner);
        tunnel::Relays::new(
            tunnel::relay_map::relays(&map)
                .into_iter()
                .map(|relay| relay.url)
                .collect(),
        )
    };
    let mut refresh = tokio::time::interval(RELAY_MAP_REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    refresh.tick().await;
    loop {
        tokio::select! {
            _ = refresh.tick() => {}
            // Its home relay went away: home elsewhere now, so the agent can answer there.
            lost = tunnel::home_relay_lost(&endpoint) => {
                relays.suspend(&endpoint, &lost).await;
                continue;
            }
        }
        let Ok(info) = client.agent_connection_info().await else {
            continue;
        };
        let map = tunnel::relay_map::relays(&info.derp_map);
        relays.apply(&endpoint, &map).await;
        *derp_map.write().unwrap_or_else(PoisonError::into_inner) = info.derp_map;
    }
}

/// Splits `workspace[.agent]`.
fn split_agent(target: &str) -> (&str, Option<&str>) {
    match target.rsplit_once('.') {
        Some((workspace, agent)) if !workspace.is_empty() && !agent.is_empty() => {
            (workspace, Some(agent))
        }
        _ => (target, None),
    }
}

/// The running workspace's agent, or an error telling the user what to do.
pub(crate) async fn find_agent(
    client: &Client,
    target: &str,
) -> Result<(Workspace, WorkspaceAgent)> {
    let (name, agent_name) = split_agent(target);
    let workspace = workspaces::find(client, name).await?;
    let build = &workspace.latest_build;
    if build.status != WorkspaceStatus::Running {
        return Err(output::hint(
            NotRunning {
                name: workspace.name.clone(),
                status: build.status.name(),
            },
            format!("start it with 'coder start {}'", workspace.name),
        ));
    }
    let agent = match agent_name {
        Some(agent_name) => build
            .agents
            .iter()
            .find(|agent| agent.name == agent_name)
            .with_context(|| format!("workspace {name:?} has no agent named {agent_name:?}"))?,
        None => match build.agents.as_slice() {
            [] => bail!("workspace {name:?} has no agent: its template defines no coder_agent"),
            [agent] => agent,
            agents => bail!(
                "workspace {name:?} has {} agents; name one: {}",
                agents.len(),
                agents
                    .iter()
                    .map(|agent| format!("{name}.{}", agent.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    Ok((workspace.clone(), agent.clone()))
}

/// Opens a tunnel to the workspace's agent.
pub(crate) async fn dial(
    client: &Client,
    target: &str,
    options: DialOptions,
) -> Result<AgentTunnel> {
    let (workspace, agent) = find_agent(client, target).await?;
    if agent.status != WorkspaceAgentStatus::Connected {
        output::note(format!(
            "The workspace agent is {}; waiting for it to connect...",
            agent_status(agent.status)
        ));
    }
    let info = client
        .agent_connection_info()
        .await
        .map_err(session::explain)
        .context("reading the deployment's relay map")?;
    let direct_blocked = if info.disable_direct_connections {
        Some("the deployment blocks direct connections (--block-direct-connections)")
    } else if options.relay_only {
        Some("direct connections are disabled on this client (--disable-direct-connections)")
    } else {
        None
    };
    // Join the coordinator before the endpoint exists: the relay admits this endpoint id from
    // then on, so the endpoint's first relay connection is accepted rather than refused and
    // retried with backoff.
    let secret_key = SecretKey::generate();
    let endpoint_id = secret_key.public().to_string();
    let mut events = client
        .coordinate(agent.id, &endpoint_id)
        .await
        .map_err(session::explain)
        .context("joining the coordinator")?;
    let lookup = MemoryLookup::new();
    let endpoint = tunnel::bind(EndpointOptions {
        secret_key,
        relays: tunnel::relay_map::relays(&info.derp_map),
        alpns: Vec::new(),
        direct: direct_blocked.is_none(),
        bind: None,
        lookup: Some(lookup.clone()),
    })
    .await
    .context("starting the tunnel endpoint")?;
    let has_relays = !tunnel::relay_map::relays(&info.derp_map).is_empty();
    let first = tokio::time::timeout(CONNECT_TIMEOUT, async {
        loop {
            match events.next::<AgentAddressEvent>().await? {
                // An agent that has just started may publish before it has a home relay: its
                // direct addresses alone may be unreachable (behind its NAT), and a dial in
                // flight does not pick up the relay learnt later. Wait for the relay, unless
                // the deployment has none.
                Some((
                    _,
                    AgentAddressEvent {
                        address: Some(address),
                    },
                )) if address.relay_url.is_some()
                    || (!has_relays && !address.direct_addresses.is_empty()) =>
                {
                    return anyhow::Ok(address);
                }
                Some(_) => {}
                None => bail!("the coordinator closed the stream"),
            }
        }
    })
    .await
    .map_err(|_| {
        output::hint(
            anyhow::anyhow!(
                "the agent of {:?} has not joined the coordinator within {}s",
                workspace.name,
                CONNECT_TIMEOUT.as_secs()
            ),
            format!("check the agent's log with 'coder show {}'", workspace.name),
        )
    })??;
    let address = tunnel::address::from_wire(&first)?;
    lookup.set_endpoint_info(address.clone());
    let (latest, mut addresses) = watch::channel(address);
    let coordination = tokio::spawn(keep_coordinating(
        client.clone(),
        agent.id,
        endpoint.id().to_string(),
        events,
        lookup,
        latest,
    ));
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, async {
        loop {
            let target = addresses.borrow_and_update().clone();
            tokio::select! {
                connected = endpoint.connect(target, proto::AGENT_ALPN) => break connected,
                // The agent moved (its relay went away, say) while we dialled its old address:
                // a dial in flight never learns that, so start again at the new one.
                changed = addresses.changed() => {
                    if changed.is_err() {
                        let target = addresses.borrow().clone();
                        break endpoint.connect(target, proto::AGENT_ALPN).await;
                    }
                }
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("the tunnel to the agent did not open within 30s"))?
    .context("opening the tunnel to the agent")?;
    let derp_map = Arc::new(RwLock::new(info.derp_map));
    let relay_updates = tokio::spawn(follow_relay_map(
        client.clone(),
        endpoint.clone(),
        derp_map.clone(),
    ));
    Ok(AgentTunnel {
        workspace,
        endpoint,
        connection,
        derp_map,
        direct_blocked,
        agent_address: addresses,
        coordination,
        relay_updates,
    })
}

/// What it takes to dial a workspace again.
#[derive(Clone)]
pub(crate) struct Redial {
    pub(crate) client: Client,
    pub(crate) target: String,
    pub(crate) options: DialOptions,
}

impl Redial {
    /// Dials until a tunnel opens, backing off between attempts; gives up after `give_up`, or
    /// at once when the server says the workspace cannot be reached (stopped, deleted, or no
    /// longer the user's to reach): waiting would not help.
    pub(crate) async fn until_up(&self, give_up: Option<Duration>) -> Result<AgentTunnel> {
        let since = std::time::Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            match dial(&self.client, &self.target, self.options).await {
                Ok(tunnel) => return Ok(tunnel),
                Err(err) if is_final(&err) => return Err(err),
                Err(err) if give_up.is_none_or(|limit| since.elapsed() < limit) => {
                    tracing::info!(error = %err, "dialling the workspace again failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// Whether a failed dial is the server's answer rather than a network's hiccup.
fn is_final(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<NotRunning>().is_some()
            || cause
                .downcast_ref::<sdk::client::ClientError>()
                .and_then(sdk::client::ClientError::status)
                // A timeout or rate limit is worth waiting out.
                .is_some_and(|status| (400..500).contains(&status) && ![408, 429].contains(&status))
            || cause
                .downcast_ref::<output::Hinted>()
                .is_some_and(|hinted| is_final(&hinted.error))
    })
}

/// The workspace is not running (stopped, stopping, failed, deleted).
#[derive(Debug, thiserror::Error)]
#[error("workspace {name:?} is {status}, not running")]
pub(crate) struct NotRunning {
    name: String,
    status: &'static str,
}

/// Follows the agent's address changes; rejoins after the coordinator goes away.
async fn keep_coordinating(
    client: Client,
    agent_id: uuid::Uuid,
    endpoint_id: String,
    mut events: sdk::client::EventStream,
    lookup: MemoryLookup,
    latest: watch::Sender<tunnel::EndpointAddr>,
) {
    let mut backoff = Duration::from_millis(250);
    loop {
        loop {
            match events.next::<AgentAddressEvent>().await {
                Ok(Some((
                    _,
                    AgentAddressEvent {
                        address: Some(address),
                    },
                ))) => {
                    if let Ok(address) = tunnel::address::from_wire(&address) {
                        lookup.set_endpoint_info(address.clone());
                        latest.send_if_modified(|current| {
                            let changed = *current != address;
                            *current = address;
                            changed
                        });
                    }
                    backoff = Duration::from_millis(250);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            match client.coordinate(agent_id, &endpoint_id).await {
                Ok(stream) => {
                    events = stream;
                    break;
                }
                Err(err) => tracing::debug!(error = %err, "rejoining the coordinator failed"),
            }
        }
    }
}

impl AgentTunnel {
    /// Opens a stream to one of the agent's services.
    pub(crate) async fn open(&self, request: &StreamRequest) -> Result<(SendStream, RecvStream)> {
        Ok(proto::open(&self.connection, request).await?)
    }

    /// Closes the tunnel, telling the agent, rather than leaving it to time out.
    pub(crate) async fn close(&self) {
        self.connection.close(0u32.into(), b"done");
        let _ = tokio::time::timeout(Duration::from_millis(500), self.endpoint.close()).await;
    }

    /// Resolves when this tunnel can carry nothing more: its connection closed, or it goes
    /// through a relay the agent has left (iroh keeps sending on the path it selected, so the
    /// tunnel would stay silent until it times out).
    pub(crate) async fn stranded(&self) {
        let mut addresses = self.agent_address.clone();
        loop {
            let agent = addresses.borrow_and_update().clone();
            if tunnel::rides_abandoned_relay(&self.connection, &agent) {
                tracing::info!("the agent left the relay this tunnel goes through");
                return;
            }
            tokio::select! {
                _ = self.connection.closed() => return,
                changed = addresses.changed() => {
                    if changed.is_err() {
                        // The coordination task ended: only the connection can tell now.
                        self.connection.closed().await;
                        return;
                    }
                }
            }
        }
    }

    /// The path packets take now, in words: `p2p via IP:PORT` or `via <region name>`.
    pub(crate) fn path_description(&self) -> String {
        match tunnel::path(&self.connection) {
            tunnel::Path::Direct(address) => format!("p2p via {address}"),
            tunnel::Path::Relay(url) => format!("via {}", self.relay_name(&url)),
            tunnel::Path::Unknown => "via an unknown path".to_owned(),
        }
    }

    /// The relay region's name for a relay URL.
    pub(crate) fn relay_name(&self, url: &tunnel::RelayUrl) -> String {
        tunnel::relay_map::region_name(
            &self.derp_map.read().unwrap_or_else(PoisonError::into_inner),
            url,
        )
    }
}

pub(crate) fn agent_status(status: WorkspaceAgentStatus) -> &'static str {
    match status {
        WorkspaceAgentStatus::Connecting => "connecting",
        WorkspaceAgentStatus::Connected => "connected",
        WorkspaceAgentStatus::Disconnected => "disconnected",
        WorkspaceAgentStatus::Timeout => "timed out",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_refusals_stop_redialling() {
        let stopped = output::hint(
            NotRunning {
                name: "dev".into(),
                status: "stopped",
            },
            "start it",
        )
        .context("the tunnel to the workspace broke");
        assert!(is_final(&stopped));
        let gone = anyhow::Error::new(sdk::client::ClientError::Api {
            status: 404,
            response: sdk::Response::default(),
        })
        .context("finding workspace \"dev\"");
        assert!(is_final(&gone));
        let unavailable = anyhow::Error::new(sdk::client::ClientError::Api {
            status: 503,
            response: sdk::Response::default(),
        });
        assert!(!is_final(&unavailable), "the server may come back");
        assert!(!is_final(&anyhow::anyhow!(
            "the tunnel to the agent did not open within 30s"
        )));
    }

    #[test]
    fn agent_names_follow_a_dot() {
        assert_eq!(split_agent("dev"), ("dev", None));
        assert_eq!(split_agent("dev.main"), ("dev", Some("main")));
        assert_eq!(split_agent("alice/dev.main"), ("alice/dev", Some("main")));
        assert_eq!(split_agent("dev."), ("dev.", None));
    }
}

//! A server (the primary or a workspace proxy) as a tunnel client: it dials workspace agents
//! itself (direct when it can, else through a relay) for what browsers reach through it
//! (workspace apps, the web terminal, listening ports). Browsers never get a path of their own
//! to an agent.
//!
//! One endpoint per server, bound on first use; one cached connection per agent. Where the
//! agent is, and the agent's permission to admit this endpoint, come from an [`AddressBook`]:
//! the primary's in-process coordinator, or the primary's coordinator over HTTP for a proxy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tunnel::proto::{self, StreamRequest};
use tunnel::{
    Connection, Endpoint, EndpointOptions, MemoryLookup, RecvStream, SecretKey, SendStream,
};
use uuid::Uuid;

/// How long to wait for an agent's address and for the tunnel to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the server could not reach an agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentConnError {
    #[error("the server's tunnel endpoint could not start: {0}")]
    Bind(#[from] tunnel::BindError),
    #[error("the workspace agent is not connected")]
    AgentOffline,
    #[error("the tunnel to the workspace agent did not open: {0}")]
    Connect(String),
    #[error("the workspace agent refused: {0}")]
    Refused(String),
    #[error("the tunnel to the workspace agent broke: {0}")]
    Stream(String),
    #[error("the server's tunnel thread has stopped")]
    DriverGone,
}

/// A thread of its own, with a single-threaded runtime, for the endpoint and its connections'
/// QUIC drivers. Request handlers on the server's multi-threaded runtime write to tunnel
/// streams and wake a connection's driver; there it runs after everything else that is ready,
/// so replies to many requests leave in one batched UDP send. On the handlers' own runtime it
/// would run right after each write (tokio runs a task it just woke next) and send one
/// datagram per request.
struct Driver {
    handle: tokio::runtime::Handle,
    /// Dropped with the connector: ends the thread.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Driver {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a single-threaded tokio runtime builds");
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("app-tunnels".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                // Whatever still runs there (a closing endpoint) is dropped, not awaited.
                runtime.shutdown_background();
            })
            .expect("a thread for the app tunnels starts");
        Self {
            handle,
            _stop: stop,
        }
    }

    /// Runs `future` on the tunnel thread, so that what it spawns (QUIC drivers) lives there.
    async fn run<F>(&self, future: F) -> Result<F::Output, AgentConnError>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle
            .spawn(future)
            .await
            .map_err(|_| AgentConnError::DriverGone)
    }
}

/// Where agents are, and who they admit.
pub trait AddressBook: Send + Sync + 'static {
    /// Registers `endpoint` as a client of `agent_id` (so the agent admits it) for as long as
    /// the returned guard lives, and follows the agent's published address.
    fn follow(&self, agent_id: Uuid, endpoint: tunnel::EndpointId) -> Following;
}

/// An agent's address as it changes, and the registration that lets this endpoint in.
pub struct Following {
    /// `None` until the agent publishes an address.
    pub address: tokio::sync::watch::Receiver<Option<sdk::TunnelAddress>>,
    /// Dropped when the connection is: ends the registration.
    pub guard: Box<dyn Send + Sync>,
}

type Slot = Arc<AgentSlot>;

/// One agent's tunnel. Requests read the live tunnel without waiting on each other; only
/// dialling is serialized, so one dial serves every request that arrives meanwhile.
#[derive(Default)]
struct AgentSlot {
    live: std::sync::Mutex<Option<Arc<Cached>>>,
    dialling: Mutex<()>,
}

impl AgentSlot {
    fn live(&self) -> Option<Arc<Cached>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|cached| !cached.closed.load(std::sync::atomic::Ordering::Acquire))
            .cloned()
    }

    fn set(&self, cached: Option<Arc<Cached>>) {
        *self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = cached;
    }

    /// Forgets `broken`, unless another request already replaced it.
    fn forget(&self, broken: &Arc<Cached>) {
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if live
            .as_ref()
            .is_some_and(|cached| Arc::ptr_eq(cached, broken))
        {
            *live = None;
        }
    }
}

struct Cached {
    connection: Connection,
    /// Set once the connection has closed. Every request asks, and asking the connection
    /// itself takes the lock its QUIC driver holds while it works.
    closed: Arc<std::sync::atomic::AtomicBool>,
    _guard: Box<dyn Send + Sync>,
    follow: tokio::task::JoinHandle<()>,
}

impl Drop for Cached {
    fn drop(&mut self) {
        self.follow.abort();
    }
}

/// Shared by all handlers; cheap to clone.
#[derive(Clone)]
pub struct AgentConnector {
    inner: Arc<Inner>,
}

struct Inner {
    addresses: Box<dyn AddressBook>,
    relay_map: sdk::DerpMap,
    direct: bool,
    secret_key: SecretKey,
    endpoint: tokio::sync::OnceCell<(Endpoint, MemoryLookup)>,
    /// One slot per agent, dialled under its own lock: an offline agent keeps its own
    /// requests waiting, never another agent's.
    connections: std::sync::Mutex<HashMap<Uuid, Slot>>,
    /// The thread the endpoint and its connections run on (see [`Driver`]). Last, so that it
    /// is dropped last: the endpoint and connections above go while their runtime still runs.
    driver: Driver,
}

impl AgentConnector {
    /// A connector using `relay_map`'s relays (and direct paths unless `direct` is false).
    pub fn new(addresses: impl AddressBook, relay_map: sdk::DerpMap, direct: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                addresses: Box::new(addresses),
                relay_map,
                direct,
                secret_key: SecretKey::generate(),
                endpoint: tokio::sync::OnceCell::new(),
                connections: std::sync::Mutex::default(),
                driver: Driver::start(),
            }),
        }
    }

    async fn endpoint(&self) -> Result<&(Endpoint, MemoryLookup), AgentConnError> {
        self.inner
            .endpoint
            .get_or_try_init(|| async {
                let lookup = MemoryLookup::new();
                let options = EndpointOptions {
                    secret_key: self.inner.secret_key.clone(),
                    relays: tunnel::relay_map::relays(&self.inner.relay_map),
                    alpns: Vec::new(),
                    direct: self.inner.direct,
                    bind: None,
                    lookup: Some(lookup.clone()),
                };
                let endpoint = self.inner.driver.run(tunnel::bind(options)).await??;
                Ok((endpoint, lookup))
            })
            .await
    }

    /// Opens a stream to one of the agent's services, over the cached tunnel (re-dialled
    /// once if it broke).
    pub async fn open(
        &self,
        agent_id: Uuid,
        request: &StreamRequest,
    ) -> Result<(SendStream, RecvStream), AgentConnError> {
        for attempt in 0..2 {
            let cached = self.connection(agent_id).await?;
            match proto::open(&cached.connection, request).await {
                Ok(streams) => return Ok(streams),
                Err(proto::OpenError::Broken(reason)) if attempt == 0 => {
                    tracing::debug!(%agent_id, %reason, "the cached tunnel broke; dialling again");
                    self.slot(agent_id).forget(&cached);
                }
                Err(proto::OpenError::Broken(reason)) => {
                    return Err(AgentConnError::Stream(reason));
                }
                Err(proto::OpenError::Refused(reason)) => {
                    return Err(AgentConnError::Refused(reason));
                }
            }
        }
        Err(AgentConnError::Stream("the tunnel broke twice".into()))
    }

    /// Closes the server's endpoint, if it was ever bound: agents see the tunnels end cleanly
    /// instead of timing out. For shutdown, after open requests have finished.
    pub async fn close(&self) {
        self.inner
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        if let Some((endpoint, _)) = self.inner.endpoint.get() {
            endpoint.close().await;
        }
    }

    /// Whether a live tunnel to the agent is open (so a request to it will not wait to dial).
    pub fn is_connected(&self, agent_id: Uuid) -> bool {
        // Never waits: a tunnel still being dialled is not connected yet.
        self.slot(agent_id).live().is_some()
    }

    fn slot(&self, agent_id: Uuid) -> Slot {
        self.inner
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(agent_id)
            .or_default()
            .clone()
    }

    async fn connection(&self, agent_id: Uuid) -> Result<Arc<Cached>, AgentConnError> {
        let slot = self.slot(agent_id);
        if let Some(cached) = slot.live() {
            return Ok(cached);
        }
        let _dialling = slot.dialling.lock().await;
        // Whoever held the lock before may have dialled it already.
        if let Some(cached) = slot.live() {
            return Ok(cached);
        }
        let (endpoint, lookup) = self.endpoint().await?;
        let following = self
            .inner
            .addresses
            .follow(agent_id, self.inner.secret_key.public());
        let mut addresses = following.address.clone();
        let address = tokio::time::timeout(CONNECT_TIMEOUT, async {
            loop {
                let current = addresses.borrow_and_update().clone();
                if let Some(address) = current.filter(|address| address.relay_url.is_some()) {
                    return Some(address);
                }
                if addresses.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
        .ok_or(AgentConnError::AgentOffline)?;
        let address = tunnel::address::from_wire(&address)
            .map_err(|err| AgentConnError::Connect(err.to_string()))?;
        lookup.set_endpoint_info(address.clone());
        let endpoint = endpoint.clone();
        let connection = self
            .inner
            .driver
            .run(async move {
                tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    endpoint.connect(address, proto::AGENT_ALPN),
                )
                .await
            })
            .await?
            .map_err(|_| AgentConnError::Connect("timed out".into()))?
            .map_err(|err| AgentConnError::Connect(err.to_string()))?;
        // Address changes (a new relay, new public ports) reach the live tunnel; one the agent's
        // move stranded on its old relay is closed, so the next request dials afresh.
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let follow = tokio::spawn({
            let lookup = lookup.clone();
            let mut addresses = addresses.clone();
            let connection = connection.clone();
            let closed = closed.clone();
            async move {
                let follow = async {
                    while addresses.changed().await.is_ok() {
                        let current = addresses.borrow_and_update().clone();
                        if let Some(Ok(address)) = current.map(|a| tunnel::address::from_wire(&a)) {
                            lookup.set_endpoint_info(address.clone());
                            if tunnel::rides_abandoned_relay(&connection, &address) {
                                tracing::info!(%agent_id, "the agent left the relay the tunnel goes through; dialling again on the next request");
                                connection.close(0u32.into(), b"the agent moved to another relay");
                                return;
                            }
                        }
                    }
                    // The coordinator is gone (the server stops): the tunnel lives on as is.
                    std::future::pending::<()>().await;
                };
                tokio::select! {
                    () = follow => {}
                    _ = connection.closed() => {}
                }
                closed.store(true, std::sync::atomic::Ordering::Release);
            }
        });
        let cached = Arc::new(Cached {
            connection,
            closed,
            _guard: following.guard,
            follow,
        });
        slot.set(Some(cached.clone()));
        Ok(cached)
    }
}

//! The coordinator: agents publish their tunnel address here, clients allowed to reach a
//! workspace get it, and each agent learns which client endpoints may connect to it.
//!
//! Everything lives in memory: after a restart agents and clients re-register through their
//! streams (they reconnect with backoff), while tunnels already established keep running
//! because neither side needs the coordinator once connected. Sessions are guards: dropping
//! one (its HTTP stream closed) withdraws what it registered.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sdk::TunnelAddress;
use tokio::sync::watch;
use tunnel::EndpointId;
use tunnel::relay::EmbeddedRelay;
use uuid::Uuid;

/// How long the relay keeps admitting an endpoint after its last stream closed: long enough to
/// ride out a reconnect (a proxy restart, a flaky link) without cutting a relayed tunnel.
const RELEASE_AFTER: Duration = Duration::from_secs(60);

/// Shared by all handlers.
#[derive(Clone)]
pub(crate) struct Coordinator {
    inner: Arc<Inner>,
}

struct Inner {
    agents: Mutex<HashMap<Uuid, Arc<AgentSlot>>>,
    relay: Option<EmbeddedRelay>,
    /// Open streams per admitted endpoint.
    holds: Mutex<HashMap<EndpointId, usize>>,
    /// Each endpoint admitted or released, for the relays of workspace proxies.
    admissions: tokio::sync::broadcast::Sender<Admission>,
}

/// A change to the set of endpoints relays admit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    Allow(EndpointId),
    Revoke(EndpointId),
}

struct AgentSlot {
    /// The agent's address; `None` while no agent session is open.
    address: watch::Sender<Option<TunnelAddress>>,
    /// The endpoint id of the current agent session and the session's serial number.
    session: Mutex<Option<(EndpointId, u64)>>,
    /// Client endpoint ids allowed to connect, with how many streams each has open.
    clients: watch::Sender<BTreeMap<String, usize>>,
}

/// Why an address was not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PublishError {
    #[error("the agent has no open coordinate stream")]
    NoSession,
    #[error("the address is for endpoint {published}, but the agent's stream is for {current}")]
    WrongEndpoint { published: String, current: String },
}

impl Coordinator {
    pub(crate) fn new(relay: Option<EmbeddedRelay>) -> Self {
        Self {
            inner: Arc::new(Inner {
                agents: Mutex::default(),
                relay,
                holds: Mutex::default(),
                admissions: tokio::sync::broadcast::channel(1024).0,
            }),
        }
    }

    fn slot(&self, agent_id: Uuid) -> Arc<AgentSlot> {
        let mut agents = lock(&self.inner.agents);
        agents
            .entry(agent_id)
            .or_insert_with(|| {
                Arc::new(AgentSlot {
                    address: watch::Sender::new(None),
                    session: Mutex::new(None),
                    clients: watch::Sender::new(BTreeMap::new()),
                })
            })
            .clone()
    }

    /// Registers an agent's stream: its endpoint is admitted to the relay and its address
    /// accepted while the returned session lives.
    pub(crate) fn agent_session(&self, agent_id: Uuid, endpoint: EndpointId) -> AgentSession {
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = self.slot(agent_id);
        let previous = lock(&slot.session).replace((endpoint, serial));
        if previous.is_some_and(|(id, _)| id != endpoint) {
            // A restarted agent has a new identity: its old address is useless.
            slot.address.send_replace(None);
        }
        let hold = self.hold(endpoint);
        AgentSession {
            clients: slot.clients.subscribe(),
            slot,
            serial,
            _hold: hold,
        }
    }

    /// Stores the address an agent published over its open session.
    pub(crate) fn publish(
        &self,
        agent_id: Uuid,
        address: TunnelAddress,
    ) -> Result<(), PublishError> {
        let slot = self.slot(agent_id);
        let current = (*lock(&slot.session)).ok_or(PublishError::NoSession)?;
        if current.0.to_string() != address.endpoint_id {
            return Err(PublishError::WrongEndpoint {
                published: address.endpoint_id,
                current: current.0.to_string(),
            });
        }
        slot.address.send_if_modified(|old| {
            let changed = old.as_ref() != Some(&address);
            *old = Some(address);
            changed
        });
        Ok(())
    }

    /// Registers a client's stream for an agent (authorization is the caller's job): the
    /// client's endpoint is admitted to the relay and to the agent while the session lives.
    pub(crate) fn client_session(&self, agent_id: Uuid, endpoint: EndpointId) -> ClientSession {
        let slot = self.slot(agent_id);
        let key = endpoint.to_string();
        slot.clients.send_modify(|clients| {
            *clients.entry(key.clone()).or_default() += 1;
        });
        let hold = self.hold(endpoint);
        ClientSession {
            address: slot.address.subscribe(),
            slot,
            key,
            _hold: hold,
        }
    }

    /// Every admitted endpoint now, and the changes from here on (subscribe first, so no
    /// change falls between the two; a receiver that lags should ask again).
    pub(crate) fn admissions(
        &self,
    ) -> (Vec<EndpointId>, tokio::sync::broadcast::Receiver<Admission>) {
        let changes = self.inner.admissions.subscribe();
        let now = lock(&self.inner.holds).keys().copied().collect();
        (now, changes)
    }

    fn hold(&self, endpoint: EndpointId) -> Hold {
        let fresh = {
            let mut holds = lock(&self.inner.holds);
            let count = holds.entry(endpoint).or_default();
            *count += 1;
            *count == 1
        };
        if let Some(relay) = &self.inner.relay {
            relay.allowed().allow(endpoint);
        }
        if fresh {
            let _ = self.inner.admissions.send(Admission::Allow(endpoint));
        }
        Hold {
            inner: self.inner.clone(),
            endpoint,
        }
    }
}

/// An agent's open coordinate stream.
pub(crate) struct AgentSession {
    slot: Arc<AgentSlot>,
    serial: u64,
    /// The clients allowed to connect, updated live.
    pub(crate) clients: watch::Receiver<BTreeMap<String, usize>>,
    _hold: Hold,
}

impl Drop for AgentSession {
    fn drop(&mut self) {
        let mut session = lock(&self.slot.session);
        // A newer session (a reconnect that raced this one's close) stays in place.
        if session.is_some_and(|(_, serial)| serial == self.serial) {
            *session = None;
            self.slot.address.send_replace(None);
        }
    }
}

/// A client's open coordinate stream for one agent.
pub(crate) struct ClientSession {
    slot: Arc<AgentSlot>,
    key: String,
    /// The agent's address, updated live.
    pub(crate) address: watch::Receiver<Option<TunnelAddress>>,
    _hold: Hold,
}

impl Drop for ClientSession {
    fn drop(&mut self) {
        self.slot.clients.send_modify(|clients| {
            if let Some(count) = clients.get_mut(&self.key) {
                *count -= 1;
                if *count == 0 {
                    clients.remove(&self.key);
                }
            }
        });
    }
}

/// Keeps an endpoint admitted to the relay; the last one dropped releases it after a grace
/// period.
struct Hold {
    inner: Arc<Inner>,
    endpoint: EndpointId,
}

impl Drop for Hold {
    fn drop(&mut self) {
        {
            let mut holds = lock(&self.inner.holds);
            if let Some(count) = holds.get_mut(&self.endpoint) {
                *count -= 1;
            }
        }
        let inner = self.inner.clone();
        let endpoint = self.endpoint;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            tokio::time::sleep(RELEASE_AFTER).await;
            let mut holds = lock(&inner.holds);
            if holds.get(&endpoint) == Some(&0) {
                holds.remove(&endpoint);
                if let Some(relay) = &inner.relay {
                    relay.revoke(endpoint);
                }
                let _ = inner.admissions.send(Admission::Revoke(endpoint));
            }
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The server's own tunnels (apps, terminal) find agents here like any client.
impl apps::agents::AddressBook for Coordinator {
    fn follow(&self, agent_id: Uuid, endpoint: EndpointId) -> apps::agents::Following {
        let session = self.client_session(agent_id, endpoint);
        apps::agents::Following {
            address: session.address.clone(),
            guard: Box::new(session),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(seed: u8) -> EndpointId {
        tunnel::SecretKey::from_bytes(&[seed; 32]).public()
    }

    #[tokio::test]
    async fn clients_learn_addresses_and_agents_learn_clients() {
        let coordinator = Coordinator::new(None);
        let agent_id = Uuid::from_u128(7);
        let agent = coordinator.agent_session(agent_id, endpoint(1));
        let client = coordinator.client_session(agent_id, endpoint(2));
        assert_eq!(*client.address.borrow(), None);
        assert!(
            agent
                .clients
                .borrow()
                .contains_key(&endpoint(2).to_string())
        );

        let address = TunnelAddress {
            endpoint_id: endpoint(1).to_string(),
            relay_url: Some("http://relay.example/".into()),
            direct_addresses: vec!["198.18.0.1:4000".into()],
        };
        coordinator
            .publish(agent_id, address.clone())
            .expect("publish");
        assert_eq!(*client.address.borrow(), Some(address));

        // Someone else's endpoint id cannot publish over this agent's session.
        let forged = TunnelAddress {
            endpoint_id: endpoint(3).to_string(),
            ..Default::default()
        };
        assert!(matches!(
            coordinator.publish(agent_id, forged),
            Err(PublishError::WrongEndpoint { .. })
        ));

        drop(client);
        assert!(agent.clients.borrow().is_empty());
        let client = coordinator.client_session(agent_id, endpoint(2));
        drop(agent);
        assert_eq!(*client.address.borrow(), None, "agent gone");
        assert!(matches!(
            coordinator.publish(agent_id, TunnelAddress::default()),
            Err(PublishError::NoSession)
        ));
    }
}

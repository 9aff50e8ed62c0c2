//! Agents' addresses for the proxy's own endpoint, from the primary's coordinator: one stream
//! per agent the proxy serves, which also makes the agent admit the proxy's endpoint.

use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

/// The primary's coordinator, reached over HTTP with the proxy token.
pub(crate) struct Remote {
    primary: sdk::client::Client,
}

impl Remote {
    pub(crate) fn new(primary: sdk::client::Client) -> Self {
        Self { primary }
    }
}

/// Aborts the stream's task when the tunnel that needed it goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl apps::agents::AddressBook for Remote {
    fn follow(&self, agent_id: Uuid, endpoint: tunnel::EndpointId) -> apps::agents::Following {
        let (address, receiver) = watch::channel(None);
        let primary = self.primary.clone();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                let followed = async {
                    let mut events = primary
                        .proxy_coordinate(agent_id, &endpoint.to_string())
                        .await?;
                    backoff = Duration::from_millis(250);
                    while let Some((name, event)) = events.next::<sdk::AgentAddressEvent>().await? {
                        if name == "agent" {
                            address.send_replace(event.address);
                        }
                    }
                    Ok::<_, sdk::client::ClientError>(())
                };
                if let Err(err) = followed.await {
                    tracing::debug!(%agent_id, error = %err, "following an agent's address failed; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        });
        apps::agents::Following {
            address: receiver,
            guard: Box::new(AbortOnDrop(task)),
        }
    }
}

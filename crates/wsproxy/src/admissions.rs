//! The proxy's relay admits exactly the endpoints the primary's coordinator admits: those with
//! an open coordinate stream (and for a grace minute after). The primary streams the set; while
//! the stream is down the last set stays in force, so relayed tunnels keep running.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tunnel::EndpointId;
use tunnel::relay::EmbeddedRelay;

use crate::State;

/// Follows the primary's admissions until `cancel`.
pub(crate) async fn follow(state: Arc<State>, relay: EmbeddedRelay, cancel: CancellationToken) {
    let mut admitted: HashSet<EndpointId> = HashSet::new();
    let mut backoff = Duration::from_millis(500);
    loop {
        let followed = async {
            let mut events = state.primary.relay_admissions().await?;
            backoff = Duration::from_millis(500);
            while let Some((name, change)) = events.next::<sdk::RelayAdmissions>().await? {
                let ids: Vec<EndpointId> = change
                    .endpoints
                    .iter()
                    .filter_map(|id| id.parse().ok())
                    .collect();
                match name.as_str() {
                    "snapshot" => {
                        let fresh: HashSet<EndpointId> = ids.into_iter().collect();
                        for gone in admitted.difference(&fresh) {
                            relay.revoke(*gone);
                        }
                        for id in &fresh {
                            relay.allowed().allow(*id);
                        }
                        admitted = fresh;
                    }
                    "allow" => {
                        for id in ids {
                            relay.allowed().allow(id);
                            admitted.insert(id);
                        }
                    }
                    "revoke" => {
                        for id in ids {
                            relay.revoke(id);
                            admitted.remove(&id);
                        }
                    }
                    _ => {}
                }
            }
            Ok::<_, sdk::client::ClientError>(())
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            result = followed => {
                if let Err(err) = result {
                    tracing::warn!(error = %err, "the relay's admissions stream from the primary broke; reconnecting");
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

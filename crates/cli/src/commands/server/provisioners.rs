//! The server's built-in provisioner daemons: the same daemon loop as `coder provisioner
//! start`, talking to this server's API over loopback with a per-process key.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use provisioner::daemon::Daemon;
use sdk::Secret;
use sdk::client::Client;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::session;

/// How long running jobs get to stop (Terraform saves its state) when the server stops.
const STOP_TIMEOUT: Duration = Duration::from_secs(35);

/// The running built-in daemons.
pub(super) struct BuiltinDaemons {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

/// Starts `count` daemons. They reach the API through the HTTP listener when there is one
/// (loopback, no certificate to trust), else through the access URL.
pub(super) fn start_builtin(
    count: usize,
    http_address: Option<SocketAddr>,
    access_url: &Url,
    key: Secret,
) -> Result<BuiltinDaemons> {
    let url = match http_address {
        Some(address) if address.ip().is_unspecified() => {
            Url::parse(&format!("http://127.0.0.1:{}", address.port()))?
        }
        Some(address) => Url::parse(&format!("http://{address}"))?,
        None => access_url.clone(),
    };
    let client = Client::new(url, session::http_client()?).with_provisioner_key(key);
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let work_root = std::env::temp_dir().join("coder-provisioner");
    for number in 1..=count {
        let daemon = Daemon {
            name: format!("built-in-{number}"),
            tags: Default::default(),
            terraform: "terraform".into(),
            work_root: work_root.clone(),
        };
        let client = client.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            if let Err(err) = daemon.run(client, cancel).await {
                tracing::error!(error = %err, "a built-in provisioner daemon stopped");
            }
        });
    }
    Ok(BuiltinDaemons { cancel, tasks })
}

impl BuiltinDaemons {
    /// Cancels running jobs and waits for the daemons to report them.
    pub(super) async fn shutdown(mut self) {
        self.cancel.cancel();
        let drained = tokio::time::timeout(STOP_TIMEOUT, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .context("waiting for the provisioner daemons");
        if drained.is_err() {
            self.tasks.abort_all();
        }
    }
}

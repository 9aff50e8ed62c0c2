//! `coder agent`: the workspace agent. It authenticates with its build's token, fetches its
//! manifest, reports its lifecycle, runs the startup script (its output streamed to the
//! server), sends heartbeats, and on shutdown runs the shutdown script and reports `off`.
//! Server outages are retried with backoff; the agent never gives up while it is running, but
//! once told to stop it waits for the server only a few seconds per report.
//!
//! It reaches the server only through the API (`sdk::client::Client`) and serves users over
//! tunnels (`connections`): SSH (`ssh`, `process`, `sftp`), TCP and UDP forwarding, speed
//! tests and latency probes, to the client endpoints the coordinator authorizes. Main types:
//! [`Config`], [`run`].

mod apps;
mod connections;
mod ports;
mod process;
mod pty_output;
mod scripts;
mod sftp;
mod ssh;
mod ssh_sessions;
mod terminal;

use std::time::Duration;

use sdk::client::{Client, ClientError};
use sdk::{AgentHeartbeatRequest, AgentManifest, UpdateLifecycleRequest, WorkspaceAgentLifecycle};
use tokio_util::sync::CancellationToken;

const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// How long after a tunnel opens its path is reported: the move from relay to direct takes
/// milliseconds to a few seconds.
const PATH_SETTLE: Duration = Duration::from_secs(3);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a lifecycle state is retried while the agent starts: a server restart fits.
const STARTING_PATIENCE: Duration = Duration::from_secs(60);
/// How long a lifecycle state is retried once the agent was told to stop: whoever sent SIGTERM
/// (systemd, Kubernetes: 30 s) kills it soon, and the shutdown script must have run by then.
const STOPPING_PATIENCE: Duration = Duration::from_secs(5);

/// What the agent needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The agent's version, reported with heartbeats.
    pub version: String,
}

/// Runs the agent until `shutdown` fires, then runs the shutdown script and reports `off`.
/// `client` is authenticated with the agent token. Cancel-safe only through `shutdown`.
pub async fn run(config: Config, client: Client, shutdown: CancellationToken) {
    let Some(manifest) = fetch_manifest(&client, &shutdown).await else {
        return;
    };
    tracing::info!(
        workspace = %manifest.workspace_name,
        owner = %manifest.owner_name,
        agent_id = %manifest.agent_id,
        "agent connected"
    );
    let tunnel_stop = CancellationToken::new();
    let health_task = tokio::spawn(apps::watch(
        client.clone(),
        manifest.apps.clone(),
        tunnel_stop.clone(),
    ));
    let tracker = connections::Tracker::new(manifest.derp_map.clone());
    let tunnel_task = tokio::spawn(connections::serve(
        client.clone(),
        manifest.clone(),
        tracker.clone(),
        tunnel_stop.clone(),
    ));
    let heartbeats = CancellationToken::new();
    let heartbeat_task = tokio::spawn(heartbeat(
        client.clone(),
        config.version.clone(),
        tracker,
        heartbeats.clone(),
    ));

    report(
        &client,
        WorkspaceAgentLifecycle::Starting,
        STARTING_PATIENCE,
    )
    .await;
    let started = if manifest.startup_script.trim().is_empty() {
        Some(true)
    } else {
        tokio::select! {
            () = shutdown.cancelled() => None,
            succeeded = scripts::run(&client, &manifest, "startup_script", &manifest.startup_script) => {
                Some(succeeded)
            }
        }
    };
    match started {
        Some(true) => report(&client, WorkspaceAgentLifecycle::Ready, STARTING_PATIENCE).await,
        Some(false) => {
            report(
                &client,
                WorkspaceAgentLifecycle::StartError,
                STARTING_PATIENCE,
            )
            .await;
        }
        None => {}
    }
    shutdown.cancelled().await;

    // The script does not wait for the server to hear that we stop: it may be gone.
    let script = async {
        manifest.shutdown_script.trim().is_empty()
            || scripts::run(
                &client,
                &manifest,
                "shutdown_script",
                &manifest.shutdown_script,
            )
            .await
    };
    let ((), stopped) = tokio::join!(
        report(
            &client,
            WorkspaceAgentLifecycle::ShuttingDown,
            STOPPING_PATIENCE
        ),
        script
    );
    report(
        &client,
        if stopped {
            WorkspaceAgentLifecycle::Off
        } else {
            WorkspaceAgentLifecycle::ShutdownError
        },
        STOPPING_PATIENCE,
    )
    .await;
    heartbeats.cancel();
    tunnel_stop.cancel();
    let _ = heartbeat_task.await;
    let _ = tunnel_task.await;
    let _ = health_task.await;
    tracing::info!("agent stopped");
}

/// The manifest, retried with backoff until it comes (a just-started agent may ask before its
/// build has finished) or `shutdown` fires.
async fn fetch_manifest(client: &Client, shutdown: &CancellationToken) -> Option<AgentManifest> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.agent_manifest().await {
            Ok(manifest) => return Some(manifest),
            Err(err) => {
                let waiting_for_build = matches!(err, ClientError::Api { status: 401, .. });
                if waiting_for_build {
                    tracing::info!(error = %err, retry_in = ?backoff, "the server does not accept this agent yet");
                } else {
                    tracing::warn!(error = %err, retry_in = ?backoff, "fetching the manifest failed");
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Beats every 10 s with the tunnels' state, and a few seconds after a tunnel opens (once
/// its path has settled) so `coder show` reflects it promptly.
async fn heartbeat(
    client: Client,
    version: String,
    tracker: connections::Tracker,
    stop: CancellationToken,
) {
    let mut interval = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {}
            () = tracker.opened.notified() => {
                tokio::time::sleep(PATH_SETTLE).await;
            }
        }
        let request = AgentHeartbeatRequest {
            version: version.clone(),
            connections: Some(tracker.stats()),
        };
        if let Err(err) = client.agent_heartbeat(&request).await {
            tracing::warn!(error = %err, "heartbeat failed; retrying");
        }
    }
}

/// Reports a lifecycle state, retrying with backoff for up to `patience` while the server
/// cannot be reached or fails. A refusal (a 4xx answer, such as a build that is no longer
/// current) is final: asking again gets the same answer.
async fn report(client: &Client, state: WorkspaceAgentLifecycle, patience: Duration) {
    let deadline = tokio::time::Instant::now() + patience;
    let mut backoff = Duration::from_millis(100);
    loop {
        let request = UpdateLifecycleRequest { state };
        let attempt = tokio::time::timeout_at(deadline, client.agent_report_lifecycle(&request));
        let err = match attempt.await {
            Ok(Ok(())) => return,
            Ok(Err(err)) => err,
            Err(_) => {
                tracing::warn!(
                    state = state.name(),
                    "the server did not take the lifecycle report in time; going on"
                );
                return;
            }
        };
        let refused = matches!(
            err,
            ClientError::Api {
                status: 400..=499,
                ..
            }
        ) && !matches!(err, ClientError::Api { status: 429, .. });
        if refused {
            tracing::warn!(state = state.name(), error = %err, "the server refused the lifecycle report");
            return;
        }
        tracing::warn!(state = state.name(), error = %err, "reporting the lifecycle failed; retrying");
        if tokio::time::Instant::now() + backoff >= deadline {
            tracing::warn!(state = state.name(), "giving up on the lifecycle report");
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

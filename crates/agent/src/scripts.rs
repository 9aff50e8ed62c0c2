//! Running the startup and shutdown scripts: `sh -c` in the workspace's directory with its
//! environment, every output line sent to the server in batches.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use sdk::client::Client;
use sdk::{AgentLogEntry, AgentManifest, PatchAgentLogsRequest};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
const BATCH: usize = 100;
/// How long output may keep coming after the script exits (from what it left running).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// Runs `script`; true when it exits 0.
pub(crate) async fn run(
    client: &Client,
    manifest: &AgentManifest,
    source: &str,
    script: &str,
) -> bool {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .envs(&manifest.environment_variables)
        .env("CODER_WORKSPACE_NAME", &manifest.workspace_name)
        .env("CODER_WORKSPACE_OWNER", &manifest.owner_name)
        .env("CODER", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if !manifest.directory.is_empty() && Path::new(&manifest.directory).is_dir() {
        command.current_dir(&manifest.directory);
    }
    let (lines, mut receiver) = mpsc::channel::<AgentLogEntry>(1024);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            send(
                client,
                source,
                vec![AgentLogEntry {
                    level: "error".to_owned(),
                    output: format!("could not start the {source}: {err}"),
                }],
            )
            .await;
            return false;
        }
    };
    // Read by their own tasks: a program the script leaves running in the background keeps the
    // pipes open, so the script's end is its exit, not the end of its output.
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(forward(out, "info", lines.clone())));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(forward(err, "error", lines.clone())));
    }
    drop(lines);
    let waiting = async {
        let status = child.wait().await;
        let drained = tokio::time::timeout(DRAIN_AFTER_EXIT, async {
            for reader in readers.iter_mut() {
                let _ = reader.await;
            }
        })
        .await;
        if drained.is_err() {
            readers.iter().for_each(tokio::task::JoinHandle::abort);
        }
        status
    };
    let shipping = async {
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        let mut pending = Vec::new();
        let mut open = true;
        while open || !pending.is_empty() {
            tokio::select! {
                line = receiver.recv(), if open => match line {
                    Some(line) => {
                        pending.push(line);
                        if pending.len() < BATCH {
                            continue;
                        }
                    }
                    None => open = false,
                },
                _ = flush.tick() => {}
            }
            if !pending.is_empty() {
                send(client, source, std::mem::take(&mut pending)).await;
            }
        }
    };
    let (status, ()) = tokio::join!(waiting, shipping);
    let status = match status {
        Ok(status) => status,
        Err(err) => {
            tracing::warn!(error = %err, source, "waiting for the script failed");
            return false;
        }
    };
    if !status.success() {
        send(
            client,
            source,
            vec![AgentLogEntry {
                level: "error".to_owned(),
                output: format!("the {source} exited with {status}"),
            }],
        )
        .await;
    }
    status.success()
}

async fn forward(stream: impl AsyncRead + Unpin, level: &str, lines: mpsc::Sender<AgentLogEntry>) {
    let mut reader = BufReader::new(stream).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        let entry = AgentLogEntry {
            level: level.to_owned(),
            output: line,
        };
        if lines.send(entry).await.is_err() {
            return;
        }
    }
}

async fn send(client: &Client, source: &str, logs: Vec<AgentLogEntry>) {
    let request = PatchAgentLogsRequest {
        source: source.to_owned(),
        logs,
    };
    for attempt in 1..=5u32 {
        match client.agent_send_logs(&request).await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(error = %err, attempt, "sending script output failed");
                tokio::time::sleep(Duration::from_millis(200) * attempt).await;
            }
        }
    }
}

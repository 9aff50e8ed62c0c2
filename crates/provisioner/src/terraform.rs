//! One `terraform` invocation: run in the job's directory, every output line streamed as a
//! log line, cancelled gracefully (SIGINT lets Terraform stop and save its state).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::job::JobError;

/// How long Terraform gets to stop after SIGINT before it is killed.
const GRACEFUL_STOP: Duration = Duration::from_secs(30);
/// Error lines kept for the job's error message.
const KEPT_ERROR_LINES: usize = 20;

/// Whether a log line came from standard output or standard error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Standard output, or our own progress notes.
    Info,
    /// Standard error.
    Error,
}

/// One line of a job's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The step that printed it: `init`, `plan`, `apply`, ...
    pub stage: String,
    /// Its stream.
    pub level: LogLevel,
    /// The text, without its newline.
    pub output: String,
}

/// The `terraform` binary and the environment of every run in one job.
pub(crate) struct Terraform {
    pub(crate) binary: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) env: Vec<(String, String)>,
}

impl Terraform {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .current_dir(&self.dir)
            .envs(
                self.env
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_str())),
            )
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            // Its own group, so a cancel reaches its provider plugins too.
            .process_group(0);
        command
    }

    /// Runs `terraform ARGS`, streaming its output as `stage`. Fails with the last error
    /// lines when Terraform fails. Cancel-safe through `cancel` (graceful), not by dropping.
    pub(crate) async fn run(
        &self,
        stage: &str,
        args: &[&str],
        logs: &mpsc::Sender<LogLine>,
        cancel: &CancellationToken,
    ) -> Result<(), JobError> {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| spawn_error(&self.binary, source))?;
        let pid = child.id().map(|id| Pid::from_raw(id as i32));
        let stdout = child
            .stdout
            .take()
            .map(|out| forward(out, stage, LogLevel::Info, logs.clone()));
        let stderr = child
            .stderr
            .take()
            .map(|err| forward(err, stage, LogLevel::Error, logs.clone()));
        let streams = async {
            let (_, errors) = tokio::join!(
                async {
                    if let Some(stdout) = stdout {
                        stdout.await;
                    }
                },
                async {
                    match stderr {
                        Some(stderr) => stderr.await,
                        None => VecDeque::new(),
                    }
                }
            );
            errors
        };
        let (status, errors, cancelled) = tokio::select! {
            (status, errors) = async { let errors = streams.await; (child.wait().await, errors) } => {
                (status, errors, false)
            }
            () = cancel.cancelled() => {
                if let Some(pid) = pid {
                    let _ = killpg(pid, Signal::SIGINT);
                }
                let status = match tokio::time::timeout(GRACEFUL_STOP, child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        let _ = child.start_kill();
                        child.wait().await
                    }
                };
                (status, VecDeque::new(), true)
            }
        };
        let status = status.map_err(|source| spawn_error(&self.binary, source))?;
        if cancelled {
            return Err(JobError::Cancelled);
        }
        if !status.success() {
            return Err(JobError::Terraform {
                stage: stage.to_owned(),
                status: status.to_string(),
                errors: errors.into_iter().collect::<Vec<_>>().join("\n"),
            });
        }
        Ok(())
    }

    /// Runs `terraform ARGS` and returns its standard output (for `-json` commands).
    pub(crate) async fn capture(&self, stage: &str, args: &[&str]) -> Result<Vec<u8>, JobError> {
        let output = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|source| spawn_error(&self.binary, source))?;
        if !output.status.success() {
            return Err(JobError::Terraform {
                stage: stage.to_owned(),
                status: output.status.to_string(),
                errors: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(output.stdout)
    }
}

fn spawn_error(binary: &Path, source: std::io::Error) -> JobError {
    if source.kind() == std::io::ErrorKind::NotFound {
        JobError::TerraformMissing {
            binary: binary.to_owned(),
        }
    } else {
        JobError::Io(source)
    }
}

/// Sends each line of `stream` to `logs`; returns the last error lines (for stderr).
async fn forward(
    stream: impl AsyncRead + Unpin,
    stage: &str,
    level: LogLevel,
    logs: mpsc::Sender<LogLine>,
) -> VecDeque<String> {
    let mut lines = BufReader::new(stream).lines();
    let mut kept = VecDeque::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim_end().to_owned();
        if level == LogLevel::Error && !line.is_empty() {
            if kept.len() == KEPT_ERROR_LINES {
                kept.pop_front();
            }
            kept.push_back(line.clone());
        }
        // A gone receiver means nobody reads the log any more; keep draining the pipe.
        let _ = logs
            .send(LogLine {
                stage: stage.to_owned(),
                level,
                output: line,
            })
            .await;
    }
    kept
}

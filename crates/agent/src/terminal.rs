//! Reconnecting terminals (the web terminal): a PTY session keyed by the id the browser
//! chooses outlives the connection that opened it. A reconnect with the same id gets the
//! recent output replayed, then the live stream; a session nobody is attached to ends after
//! [`IDLE_TIMEOUT`], and one whose process exits ends at once.
//!
//! On the stream, after the header: the agent sends raw output; the client sends
//! `tunnel::proto::TerminalFrame`s (input and resizes).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;
use tunnel::proto::{self, TerminalFrame};
use tunnel::{RecvStream, SendStream};
use uuid::Uuid;

use crate::process::Environment;

/// How much recent output a reconnect replays.
const REPLAY_BYTES: usize = 64 * 1024;
/// How long a detached session waits for someone to come back.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The agent's terminal sessions.
#[derive(Clone)]
pub(crate) struct Terminals {
    environment: Arc<Environment>,
    sessions: Arc<Mutex<HashMap<Uuid, Arc<Session>>>>,
}

struct Session {
    input: tokio::sync::Mutex<pty_process::OwnedWritePty>,
    output: broadcast::Sender<Vec<u8>>,
    replay: Mutex<VecDeque<u8>>,
    attached: Mutex<usize>,
    ended: tokio_util::sync::CancellationToken,
    /// Bumped on every detach, so only the latest detach's timer ends the session.
    detaches: Mutex<u64>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Terminals {
    pub(crate) fn new(environment: Arc<Environment>) -> Self {
        Self {
            environment,
            sessions: Arc::default(),
        }
    }

    /// Attaches a stream to session `id`, starting it (with `command`, or a login shell) when
    /// it does not exist, and serves the stream until either side ends.
    pub(crate) async fn attach(
        &self,
        id: Uuid,
        command: &str,
        rows: u16,
        cols: u16,
        mut send: SendStream,
        mut recv: RecvStream,
    ) -> anyhow::Result<()> {
        let session = self.session(id, command, rows, cols)?;
        // Subscribe before copying the replay, so no output falls between the two.
        let mut live = session.output.subscribe();
        let replay: Vec<u8> = lock(&session.replay).iter().copied().collect();
        *lock(&session.attached) += 1;
        let result = async {
            send.write_all(&replay).await?;
            let output = async {
                loop {
                    match live.recv().await {
                        Ok(chunk) => send.write_all(&chunk).await?,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
                send.finish()?;
                anyhow::Ok(())
            };
            let input = async {
                while let Some(frame) = proto::read_terminal_frame(&mut recv).await? {
                    match frame {
                        TerminalFrame::Input(data) => {
                            session.input.lock().await.write_all(&data).await?;
                        }
                        TerminalFrame::Resize { rows, cols } => {
                            let size = pty_process::Size::new(rows.max(1), cols.max(1));
                            let _ = session.input.lock().await.resize(size);
                        }
                    }
                }
                anyhow::Ok(())
            };
            tokio::select! {
                result = output => result,
                result = input => result,
                () = session.ended.cancelled() => Ok(()),
            }
        }
        .await;
        self.detach(id, &session);
        result
    }

    fn session(
        &self,
        id: Uuid,
        command: &str,
        rows: u16,
        cols: u16,
    ) -> anyhow::Result<Arc<Session>> {
        let mut sessions = lock(&self.sessions);
        if let Some(session) = sessions.get(&id)
            && !session.ended.is_cancelled()
        {
            return Ok(session.clone());
        }
        let (pty, pts) = pty_process::open()?;
        pty.resize(pty_process::Size::new(rows.max(1), cols.max(1)))?;
        let mut variables = self.environment.variables.clone();
        variables.insert("TERM".into(), "xterm-256color".into());
        let args: Vec<String> = if command.is_empty() {
            vec!["-l".into()]
        } else {
            vec!["-c".into(), command.to_owned()]
        };
        let mut child = pty_process::Command::new(&self.environment.shell)
            .args(&args)
            .env_clear()
            .envs(variables)
            .current_dir(&self.environment.directory)
            .kill_on_drop(true)
            .spawn(pts)?;
        let (mut reader, writer) = pty.into_split();
        let (output, _) = broadcast::channel(256);
        let session = Arc::new(Session {
            input: tokio::sync::Mutex::new(writer),
            output,
            replay: Mutex::new(VecDeque::with_capacity(REPLAY_BYTES)),
            attached: Mutex::new(0),
            ended: tokio_util::sync::CancellationToken::new(),
            detaches: Mutex::new(0),
        });
        // Reads the PTY for the session's whole life: into the replay buffer and to whoever
        // is attached. The process ends with the session (kill on drop).
        tokio::spawn({
            let session = session.clone();
            let sessions = self.sessions.clone();
            async move {
                let mut buffer = vec![0u8; 32 * 1024];
                loop {
                    tokio::select! {
                        read = reader.read(&mut buffer) => match read {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let chunk = buffer[..n].to_vec();
                                {
                                    let mut replay = lock(&session.replay);
                                    replay.extend(&chunk);
                                    let excess = replay.len().saturating_sub(REPLAY_BYTES);
                                    replay.drain(..excess);
                                }
                                let _ = session.output.send(chunk);
                            }
                        },
                        () = session.ended.cancelled() => break,
                    }
                }
                session.ended.cancel();
                let _ = child.kill().await;
                lock(&sessions).remove(&id);
            }
        });
        sessions.insert(id, session.clone());
        Ok(session)
    }

    fn detach(&self, id: Uuid, session: &Arc<Session>) {
        let remaining = {
            let mut attached = lock(&session.attached);
            *attached -= 1;
            *attached
        };
        if remaining > 0 {
            return;
        }
        let generation = {
            let mut detaches = lock(&session.detaches);
            *detaches += 1;
            *detaches
        };
        let session = session.clone();
        tokio::spawn(async move {
            tokio::time::sleep(IDLE_TIMEOUT).await;
            let still_idle =
                *lock(&session.attached) == 0 && *lock(&session.detaches) == generation;
            if still_idle {
                tracing::info!(%id, "ending an idle terminal session");
                session.ended.cancel();
            }
        });
    }
}

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

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tunnel::proto::{self, TerminalFrame};
use tunnel::{RecvStream, SendStream};
use uuid::Uuid;

use crate::process::Environment;
use crate::pty_output;

/// How much recent output a reconnect replays.
const REPLAY_BYTES: usize = 64 * 1024;
/// How long a detached session waits for someone to come back.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The agent's terminal sessions.
#[derive(Clone)]
pub(crate) struct Terminals {
    environment: Arc<Environment>,
    sessions: Arc<Mutex<HashMap<Uuid, Arc<Session>>>>,
    /// [`IDLE_TIMEOUT`], shorter in tests.
    idle_timeout: Duration,
}

/// How many chunks of output may wait for an attached stream before the PTY is no longer read:
/// a slow viewer slows the program down, as a real terminal does, and loses nothing.
const QUEUED_CHUNKS: usize = 16;

struct Session {
    input: tokio::sync::Mutex<pty_process::OwnedWritePty>,
    output: Mutex<Output>,
    attached: Mutex<usize>,
    ended: tokio_util::sync::CancellationToken,
    /// Bumped on every detach, so only the latest detach's timer ends the session.
    detaches: Mutex<u64>,
}

/// Recent output and the queues of the attached streams, under one lock: an attaching stream
/// sees every chunk exactly once, either in the replay or on its queue.
#[derive(Default)]
struct Output {
    replay: VecDeque<u8>,
    attached: Vec<mpsc::Sender<Arc<[u8]>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Terminals {
    pub(crate) fn new(environment: Arc<Environment>) -> Self {
        Self {
            environment,
            sessions: Arc::default(),
            idle_timeout: IDLE_TIMEOUT,
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
        let (queue, mut live) = mpsc::channel(QUEUED_CHUNKS);
        let replay: Vec<u8> = {
            let mut output = lock(&session.output);
            output.attached.retain(|queue| !queue.is_closed());
            output.attached.push(queue);
            output.replay.iter().copied().collect()
        };
        *lock(&session.attached) += 1;
        let result = async {
            send.write_all(&replay).await?;
            let output = async {
                while let Some(chunk) = live.recv().await {
                    send.write_all(&chunk).await?;
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
            // When the session ends, its reader closes our queue once all output is in it, so
            // the output side finishes after the last byte.
            tokio::select! {
                result = output => result,
                result = input => result,
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
        let from_pty = pty_output::Output::start(&pty)?;
        let (_, writer) = pty.into_split();
        let session = Arc::new(Session {
            input: tokio::sync::Mutex::new(writer),
            output: Mutex::new(Output {
                replay: VecDeque::with_capacity(REPLAY_BYTES),
                attached: Vec::new(),
            }),
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
                loop {
                    let chunk: Arc<[u8]> = tokio::select! {
                        bytes = from_pty.next() => match bytes {
                            Some(bytes) => bytes.into(),
                            None => break,
                        },
                        () = session.ended.cancelled() => break,
                    };
                    let queues = {
                        let mut output = lock(&session.output);
                        output.attached.retain(|queue| !queue.is_closed());
                        output.replay.extend(chunk.iter());
                        let excess = output.replay.len().saturating_sub(REPLAY_BYTES);
                        output.replay.drain(..excess);
                        output.attached.clone()
                    };
                    let deliver = async {
                        for queue in &queues {
                            // A closed queue is a stream that went away: skip it.
                            let _ = queue.send(chunk.clone()).await;
                        }
                    };
                    tokio::select! {
                        () = deliver => {}
                        () = session.ended.cancelled() => break,
                    }
                }
                session.ended.cancel();
                // Attached streams see the end of the output.
                lock(&session.output).attached.clear();
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
        let idle_timeout = self.idle_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(idle_timeout).await;
            let still_idle =
                *lock(&session.attached) == 0 && *lock(&session.detaches) == generation;
            if still_idle {
                tracing::info!(%id, "ending an idle terminal session");
                session.ended.cancel();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminals(idle_timeout: Duration) -> (Terminals, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let environment = Environment {
            shell: "/bin/sh".into(),
            directory: dir.path().to_owned(),
            variables: std::collections::BTreeMap::new(),
        };
        let terminals = Terminals {
            environment: Arc::new(environment),
            sessions: Arc::default(),
            idle_timeout,
        };
        (terminals, dir)
    }

    fn attach(session: &Session) {
        *lock(&session.attached) += 1;
    }

    #[tokio::test]
    async fn a_detached_session_ends_after_the_idle_timeout_unless_someone_comes_back() {
        let idle = Duration::from_millis(400);
        let (terminals, _dir) = terminals(idle);
        let id = Uuid::new_v4();
        let session = terminals.session(id, "sleep 60", 24, 80).unwrap();
        attach(&session);
        terminals.detach(id, &session);
        // Back within the timeout: the earlier detach's timer does not end it.
        tokio::time::sleep(idle / 4).await;
        assert!(Arc::ptr_eq(
            &terminals.session(id, "", 24, 80).unwrap(),
            &session
        ));
        attach(&session);
        tokio::time::sleep(idle * 2).await;
        assert!(
            !session.ended.is_cancelled(),
            "an attached session lives on"
        );

        // Gone for longer than the timeout: the session and its process end.
        terminals.detach(id, &session);
        tokio::time::sleep(idle * 2).await;
        assert!(session.ended.is_cancelled(), "a detached session ends");
        for _ in 0..50 {
            if !lock(&terminals.sessions).contains_key(&id) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!lock(&terminals.sessions).contains_key(&id));
        // The same id then starts a new session.
        let fresh = terminals.session(id, "sleep 60", 24, 80).unwrap();
        assert!(!Arc::ptr_eq(&fresh, &session));
        fresh.ended.cancel();
    }
}

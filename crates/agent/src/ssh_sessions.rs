//! SSH sessions that outlive their tunnel: each runs the SSH server on one end of an in-memory
//! pipe, and the other end is carried over whichever tunnel stream the client attached last
//! ([`tunnel::resume`]). A session whose client went away waits [`KEEP`] for it to come back,
//! then ends (the shell sees its connection close).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::Notify;
use tunnel::proto::{self, StreamReply};
use tunnel::resume::{Outcome, Progress, Resumable};
use tunnel::{RecvStream, SendStream};
use uuid::Uuid;

use crate::ssh::SshServer;

/// How long a session waits for its client after the tunnel broke.
pub(crate) const KEEP: Duration = Duration::from_secs(5 * 60);
/// The in-memory pipe between the SSH server and the tunnel side.
const PIPE: usize = 1024 * 1024;

/// The sessions of this agent, by the id their client chose.
pub(crate) struct SshSessions {
    ssh: SshServer,
    sessions: std::sync::Mutex<HashMap<Uuid, Arc<Slot>>>,
}

struct Slot {
    /// Bumped by every attach: an older attachment that sees a newer one steps aside.
    generation: AtomicU64,
    taken_over: Notify,
    state: tokio::sync::Mutex<Carried>,
}

/// The tunnel side of a session.
struct Carried {
    resumable: Resumable,
    read: ReadHalf<DuplexStream>,
    write: WriteHalf<DuplexStream>,
}

/// Why an attach was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttachError {
    #[error("SSH session {0} already exists")]
    Exists(Uuid),
    #[error("no SSH session {0} here (it ended, or the agent restarted)")]
    Unknown(Uuid),
}

impl SshSessions {
    pub(crate) fn new(ssh: SshServer) -> Self {
        Self {
            ssh,
            sessions: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Slot>>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The number of sessions (attached or waiting).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.sessions().len()
    }

    /// Starts session `id`, or with `resume` finds it; refuses on the stream when neither fits.
    fn slot(&self, id: Uuid, resume: bool) -> Result<Arc<Slot>, AttachError> {
        let mut sessions = self.sessions();
        match (sessions.get(&id), resume) {
            (Some(slot), true) => Ok(slot.clone()),
            (Some(_), false) => Err(AttachError::Exists(id)),
            (None, true) => Err(AttachError::Unknown(id)),
            (None, false) => {
                let (server_end, ours) = tokio::io::duplex(PIPE);
                let ssh = self.ssh.clone();
                tokio::spawn(async move {
                    if let Err(err) = ssh.serve(server_end).await {
                        tracing::debug!(error = %err, "an SSH session ended with an error");
                    }
                });
                let (read, write) = tokio::io::split(ours);
                let slot = Arc::new(Slot {
                    generation: AtomicU64::new(0),
                    taken_over: Notify::new(),
                    state: tokio::sync::Mutex::new(Carried {
                        resumable: Resumable::new(),
                        read,
                        write,
                    }),
                });
                sessions.insert(id, slot.clone());
                Ok(slot)
            }
        }
    }

    /// Carries session `id` over this tunnel stream until it ends, breaks, or another stream
    /// takes over.
    pub(crate) async fn attach(
        self: &Arc<Self>,
        id: Uuid,
        resume: bool,
        client: Progress,
        mut send: SendStream,
        recv: RecvStream,
    ) -> anyhow::Result<()> {
        let slot = match self.slot(id, resume) {
            Ok(slot) => slot,
            Err(err) => {
                proto::write_header(
                    &mut send,
                    &StreamReply {
                        error: Some(err.to_string()),
                        progress: None,
                    },
                )
                .await?;
                send.finish()?;
                return Ok(());
            }
        };
        let generation = slot.generation.fetch_add(1, Ordering::AcqRel) + 1;
        slot.taken_over.notify_waiters();
        let mut carried = slot.state.lock().await;
        if slot.generation.load(Ordering::Acquire) != generation {
            // An even newer stream arrived while this one waited.
            return Ok(());
        }
        let progress = carried.resumable.progress();
        let reply = StreamReply {
            error: None,
            progress: Some(progress),
        };
        if let Err(err) = proto::write_header(&mut send, &reply).await {
            // Broken before it started: the session waits for its client like any other.
            drop(carried);
            self.expire_later(id, generation);
            return Err(err.into());
        }
        let taken_over = async {
            loop {
                let notified = slot.taken_over.notified();
                if slot.generation.load(Ordering::Acquire) != generation {
                    return;
                }
                notified.await;
            }
        };
        let Carried {
            resumable,
            read,
            write,
        } = &mut *carried;
        let outcome = resumable
            .run(read, write, recv, send, client, taken_over)
            .await;
        // Nothing left to resume for: the client said it is done, or the SSH server finished
        // and the client has every byte of it.
        let done = resumable.progress().fin || resumable.delivered_all();
        drop(carried);
        match outcome {
            Outcome::Finished => self.end(id, generation),
            Outcome::Failed(why) => {
                tracing::warn!(session = %id, %why, "ending an SSH session: its client broke the protocol");
                self.end(id, generation);
            }
            Outcome::Broken(_) if done => self.end(id, generation),
            Outcome::Broken(why) => {
                tracing::info!(session = %id, %why, "an SSH session lost its tunnel; keeping it for its client");
                self.expire_later(id, generation);
            }
        }
        Ok(())
    }

    /// Ends session `id` after [`KEEP`] unless a newer stream attaches meanwhile.
    fn expire_later(self: &Arc<Self>, id: Uuid, generation: u64) {
        let sessions = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(KEEP).await;
            sessions.end(id, generation);
        });
    }

    /// Forgets session `id` unless a newer stream attached since `generation` (dropping the
    /// pipe ends the SSH server's connection).
    fn end(&self, id: Uuid, generation: u64) {
        let mut sessions = self.sessions();
        if let Some(slot) = sessions.get(&id)
            && slot.generation.load(Ordering::Acquire) == generation
        {
            sessions.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> SshSessions {
        SshSessions::new(SshServer::new(crate::process::Environment {
            shell: "/bin/sh".into(),
            directory: std::env::temp_dir(),
            variables: std::collections::BTreeMap::new(),
        }))
    }

    #[tokio::test]
    async fn sessions_start_once_resume_only_if_known_and_end_only_for_their_attachment() {
        let sessions = sessions();
        let id = Uuid::new_v4();
        assert!(matches!(
            sessions.slot(id, true),
            Err(AttachError::Unknown(_))
        ));
        let slot = sessions.slot(id, false).unwrap();
        assert!(matches!(
            sessions.slot(id, false),
            Err(AttachError::Exists(_))
        ));
        assert!(Arc::ptr_eq(&sessions.slot(id, true).unwrap(), &slot));

        // An expiry from an older attachment leaves a newer one alone.
        slot.generation.store(2, Ordering::Release);
        sessions.end(id, 1);
        assert_eq!(sessions.len(), 1);
        sessions.end(id, 2);
        assert_eq!(sessions.len(), 0);
        let err = sessions.slot(id, true).err().unwrap().to_string();
        assert!(err.contains("no SSH session"), "{err}");
    }
}

//! SSH sessions that survive their tunnel: the session's bytes travel as a resumable stream
//! ([`tunnel::resume`]), and when the tunnel breaks (its relay died, the network changed, the
//! agent's relay moved away from the path in use) a new tunnel is dialled and the session
//! picks up where it stopped. The user's shell never notices beyond a pause.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tunnel::proto::{self, OpenError, StreamRequest};
use tunnel::resume::{Outcome, Resumable};

use crate::dial::{AgentTunnel, Redial};

/// How long to keep dialling after the tunnel broke (the agent keeps the session as long).
const GIVE_UP_AFTER: Duration = Duration::from_secs(5 * 60);
/// How long the session may take to wind down once the local side finished (the peer's last
/// bytes have no reader by then).
const LINGER: Duration = Duration::from_secs(1);

/// Carries `local` (the SSH client's side) to the agent's SSH server over `tunnel`, and over
/// new tunnels whenever it breaks, until the session ends.
pub(crate) async fn carry<LR, LW>(
    redial: Redial,
    tunnel: AgentTunnel,
    local_read: LR,
    local_write: LW,
) -> Result<()>
where
    LR: AsyncRead + Unpin,
    LW: AsyncWrite + Unpin,
{
    let id = uuid::Uuid::new_v4().to_string();
    let mut resumable = Resumable::new();
    let (local_ended, _) = watch::channel(false);
    let (peer_ended, _) = watch::channel(false);
    let mut local_read = EndSignal {
        inner: local_read,
        ended: local_ended.clone(),
    };
    let mut local_write = EndSignal {
        inner: local_write,
        ended: peer_ended.clone(),
    };
    let mut tunnel = Some(tunnel);
    let mut resume = false;
    loop {
        let current = match tunnel.take() {
            Some(current) => current,
            None => redial
                .until_up(Some(GIVE_UP_AFTER))
                .await
                .map_err(|err| err.context("the tunnel to the workspace broke"))?,
        };
        let request = StreamRequest::SshSession {
            id: id.clone(),
            resume,
            progress: resumable.progress(),
        };
        let (send, recv, reply) = match proto::open_with_reply(&current.connection, &request).await
        {
            Ok(opened) => opened,
            Err(OpenError::Broken(why)) if resume => {
                tracing::info!(%why, "opening the SSH stream failed; dialling again");
                current.close().await;
                continue;
            }
            // A tunnel that just opened and cannot carry a session is not a passing break.
            Err(OpenError::Broken(why)) => {
                current.close().await;
                bail!("starting the SSH session failed: {why}");
            }
            // The agent finished the session already; all it sent had arrived.
            Err(OpenError::Refused(_)) if resume && resumable.progress().fin => {
                current.close().await;
                return Ok(());
            }
            Err(OpenError::Refused(why)) => {
                current.close().await;
                bail!("the workspace agent refused the SSH session: {why}");
            }
        };
        if resume {
            tracing::info!(path = %current.path_description(), "the SSH session resumed");
        }
        resume = true;
        let peer = reply.progress.unwrap_or_default();
        // Once either side ended, the other's last bytes have no use for long: OpenSSH, say,
        // closes our stdin only after our stdout ends.
        let ended = |flag: &watch::Sender<bool>| {
            let mut flag = flag.subscribe();
            async move {
                let _ = flag.wait_for(|ended| *ended).await;
                tokio::time::sleep(LINGER).await;
            }
        };
        let mut lingered_out = false;
        let stop = async {
            tokio::select! {
                () = current.stranded() => {}
                () = ended(&local_ended) => lingered_out = true,
                () = ended(&peer_ended) => lingered_out = true,
            }
        };
        let outcome = resumable
            .run(&mut local_read, &mut local_write, recv, send, peer, stop)
            .await;
        match outcome {
            Outcome::Finished => {
                let _ = local_write.flush().await;
                current.close().await;
                return Ok(());
            }
            Outcome::Failed(why) => {
                current.close().await;
                bail!("the SSH stream broke the protocol: {why}");
            }
            Outcome::Broken(_) if lingered_out => {
                let _ = local_write.flush().await;
                current.close().await;
                return Ok(());
            }
            Outcome::Broken(why) => {
                tracing::info!(%why, "the tunnel broke; dialling again to resume the SSH session");
                // The old tunnel's peer is unreachable: don't wait on a goodbye.
                drop(current);
            }
        }
    }
}

/// Passes reads or writes through and raises `ended` when the data ends: the local side's
/// (end of file) or the peer's (the stream shuts the local side's writing down).
struct EndSignal<T> {
    inner: T,
    ended: watch::Sender<bool>,
}

impl<R: AsyncRead + Unpin> AsyncRead for EndSignal<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(result) = &polled
            && (result.is_err() || buf.filled().len() == before)
        {
            self.ended.send_replace(true);
        }
        polled
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for EndSignal<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        if polled.is_ready() {
            self.ended.send_replace(true);
        }
        polled
    }
}

/// Reads what a thread sends over a channel (stdin, read on its own thread so a blocked read
/// never keeps the process from exiting); ends early once `leave` is cancelled.
pub(crate) struct ChannelReader {
    receiver: mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
    offset: usize,
    leave: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl ChannelReader {
    pub(crate) fn new(receiver: mpsc::Receiver<Vec<u8>>, leave: CancellationToken) -> Self {
        Self {
            receiver,
            pending: Vec::new(),
            offset: 0,
            leave: Box::pin(leave.cancelled_owned()),
        }
    }
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.leave.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        if self.offset == self.pending.len() {
            match self.receiver.poll_recv(cx) {
                Poll::Ready(Some(data)) => {
                    self.pending = data;
                    self.offset = 0;
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let take = buf.remaining().min(self.pending.len() - self.offset);
        let start = self.offset;
        buf.put_slice(&self.pending[start..start + take]);
        self.offset += take;
        Poll::Ready(Ok(()))
    }
}

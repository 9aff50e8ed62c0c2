//! Byte streams that outlive the tunnel stream carrying them: an SSH session survives its
//! tunnel dying (a workspace proxy's relay killed, a laptop changing networks) because each end
//! keeps what it sent until the other confirms it, and a new tunnel stream picks up where the
//! old one stopped.
//!
//! iroh cannot move an established connection to a relay the peer moved to (the connection
//! keeps sending on the path it selected until every connection to that peer is gone), so the
//! fix lives above it: the client dials a fresh tunnel and resumes.
//!
//! On the wire, after the stream headers, each side sends frames:
//! - `DATA`: kind 0, a 4-byte big-endian length, the bytes;
//! - `ACK`: kind 1, the 8-byte count of data bytes delivered so far, and 1 if the peer's end
//!   (`FIN`) was delivered too; also sent every second of silence, as a keepalive;
//! - `FIN`: kind 2, no more data from this side.
//!
//! A side that hears nothing for [`DEAD_AFTER`] declares the stream broken. Resuming, each side
//! tells the other its [`Progress`] and resends everything after it.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

const DATA: u8 = 0;
const ACK: u8 = 1;
const FIN: u8 = 2;

/// How long a side may stay silent: it sends a keepalive after this much quiet.
pub const KEEPALIVE: Duration = Duration::from_secs(1);
/// How long without a byte from the peer before the stream counts as broken.
pub const DEAD_AFTER: Duration = Duration::from_secs(5);
/// The most unconfirmed data a side holds; reading its local end pauses beyond it (8 MiB
/// sustains 640 Mbit/s at a 100 ms round trip, and is what the SSH channel window allows).
const WINDOW: u64 = 8 * 1024 * 1024;
/// The largest data frame: large writes to the local end (stdout is a thread hop per write).
const CHUNK: usize = 256 * 1024;
/// How much delivered data prompts an `ACK` before the next keepalive.
const ACK_EVERY: u64 = 256 * 1024;

/// How far a side got: exchanged when a stream resumes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Data bytes delivered to the local end.
    pub received: u64,
    /// Whether the peer's end of data was delivered.
    #[serde(default)]
    pub fin: bool,
}

/// How one run over a tunnel stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Both ends finished and each confirmed the other's data: nothing to resume.
    Finished,
    /// The tunnel stream broke (or was replaced); resume on another.
    Broken(String),
    /// The peer broke the protocol; resuming cannot help.
    Failed(String),
}

/// One end of a resumable stream: what it sent and the peer has not confirmed, and how much it
/// received. Lives as long as the session; each tunnel stream gets one [`Resumable::run`].
#[derive(Debug, Default)]
pub struct Resumable {
    outbound: Outbound,
    /// What was delivered to the local end.
    delivered: Progress,
}

/// The sending half's state.
#[derive(Debug, Default)]
struct Outbound {
    /// Data read from the local end (the offset of the next byte).
    sent: u64,
    /// Data the peer confirmed; `replay` holds the bytes from here to `sent`.
    acked: u64,
    replay: VecDeque<Vec<u8>>,
    /// The local end's data ended (our `FIN` follows byte `sent`).
    local_eof: bool,
    /// The peer confirmed our `FIN`.
    fin_acked: bool,
}

impl Resumable {
    /// A new stream, nothing sent or received.
    pub fn new() -> Self {
        Self::default()
    }

    /// What this side delivered so far (sent to the peer when resuming).
    pub fn progress(&self) -> Progress {
        self.delivered
    }

    /// Whether this side's data ended and the peer has all of it.
    pub fn delivered_all(&self) -> bool {
        self.outbound.local_eof && self.outbound.fin_acked
    }

    /// Whether both ends finished.
    pub fn finished(&self) -> bool {
        self.outbound.local_eof && self.outbound.fin_acked && self.delivered.fin
    }

    /// Carries the local end over one tunnel stream until both ends finish, the stream breaks,
    /// or `cancel` resolves (another stream took over). `peer` is where the peer's delivery
    /// stands: everything after it is sent again first.
    ///
    /// Bytes are never lost or repeated: what is read from the local end is kept before it is
    /// sent, the local end is written outside any cancellation, and only what it took counts
    /// as delivered.
    pub async fn run<LR, LW, TR, TW>(
        &mut self,
        local_read: &mut LR,
        local_write: &mut LW,
        mut transport_read: TR,
        mut transport_write: TW,
        peer: Progress,
        cancel: impl Future<Output = ()>,
    ) -> Outcome
    where
        LR: AsyncRead + Unpin + ?Sized,
        LW: AsyncWrite + Unpin + ?Sized,
        TR: AsyncRead + Unpin,
        TW: AsyncWrite + Unpin,
    {
        if let Err(err) = self.outbound.confirm(peer) {
            return Outcome::Failed(err);
        }
        let shared = Shared {
            delivered: AtomicU64::new(self.delivered.received),
            fin_delivered: AtomicBool::new(self.delivered.fin),
            peer_received: AtomicU64::new(self.outbound.acked),
            peer_fin: AtomicBool::new(self.outbound.fin_acked),
            ack_due: Notify::new(),
            confirmed: Notify::new(),
            stop: Notify::new(),
            stopped: AtomicBool::new(false),
            failure: std::sync::Mutex::new(None),
        };
        let reading = receive(
            &mut self.delivered,
            &shared,
            &mut transport_read,
            local_write,
        );
        let writing = async {
            let end = self
                .outbound
                .send(&shared, &mut transport_write, local_read)
                .await;
            shared.fail(end.unwrap_or(Outcome::Broken("the run is over".to_owned())));
        };
        let watch = async {
            tokio::select! {
                () = cancel => shared.fail(Outcome::Broken("another tunnel stream took over".to_owned())),
                () = shared.stopped() => {}
            }
        };
        tokio::join!(reading, writing, watch);
        // The peer's last confirmations arrived through the reader.
        let peer = Progress {
            received: shared.peer_received.load(Ordering::Acquire),
            fin: shared.peer_fin.load(Ordering::Acquire),
        };
        if let Err(err) = self.outbound.confirm(peer) {
            return Outcome::Failed(err);
        }
        if self.finished() {
            return Outcome::Finished;
        }
        shared
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| Outcome::Broken("the tunnel stream ended".to_owned()))
    }
}

/// What the two halves of a run share.
struct Shared {
    delivered: AtomicU64,
    fin_delivered: AtomicBool,
    peer_received: AtomicU64,
    peer_fin: AtomicBool,
    /// The reader delivered enough (or the peer's end) that an `ACK` should go out.
    ack_due: Notify,
    /// The peer confirmed data: the window may have opened.
    confirmed: Notify,
    /// The run is over; every part returns.
    stop: Notify,
    stopped: AtomicBool,
    failure: std::sync::Mutex<Option<Outcome>>,
}

impl Shared {
    /// Ends the run with `outcome` (the first reason wins).
    fn fail(&self, outcome: Outcome) {
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(outcome);
        self.stopped.store(true, Ordering::Release);
        self.stop.notify_waiters();
    }

    async fn stopped(&self) {
        // Registered before the check, so a `fail` in between still wakes it.
        let notified = self.stop.notified();
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }

    fn ack_frame(&self) -> [u8; 10] {
        let mut frame = [0; 10];
        frame[0] = ACK;
        frame[1..9].copy_from_slice(&self.delivered.load(Ordering::Acquire).to_be_bytes());
        frame[9] = u8::from(self.fin_delivered.load(Ordering::Acquire));
        frame
    }
}

/// Reads frames, delivers data to the local end, takes the peer's confirmations. Always ends
/// the run when it returns.
async fn receive<TR, LW>(
    delivered: &mut Progress,
    shared: &Shared,
    transport: &mut TR,
    local: &mut LW,
) where
    TR: AsyncRead + Unpin,
    LW: AsyncWrite + Unpin + ?Sized,
{
    let mut buffer = vec![0; CHUNK];
    let mut last_ack = delivered.received;
    // A local end that went away takes nothing more; the data still counts as delivered.
    let mut local_gone = false;
    let end = loop {
        let kind = match read_or_stop(shared, transport.read_u8()).await {
            Ok(kind) => kind,
            Err(end) => break end,
        };
        match kind {
            DATA => {
                let length = match read_or_stop(shared, transport.read_u32()).await {
                    Ok(length) => length as usize,
                    Err(end) => break end,
                };
                if length > CHUNK {
                    break Some(Outcome::Failed(format!("a {length}-byte data frame")));
                }
                // Read by parts, so a slow link that keeps delivering never looks dead.
                let mut filled = 0;
                let mut cut = None;
                while filled < length {
                    match read_or_stop(shared, transport.read(&mut buffer[filled..length])).await {
                        Ok(0) => {
                            cut = Some(Some(Outcome::Broken(
                                "the tunnel stream ended inside a frame".to_owned(),
                            )));
                            break;
                        }
                        Ok(n) => filled += n,
                        Err(end) => {
                            cut = Some(end);
                            break;
                        }
                    }
                }
                if let Some(end) = cut {
                    break end;
                }
                // Outside any cancellation: what the local end took is delivered.
                if !local_gone && local.write_all(&buffer[..length]).await.is_err() {
                    local_gone = true;
                }
                delivered.received += length as u64;
                shared
                    .delivered
                    .store(delivered.received, Ordering::Release);
                if delivered.received - last_ack >= ACK_EVERY {
                    last_ack = delivered.received;
                    shared.ack_due.notify_one();
                }
            }
            ACK => {
                let mut body = [0; 9];
                if let Err(end) = read_or_stop(shared, transport.read_exact(&mut body)).await {
                    break end;
                }
                let mut received = [0; 8];
                received.copy_from_slice(&body[..8]);
                shared
                    .peer_received
                    .fetch_max(u64::from_be_bytes(received), Ordering::AcqRel);
                if body[8] == 1 {
                    shared.peer_fin.store(true, Ordering::Release);
                }
                shared.confirmed.notify_one();
            }
            FIN => {
                if !delivered.fin {
                    if !local_gone {
                        let _ = local.shutdown().await;
                    }
                    delivered.fin = true;
                    shared.fin_delivered.store(true, Ordering::Release);
                }
                shared.ack_due.notify_one();
            }
            other => break Some(Outcome::Failed(format!("unknown frame kind {other}"))),
        }
    };
    shared.fail(end.unwrap_or(Outcome::Broken("the run is over".to_owned())));
}

/// Reads from the tunnel stream unless the run stops first or the peer stays silent too long.
/// `Err(None)`: the run stopped for another reason.
async fn read_or_stop<T>(
    shared: &Shared,
    read: impl Future<Output = std::io::Result<T>>,
) -> Result<T, Option<Outcome>> {
    tokio::select! {
        biased;
        () = shared.stopped() => Err(None),
        read = tokio::time::timeout(DEAD_AFTER, read) => match read {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(Some(Outcome::Broken(format!("the tunnel stream: {err}")))),
            Err(_) => Err(Some(Outcome::Broken(format!(
                "nothing from the peer for {}s",
                DEAD_AFTER.as_secs()
            )))),
        },
    }
}

impl Outbound {
    /// Takes the peer's confirmation: drops what it has, refuses what it cannot have.
    fn confirm(&mut self, peer: Progress) -> Result<(), String> {
        if peer.received < self.acked || peer.received > self.sent {
            return Err(format!(
                "the peer confirms {} bytes; {} were confirmed before and {} sent",
                peer.received, self.acked, self.sent
            ));
        }
        if peer.fin && !self.local_eof {
            return Err("the peer confirms an end that was never sent".to_owned());
        }
        while self.acked < peer.received {
            let Some(front) = self.replay.front_mut() else {
                break;
            };
            let take = (peer.received - self.acked).min(front.len() as u64);
            if take == front.len() as u64 {
                self.replay.pop_front();
            } else {
                front.drain(..usize::try_from(take).unwrap_or(usize::MAX));
            }
            self.acked += take;
        }
        self.fin_acked |= peer.fin;
        Ok(())
    }

    /// Sends what the peer has not confirmed, then the local end's data as it comes, with
    /// confirmations and keepalives in between. `None` when the run stopped for another reason
    /// or both ends finished.
    async fn send<TW, LR>(
        &mut self,
        shared: &Shared,
        transport: &mut TW,
        local: &mut LR,
    ) -> Option<Outcome>
    where
        TW: AsyncWrite + Unpin,
        LR: AsyncRead + Unpin + ?Sized,
    {
        let mut last_write = tokio::time::Instant::now();
        macro_rules! send_frames {
            ($($frame:expr),+) => {{
                $(
                    if let Err(end) = write_or_stop(shared, transport, $frame).await {
                        return end;
                    }
                )+
                last_write = tokio::time::Instant::now();
            }};
        }
        // First, whatever the peer has not confirmed.
        for chunk in &self.replay {
            send_frames!(&data_header(chunk.len()), chunk);
        }
        if self.local_eof {
            send_frames!(&[FIN]);
        }
        let mut buffer = vec![0; CHUNK];
        loop {
            let peer = Progress {
                received: shared.peer_received.load(Ordering::Acquire),
                fin: shared.peer_fin.load(Ordering::Acquire),
            };
            if let Err(err) = self.confirm(peer) {
                return Some(Outcome::Failed(err));
            }
            if self.local_eof && self.fin_acked && shared.fin_delivered.load(Ordering::Acquire) {
                // The last word: confirm the peer's end, then close this side.
                if let Err(end) = write_or_stop(shared, transport, &shared.ack_frame()).await {
                    return end;
                }
                let _ = transport.shutdown().await;
                return None;
            }
            let room = self.sent - self.acked < WINDOW;
            tokio::select! {
                biased;
                () = shared.stopped() => return None,
                () = shared.ack_due.notified() => send_frames!(&shared.ack_frame()),
                () = shared.confirmed.notified() => {}
                read = local.read(&mut buffer), if room && !self.local_eof => match read {
                    Ok(0) | Err(_) => {
                        self.local_eof = true;
                        send_frames!(&[FIN]);
                    }
                    Ok(n) => {
                        // Kept before it is sent: a write cut short is sent again on resume.
                        let chunk = buffer[..n].to_vec();
                        self.sent += n as u64;
                        self.replay.push_back(chunk);
                        let chunk = self.replay.back().map(Vec::as_slice).unwrap_or_default();
                        send_frames!(&data_header(n), chunk);
                    }
                },
                () = tokio::time::sleep_until(last_write + KEEPALIVE) => send_frames!(&shared.ack_frame()),
            }
        }
    }
}

fn data_header(length: usize) -> [u8; 5] {
    let mut header = [0; 5];
    header[0] = DATA;
    header[1..].copy_from_slice(&u32::try_from(length).unwrap_or(u32::MAX).to_be_bytes());
    header
}

/// Writes a frame unless the run stops first (a half-written frame only ever lands on a
/// stream that is being abandoned).
async fn write_or_stop<TW: AsyncWrite + Unpin>(
    shared: &Shared,
    transport: &mut TW,
    frame: &[u8],
) -> Result<(), Option<Outcome>> {
    tokio::select! {
        biased;
        () = shared.stopped() => Err(None),
        written = transport.write_all(frame) => written
            .map_err(|err| Some(Outcome::Broken(format!("the tunnel stream: {err}")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{DuplexStream, ReadHalf, WriteHalf};

    /// One side of a session: the application's end of its local pipe, and the session.
    struct Side {
        resumable: Resumable,
        read: ReadHalf<DuplexStream>,
        write: WriteHalf<DuplexStream>,
    }

    impl Side {
        /// Runs this side alone over `read`/`write` until it ends.
        async fn run_on(
            &mut self,
            read: impl AsyncRead + Unpin,
            write: impl AsyncWrite + Unpin,
            peer: Progress,
        ) -> Outcome {
            self.resumable
                .run(
                    &mut self.read,
                    &mut self.write,
                    read,
                    write,
                    peer,
                    std::future::pending(),
                )
                .await
        }
    }

    /// A session side whose application end is returned.
    fn side() -> (Side, DuplexStream) {
        let (ours, app) = tokio::io::duplex(1 << 20);
        let (read, write) = tokio::io::split(ours);
        (
            Side {
                resumable: Resumable::new(),
                read,
                write,
            },
            app,
        )
    }

    /// Runs both sides over one fresh tunnel stream until `cut` resolves (then both are cut
    /// off) or both finish.
    async fn run_once(
        a: &mut Side,
        b: &mut Side,
        cut: impl Future<Output = ()>,
    ) -> (Outcome, Outcome) {
        let (ta, tb) = tokio::io::duplex(256 * 1024);
        let (ta_read, ta_write) = tokio::io::split(ta);
        let (tb_read, tb_write) = tokio::io::split(tb);
        let (a_progress, b_progress) = (a.resumable.progress(), b.resumable.progress());
        let cut = futures_util::future::FutureExt::shared(Box::pin(cut));
        tokio::join!(
            a.resumable.run(
                &mut a.read,
                &mut a.write,
                ta_read,
                ta_write,
                b_progress,
                cut.clone()
            ),
            b.resumable.run(
                &mut b.read,
                &mut b.write,
                tb_read,
                tb_write,
                a_progress,
                cut
            ),
        )
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
            .collect()
    }

    #[tokio::test]
    async fn data_both_ways_then_both_ends_finish() {
        let (mut a, mut a_app) = side();
        let (mut b, mut b_app) = side();
        let to_b = pattern(3 << 20, 1);
        let to_a = pattern(1 << 20, 2);
        let apps = async {
            let (mut a_read, mut a_write) = tokio::io::split(&mut a_app);
            let (mut b_read, mut b_write) = tokio::io::split(&mut b_app);
            let (_, _, at_b, at_a) = tokio::join!(
                async {
                    a_write.write_all(&to_b).await.unwrap();
                    a_write.shutdown().await.unwrap();
                },
                async {
                    b_write.write_all(&to_a).await.unwrap();
                    b_write.shutdown().await.unwrap();
                },
                async {
                    let mut got = Vec::new();
                    b_read.read_to_end(&mut got).await.unwrap();
                    got
                },
                async {
                    let mut got = Vec::new();
                    a_read.read_to_end(&mut got).await.unwrap();
                    got
                },
            );
            (at_b, at_a)
        };
        let (outcomes, (at_b, at_a)) =
            tokio::join!(run_once(&mut a, &mut b, std::future::pending()), apps);
        assert_eq!(outcomes, (Outcome::Finished, Outcome::Finished));
        assert!(
            at_b == to_b,
            "B got {} bytes, not the 3 MiB sent",
            at_b.len()
        );
        assert!(
            at_a == to_a,
            "A got {} bytes, not the 1 MiB sent",
            at_a.len()
        );
    }

    #[tokio::test]
    async fn a_stream_cut_off_mid_transfer_resumes_without_loss_or_repeats() {
        let (mut a, mut a_app) = side();
        let (mut b, mut b_app) = side();
        let sent = pattern(8 << 20, 7);
        let (mut b_read, mut b_write) = tokio::io::split(&mut b_app);
        let (_a_read, mut a_write) = tokio::io::split(&mut a_app);
        // B's application sends nothing.
        b_write.shutdown().await.unwrap();
        let writer = async {
            a_write.write_all(&sent).await.unwrap();
            a_write.shutdown().await.unwrap();
        };
        let mut received = Vec::new();
        let reader = async {
            let mut buffer = vec![0; 16 * 1024];
            loop {
                let n = b_read.read(&mut buffer).await.unwrap();
                if n == 0 {
                    break;
                }
                received.extend_from_slice(&buffer[..n]);
                // A slow reader keeps data in flight when the stream is cut.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        let sessions = async {
            let mut cuts = 0;
            loop {
                let (a_end, b_end) = run_once(
                    &mut a,
                    &mut b,
                    tokio::time::sleep(Duration::from_millis(150)),
                )
                .await;
                if a_end == Outcome::Finished || b_end == Outcome::Finished {
                    break cuts;
                }
                assert!(matches!(a_end, Outcome::Broken(_)), "{a_end:?}");
                assert!(matches!(b_end, Outcome::Broken(_)), "{b_end:?}");
                cuts += 1;
                assert!(cuts < 200, "never finished");
            }
        };
        let (cuts, (), ()) = tokio::join!(sessions, writer, reader);
        assert!(cuts >= 2, "the transfer was cut only {cuts} times");
        assert_eq!(received.len(), sent.len());
        assert!(
            received == sent,
            "the data changed across {cuts} resumptions"
        );
    }

    /// Passes at most 1 KiB per read, a tenth of a second apart (10 KB/s).
    struct Trickle<R> {
        inner: R,
        pause: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    }

    impl<R: AsyncRead + Unpin> AsyncRead for Trickle<R> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some(pause) = self.pause.as_mut() {
                std::task::ready!(pause.as_mut().poll(cx));
                self.pause = None;
            }
            let mut small = [0; 1024];
            let take = buf.remaining().min(small.len());
            let mut part = tokio::io::ReadBuf::new(&mut small[..take]);
            std::task::ready!(std::pin::Pin::new(&mut self.inner).poll_read(cx, &mut part))?;
            buf.put_slice(part.filled());
            self.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(100))));
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_link_that_keeps_delivering_is_not_declared_dead() {
        // 256 KiB frames at 10 KB/s take 26 s each, far beyond the 5 s of silence allowed.
        let (mut a, mut a_app) = side();
        let (mut b, mut b_app) = side();
        let sent = pattern(300 * 1024, 3);
        let (ta, tb) = tokio::io::duplex(1 << 20);
        let (ta_read, ta_write) = tokio::io::split(ta);
        let (tb_read, tb_write) = tokio::io::split(tb);
        let tb_read = Trickle {
            inner: tb_read,
            pause: None,
        };
        let apps = async {
            let (_, mut a_write) = tokio::io::split(&mut a_app);
            let (mut b_read, mut b_write) = tokio::io::split(&mut b_app);
            b_write.shutdown().await.unwrap();
            a_write.write_all(&sent).await.unwrap();
            a_write.shutdown().await.unwrap();
            let mut got = Vec::new();
            b_read.read_to_end(&mut got).await.unwrap();
            got
        };
        let all = async {
            tokio::join!(
                a.run_on(ta_read, ta_write, Progress::default()),
                b.run_on(tb_read, tb_write, Progress::default()),
                apps,
            )
        };
        // Virtual time: about 31 s of trickling; a stream wrongly declared dead never ends.
        let (a_end, b_end, got) = tokio::time::timeout(Duration::from_secs(120), all)
            .await
            .expect("the transfer never finished");
        assert_eq!((a_end, b_end), (Outcome::Finished, Outcome::Finished));
        assert!(got == sent, "got {} of {} bytes", got.len(), sent.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_counts_as_broken() {
        let (mut a, _app) = side();
        // The tunnel stream stays open but nothing ever comes through it.
        let (transport, _silent) = tokio::io::duplex(1024);
        let (read, write) = tokio::io::split(transport);
        let started = tokio::time::Instant::now();
        let end = a.run_on(read, write, Progress::default()).await;
        assert!(
            matches!(&end, Outcome::Broken(why) if why.contains("nothing from the peer")),
            "{end:?}"
        );
        assert!(started.elapsed() >= DEAD_AFTER);
    }

    #[tokio::test]
    async fn a_peer_confirming_more_than_was_sent_is_refused() {
        let (mut a, _app) = side();
        let (transport, _peer) = tokio::io::duplex(1024);
        let (read, write) = tokio::io::split(transport);
        let end = a
            .run_on(
                read,
                write,
                Progress {
                    received: 10,
                    fin: false,
                },
            )
            .await;
        assert!(
            matches!(&end, Outcome::Failed(why) if why.contains("confirms 10 bytes")),
            "{end:?}"
        );

        // On the wire too: an ACK for bytes never sent.
        let (mut b, _app) = side();
        let (transport, mut peer) = tokio::io::duplex(1024);
        let (read, write) = tokio::io::split(transport);
        let mut ack = vec![ACK];
        ack.extend_from_slice(&99u64.to_be_bytes());
        ack.push(0);
        peer.write_all(&ack).await.unwrap();
        let end = b.run_on(read, write, Progress::default()).await;
        assert!(matches!(end, Outcome::Failed(_)), "{end:?}");
    }
}

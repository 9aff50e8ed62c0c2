//! A PTY's output, read on a thread of its own.
//!
//! The kernel hands a PTY's output out at most 4 KiB per read, and refills that buffer from
//! its worker only after the read. A reader that also sends what it read over the tunnel
//! leaves the PTY idle while it sends, and the program writing into it waits. A thread that
//! does nothing but read keeps the PTY moving while the runtime sends; what piles up meanwhile
//! is handed over in one piece.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// How much unsent output the thread holds before it stops reading: the program then waits,
/// as it would for a slow terminal.
const HELD_BYTES: usize = 64 * 1024;
/// A read's buffer: a PTY hands out at most 4 KiB per read.
const READ_BYTES: usize = 8 * 1024;

/// The receiving end of a PTY's output.
pub(crate) struct Output {
    shared: Arc<Shared>,
    /// Dropped to wake the thread from its wait on the PTY when the receiver goes away.
    _stop: OwnedFd,
}

struct Shared {
    state: Mutex<State>,
    /// The thread added bytes to an empty buffer, or finished.
    filled: Notify,
    /// The receiver took the bytes, or went away.
    drained: Condvar,
}

#[derive(Default)]
struct State {
    bytes: Vec<u8>,
    /// The PTY reported its end (every process on its terminal side closed it).
    finished: bool,
    /// The receiver is gone: the thread stops.
    abandoned: bool,
}

impl Output {
    /// Starts reading `pty`'s output on a new thread, through a descriptor of its own (so the
    /// caller keeps `pty` for input and resizes). pty-process opens it non-blocking, which
    /// lets the thread also watch for its receiver going away.
    pub(crate) fn start(pty: &pty_process::Pty) -> std::io::Result<Self> {
        let pty = pty.as_fd().try_clone_to_owned()?;
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            filled: Notify::new(),
            drained: Condvar::new(),
        });
        // Close-on-exec: a copy of `stop` in a program started meanwhile would keep the
        // thread waiting after the receiver went away.
        let (stop_watch, stop) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        std::thread::Builder::new()
            .name("pty-output".into())
            .spawn({
                let shared = shared.clone();
                move || {
                    read(&shared, File::from(pty), &stop_watch);
                    shared.lock().finished = true;
                    shared.filled.notify_one();
                }
            })?;
        Ok(Self {
            shared,
            _stop: stop,
        })
    }

    /// All output read since the last call, waiting for some; `None` once the PTY has ended
    /// and everything was taken.
    pub(crate) async fn next(&self) -> Option<Vec<u8>> {
        loop {
            {
                let mut state = self.shared.lock();
                if !state.bytes.is_empty() {
                    let bytes = std::mem::take(&mut state.bytes);
                    drop(state);
                    self.shared.drained.notify_one();
                    return Some(bytes);
                }
                if state.finished {
                    return None;
                }
            }
            // A notification sent between the check and here is kept as a permit.
            self.shared.filled.notified().await;
        }
    }

    /// Writes all output to `to` until the PTY ends.
    pub(crate) async fn copy_to(self, mut to: impl AsyncWrite + Unpin) -> std::io::Result<()> {
        while let Some(bytes) = self.next().await {
            to.write_all(&bytes).await?;
        }
        to.flush().await
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.shared.lock().abandoned = true;
        self.shared.drained.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads until the PTY ends (EOF or EIO once its terminal side is closed by every process) or
/// the receiver goes away (`stop_watch` readable: its other end was dropped).
fn read(shared: &Shared, mut pty: File, stop_watch: &OwnedFd) {
    let mut buffer = vec![0u8; READ_BYTES];
    loop {
        match pty.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => {
                let mut state = shared.lock();
                while state.bytes.len() >= HELD_BYTES && !state.abandoned {
                    state = shared
                        .drained
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if state.abandoned {
                    return;
                }
                let was_empty = state.bytes.is_empty();
                if state.bytes.capacity() == 0 {
                    // Taken: room for a whole batch at once rather than growing it read by read.
                    state.bytes.reserve(HELD_BYTES);
                }
                state.bytes.extend_from_slice(&buffer[..n]);
                drop(state);
                // Only the first bytes need a wake-up: the receiver takes all there is then.
                if was_empty {
                    shared.filled.notify_one();
                }
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                let mut fds = [
                    PollFd::new(pty.as_fd(), PollFlags::POLLIN),
                    PollFd::new(stop_watch.as_fd(), PollFlags::POLLIN),
                ];
                match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) if fds[1].any().unwrap_or(true) => return,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => return,
                }
            }
            // EIO: the terminal side is closed.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pty_running(command: &str) -> (Output, tokio::process::Child) {
        let (pty, pts) = pty_process::open().unwrap();
        let child = pty_process::Command::new("/bin/sh")
            .args(["-c", command])
            .spawn(pts)
            .unwrap();
        let output = Output::start(&pty).unwrap();
        // The thread holds its own descriptor.
        drop(pty);
        (output, child)
    }

    #[tokio::test]
    async fn all_output_arrives_in_order_then_the_end() {
        let (output, mut child) = pty_running("seq 1 200000");
        let mut received = Vec::new();
        while let Some(bytes) = output.next().await {
            received.extend_from_slice(&bytes);
        }
        child.wait().await.unwrap();
        let expected: String = (1..=200_000).map(|n| format!("{n}\r\n")).collect();
        assert_eq!(String::from_utf8(received).unwrap(), expected);
    }

    #[tokio::test]
    async fn a_receiver_that_does_not_take_stops_the_program_and_loses_nothing() {
        let (output, mut child) = pty_running("head -c 1000000 /dev/zero | tr '\\0' x");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            output.shared.lock().bytes.len() <= HELD_BYTES + READ_BYTES,
            "the thread holds at most what it may"
        );
        assert!(child.try_wait().unwrap().is_none(), "the writer waits");
        let mut received = 0;
        while let Some(bytes) = output.next().await {
            assert!(bytes.iter().all(|&b| b == b'x'));
            received += bytes.len();
        }
        assert_eq!(received, 1_000_000);
        child.wait().await.unwrap();
    }

    #[tokio::test]
    async fn programs_started_later_do_not_inherit_the_stop_pipe() {
        let (output, mut child) = pty_running("true");
        let flags = nix::fcntl::fcntl(&output._stop, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert!(
            nix::fcntl::FdFlag::from_bits_truncate(flags).contains(nix::fcntl::FdFlag::FD_CLOEXEC)
        );
        child.wait().await.unwrap();
    }

    #[tokio::test]
    async fn dropping_the_receiver_ends_the_thread_while_the_pty_stays_open() {
        let (output, mut child) = pty_running("sleep 30");
        let shared = output.shared.clone();
        drop(output);
        for _ in 0..100 {
            if Arc::strong_count(&shared) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(Arc::strong_count(&shared), 1, "the thread ended");
        child.kill().await.unwrap();
    }
}

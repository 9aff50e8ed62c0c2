//! Moving bytes between a tunnel stream and a socket, pipe or PTY. tokio's default 8 KiB
//! buffers cost a syscall and a QUIC frame per 8 KiB; bulk transfers want far larger chunks.

use std::io::{self, IoSlice};

use bytes::{Buf, Bytes, BytesMut};
use iroh::endpoint::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The chunk size for bulk copies.
pub const BUFFER: usize = 256 * 1024;

/// The least free space worth a read: below it the next read gets a fresh buffer.
const MIN_READ: usize = 64 * 1024;

/// How many received chunks (about one packet each) go to the socket in one write.
const CHUNKS_PER_WRITE: usize = 64;

/// Copies both ways until both sides have finished (each end's EOF is passed on as a
/// shutdown of the other's write half).
pub async fn splice<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(a, b, BUFFER, BUFFER).await
}

/// [`splice`] for a tunnel stream and a TCP connection (port forwarding), without copying
/// through a buffer of our own: what the socket gives is handed to the stream as is, and
/// what the stream received goes to the socket straight from the packets it arrived in.
/// Returns the bytes sent into the tunnel and the bytes received from it.
pub async fn splice_tcp(
    send: &mut SendStream,
    recv: &mut RecvStream,
    tcp: &mut TcpStream,
) -> io::Result<(u64, u64)> {
    let (mut from_tcp, mut to_tcp) = tcp.split();
    let upload = async {
        let mut sent = 0u64;
        let mut buffer = BytesMut::with_capacity(BUFFER);
        loop {
            if buffer.capacity() < MIN_READ {
                // Reuses the allocation once the stream has let go of all it was given.
                buffer.reserve(BUFFER);
            }
            let read = from_tcp.read_buf(&mut buffer).await?;
            if read == 0 {
                send.finish().map_err(io::Error::other)?;
                return Ok(sent);
            }
            sent += read as u64;
            send.write_chunk(buffer.split().freeze()).await?;
        }
    };
    let download = async {
        let mut received = 0u64;
        let mut chunks = vec![Bytes::new(); CHUNKS_PER_WRITE];
        while let Some(count) = recv.read_many_chunks(&mut chunks).await? {
            received += write_all_chunks(&mut to_tcp, &mut chunks[..count]).await?;
        }
        to_tcp.shutdown().await?;
        Ok(received)
    };
    tokio::try_join!(upload, download)
}

/// Writes every chunk, as few writes as the socket allows.
async fn write_all_chunks<W>(to: &mut W, mut chunks: &mut [Bytes]) -> io::Result<u64>
where
    W: AsyncWrite + Unpin,
{
    let total = chunks.iter().map(|chunk| chunk.len() as u64).sum();
    loop {
        while chunks.first().is_some_and(Bytes::is_empty) {
            chunks = &mut chunks[1..];
        }
        if chunks.is_empty() {
            return Ok(total);
        }
        let slices: Vec<IoSlice<'_>> = chunks.iter().map(|chunk| IoSlice::new(chunk)).collect();
        let mut written = to.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let first = &mut chunks[0];
            if written < first.len() {
                first.advance(written);
                break;
            }
            written -= first.len();
            chunks = &mut chunks[1..];
        }
    }
}

/// Copies one way until `from` ends.
pub async fn copy<R, W>(from: R, to: &mut W) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut reader = BufReader::with_capacity(BUFFER, from);
    tokio::io::copy_buf(&mut reader, to).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `limit` bytes per write, to exercise partial writes.
    struct Trickle {
        written: Vec<u8>,
        limit: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let take = buf.len().min(self.limit);
            self.written.extend_from_slice(&buf[..take]);
            std::task::Poll::Ready(Ok(take))
        }

        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<io::Result<usize>> {
            let mut left = self.limit;
            for buf in bufs {
                let take = buf.len().min(left);
                self.written.extend_from_slice(&buf[..take]);
                left -= take;
            }
            std::task::Poll::Ready(Ok(self.limit - left))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn partial_writes_deliver_every_chunk_once_in_order() {
        let expected: Vec<u8> = (0..10_000u32).map(|n| (n % 251) as u8).collect();
        for limit in [1, 7, 1000, 4096, 1 << 20] {
            // Uneven chunks, with empty ones in the middle and at the end.
            let mut chunks: Vec<Bytes> = [0, 3, 1500, 1500, 3000]
                .windows(2)
                .map(|w| Bytes::copy_from_slice(&expected[w[0]..w[1]]))
                .chain([
                    Bytes::new(),
                    Bytes::copy_from_slice(&expected[3000..]),
                    Bytes::new(),
                ])
                .collect();
            let mut to = Trickle {
                written: Vec::new(),
                limit,
            };
            let total = write_all_chunks(&mut to, &mut chunks).await.unwrap();
            assert_eq!(total, expected.len() as u64);
            assert!(to.written == expected, "limit {limit}: bytes differ");
        }
    }
}

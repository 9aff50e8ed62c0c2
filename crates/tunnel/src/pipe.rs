//! Moving bytes between a tunnel stream and a socket, pipe or PTY. tokio's default 8 KiB
//! buffers cost a syscall and a QUIC frame per 8 KiB; bulk transfers want far larger chunks.

use tokio::io::{AsyncRead, AsyncWrite, BufReader};

/// The chunk size for bulk copies.
pub const BUFFER: usize = 256 * 1024;

/// Copies both ways until both sides have finished (each end's EOF is passed on as a
/// shutdown of the other's write half).
pub async fn splice<A, B>(a: &mut A, b: &mut B) -> std::io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(a, b, BUFFER, BUFFER).await
}

/// Copies one way until `from` ends.
pub async fn copy<R, W>(from: R, to: &mut W) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut reader = BufReader::with_capacity(BUFFER, from);
    tokio::io::copy_buf(&mut reader, to).await
}

//! What travels inside a tunnel to an agent: one ALPN, and on each bidirectional stream a
//! request header naming the service, answered by a reply header, then the service's bytes.
//!
//! Headers are a 4-byte big-endian length and JSON, so a version can add fields without
//! breaking older peers.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol agents accept connections for.
pub const AGENT_ALPN: &[u8] = b"coder/agent/1";

/// The largest header accepted; anything longer is a broken or hostile peer.
const MAX_HEADER: u32 = 16 * 1024;

/// The service a stream is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "service", rename_all = "snake_case")]
pub enum StreamRequest {
    /// The agent's SSH server; the stream carries the SSH protocol.
    Ssh,
    /// A TCP connection to this port on the workspace's loopback.
    Tcp {
        /// The port.
        port: u16,
    },
    /// UDP datagrams to and from this port on the workspace's loopback, each framed by a
    /// 2-byte big-endian length.
    Udp {
        /// The port.
        port: u16,
    },
    /// A throughput test for this long.
    Speedtest {
        /// Which way the bytes flow.
        direction: Direction,
        /// How long to send, in milliseconds.
        duration_ms: u64,
    },
    /// Echoes every byte back (latency probes).
    Echo,
    /// The ports processes in the workspace listen on; the agent answers with a header of
    /// `sdk::ListeningPortsResponse` and closes the stream.
    ListeningPorts,
    /// A reconnecting terminal session (the web terminal): attach to session `id`, starting
    /// it with `command` (a login shell when empty) at this size when it does not exist.
    Terminal {
        /// The session's id, chosen by the client (a UUID).
        id: String,
        /// What to run.
        #[serde(default)]
        command: String,
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
}

/// A client frame on a terminal stream: input bytes.
pub const TERMINAL_INPUT: u8 = 0;
/// A client frame on a terminal stream: a new size (rows, then columns, 2 bytes each).
pub const TERMINAL_RESIZE: u8 = 1;

/// The direction of a speed test, from the client's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The agent sends.
    Down,
    /// The client sends; at the end the agent replies with the byte count it received, as an
    /// 8-byte big-endian number.
    Up,
}

/// The agent's answer to a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamReply {
    /// Why the request was refused; `None` when the service follows.
    #[serde(default)]
    pub error: Option<String>,
}

/// A header that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The stream failed.
    #[error("tunnel stream: {0}")]
    Io(#[from] std::io::Error),
    /// The header is longer than allowed.
    #[error("stream header too long ({0} bytes)")]
    TooLong(u32),
    /// The header is not what the protocol says.
    #[error("malformed stream header: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Writes a header.
pub async fn write_header<T: Serialize>(
    stream: &mut (impl AsyncWrite + Unpin),
    header: &T,
) -> Result<(), HeaderError> {
    let body = serde_json::to_vec(header)?;
    let length = u32::try_from(body.len())
        .ok()
        .filter(|length| *length <= MAX_HEADER)
        .ok_or(HeaderError::TooLong(u32::MAX))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await?;
    Ok(())
}

/// Reads a header.
pub async fn read_header<T: for<'de> Deserialize<'de>>(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<T, HeaderError> {
    let length = stream.read_u32().await?;
    if length > MAX_HEADER {
        return Err(HeaderError::TooLong(length));
    }
    let mut body = vec![0; length as usize];
    stream.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn headers_round_trip_and_refuse_garbage() {
        let mut buffer = Vec::new();
        let request = StreamRequest::Speedtest {
            direction: Direction::Up,
            duration_ms: 5000,
        };
        write_header(&mut buffer, &request).await.unwrap();
        let read: StreamRequest = read_header(&mut buffer.as_slice()).await.unwrap();
        assert_eq!(read, request);

        let huge = (MAX_HEADER + 1).to_be_bytes();
        let err = read_header::<StreamRequest>(&mut huge.as_slice())
            .await
            .unwrap_err();
        assert!(matches!(err, HeaderError::TooLong(_)), "{err}");

        let mut garbage = 7u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(b"{\"no\":1");
        let err = read_header::<StreamRequest>(&mut garbage.as_slice())
            .await
            .unwrap_err();
        assert!(matches!(err, HeaderError::Malformed(_)), "{err}");
    }
}

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
    /// The agent's SSH server over a resumable stream ([`crate::resume`] frames): session `id`
    /// starts, or, with `resume`, picks up where a broken tunnel left it.
    SshSession {
        /// The session's id, chosen by the client (a UUID).
        id: String,
        /// Whether this continues an existing session.
        #[serde(default)]
        resume: bool,
        /// What the client has delivered so far.
        #[serde(default)]
        progress: crate::resume::Progress,
    },
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
const TERMINAL_INPUT: u8 = 0;
/// A client frame on a terminal stream: a new size (rows, then columns, 2 bytes each).
const TERMINAL_RESIZE: u8 = 1;

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
    /// For a resumable stream, what the agent has delivered so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<crate::resume::Progress>,
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

/// Why a service stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The tunnel or the stream broke (the tunnel may need dialling again).
    #[error("the tunnel stream broke: {0}")]
    Broken(String),
    /// The agent answered with a refusal.
    #[error("the agent refused: {0}")]
    Refused(String),
}

/// Opens a stream on `connection` for `request` and reads the agent's answer: the streams
/// carry the service's bytes when it accepted.
pub async fn open(
    connection: &iroh::endpoint::Connection,
    request: &StreamRequest,
) -> Result<(iroh::endpoint::SendStream, iroh::endpoint::RecvStream), OpenError> {
    let (send, recv, _) = open_with_reply(connection, request).await?;
    Ok((send, recv))
}

/// [`open`], also returning the agent's reply (a resumable stream's progress).
pub async fn open_with_reply(
    connection: &iroh::endpoint::Connection,
    request: &StreamRequest,
) -> Result<
    (
        iroh::endpoint::SendStream,
        iroh::endpoint::RecvStream,
        StreamReply,
    ),
    OpenError,
> {
    let broke = |err: &dyn std::fmt::Display| OpenError::Broken(err.to_string());
    let (mut send, mut recv) = connection.open_bi().await.map_err(|err| broke(&err))?;
    write_header(&mut send, request)
        .await
        .map_err(|err| broke(&err))?;
    let reply: StreamReply = read_header(&mut recv).await.map_err(|err| broke(&err))?;
    match reply.error {
        Some(error) => Err(OpenError::Refused(error)),
        None => Ok((send, recv, reply)),
    }
}

/// Writes one datagram of a `udp` stream (a 2-byte big-endian length, then the bytes).
pub async fn write_datagram(
    stream: &mut (impl AsyncWrite + Unpin),
    datagram: &[u8],
) -> std::io::Result<()> {
    let length = u16::try_from(datagram.len())
        .map_err(|_| std::io::Error::other("a UDP datagram longer than 65535 bytes"))?;
    let mut frame = Vec::with_capacity(2 + datagram.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(datagram);
    stream.write_all(&frame).await
}

/// Reads one datagram of a `udp` stream.
pub async fn read_datagram(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let length = stream.read_u16().await?;
    let mut datagram = vec![0; usize::from(length)];
    stream.read_exact(&mut datagram).await?;
    Ok(datagram)
}

/// What a client sends on a `terminal` stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TerminalFrame {
    /// Keys typed or pasted.
    Input(Vec<u8>),
    /// The terminal's new size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
}

/// The largest terminal frame accepted (input is typed or pasted, never bulk).
const MAX_TERMINAL_FRAME: u32 = 1 << 20;

/// Writes a terminal frame: a kind byte, a 4-byte big-endian length, the payload.
pub async fn write_terminal_frame(
    stream: &mut (impl AsyncWrite + Unpin),
    frame: &TerminalFrame,
) -> std::io::Result<()> {
    let (kind, payload) = match frame {
        TerminalFrame::Input(data) => (TERMINAL_INPUT, data.clone()),
        TerminalFrame::Resize { rows, cols } => (
            TERMINAL_RESIZE,
            [rows.to_be_bytes(), cols.to_be_bytes()].concat(),
        ),
    };
    let length = u32::try_from(payload.len())
        .ok()
        .filter(|length| *length <= MAX_TERMINAL_FRAME)
        .ok_or_else(|| std::io::Error::other("terminal input too long"))?;
    let mut bytes = Vec::with_capacity(5 + payload.len());
    bytes.push(kind);
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(&payload);
    stream.write_all(&bytes).await
}

/// Reads a terminal frame; `Ok(None)` when the client closed the stream.
pub async fn read_terminal_frame(
    stream: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Option<TerminalFrame>> {
    let Ok(kind) = stream.read_u8().await else {
        return Ok(None);
    };
    let length = stream.read_u32().await?;
    if length > MAX_TERMINAL_FRAME {
        return Err(std::io::Error::other(format!(
            "terminal frame too long ({length} bytes)"
        )));
    }
    let mut payload = vec![0; length as usize];
    stream.read_exact(&mut payload).await?;
    match (kind, payload.as_slice()) {
        (TERMINAL_INPUT, _) => Ok(Some(TerminalFrame::Input(payload))),
        (TERMINAL_RESIZE, [r0, r1, c0, c1]) => Ok(Some(TerminalFrame::Resize {
            rows: u16::from_be_bytes([*r0, *r1]),
            cols: u16::from_be_bytes([*c0, *c1]),
        })),
        _ => Err(std::io::Error::other(format!(
            "unknown terminal frame {kind}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_and_terminal_frames_round_trip() {
        let mut buffer = Vec::new();
        write_datagram(&mut buffer, b"one").await.unwrap();
        write_datagram(&mut buffer, b"").await.unwrap();
        let mut reader = buffer.as_slice();
        assert_eq!(read_datagram(&mut reader).await.unwrap(), b"one");
        assert_eq!(read_datagram(&mut reader).await.unwrap(), b"");

        let frames = [
            TerminalFrame::Input(b"ls\r".to_vec()),
            TerminalFrame::Resize {
                rows: 40,
                cols: 120,
            },
        ];
        let mut buffer = Vec::new();
        for frame in &frames {
            write_terminal_frame(&mut buffer, frame).await.unwrap();
        }
        let mut reader = buffer.as_slice();
        for frame in &frames {
            assert_eq!(
                read_terminal_frame(&mut reader).await.unwrap().as_ref(),
                Some(frame)
            );
        }
        assert_eq!(
            read_terminal_frame(&mut reader).await.unwrap(),
            None,
            "end of stream"
        );
        let bad = [9u8, 0, 0, 0, 0];
        assert!(read_terminal_frame(&mut bad.as_slice()).await.is_err());
    }

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

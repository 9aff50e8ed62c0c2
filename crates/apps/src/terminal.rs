//! The web terminal's WebSocket, bridged to a reconnecting terminal session in the agent: the
//! browser sends JSON text or binary messages (`{"data": "..."}` to type,
//! `{"height": H, "width": W}` to resize) and gets the terminal's output as binary messages.
//! The query is `?reconnect=UUID&width=W&height=H&command=...`.

use axum::extract::ws::{Message, WebSocket};
use futures_util::FutureExt;
use serde::Deserialize;
use tunnel::proto::{self, StreamRequest, TerminalFrame};
use uuid::Uuid;

#[derive(Deserialize)]
pub struct PtyQuery {
    /// The session: the same id reconnects to the same terminal.
    pub reconnect: Uuid,
    #[serde(default = "default_width")]
    pub width: u16,
    #[serde(default = "default_height")]
    pub height: u16,
    /// What to run instead of a login shell.
    #[serde(default)]
    pub command: String,
}

impl PtyQuery {
    /// The stream header that opens (or reattaches to) this session in the agent.
    pub fn stream_request(&self) -> StreamRequest {
        StreamRequest::Terminal {
            id: self.reconnect.to_string(),
            command: self.command.clone(),
            rows: self.height.max(1),
            cols: self.width.max(1),
        }
    }
}

fn default_width() -> u16 {
    80
}

fn default_height() -> u16 {
    24
}

/// One browser message.
#[derive(Deserialize)]
struct Input {
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    height: Option<u16>,
    #[serde(default)]
    width: Option<u16>,
}

/// Copies between the browser's socket and the agent's terminal stream until either ends.
pub async fn bridge(
    mut socket: WebSocket,
    mut send: tunnel::SendStream,
    mut recv: tunnel::RecvStream,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            read = recv.read(&mut buffer) => match read {
                Ok(Some(n)) if n > 0 => {
                    // One message for all that has arrived, not one per packet.
                    let mut filled = n;
                    while filled < buffer.len() {
                        match recv.read(&mut buffer[filled..]).now_or_never() {
                            Some(Ok(Some(more))) if more > 0 => filled += more,
                            _ => break,
                        }
                    }
                    let chunk = axum::body::Bytes::copy_from_slice(&buffer[..filled]);
                    if socket.send(Message::Binary(chunk)).await.is_err() {
                        break;
                    }
                }
                _ => {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            },
            message = socket.recv() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text.as_str().as_bytes().to_vec(),
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                };
                let Ok(input) = serde_json::from_slice::<Input>(&text) else {
                    let _ = socket
                        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                            code: 1003,
                            reason: "expected {\"data\": ...} or {\"height\": ..., \"width\": ...}".into(),
                        })))
                        .await;
                    break;
                };
                if forward(&mut send, input).await.is_err() {
                    break;
                }
            }
        }
    }
    // The terminal session lives on in the agent for a reconnect.
    let _ = send.finish();
}

async fn forward(send: &mut tunnel::SendStream, input: Input) -> std::io::Result<()> {
    if let Some(data) = input.data {
        proto::write_terminal_frame(send, &TerminalFrame::Input(data.into_bytes())).await?;
    }
    if let (Some(rows), Some(cols)) = (input.height, input.width) {
        proto::write_terminal_frame(send, &TerminalFrame::Resize { rows, cols }).await?;
    }
    Ok(())
}

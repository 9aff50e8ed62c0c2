//! The web terminal: `GET /api/v2/workspaceagents/{id}/pty?reconnect=UUID&width=W&height=H
//! &command=...` upgrades to a WebSocket bridged to a reconnecting terminal session in the
//! agent, over the server's own tunnel. The browser sends JSON text or binary messages
//! (`{"data": "..."}` to type, `{"height": H, "width": W}` to resize); the server sends the
//! terminal's output as binary messages.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures_util::FutureExt;
use serde::Deserialize;
use tunnel::proto::{self, StreamRequest, TerminalFrame};
use uuid::Uuid;

use crate::api::agents::connectable_agent;
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
pub(crate) struct PtyQuery {
    reconnect: Uuid,
    #[serde(default = "default_width")]
    width: u16,
    #[serde(default = "default_height")]
    height: u16,
    #[serde(default)]
    command: String,
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

pub(crate) async fn pty(
    State(state): State<AppState>,
    current: CurrentUser,
    Path(id): Path<Uuid>,
    Query(query): Query<PtyQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let agent = connectable_agent(&state, &current, id).await?;
    // Open the agent side first, so a failure is an HTTP error rather than a closed socket.
    let (send, recv) = state
        .agent_conn
        .open(
            agent.id,
            &StreamRequest::Terminal {
                id: query.reconnect.to_string(),
                command: query.command.clone(),
                rows: query.height.max(1),
                cols: query.width.max(1),
            },
        )
        .await
        .map_err(|err| ApiError::bad_gateway(err.to_string()))?;
    Ok(upgrade.on_upgrade(move |socket| bridge(socket, send, recv)))
}

async fn bridge(mut socket: WebSocket, mut send: tunnel::SendStream, mut recv: tunnel::RecvStream) {
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

//! The accept loop shared by the HTTP and HTTPS listeners: a bounded number of connections,
//! the peer address in each request, the embedded relay on `GET /relay`, and a graceful drain
//! on shutdown.
//!
//! Our own loop rather than `axum::serve`: the HTTPS listener needs a TLS handshake per
//! connection, and the relay's upgrade handler needs the connection as iroh-relay's
//! `MaybeTlsStream` served by HTTP/1.1 (HTTP/2 is used only when TLS negotiates `h2`, where no
//! relay upgrade can happen).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::Service as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tunnel::relay::{EmbeddedRelay, MaybeTlsStream};

const MAX_CONNECTIONS: usize = 10_000;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish their requests after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long before the drain period ends [`drain`] runs its last step.
const BEFORE_CUT: Duration = Duration::from_secs(1);

/// Waits for a role's tasks (its [`serve`] loops among them) to finish after its cancel fired,
/// aborting them after `limit`. `before_cut` runs once they finished or shortly before the
/// drain period ends, whichever comes first: while the relay and every connection are still
/// up, so the role can close its own tunnels cleanly after its requests had their time.
pub async fn drain(
    tasks: &mut JoinSet<()>,
    limit: Duration,
    before_cut: impl std::future::Future<Output = ()>,
) {
    let early = DRAIN_TIMEOUT.saturating_sub(BEFORE_CUT);
    let mut finished = tokio::time::timeout(early, join_all(tasks)).await.is_ok();
    before_cut.await;
    if !finished {
        finished = tokio::time::timeout(limit.saturating_sub(early), join_all(tasks))
            .await
            .is_ok();
    }
    if !finished {
        tasks.abort_all();
    }
}

async fn join_all(tasks: &mut JoinSet<()>) {
    while tasks.join_next().await.is_some() {}
}

/// The relay service's failure, as a concrete type: a boxed trait object here trips rustc's
/// inference of the spawned connection future's `Send` bound.
#[derive(Debug, thiserror::Error)]
#[error("relay request failed: {0}")]
struct RelayFailed(String);

/// Serves `router` (and the relay, when given) on `listener` until `cancel` fires, then
/// drains. Cancel-safe only through `cancel`: dropping the future aborts every connection.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    relay: Option<EmbeddedRelay>,
    cancel: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            () = cancel.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let relay = relay.clone();
        let tls = tls.clone();
        let cancel = cancel.clone();
        connections.spawn(async move {
            let _permit = permit;
            let stream = match tls {
                None => MaybeTlsStream::Plain(stream),
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => MaybeTlsStream::Tls(stream),
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            serve_connection(stream, peer, router, relay, cancel).await;
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    // Each connection saw the cancel and is finishing its requests; give them the drain period.
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!("connections still open after the drain period; closing them");
    }
    // The relay's connections outlive this loop: the role closes them after its own tunnels
    // (see `drain`).
    connections.shutdown().await;
}

async fn serve_connection(
    stream: MaybeTlsStream,
    peer: SocketAddr,
    router: Router,
    relay: Option<EmbeddedRelay>,
    cancel: CancellationToken,
) {
    let is_h2 = matches!(
        &stream,
        MaybeTlsStream::Tls(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2")
    );
    let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        let relay = relay
            .clone()
            .filter(|_| EmbeddedRelay::is_relay_request(&request));
        async move {
            let response: Result<http::Response<axum::body::Body>, RelayFailed> = match relay {
                Some(relay) => match relay.service().call(request).await {
                    Ok(response) => Ok(response.map(axum::body::Body::new)),
                    Err(err) => Err(RelayFailed(err.to_string())),
                },
                None => match router.oneshot(request.map(axum::body::Body::new)).await {
                    Ok(response) => Ok(response),
                    Err(never) => match never {},
                },
            };
            response
        }
    });
    let io = TokioIo::new(stream);
    // On cancel a connection stops taking new requests and finishes the ones in flight.
    let result = if is_h2 {
        let connection = http2::Builder::new(TokioExecutor::new()).serve_connection(io, service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => result,
            () = cancel.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
    } else {
        let connection = http1::Builder::new()
            .serve_connection(io, service)
            .with_upgrades();
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => result,
            () = cancel.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
    };
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

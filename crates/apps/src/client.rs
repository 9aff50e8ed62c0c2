//! An HTTP client for apps inside workspaces whose connections are tunnel streams to the
//! agent's TCP forwarder, kept alive and pooled per agent and port, so that a busy app pays for
//! a stream and an upstream connection once, not per request.
//!
//! Upstreams are named by URIs of the form `http[s]://PORT.AGENT.agent/PATH`, which is what
//! the pool keys on; the request's own Host header is what the app sees.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, Join, ReadBuf};
use tunnel::proto::StreamRequest;
use tunnel::{RecvStream, SendStream};
use uuid::Uuid;

use crate::agents::{AgentConnError, AgentConnector};

/// How long an unused upstream connection stays in the pool.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle upstream connections kept per app.
const MAX_IDLE_PER_APP: usize = 64;

/// Where an app request goes inside a workspace.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Upstream {
    pub agent_id: Uuid,
    pub port: u16,
    /// The app speaks HTTPS (its certificate is not checked: see [`AnyCertificate`]).
    pub https: bool,
    /// The app URL's path, without its trailing slash.
    pub base_path: String,
}

impl Upstream {
    /// The absolute URI the pooled client is given for `path_and_query` on this upstream.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, axum::http::uri::InvalidUri> {
        let scheme = if self.https { "https" } else { "http" };
        format!(
            "{scheme}://{}.{}.agent{}{path_and_query}",
            self.port,
            self.agent_id.simple(),
            self.base_path
        )
        .parse()
    }
}

/// Why a connection to an app could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("{0}")]
    Agent(#[from] AgentConnError),
    #[error("TLS with the app failed: {0}")]
    Tls(std::io::Error),
    #[error("not an app upstream URI: {0}")]
    BadUri(String),
}

pub type AppClient = Client<TunnelConnector, Body>;

pub fn client(agents: AgentConnector) -> AppClient {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(MAX_IDLE_PER_APP)
        // The browser's Host header goes to the app, never the pool's synthetic name.
        .set_host(false)
        .build(TunnelConnector(agents))
}

/// Opens a stream to the agent's TCP forwarder for each new upstream connection.
#[derive(Clone)]
pub struct TunnelConnector(AgentConnector);

impl tower::Service<Uri> for TunnelConnector {
    type Response = TokioIo<AppStream>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, DialError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let agents = self.0.clone();
        Box::pin(async move {
            let (port, agent_id) =
                parse_host(&uri).ok_or_else(|| DialError::BadUri(uri.to_string()))?;
            let (send, recv) = agents.open(agent_id, &StreamRequest::Tcp { port }).await?;
            let stream = tokio::io::join(recv, send);
            let stream = if uri.scheme_str() == Some("https") {
                let tls = tokio_rustls::TlsConnector::from(app_tls_config())
                    .connect(
                        rustls::pki_types::ServerName::try_from("localhost").expect("a valid name"),
                        stream,
                    )
                    .await
                    .map_err(DialError::Tls)?;
                AppStream::Tls(Box::new(tls))
            } else {
                AppStream::Plain(stream)
            };
            Ok(TokioIo::new(stream))
        })
    }
}

/// `PORT.AGENT.agent`.
fn parse_host(uri: &Uri) -> Option<(u16, Uuid)> {
    let host = uri.host()?.strip_suffix(".agent")?;
    let (port, agent) = host.split_once('.')?;
    Some((port.parse().ok()?, Uuid::try_parse(agent).ok()?))
}

type Tunnel = Join<RecvStream, SendStream>;

/// One upstream connection: a tunnel stream, with TLS on top for HTTPS apps.
pub enum AppStream {
    Plain(Tunnel),
    Tls(Box<tokio_rustls::client::TlsStream<Tunnel>>),
}

impl Connection for AppStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for AppStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            AppStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            AppStream::Tls(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AppStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            AppStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            AppStream::Tls(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            AppStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            AppStream::Tls(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            AppStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            AppStream::Tls(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

/// The most useful line for a user out of a failed app request: the dial error if there is
/// one (agent offline, port refused, TLS), else the HTTP error itself.
pub fn describe(err: &hyper_util::client::legacy::Error, port: u16) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(dial) = current.downcast_ref::<DialError>() {
            return match dial {
                DialError::Agent(AgentConnError::Refused(reason)) => {
                    format!("The app is not answering on port {port}: {reason}")
                }
                other => other.to_string(),
            };
        }
        source = current.source();
    }
    let mut message = format!("the app's response failed: {err}");
    if let Some(cause) = std::error::Error::source(err) {
        message.push_str(&format!(" ({cause})"));
    }
    message
}

/// TLS to apps inside workspaces. Their certificates are not checked: the bytes already
/// travel in the end-to-end encrypted tunnel to the agent, and from there over the
/// workspace's loopback, where apps commonly use self-signed certificates.
fn app_tls_config() -> std::sync::Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default versions")
                .dangerous()
                .with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            std::sync::Arc::new(config)
        })
        .clone()
}

/// Accepts any certificate whose handshake signature is valid (see [`app_tls_config`]).
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uris_round_trip() {
        let upstream = Upstream {
            agent_id: Uuid::from_u128(0xabc),
            port: 8443,
            https: true,
            base_path: "/base".into(),
        };
        let uri = upstream.uri("/x?y=1").expect("a valid URI");
        assert_eq!(uri.scheme_str(), Some("https"));
        assert_eq!(
            uri.path_and_query().map(|p| p.as_str()),
            Some("/base/x?y=1")
        );
        assert_eq!(parse_host(&uri), Some((8443, upstream.agent_id)));
        assert_eq!(
            parse_host(&"http://example.com/".parse().expect("uri")),
            None
        );
    }
}

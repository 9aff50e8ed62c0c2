//! Serving HTTP(S), shared by `coder server` and `coder wsproxy server`: the HTTPS listener's
//! configuration from certificate files ([`tls`]) and the accept loop that serves a router
//! (and the embedded relay's upgrade on `GET /relay`) with a graceful drain ([`serve`]), and
//! HTTP request metrics ([`metrics`]).

pub mod metrics;
pub mod serve;
pub mod tls;

pub use serve::serve;

use std::sync::Arc;

use tokio::net::TcpListener;

/// The sockets a server (the primary or a workspace proxy) serves on, already bound by the
/// caller.
#[derive(Default)]
pub struct Listeners {
    /// Plain HTTP.
    pub http: Option<TcpListener>,
    /// HTTPS, with its TLS configuration.
    pub tls: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
    /// The Prometheus metrics endpoint.
    pub prometheus: Option<TcpListener>,
}

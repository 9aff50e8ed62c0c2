//! Serving HTTP(S), shared by `coder server` and `coder wsproxy server`: the HTTPS listener's
//! configuration from certificate files ([`tls`]) and the accept loop that serves a router
//! (and the embedded relay's upgrade on `GET /relay`) with a graceful drain ([`serve`]), and
//! HTTP request metrics ([`metrics`]).

pub mod metrics;
pub mod serve;
pub mod tls;

pub use serve::serve;

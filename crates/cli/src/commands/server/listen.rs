//! What `coder server` and `coder wsproxy server` share: where they listen (HTTP, HTTPS and
//! Prometheus), how they log, and how they say so at start.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::builder::BoolishValueParser;
use tokio::net::TcpListener;
use url::Url;

use crate::output;

/// Listeners: `--http-address`, `--tls-*`, `--prometheus-*`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListenArgs {
    /// HTTP listen address; empty disables plain HTTP.
    #[arg(long, env = "CODER_HTTP_ADDRESS", default_value = "127.0.0.1:3000",
          value_parser = parse_listen_address, help_heading = "Networking / HTTP")]
    pub(crate) http_address: String,
    /// Serve HTTPS on --tls-address.
    #[arg(long, env = "CODER_TLS_ENABLE", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), help_heading = "Networking / TLS")]
    pub(crate) tls_enable: bool,
    /// HTTPS listen address.
    #[arg(long, env = "CODER_TLS_ADDRESS", default_value = "127.0.0.1:3443",
          value_parser = parse_listen_address, help_heading = "Networking / TLS")]
    pub(crate) tls_address: String,
    /// PEM certificate (chain) for HTTPS.
    #[arg(
        long,
        env = "CODER_TLS_CERT_FILE",
        value_delimiter = ',',
        value_name = "FILE",
        help_heading = "Networking / TLS"
    )]
    pub(crate) tls_cert_file: Vec<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(
        long,
        env = "CODER_TLS_KEY_FILE",
        value_delimiter = ',',
        value_name = "FILE",
        help_heading = "Networking / TLS"
    )]
    pub(crate) tls_key_file: Vec<PathBuf>,
    /// Client certificates: none, request, require-any, verify-if-given or require-and-verify.
    #[arg(long, env = "CODER_TLS_CLIENT_AUTH", default_value = "none",
          value_parser = |value: &str| value.parse::<coderd::tls::ClientAuth>(),
          help_heading = "Networking / TLS")]
    pub(crate) tls_client_auth: coderd::tls::ClientAuth,
    /// PEM CA certificates that sign client certificates.
    #[arg(
        long,
        env = "CODER_TLS_CLIENT_CA_FILE",
        value_name = "FILE",
        help_heading = "Networking / TLS"
    )]
    pub(crate) tls_client_ca_file: Option<PathBuf>,
    /// Oldest TLS version accepted: tls12 or tls13.
    #[arg(long, env = "CODER_TLS_MIN_VERSION", default_value = "tls12",
          value_parser = |value: &str| value.parse::<coderd::tls::TlsVersion>(),
          help_heading = "Networking / TLS")]
    pub(crate) tls_min_version: coderd::tls::TlsVersion,
    /// Serve Prometheus metrics on --prometheus-address.
    #[arg(long, env = "CODER_PROMETHEUS_ENABLE", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), help_heading = "Introspection")]
    pub(crate) prometheus_enable: bool,
    /// Prometheus listen address.
    #[arg(long, env = "CODER_PROMETHEUS_ADDRESS", default_value = "127.0.0.1:2112",
          value_parser = parse_listen_address, help_heading = "Introspection")]
    pub(crate) prometheus_address: String,
}

impl ListenArgs {
    /// Binds every configured listener (reads the TLS files: call it at start).
    pub(crate) async fn bind(&self) -> Result<httpd::Listeners> {
        if self.http_address.is_empty() && !self.tls_enable {
            bail!("--http-address is empty and --tls-enable is off: there is nothing to listen on");
        }
        let tls = if self.tls_enable {
            Some(httpd::tls::server_config(&httpd::tls::TlsOptions {
                cert_file: single_file(&self.tls_cert_file, "--tls-cert-file")?,
                key_file: single_file(&self.tls_key_file, "--tls-key-file")?,
                client_auth: self.tls_client_auth,
                client_ca_file: self.tls_client_ca_file.clone(),
                min_version: self.tls_min_version,
            })?)
        } else {
            None
        };
        let mut listeners = httpd::Listeners::default();
        if !self.http_address.is_empty() {
            listeners.http = Some(bind(&self.http_address, "--http-address").await?);
        }
        if let Some(tls) = tls {
            listeners.tls = Some((bind(&self.tls_address, "--tls-address").await?, tls));
        }
        if self.prometheus_enable {
            listeners.prometheus =
                Some(bind(&self.prometheus_address, "--prometheus-address").await?);
        }
        Ok(listeners)
    }
}

/// Logs: `--log-human`, `--log-json`, `--log-filter`.
#[derive(Debug, clap::Args)]
pub(crate) struct LogArgs {
    /// Human-readable logs to this file ('/dev/stderr', '/dev/stdout' or a path; empty: none).
    #[arg(
        long,
        env = "CODER_LOGGING_HUMAN",
        default_value = "/dev/stderr",
        help_heading = "Introspection"
    )]
    pub(crate) log_human: String,
    /// JSON logs to this file ('/dev/stderr', '/dev/stdout' or a path; empty: none).
    #[arg(
        long,
        env = "CODER_LOGGING_JSON",
        default_value = "",
        help_heading = "Introspection"
    )]
    pub(crate) log_json: String,
    /// Which logs to keep, as tracing directives (e.g. 'info,coderd=debug')
    /// [default: info, or debug with --verbose].
    #[arg(long, env = "CODER_LOG_FILTER", help_heading = "Introspection")]
    pub(crate) log_filter: Option<String>,
}

impl LogArgs {
    pub(crate) fn install(&self, verbose: bool) -> Result<()> {
        super::logging::install(
            &self.log_human,
            &self.log_json,
            self.log_filter.as_deref(),
            verbose,
        )
    }
}

/// The access URL when none is configured: the HTTPS listener's address, else the HTTP one's.
pub(crate) fn derived_access_url(listeners: &httpd::Listeners) -> Result<Url> {
    match (&listeners.http, &listeners.tls) {
        (_, Some((listener, _))) => default_access_url(listener.local_addr()?, "https"),
        (Some(listener), None) => default_access_url(listener.local_addr()?, "http"),
        (None, None) => bail!("no listener"),
    }
}

/// Prints where the listeners ended up (port 0 resolved).
pub(crate) fn announce(
    http: Option<SocketAddr>,
    tls: Option<SocketAddr>,
    prometheus: Option<SocketAddr>,
) -> Result<()> {
    let shown = |address, scheme| -> Result<String> {
        Ok(default_access_url(address, scheme)?
            .as_str()
            .trim_end_matches('/')
            .to_owned())
    };
    if let Some(address) = http {
        output::line(format!(
            "Started HTTP listener at {}",
            shown(address, "http")?
        ))?;
    }
    if let Some(address) = tls {
        output::line(format!(
            "Started TLS/HTTPS listener at {}",
            shown(address, "https")?
        ))?;
    }
    if let Some(address) = prometheus {
        output::line(format!(
            "Started Prometheus metrics endpoint at {}/metrics",
            shown(address, "http")?
        ))?;
    }
    Ok(())
}

/// Accepts `host:port`, `:port` (all interfaces) or the empty string (disabled).
pub(crate) fn parse_listen_address(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let normalized = match value.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => value.to_owned(),
    };
    normalized
        .to_socket_addrs()
        .map_err(|err| format!("{err} (expected host:port)"))?
        .next()
        .ok_or_else(|| "resolves to no address".to_owned())?;
    Ok(normalized)
}

async fn bind(address: &str, option: &str) -> Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {option} {address}"))
}

fn single_file(files: &[PathBuf], option: &str) -> Result<PathBuf> {
    match files {
        [file] => Ok(file.clone()),
        [] => bail!("{option} is required with --tls-enable"),
        _ => bail!("{option} takes one file in this version"),
    }
}

/// The access URL to use when none is configured: the listener's own address.
pub(crate) fn default_access_url(address: SocketAddr, scheme: &str) -> Result<Url> {
    let host = if address.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else if address.is_ipv6() {
        format!("[{}]", address.ip())
    } else {
        address.ip().to_string()
    };
    Url::parse(&format!("{scheme}://{host}:{}", address.port())).context("building the access URL")
}

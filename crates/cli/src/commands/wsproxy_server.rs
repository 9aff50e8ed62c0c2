//! `coder wsproxy server`: validates the options, binds the listeners, registers with the
//! primary and serves until SIGINT or SIGTERM (deregistering on the way out), or until the
//! primary has refused it for too long.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::builder::BoolishValueParser;
use sdk::Secret;
use url::Url;

use super::server::{
    bind, default_access_url, parse_http_url, parse_listen_address, parse_wildcard, single_file,
    wait_for_signal,
};
use crate::commands::GlobalArgs;
use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct ProxyServerArgs {
    /// YAML file of proxy options (keys as --write-config prints them); flags and CODER_*
    /// variables take precedence over it.
    #[arg(long, env = "CODER_CONFIG_PATH", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration as YAML (secrets left out) and exit.
    #[arg(long)]
    pub(crate) write_config: bool,
    /// The effective configuration, filled in by `parse` when --write-config is given.
    #[arg(skip)]
    pub(crate) effective_yaml: Option<String>,

    /// The primary's (the dashboard's) URL.
    #[arg(long, env = "CODER_PRIMARY_ACCESS_URL", value_parser = parse_http_url,
          help_heading = "External Workspace Proxy")]
    primary_access_url: Option<Url>,
    /// The token `coder wsproxy create` printed (ID:SECRET).
    #[arg(
        long,
        env = "CODER_PROXY_SESSION_TOKEN",
        hide_env_values = true,
        help_heading = "External Workspace Proxy"
    )]
    proxy_session_token: Option<String>,
    /// Serve only the relay: no apps, no terminal.
    #[arg(long, env = "CODER_PROXY_DERP_ONLY", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), help_heading = "External Workspace Proxy")]
    derp_only: bool,

    /// The URL users reach this proxy at [default: derived from the listener].
    #[arg(long, env = "CODER_ACCESS_URL", value_parser = parse_http_url, help_heading = "Networking")]
    access_url: Option<Url>,
    /// Wildcard host for subdomain apps on this proxy, e.g. '*.east.coder.example.com'.
    #[arg(long, env = "CODER_WILDCARD_ACCESS_URL", value_parser = parse_wildcard, help_heading = "Networking")]
    wildcard_access_url: Option<String>,
    /// HTTP listen address; empty disables plain HTTP.
    #[arg(long, env = "CODER_HTTP_ADDRESS", default_value = "127.0.0.1:3000",
          value_parser = parse_listen_address, help_heading = "Networking / HTTP")]
    http_address: String,
    /// Serve HTTPS on --tls-address.
    #[arg(long, env = "CODER_TLS_ENABLE", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), help_heading = "Networking / TLS")]
    tls_enable: bool,
    /// HTTPS listen address.
    #[arg(long, env = "CODER_TLS_ADDRESS", default_value = "127.0.0.1:3443",
          value_parser = parse_listen_address, help_heading = "Networking / TLS")]
    tls_address: String,
    /// PEM certificate (chain) for HTTPS.
    #[arg(
        long,
        env = "CODER_TLS_CERT_FILE",
        value_delimiter = ',',
        value_name = "FILE",
        help_heading = "Networking / TLS"
    )]
    tls_cert_file: Vec<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(
        long,
        env = "CODER_TLS_KEY_FILE",
        value_delimiter = ',',
        value_name = "FILE",
        help_heading = "Networking / TLS"
    )]
    tls_key_file: Vec<PathBuf>,
    /// Client certificates: none, request, require-any, verify-if-given or require-and-verify.
    #[arg(long, env = "CODER_TLS_CLIENT_AUTH", default_value = "none",
          value_parser = |value: &str| value.parse::<coderd::tls::ClientAuth>(),
          help_heading = "Networking / TLS")]
    tls_client_auth: coderd::tls::ClientAuth,
    /// PEM CA certificates that sign client certificates.
    #[arg(
        long,
        env = "CODER_TLS_CLIENT_CA_FILE",
        value_name = "FILE",
        help_heading = "Networking / TLS"
    )]
    tls_client_ca_file: Option<PathBuf>,
    /// Oldest TLS version accepted: tls12 or tls13.
    #[arg(long, env = "CODER_TLS_MIN_VERSION", default_value = "tls12",
          value_parser = |value: &str| value.parse::<coderd::tls::TlsVersion>(),
          help_heading = "Networking / TLS")]
    tls_min_version: coderd::tls::TlsVersion,
    /// Run a relay (a region of the relay map named after this proxy).
    #[arg(long, env = "CODER_DERP_SERVER_ENABLE", num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), help_heading = "Networking / DERP")]
    derp_server_enable: bool,
    /// Reach agents through relays only.
    #[arg(long, env = "CODER_BLOCK_DIRECT", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), help_heading = "Networking")]
    block_direct_connections: bool,
    /// Serve workspace apps only on subdomains of --wildcard-access-url.
    #[arg(long, env = "CODER_DISABLE_PATH_APPS", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), help_heading = "Networking")]
    disable_path_apps: bool,

    /// Serve Prometheus metrics on --prometheus-address.
    #[arg(long, env = "CODER_PROMETHEUS_ENABLE", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), help_heading = "Introspection")]
    prometheus_enable: bool,
    /// Prometheus listen address.
    #[arg(long, env = "CODER_PROMETHEUS_ADDRESS", default_value = "127.0.0.1:2112",
          value_parser = parse_listen_address, help_heading = "Introspection")]
    prometheus_address: String,
    /// Human-readable logs to this file ('/dev/stderr', '/dev/stdout' or a path; empty: none).
    #[arg(
        long,
        env = "CODER_LOGGING_HUMAN",
        default_value = "/dev/stderr",
        help_heading = "Introspection"
    )]
    log_human: String,
    /// JSON logs to this file ('/dev/stderr', '/dev/stdout' or a path; empty: none).
    #[arg(
        long,
        env = "CODER_LOGGING_JSON",
        default_value = "",
        help_heading = "Introspection"
    )]
    log_json: String,
    /// Which logs to keep, as tracing directives [default: info, or debug with --verbose].
    #[arg(long, env = "CODER_LOG_FILTER", help_heading = "Introspection")]
    log_filter: Option<String>,
}

pub(crate) async fn run(global: &GlobalArgs, args: ProxyServerArgs) -> Result<ExitCode> {
    if let Some(yaml) = &args.effective_yaml {
        output::line(yaml.trim_end())?;
        return Ok(ExitCode::SUCCESS);
    }
    super::server::logging::install(
        &args.log_human,
        &args.log_json,
        args.log_filter.as_deref(),
        global.verbose,
    )?;
    let Some(primary_access_url) = args.primary_access_url.clone() else {
        bail!(
            "--primary-access-url (CODER_PRIMARY_ACCESS_URL) is required: the URL of the primary Coder server"
        );
    };
    let Some(token) = args.proxy_session_token.clone().filter(|t| !t.is_empty()) else {
        bail!(
            "--proxy-session-token (CODER_PROXY_SESSION_TOKEN) is required: the token 'coder wsproxy create' printed"
        );
    };
    if args.http_address.is_empty() && !args.tls_enable {
        bail!("--http-address is empty and --tls-enable is off: there is nothing to listen on");
    }
    if args.derp_only && !args.derp_server_enable {
        bail!("--derp-only needs the relay: do not turn off --derp-server-enable");
    }
    let tls = if args.tls_enable {
        Some(coderd::tls::server_config(&coderd::tls::TlsOptions {
            cert_file: single_file(&args.tls_cert_file, "--tls-cert-file")?,
            key_file: single_file(&args.tls_key_file, "--tls-key-file")?,
            client_auth: args.tls_client_auth,
            client_ca_file: args.tls_client_ca_file.clone(),
            min_version: args.tls_min_version,
        })?)
    } else {
        None
    };
    let mut listeners = wsproxy::Listeners::default();
    if !args.http_address.is_empty() {
        listeners.http = Some(bind(&args.http_address, "--http-address").await?);
    }
    if let Some(tls) = tls {
        listeners.tls = Some((bind(&args.tls_address, "--tls-address").await?, tls));
    }
    if args.prometheus_enable {
        listeners.prometheus = Some(bind(&args.prometheus_address, "--prometheus-address").await?);
    }
    let access_url = match (&args.access_url, &listeners.http, &listeners.tls) {
        (Some(url), _, _) => url.clone(),
        (None, _, Some((listener, _))) => default_access_url(listener.local_addr()?, "https")?,
        (None, Some(listener), None) => default_access_url(listener.local_addr()?, "http")?,
        (None, None, None) => bail!("no listener"),
    };
    let config = wsproxy::Config {
        primary_access_url: primary_access_url.clone(),
        proxy_session_token: Secret::new(token),
        access_url: access_url.clone(),
        wildcard_access_url: args.wildcard_access_url.clone().filter(|w| !w.is_empty()),
        derp_only: args.derp_only,
        relay_enabled: args.derp_server_enable,
        block_direct_connections: args.block_direct_connections,
        disable_path_apps: args.disable_path_apps,
        version: coderd::VERSION.to_owned(),
        http: crate::session::http_client()?,
    };
    let mut handle = wsproxy::spawn(config, listeners)
        .await
        .with_context(|| format!("starting the workspace proxy for {primary_access_url}"))?;
    if let Some(address) = handle.http_address {
        output::line(format!(
            "Started HTTP listener at {}",
            default_access_url(address, "http")?
                .as_str()
                .trim_end_matches('/')
        ))?;
    }
    if let Some(address) = handle.tls_address {
        output::line(format!(
            "Started TLS/HTTPS listener at {}",
            default_access_url(address, "https")?
                .as_str()
                .trim_end_matches('/')
        ))?;
    }
    if let Some(address) = handle.prometheus_address {
        output::line(format!(
            "Started Prometheus metrics endpoint at {}/metrics",
            default_access_url(address, "http")?
                .as_str()
                .trim_end_matches('/')
        ))?;
    }
    output::line(format!(
        "Registered with the primary at {}",
        primary_access_url.as_str().trim_end_matches('/')
    ))?;
    output::line(format!(
        "Serving workspace apps at: {}",
        access_url.as_str().trim_end_matches('/')
    ))?;
    tokio::select! {
        result = wait_for_signal() => {
            result?;
            output::line("Interrupt caught, gracefully exiting. Use ctrl+\\ to force quit")?;
        }
        reason = handle.failed() => {
            handle.shutdown().await;
            bail!("the workspace proxy stopped: {reason}");
        }
    }
    tokio::select! {
        () = handle.shutdown() => {}
        result = wait_for_signal() => {
            result?;
            output::note("Second interrupt: exiting without cleaning up");
            return Ok(ExitCode::FAILURE);
        }
    }
    output::line("Stopped.")?;
    Ok(ExitCode::SUCCESS)
}

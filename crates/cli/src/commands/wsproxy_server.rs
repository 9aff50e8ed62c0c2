//! `coder wsproxy server`: validates the options, binds the listeners, registers with the
//! primary and serves until SIGINT or SIGTERM (deregistering on the way out), or until the
//! primary has refused it for too long.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::builder::BoolishValueParser;
use sdk::Secret;
use url::Url;

use super::server::listen::{ListenArgs, LogArgs, announce, derived_access_url};
use super::server::{parse_http_url, parse_wildcard, wait_for_signal};
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
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    logs: LogArgs,
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
}

pub(crate) async fn run(global: &GlobalArgs, args: ProxyServerArgs) -> Result<ExitCode> {
    if let Some(yaml) = &args.effective_yaml {
        output::line(yaml.trim_end())?;
        return Ok(ExitCode::SUCCESS);
    }
    args.logs.install(global.verbose)?;
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
    if args.derp_only && !args.derp_server_enable {
        bail!("--derp-only needs the relay: do not turn off --derp-server-enable");
    }
    let listeners = args.listen.bind().await?;
    let access_url = match &args.access_url {
        Some(url) => url.clone(),
        None => derived_access_url(&listeners)?,
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
    announce(
        handle.http_address,
        handle.tls_address,
        handle.prometheus_address,
    )?;
    output::line(format!(
        "Registered with the primary at {}",
        primary_access_url.as_str().trim_end_matches('/')
    ))?;
    output::line(format!(
        "Serving workspace apps at: {}",
        access_url.as_str().trim_end_matches('/')
    ))?;
    crate::systemd::notify("READY=1");
    tokio::select! {
        result = wait_for_signal() => {
            result?;
            crate::systemd::notify("STOPPING=1");
            output::line("Interrupt caught, gracefully exiting. Use ctrl+\\ to force quit")?;
        }
        reason = handle.failed() => {
            crate::systemd::notify("STOPPING=1");
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

//! `coder server`: validates the options, binds the listeners, starts the control plane and
//! runs until SIGINT or SIGTERM. Also `coder server postgres-builtin-serve`.

pub(crate) mod listen;
mod logging;
mod options;
mod provisioners;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::builder::BoolishValueParser;
use sdk::Secret;
use tokio::signal::unix::{SignalKind, signal};
use url::Url;

pub(crate) use options::{Role, config_file_defaults};

use crate::commands::GlobalArgs;
use crate::output;

/// The largest JSON request body the API accepts.
const MAX_REQUEST_BODY_BYTES: usize = 1 << 20;
/// Password attempts allowed per client address per minute.
const LOGIN_ATTEMPTS_PER_MINUTE: u32 = 10;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ServerArgs {
    #[command(subcommand)]
    command: Option<ServerCommand>,

    /// YAML file of server options (keys as --write-config prints them); flags and CODER_*
    /// variables take precedence over it.
    #[arg(long, env = "CODER_CONFIG_PATH", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration as YAML (secrets left out) and exit.
    #[arg(long)]
    write_config: bool,
    /// The effective configuration, filled in by `parse` when --write-config is given.
    #[arg(skip)]
    pub(crate) effective_yaml: Option<String>,

    /// The URL users, agents and workspace proxies reach this server at
    /// [default: derived from the listener].
    #[arg(long, env = "CODER_ACCESS_URL", value_parser = parse_http_url, help_heading = "Networking")]
    access_url: Option<Url>,
    /// Wildcard host for subdomain apps, e.g. '*.coder.example.com'.
    #[arg(long, env = "CODER_WILDCARD_ACCESS_URL", value_parser = parse_wildcard, help_heading = "Networking")]
    wildcard_access_url: Option<String>,
    /// Mark the session cookie Secure (always so when the access URL is https).
    #[arg(long, env = "CODER_SECURE_AUTH_COOKIE", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), help_heading = "Networking")]
    secure_auth_cookie: bool,
    #[command(flatten)]
    listen: listen::ListenArgs,
    #[command(flatten)]
    logs: listen::LogArgs,
    /// How long a login session lasts without use.
    #[arg(long, env = "CODER_SESSION_DURATION", default_value = "24h",
          value_parser = parse_duration, help_heading = "Networking / HTTP")]
    session_duration: Duration,
    /// The longest lifetime a user may give an API token.
    #[arg(long, env = "CODER_MAX_TOKEN_LIFETIME", default_value = "876600h",
          value_parser = parse_duration, help_heading = "Networking / HTTP")]
    max_token_lifetime: Duration,
    /// The lifetime of an API token created without one.
    #[arg(long, env = "CODER_DEFAULT_TOKEN_LIFETIME", default_value = "168h",
          value_parser = parse_duration, help_heading = "Networking / HTTP")]
    default_token_lifetime: Duration,

    /// PostgreSQL URL; without one the server runs a built-in PostgreSQL in
    /// <global-config>/postgres.
    #[arg(
        long,
        env = "CODER_PG_CONNECTION_URL",
        hide_env_values = true,
        help_heading = "Database"
    )]
    postgres_url: Option<String>,

    /// Serve the relay (the seeds' DERP) at /relay on the API's own address. It admits only
    /// endpoints this deployment knows.
    #[arg(long, env = "CODER_DERP_SERVER_ENABLE", num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), help_heading = "Networking / DERP")]
    derp_server_enable: bool,
    /// The embedded relay's region ID in the relay map.
    #[arg(
        long,
        env = "CODER_DERP_SERVER_REGION_ID",
        default_value = "999",
        help_heading = "Networking / DERP"
    )]
    derp_server_region_id: i64,
    /// The embedded relay's region code.
    #[arg(
        long,
        env = "CODER_DERP_SERVER_REGION_CODE",
        default_value = "coder",
        help_heading = "Networking / DERP"
    )]
    derp_server_region_code: String,
    /// The embedded relay's region name.
    #[arg(
        long,
        env = "CODER_DERP_SERVER_REGION_NAME",
        default_value = "Coder Embedded Relay",
        help_heading = "Networking / DERP"
    )]
    derp_server_region_name: String,
    /// Never use direct (peer-to-peer) paths: every tunnel between clients and agents goes
    /// through a relay.
    #[arg(long, env = "CODER_BLOCK_DIRECT", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), help_heading = "Networking")]
    block_direct_connections: bool,
    /// Serve workspace apps only on subdomains of --wildcard-access-url: path apps share the
    /// dashboard's origin, so a malicious app could act as the signed-in user.
    #[arg(long, env = "CODER_DISABLE_PATH_APPS", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new(), help_heading = "Networking")]
    disable_path_apps: bool,
    /// How often the health of each workspace proxy is checked (sooner after one registers,
    /// leaves or is changed).
    #[arg(long, env = "CODER_PROXY_HEALTH_INTERVAL", default_value = "1m",
          value_parser = parse_duration, help_heading = "Networking / HTTP")]
    proxy_health_interval: Duration,
    /// A relay map (Tailscale's DERP-map JSON) fetched at start and merged with the embedded
    /// region. Its relays must speak iroh's relay protocol.
    #[arg(
        long,
        env = "CODER_DERP_CONFIG_URL",
        conflicts_with = "derp_config_path",
        help_heading = "Networking / DERP"
    )]
    derp_config_url: Option<String>,
    /// A relay map file (Tailscale's DERP-map JSON) merged with the embedded region.
    #[arg(
        long,
        env = "CODER_DERP_CONFIG_PATH",
        value_name = "FILE",
        help_heading = "Networking / DERP"
    )]
    derp_config_path: Option<PathBuf>,

    /// Provisioner daemons to run inside the server (0: only external ones).
    #[arg(
        long,
        env = "CODER_PROVISIONER_DAEMONS",
        default_value = "3",
        help_heading = "Provisioning"
    )]
    provisioner_daemons: usize,
    /// Pre-shared key external provisioners ('coder provisioner start') authenticate with;
    /// without one, external provisioners are refused.
    #[arg(
        long,
        env = "CODER_PROVISIONER_DAEMON_PSK",
        hide_env_values = true,
        help_heading = "Provisioning"
    )]
    provisioner_daemon_psk: Option<String>,
    /// A running job fails when its provisioner sends no heartbeat for this long.
    #[arg(long, env = "CODER_PROVISIONER_HEARTBEAT_TIMEOUT", default_value = "30s",
          value_parser = parse_duration, help_heading = "Provisioning")]
    provisioner_heartbeat_timeout: Duration,

    /// Send usage telemetry. Off by default; this build has no telemetry endpoint, so turning
    /// it on sends nothing either.
    #[arg(long, env = "CODER_TELEMETRY_ENABLE", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    telemetry: bool,
    /// Check for new releases. Off by default (air-gapped installs reach nothing outside).
    #[arg(long, env = "CODER_UPDATE_CHECK", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    update_check: bool,
    /// Experiments to enable, comma-separated ('*' for all).
    #[arg(long, env = "CODER_EXPERIMENTS", value_delimiter = ',')]
    experiments: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
enum ServerCommand {
    /// Run the built-in PostgreSQL alone and print its URL (for psql, or a test run).
    PostgresBuiltinServe {
        /// Print only the URL.
        #[arg(long)]
        raw_url: bool,
    },
}

/// Fills `effective_yaml` when `--write-config` was given (needs the raw matches).
pub(crate) fn attach_effective_yaml(args: &mut ServerArgs, matches: &clap::ArgMatches) {
    if args.write_config
        && let Some((role, server)) = options::Role::of(matches)
    {
        args.effective_yaml = Some(options::effective_yaml(role, server));
    }
}

/// [`attach_effective_yaml`] for `coder wsproxy server`.
pub(crate) fn effective_yaml(matches: &clap::ArgMatches) -> Option<String> {
    options::Role::of(matches).map(|(role, server)| options::effective_yaml(role, server))
}

pub(crate) fn parse_http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|err| err.to_string())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".to_owned());
    }
    Ok(url)
}

pub(crate) fn parse_wildcard(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let host = value.split_once(':').map_or(value, |(host, _)| host);
    let rest = host
        .strip_prefix('*')
        .ok_or("must start with '*', e.g. '*.coder.example.com'")?;
    if value.contains("://") || rest.matches('.').count() < 1 || rest.contains('*') {
        return Err("must look like '*.coder.example.com' (no scheme, one leading '*')".to_owned());
    }
    Ok(value.to_owned())
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|err| format!("{err} (e.g. 24h, 30m, 7d)"))
}

pub(crate) async fn run(global: &GlobalArgs, args: ServerArgs) -> Result<ExitCode> {
    if let Some(yaml) = &args.effective_yaml {
        output::line(yaml.trim_end())?;
        return Ok(ExitCode::SUCCESS);
    }
    args.logs.install(global.verbose)?;
    if let Some(ServerCommand::PostgresBuiltinServe { raw_url }) = args.command {
        return postgres_builtin_serve(global, raw_url).await;
    }
    if args.telemetry {
        tracing::warn!(
            "telemetry is enabled, but this build has no telemetry endpoint: nothing is sent"
        );
    }
    if args.update_check {
        tracing::warn!("update checks are not implemented: nothing is fetched");
    }
    let listeners = args.listen.bind().await?;
    let access_url = match &args.access_url {
        Some(url) => url.clone(),
        None => listen::derived_access_url(&listeners)?,
    };
    let database = match &args.postgres_url {
        Some(url) if !url.is_empty() => coderd::Database::Url(Secret::new(url.clone())),
        _ => {
            let dir = global.config_dir().join("postgres");
            output::line(format!("Using built-in PostgreSQL ({})", dir.display()))?;
            coderd::Database::Builtin { dir }
        }
    };
    // The built-in daemons' own key: random per process, never printed.
    let builtin_key = Secret::new(random_key());
    let mut provisioner_keys = vec![builtin_key.clone()];
    match args.provisioner_daemon_psk.as_deref() {
        Some(psk) if psk.len() >= 16 => provisioner_keys.push(Secret::new(psk)),
        Some("") | None => {}
        Some(_) => bail!("--provisioner-daemon-psk must be at least 16 characters long"),
    }
    let relay_map = relay_map(&args, &access_url).await?;
    let config = coderd::Config {
        access_url: access_url.clone(),
        wildcard_access_url: args.wildcard_access_url.clone().filter(|w| !w.is_empty()),
        database,
        session_duration: args.session_duration,
        max_token_lifetime: args.max_token_lifetime,
        default_token_lifetime: args.default_token_lifetime,
        secure_auth_cookie: args.secure_auth_cookie,
        max_request_body_bytes: MAX_REQUEST_BODY_BYTES,
        login_attempts_per_minute: LOGIN_ATTEMPTS_PER_MINUTE,
        experiments: args.experiments.clone(),
        telemetry: args.telemetry,
        provisioner_keys,
        provisioner_heartbeat_timeout: args.provisioner_heartbeat_timeout,
        relay_enabled: args.derp_server_enable,
        relay_map,
        block_direct_connections: args.block_direct_connections,
        disable_path_apps: args.disable_path_apps,
        proxy_health_interval: args.proxy_health_interval,
    };
    let handle = match coderd::spawn(config, listeners).await {
        Ok(handle) => handle,
        Err(err) if err.is_missing_postgres() => {
            return Err(output::hint(
                err,
                "install PostgreSQL's server package (Debian/Ubuntu: apt-get install postgresql) \
                 or pass --postgres-url",
            ));
        }
        Err(err) => return Err(err.into()),
    };
    listen::announce(
        handle.http_address,
        handle.tls_address,
        handle.prometheus_address,
    )?;
    let daemons = provisioners::start_builtin(
        args.provisioner_daemons,
        handle.http_address,
        &access_url,
        builtin_key,
    )?;
    output::line(format!("View the Web UI: {}", display_url(&access_url)))?;
    crate::systemd::notify("READY=1");

    wait_for_signal().await?;
    crate::systemd::notify("STOPPING=1");
    output::line("Interrupt caught, gracefully exiting. Use ctrl+\\ to force quit")?;
    let shutdown = async {
        daemons.shutdown().await;
        handle.shutdown().await;
    };
    tokio::select! {
        () = shutdown => {}
        result = wait_for_signal() => {
            result?;
            output::note("Second interrupt: exiting without cleaning up");
            return Ok(ExitCode::FAILURE);
        }
    }
    output::line("Stopped.")?;
    Ok(ExitCode::SUCCESS)
}

/// The relay map: the base map from --derp-config-path or --derp-config-url, plus the embedded
/// relay's region (reached at the access URL).
async fn relay_map(args: &ServerArgs, access_url: &Url) -> Result<sdk::DerpMap> {
    let base: sdk::DerpMap = if let Some(path) = &args.derp_config_path {
        let text = tokio::fs::read_to_string(path)
            .await
            .with_context(|| format!("reading --derp-config-path {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("parsing --derp-config-path {}", path.display()))?
    } else if let Some(url) = &args.derp_config_url {
        let response = crate::session::http_client()?
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("fetching --derp-config-url {url}"))?;
        response
            .json()
            .await
            .with_context(|| format!("parsing the relay map from --derp-config-url {url}"))?
    } else {
        sdk::DerpMap::default()
    };
    let embedded = args.derp_server_enable.then(|| {
        tunnel::relay_map::embedded_region(
            args.derp_server_region_id,
            &args.derp_server_region_code,
            &args.derp_server_region_name,
            access_url.host_str().unwrap_or_default(),
            access_url.port_or_known_default().unwrap_or(443),
            access_url.scheme() == "http",
        )
    });
    let map = tunnel::relay_map::merge(base, embedded).map_err(|err| match err {
        tunnel::relay_map::RelayMapError::RegionConflict { id } => {
            anyhow::anyhow!("--derp-server-region-id {id} conflicts with the relay map: {err}")
        }
        other => anyhow::Error::new(other).context("building the relay map"),
    })?;
    if !tunnel::relay_map::has_relay(&map) {
        tracing::warn!(
            "the relay map has no relay: tunnels that cannot go direct need a workspace proxy's relay (or enable --derp-server-enable)"
        );
    }
    Ok(map)
}

fn random_key() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// A URL as users type it: no trailing slash after the host.
fn display_url(url: &Url) -> &str {
    url.as_str().trim_end_matches('/')
}

pub(crate) async fn wait_for_signal() -> Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

async fn postgres_builtin_serve(global: &GlobalArgs, raw_url: bool) -> Result<ExitCode> {
    let dir = global.config_dir().join("postgres");
    let postgres = match coderd::BuiltinPostgres::start(&dir).await {
        Ok(postgres) => postgres,
        Err(err) => {
            let err = coderd::StartError::from(err);
            if err.is_missing_postgres() {
                return Err(output::hint(
                    err,
                    "install PostgreSQL's server package (Debian/Ubuntu: apt-get install postgresql)",
                ));
            }
            return Err(err.into());
        }
    };
    if raw_url {
        output::line(postgres.url())?;
    } else {
        output::line(format!(
            "Started built-in PostgreSQL: psql \"{}\"",
            postgres.url()
        ))?;
    }
    wait_for_signal().await?;
    postgres.stop().await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::listen::parse_listen_address;
    use super::*;
    use crate::commands::Cli;

    #[test]
    fn every_option_is_a_flag_an_env_var_and_a_yaml_key() {
        let command = Cli::command();
        let server = command.find_subcommand("server").unwrap();
        for arg in server.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(
                id,
                "config"
                    | "write_config"
                    | "help"
                    | "url"
                    | "token"
                    | "global_config"
                    | "verbose"
                    | "version"
            ) {
                continue;
            }
            let env = arg.get_env().map(|env| env.to_string_lossy().into_owned());
            assert!(
                env.as_deref().is_some_and(|env| env.starts_with("CODER_")),
                "{id} has no CODER_ variable"
            );
            assert!(
                options::OPTIONS.iter().any(|spec| spec.id == id),
                "{id} has no YAML key"
            );
        }
        for spec in options::OPTIONS {
            assert!(
                server.get_arguments().any(|arg| arg.get_id() == spec.id),
                "{} is not an arg",
                spec.id
            );
        }
    }

    fn check_listen(input: &str, expected: Result<&str, ()>) {
        assert_eq!(
            parse_listen_address(input).map_err(drop),
            expected.map(str::to_owned),
            "{input:?}"
        );
    }

    #[test]
    fn listen_addresses() {
        check_listen("127.0.0.1:3000", Ok("127.0.0.1:3000"));
        check_listen(":3000", Ok("0.0.0.0:3000"));
        check_listen("", Ok(""));
        check_listen("nonsense", Err(()));
        check_listen("127.0.0.1:99999", Err(()));
    }

    #[test]
    fn wildcards() {
        assert!(parse_wildcard("*.coder.example.com").is_ok());
        assert!(parse_wildcard("*--apps.example.com").is_ok());
        assert!(parse_wildcard("coder.example.com").is_err());
        assert!(parse_wildcard("https://*.example.com").is_err());
        assert!(parse_wildcard("*").is_err());
    }
}

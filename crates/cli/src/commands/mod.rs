//! The command tree, mirroring Coder's. `parse` also merges the server's YAML config file
//! below flags and environment variables; `run` dispatches to one command.

mod agent;
mod config_ssh;
mod login;
mod logout;
mod netcheck;
mod ping;
mod port_forward;
mod provisioner;
pub(crate) mod server;
mod speedtest;
mod ssh;
mod templates;
mod tokens;
mod users;
mod whoami;
pub(crate) mod workspaces;
mod wsproxy;
mod wsproxy_server;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use sdk::WorkspaceTransition;
use tracing::Metadata;
use tracing_subscriber::filter::FilterFn;

use crate::session;

/// Coder: self-hosted remote development workspaces.
#[derive(Debug, Parser)]
#[command(name = "coder", version = coderd::VERSION, propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every command accepts.
#[derive(Debug, clap::Args)]
pub(crate) struct GlobalArgs {
    /// URL of the deployment (default: the one saved by 'coder login').
    #[arg(long, env = "CODER_URL", global = true)]
    pub(crate) url: Option<String>,
    /// Session token to authenticate with (default: the one saved by 'coder login').
    #[arg(
        long,
        env = "CODER_SESSION_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
    /// Directory holding the CLI's session and the server's built-in database
    /// [default: ~/.config/coderv2].
    #[arg(
        long = "global-config",
        env = "CODER_CONFIG_DIR",
        global = true,
        value_name = "DIR"
    )]
    pub(crate) global_config: Option<PathBuf>,
    /// Log more (debug level).
    #[arg(short, long, env = "CODER_VERBOSE", global = true)]
    pub(crate) verbose: bool,
    /// Never connect to workspaces directly (p2p): every tunnel goes through a relay.
    #[arg(long, env = "CODER_DISABLE_DIRECT_CONNECTIONS", global = true)]
    pub(crate) disable_direct_connections: bool,
}

impl GlobalArgs {
    /// How this user's tunnels may travel.
    pub(crate) fn dial_options(&self) -> crate::dial::DialOptions {
        crate::dial::DialOptions {
            relay_only: self.disable_direct_connections,
        }
    }

    pub(crate) fn config_dir(&self) -> PathBuf {
        self.global_config
            .clone()
            .unwrap_or_else(session::default_config_dir)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start a Coder server.
    Server(Box<server::ServerArgs>),
    /// Authenticate with a Coder deployment.
    Login(login::LoginArgs),
    /// Unauthenticate your local session.
    Logout(logout::LogoutArgs),
    /// Show who you are logged in as.
    Whoami,
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Manage personal API tokens.
    Tokens {
        #[command(subcommand)]
        command: tokens::TokensCommand,
    },
    /// Manage templates.
    Templates {
        #[command(subcommand)]
        command: templates::TemplatesCommand,
    },
    /// Create a workspace from a template.
    Create(workspaces::CreateArgs),
    /// List workspaces.
    #[command(alias = "ls")]
    List(workspaces::ListArgs),
    /// Show a workspace: its status, build, resources and agent.
    Show(workspaces::ShowArgs),
    /// Start a workspace.
    Start(workspaces::WorkspaceArgs),
    /// Stop a workspace.
    Stop(workspaces::WorkspaceArgs),
    /// Restart a workspace (stop, then start).
    Restart(workspaces::WorkspaceArgs),
    /// Delete a workspace and its resources.
    #[command(alias = "rm")]
    Delete(workspaces::WorkspaceArgs),
    /// Start a shell or run a command in a workspace over an encrypted tunnel.
    Ssh(ssh::SshArgs),
    /// Forward local TCP and UDP ports to ports in a workspace.
    PortForward(port_forward::PortForwardArgs),
    /// Ping a workspace's agent and show the path the tunnel takes.
    Ping(ping::PingArgs),
    /// Measure throughput to a workspace through its tunnel.
    Speedtest(speedtest::SpeedtestArgs),
    /// Print network debug information: relay reachability and latency, UDP, NAT type.
    Netcheck,
    /// Add a Host block to your SSH config so 'ssh coder.<workspace>' works.
    ConfigSsh(config_ssh::ConfigSshArgs),
    /// Manage workspace proxies, and run one (`coder wsproxy server`).
    #[command(name = "wsproxy", alias = "workspace-proxy")]
    Wsproxy {
        #[command(subcommand)]
        command: wsproxy::WsproxyCommand,
    },
    /// Run the workspace agent (started by templates, with CODER_AGENT_TOKEN and CODER_AGENT_URL).
    Agent(agent::AgentArgs),
    /// Run external provisioner daemons.
    Provisioner {
        #[command(subcommand)]
        command: provisioner::ProvisionerCommand,
    },
}

/// Parses the command line (and, for `coder server --config FILE`, the YAML file).
pub(crate) fn parse(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> Result<Cli, clap::Error> {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let command = Cli::command();
    let matches = command.clone().try_get_matches_from(&args)?;
    let matches = match server::config_file_defaults(&matches)? {
        // YAML values become the defaults of the args neither a flag nor a variable set, so
        // the precedence is flag > environment > YAML > built-in default.
        Some((role, defaults)) => {
            let apply = move |server: clap::Command| {
                defaults.into_iter().fold(server, |server, (id, values)| {
                    server.mut_arg(id, |arg| arg.default_values(values))
                })
            };
            let command = match role {
                server::Role::Server => command.mut_subcommand("server", apply),
                server::Role::Proxy => command
                    .mut_subcommand("wsproxy", |wsproxy| wsproxy.mut_subcommand("server", apply)),
            };
            command.try_get_matches_from(&args)?
        }
        None => matches,
    };
    let mut cli = Cli::from_arg_matches(&matches)?;
    match &mut cli.command {
        Command::Server(server) => server::attach_effective_yaml(server, &matches),
        Command::Wsproxy {
            command: wsproxy::WsproxyCommand::Server(proxy),
        } if proxy.write_config => proxy.effective_yaml = server::effective_yaml(&matches),
        _ => {}
    }
    Ok(cli)
}

impl Cli {
    /// Whether the command serves many users at once (`coder server`, `coder wsproxy server`)
    /// and so should run on every core.
    pub(crate) fn serves(&self) -> bool {
        matches!(
            self.command,
            Command::Server(_)
                | Command::Wsproxy {
                    command: wsproxy::WsproxyCommand::Server(_)
                }
        )
    }

    /// Whether the command runs until it is stopped (a server, a proxy, the agent) rather
    /// than for one user's request.
    pub(crate) fn stays_up(&self) -> bool {
        self.serves() || matches!(self.command, Command::Agent(_))
    }
}

/// Runs the parsed command.
pub(crate) async fn run(cli: Cli) -> Result<ExitCode> {
    let runs_a_server = cli.stays_up();
    let Cli { global, command } = cli;
    if !runs_a_server {
        install_cli_logging(global.verbose);
    }
    match command {
        Command::Server(args) => server::run(&global, *args).await,
        Command::Login(args) => login::run(&global, args).await,
        Command::Logout(args) => logout::run(&global, args).await,
        Command::Whoami => whoami::run(&global).await,
        Command::Users { command } => users::run(&global, command).await,
        Command::Tokens { command } => tokens::run(&global, command).await,
        Command::Templates { command } => templates::run(&global, command).await,
        Command::Create(args) => workspaces::create(&global, args).await,
        Command::List(args) => workspaces::list(&global, args).await,
        Command::Show(args) => workspaces::show(&global, args).await,
        Command::Start(args) => {
            workspaces::transition(&global, args, WorkspaceTransition::Start).await
        }
        Command::Stop(args) => {
            workspaces::transition(&global, args, WorkspaceTransition::Stop).await
        }
        Command::Restart(args) => workspaces::restart(&global, args).await,
        Command::Delete(args) => {
            workspaces::transition(&global, args, WorkspaceTransition::Delete).await
        }
        Command::Provisioner { command } => provisioner::run(&global, command).await,
        Command::Ssh(args) => ssh::run(&global, args).await,
        Command::PortForward(args) => port_forward::run(&global, args).await,
        Command::Ping(args) => ping::run(&global, args).await,
        Command::Speedtest(args) => speedtest::run(&global, args).await,
        Command::Netcheck => netcheck::run(&global).await,
        Command::ConfigSsh(args) => config_ssh::run(&global, args).await,
        Command::Agent(args) => agent::run(args).await,
        Command::Wsproxy { command } => wsproxy::run(&global, command).await,
    }
}

/// Client commands log warnings only (debug with `-v`), to stderr.
fn install_cli_logging(verbose: bool) {
    // The tunnel stack logs its own recoverable trouble (a relay reconnecting, a path closing
    // at exit) as errors; a user sees our summary of what failed instead, or everything with -v.
    let filter = if verbose {
        "debug"
    } else {
        "warn,iroh=off,iroh_relay=off,noq=off,noq_proto=off,portmapper=off,netwatch=off"
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// The long-running roles' filter against iroh's per-packet spans: iroh opens an info-level
/// span around every UDP send (`poll_send`) and every read of a relay connection
/// (`rate_limited_poll_read`). At an `info` filter each was created, formatted and closed per
/// packet, for nothing in the log: 3 % of a relayed agent's CPU and 7 % of the relay's. Only
/// these spans are off; iroh's events and its other spans still log.
pub(crate) fn without_per_packet_spans() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    fn allowed(metadata: &Metadata<'_>) -> bool {
        !(metadata.is_span()
            && metadata.target().starts_with("iroh")
            && matches!(metadata.name(), "poll_send" | "rate_limited_poll_read"))
    }
    FilterFn::new(allowed as fn(&Metadata<'_>) -> bool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iroh_per_packet_spans_are_off_and_its_logs_are_not() {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("info"))
            .with(without_per_packet_spans());
        tracing::subscriber::with_default(subscriber, || {
            let send = tracing::info_span!(target: "iroh::socket::transports", "poll_send");
            let read = tracing::info_span!(target: "iroh_relay::server::streams", "rate_limited_poll_read");
            assert!(send.is_disabled() && read.is_disabled());
            let actor =
                tracing::info_span!(target: "iroh::socket::transports::relay", "relay-actor");
            let ours = tracing::info_span!(target: "agent", "poll_send");
            assert!(!actor.is_disabled() && !ours.is_disabled());
            assert!(tracing::enabled!(target: "iroh::socket", tracing::Level::INFO));
        });
    }

    #[test]
    fn command_tree_is_valid() {
        Cli::command().debug_assert();
    }
}

//! `coder agent`: runs the workspace agent until SIGTERM or SIGINT, then lets it run the
//! shutdown script and report `off`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use sdk::Secret;
use sdk::client::Client;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::output;
use crate::session;

/// How long the shutdown script may run after a stop signal.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, clap::Args)]
pub(crate) struct AgentArgs {
    /// The agent's token, from the template's coder_agent_token.
    #[arg(
        long = "agent-token",
        env = "CODER_AGENT_TOKEN",
        hide_env_values = true
    )]
    token: String,
    /// The server's URL, from the template's coder_access_url.
    #[arg(long = "agent-url", env = "CODER_AGENT_URL")]
    url: String,
    /// Log more.
    #[arg(long = "agent-verbose", env = "CODER_AGENT_VERBOSE")]
    verbose: bool,
}

pub(crate) async fn run(args: AgentArgs) -> Result<ExitCode> {
    let filter = if args.verbose {
        "debug"
    } else {
        "info,hyper=warn,reqwest=warn"
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .finish()
        .with(super::without_per_packet_spans())
        .try_init();
    let url = session::parse_deployment_url(&args.url).context("reading CODER_AGENT_URL")?;
    let client =
        Client::new(url, session::http_client()?).with_session_token(Secret::new(args.token));
    // Handlers before anything starts: a caught signal is reset to its default in the processes
    // the agent starts, while an ignored one stays ignored there. Agents are often started with
    // `nohup` or as background jobs (SIGHUP, SIGINT, SIGQUIT ignored), and sessions' commands
    // must still end on the SIGHUP a closed session sends, and on Ctrl-C.
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("handling SIGHUP")?;
    let mut quit = signal(SignalKind::quit()).context("handling SIGQUIT")?;
    tokio::spawn(async move {
        // The agent itself carries on, as nohup meant.
        loop {
            tokio::select! {
                Some(()) = hangup.recv() => {}
                Some(()) = quit.recv() => {}
                else => break,
            }
        }
    });
    let shutdown = CancellationToken::new();
    let mut running = tokio::spawn(agent::run(
        agent::Config {
            version: coderd::VERSION.to_owned(),
        },
        client,
        shutdown.clone(),
    ));
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        result = &mut running => {
            result.context("the agent panicked")?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    output::note("Stop signal caught: running the shutdown script, then exiting");
    shutdown.cancel();
    match tokio::time::timeout(SHUTDOWN_TIMEOUT, &mut running).await {
        Ok(result) => result.context("the agent panicked")?,
        Err(_) => running.abort(),
    }
    Ok(ExitCode::SUCCESS)
}

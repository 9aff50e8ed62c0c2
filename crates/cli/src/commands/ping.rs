//! `coder ping WORKSPACE`: round trips through the tunnel, each printed with the path it took
//! (`p2p via IP:PORT` or `proxied via DERP(<region>)`), then why the path is relayed, if it is.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::AsyncReadExt;
use tunnel::proto::StreamRequest;

use crate::commands::GlobalArgs;
use crate::dial;
use crate::output;
use crate::session;

#[derive(Debug, clap::Args)]
pub(crate) struct PingArgs {
    /// The workspace: name, owner/name, or name.agent.
    workspace: String,
    /// Time between pings.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    wait: Duration,
    /// How long to wait for each pong.
    #[arg(short = 't', long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// How many pings to send (0: until interrupted).
    #[arg(short = 'n', long, default_value_t = 0)]
    num: u64,
}

pub(crate) async fn run(global: &GlobalArgs, args: PingArgs) -> Result<ExitCode> {
    let client = session::client(global)?;
    let tunnel = dial::dial(&client, &args.workspace, global.dial_options()).await?;
    let (mut send, mut recv) = tunnel.open(&StreamRequest::Echo).await?;
    let name = tunnel.workspace.name.clone();
    let mut sent: u64 = 0;
    let mut received: u64 = 0;
    let mut last_path = String::new();
    loop {
        sent += 1;
        let started = Instant::now();
        let pong = tokio::time::timeout(args.timeout, async {
            send.write_all(&sent.to_be_bytes()).await?;
            let echoed = recv.read_u64().await?;
            anyhow::Ok(echoed)
        })
        .await;
        match pong {
            Ok(Ok(echoed)) if echoed == sent => {
                received += 1;
                last_path = describe(&tunnel);
                output::line(format!(
                    "pong from {name} {last_path} in {}",
                    format_latency(started.elapsed())
                ))?;
            }
            Ok(Ok(_)) => bail!("the agent echoed a different ping"),
            Ok(Err(err)) => return Err(err).context("the tunnel broke"),
            Err(_) => output::line(format!(
                "ping to {name} timed out after {}",
                humantime::format_duration(args.timeout)
            ))?,
        }
        if args.num != 0 && sent >= args.num {
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            () = tokio::time::sleep(args.wait) => {}
        }
    }
    output::line(format!("{sent} pings sent, {received} pongs received"))?;
    if last_path.starts_with("proxied") {
        output::line("")?;
        output::line("You are connected via a relay, not directly (p2p).")?;
        match tunnel.direct_blocked {
            Some(reason) => output::line(format!("  Cause: {reason}."))?,
            None => {
                output::line(
                    "  Possible causes: UDP is blocked between you and the workspace, or a",
                )?;
                output::line(
                    "  NAT on either side maps ports per destination (hard NAT), so hole",
                )?;
                output::line(
                    "  punching cannot succeed. Run 'coder netcheck' on both ends to compare.",
                )?;
            }
        }
    }
    tunnel.close().await;
    Ok(if received > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `p2p via IP:PORT` or `proxied via DERP(<region>)`, as Coder prints it.
fn describe(tunnel: &dial::AgentTunnel) -> String {
    match tunnel::path(&tunnel.connection) {
        tunnel::Path::Direct(address) => format!("p2p via {address}"),
        tunnel::Path::Relay(url) => format!("proxied via DERP({})", tunnel.relay_name(&url)),
        tunnel::Path::Unknown => "via an unknown path".to_owned(),
    }
}

pub(crate) fn format_latency(latency: Duration) -> String {
    let ms = latency.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}ms")
    } else {
        format!("{ms:.0}ms")
    }
}

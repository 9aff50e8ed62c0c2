//! `coder speedtest WORKSPACE`: raw throughput through the tunnel, one row per second and a
//! total, in Mbits/sec.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tunnel::proto::{Direction, StreamRequest};

use crate::commands::GlobalArgs;
use crate::dial;
use crate::output;
use crate::session;

/// How long `--direct` waits for a peer-to-peer path.
const DIRECT_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub(crate) struct SpeedtestArgs {
    /// The workspace: name, owner/name, or name.agent.
    workspace: String,
    /// Wait for a direct (p2p) path before measuring.
    #[arg(short = 'd', long)]
    direct: bool,
    /// Which way to measure: down (workspace to you) or up.
    #[arg(long, value_enum, default_value = "down")]
    direction: DirectionArg,
    /// How long to measure.
    #[arg(short = 't', long = "time", default_value = "5s", value_parser = humantime::parse_duration)]
    time: Duration,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DirectionArg {
    Up,
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Debug, Serialize)]
struct Interval {
    start_time_seconds: f64,
    end_time_seconds: f64,
    throughput_mbits: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    overall: Interval,
    intervals: Vec<Interval>,
}

pub(crate) async fn run(global: &GlobalArgs, args: SpeedtestArgs) -> Result<ExitCode> {
    if args.time.is_zero() || args.time > Duration::from_secs(300) {
        bail!("--time must be between 1ms and 5m");
    }
    let client = session::client(global)?;
    let tunnel = dial::dial(&client, &args.workspace, global.dial_options()).await?;
    if args.direct {
        wait_for_direct(&tunnel).await?;
    }
    let path = tunnel.path_description();
    if args.output == Format::Table {
        output::line(format!(
            "Starting a {}s {} test {path}...",
            args.time.as_secs_f64(),
            match args.direction {
                DirectionArg::Down => "download",
                DirectionArg::Up => "upload",
            }
        ))?;
    }
    let report = match args.direction {
        DirectionArg::Down => download(&tunnel, args.time).await?,
        DirectionArg::Up => upload(&tunnel, args.time).await?,
    };
    match args.output {
        Format::Json => output::json(&report)?,
        Format::Table => {
            let mut table = output::Table::new(
                &["interval", "throughput"],
                &["interval".to_owned(), "throughput".to_owned()],
            )?;
            for interval in report.intervals.iter().chain([&report.overall]) {
                table.row(vec![
                    format!(
                        "{:.2}-{:.2} sec",
                        interval.start_time_seconds, interval.end_time_seconds
                    ),
                    format!("{:.2} Mbits/sec", interval.throughput_mbits),
                ]);
            }
            table.print()?;
        }
    }
    tunnel.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_direct(tunnel: &dial::AgentTunnel) -> Result<()> {
    if let Some(reason) = tunnel.direct_blocked {
        bail!("--direct cannot succeed: {reason}");
    }
    let (mut send, mut recv) = tunnel.open(&StreamRequest::Echo).await?;
    let deadline = Instant::now() + DIRECT_WAIT;
    loop {
        let started = Instant::now();
        send.write_all(&[0; 8]).await?;
        recv.read_u64().await?;
        let latency = started.elapsed();
        if matches!(tunnel::path(&tunnel.connection), tunnel::Path::Direct(_)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "no direct connection within {}s; run 'coder ping {}' for diagnostics",
                DIRECT_WAIT.as_secs(),
                tunnel.workspace.name
            );
        }
        output::note(format!(
            "Waiting for a direct connection... ({} {})",
            super::ping::format_latency(latency),
            tunnel.path_description()
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn mbits(bytes: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        0.0
    } else {
        bytes as f64 * 8.0 / seconds / 1_000_000.0
    }
}

/// Splits a byte count arriving over time into per-second intervals.
struct Meter {
    started: Instant,
    interval_start: f64,
    interval_bytes: u64,
    total: u64,
    intervals: Vec<Interval>,
}

impl Meter {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            interval_start: 0.0,
            interval_bytes: 0,
            total: 0,
            intervals: Vec::new(),
        }
    }

    fn add(&mut self, bytes: u64) {
        self.interval_bytes += bytes;
        self.total += bytes;
        let now = self.started.elapsed().as_secs_f64();
        if now - self.interval_start >= 1.0 {
            self.close(now);
        }
    }

    fn close(&mut self, now: f64) {
        self.intervals.push(Interval {
            start_time_seconds: self.interval_start,
            end_time_seconds: now,
            throughput_mbits: mbits(self.interval_bytes, now - self.interval_start),
        });
        self.interval_start = now;
        self.interval_bytes = 0;
    }

    fn finish(mut self, total: u64) -> Report {
        let now = self.started.elapsed().as_secs_f64();
        if self.interval_bytes > 0 && now - self.interval_start > 0.05 {
            self.close(now);
        }
        Report {
            overall: Interval {
                start_time_seconds: 0.0,
                end_time_seconds: now,
                throughput_mbits: mbits(total, now),
            },
            intervals: self.intervals,
        }
    }
}

async fn download(tunnel: &dial::AgentTunnel, time: Duration) -> Result<Report> {
    let (_send, mut recv) = tunnel
        .open(&StreamRequest::Speedtest {
            direction: Direction::Down,
            duration_ms: time.as_millis() as u64,
        })
        .await?;
    let mut meter = Meter::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = AsyncReadExt::read(&mut recv, &mut buffer)
            .await
            .context("the test stream broke")?;
        if n == 0 {
            break;
        }
        meter.add(n as u64);
    }
    let total = meter.total;
    Ok(meter.finish(total))
}

async fn upload(tunnel: &dial::AgentTunnel, time: Duration) -> Result<Report> {
    let (mut send, mut recv) = tunnel
        .open(&StreamRequest::Speedtest {
            direction: Direction::Up,
            duration_ms: time.as_millis() as u64,
        })
        .await?;
    let mut meter = Meter::new();
    let chunk = vec![0u8; 64 * 1024];
    while meter.started.elapsed() < time {
        send.write_all(&chunk)
            .await
            .context("the test stream broke")?;
        meter.add(chunk.len() as u64);
    }
    send.finish()?;
    // The agent's count is the truth: bytes still in flight when we stopped writing were not
    // delivered yet.
    let received = recv.read_u64().await.context("reading the agent's count")?;
    Ok(meter.finish(received))
}

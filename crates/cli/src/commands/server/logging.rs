//! The server's log outputs: human-readable and/or JSON, each to stderr, stdout or a file.

use std::fs::OpenOptions;
use std::sync::Arc;

use anyhow::{Context, Result};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The writer for a log path, and whether it is a terminal (for colours).
fn writer(path: &str, option: &str) -> Result<Option<(BoxMakeWriter, bool)>> {
    use std::io::IsTerminal;
    Ok(match path {
        "" => None,
        "/dev/stderr" => Some((
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        )),
        "/dev/stdout" => Some((
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        )),
        path => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {option} {path}"))?;
            Some((BoxMakeWriter::new(Arc::new(file)), false))
        }
    })
}

/// Installs the subscriber for the process.
pub(crate) fn install(human: &str, json: &str, filter: Option<&str>, verbose: bool) -> Result<()> {
    let default = if verbose { "debug" } else { "info" };
    let directives = filter.unwrap_or(default);
    // The relay and HTTP crates are chatty at debug; keep them at warn unless asked.
    let directives = format!("{directives},hyper=warn,h2=warn,rustls=warn,sqlx=warn");
    let filter = EnvFilter::try_new(&directives).context("parsing --log-filter")?;
    let human = writer(human, "--log-human")?.map(|(writer, is_terminal)| {
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(is_terminal)
            .with_target(false)
            .boxed()
    });
    let json = writer(json, "--log-json")?.map(|(writer, _)| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer)
            .boxed()
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(human)
        .with(json)
        .with(crate::commands::without_per_packet_spans())
        .try_init();
    Ok(())
}

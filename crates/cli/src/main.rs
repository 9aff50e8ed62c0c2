//! The `coder` binary: parses arguments (flags, `CODER_*` variables, the server's YAML file),
//! installs logging, builds the runtime, runs one command and maps its result to an exit
//! code. Commands live in `commands/`, one file each; they parse, call a library, and print.

mod commands;
mod dial;
mod output;
mod resumable;
mod session;
mod systemd;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match commands::parse(std::env::args_os()) {
        Ok(cli) => cli,
        // Prints help, version or a usage error; exits 0 or 2 as clap decides.
        Err(err) => err.exit(),
    };
    // One crypto provider for the whole binary (ring, which iroh also uses).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Servers use every core. Everything else (the agent, `coder ssh`, port-forward...) runs on
    // one thread: there a task that wakes the QUIC connection's driver queues it behind the
    // other ready tasks instead of running it next, so replies leave in one batched UDP send
    // instead of one each. That took about a third off the agent's CPU per proxied app request.
    let mut builder = if cli.serves() {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            output::error(&anyhow::Error::new(err).context("starting the async runtime"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // Don't wait for stray blocking tasks (a prompt reading stdin, say).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            output::error(&err);
            ExitCode::FAILURE
        }
    }
}

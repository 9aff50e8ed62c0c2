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

/// jemalloc instead of glibc's malloc. Every proxied request makes an 8 KiB read buffer in
/// hyper, which glibc serves from its shared bins (consolidating its fast bins each time);
/// jemalloc's per-thread caches cover that size. Measured on the app proxy: a tenth to a fifth
/// less server CPU per request, the same tunnel throughput. Long-running roles also get
/// jemalloc's background thread, which hands freed memory back to the system while the process
/// is idle (without it an agent kept its peak after a bulk transfer).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match commands::parse(std::env::args_os()) {
        Ok(cli) => cli,
        // Prints help, version or a usage error; exits 0 or 2 as clap decides.
        Err(err) => err.exit(),
    };
    if cli.stays_up() {
        // Should it fail, freed memory only goes back more slowly; nothing else changes.
        let _ = tikv_jemalloc_ctl::background_thread::write(true);
    }
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

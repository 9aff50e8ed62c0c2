//! `coder ssh WORKSPACE [-- COMMAND]`: a shell or a command in a workspace over the tunnel, with
//! a PTY when stdin is a terminal, the remote exit code passed through; `--stdio` hands the raw
//! SSH protocol to OpenSSH's ProxyCommand instead.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use russh::ChannelMsg;
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::commands::GlobalArgs;
use crate::dial;
use crate::dial::Redial;
use crate::resumable::{self, ChannelReader};
use crate::session;

#[derive(Debug, clap::Args)]
pub(crate) struct SshArgs {
    /// The workspace: name, owner/name, or name.agent.
    workspace: String,
    /// Carry the SSH protocol over stdin and stdout (OpenSSH's ProxyCommand).
    #[arg(long)]
    stdio: bool,
    /// Strip this prefix from the workspace name (the host names config-ssh writes).
    #[arg(long, env = "CODER_SSH_HOST_PREFIX", value_name = "PREFIX")]
    ssh_host_prefix: Option<String>,
    /// Set an environment variable in the session (repeatable): NAME=VALUE.
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// The command to run instead of a login shell.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub(crate) async fn run(global: &GlobalArgs, args: SshArgs) -> Result<ExitCode> {
    let client = session::client(global)?;
    let target = match &args.ssh_host_prefix {
        Some(prefix) => args
            .workspace
            .strip_prefix(prefix.as_str())
            .unwrap_or(&args.workspace),
        None => &args.workspace,
    };
    let tunnel = dial::dial(&client, target, global.dial_options()).await?;
    let user = tunnel.workspace.owner_name.clone();
    // The session rides a resumable stream: a tunnel that breaks is dialled again underneath.
    let redial = Redial {
        client: client.clone(),
        target: target.to_owned(),
        options: global.dial_options(),
    };
    if args.stdio {
        // OpenSSH's Ctrl-C reaches this ProxyCommand too: end the session rather than leave it
        // waiting on the agent for a resume that will not come.
        let leave = tokio_util::sync::CancellationToken::new();
        let input = ChannelReader::new(stdin_reader(), leave.clone());
        let mut interrupted = signal(SignalKind::interrupt()).context("watching for Ctrl-C")?;
        let mut terminated = signal(SignalKind::terminate()).context("watching for SIGTERM")?;
        let mut hung_up = signal(SignalKind::hangup()).context("watching for SIGHUP")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupted.recv() => {}
                _ = terminated.recv() => {}
                _ = hung_up.recv() => {}
            }
            leave.cancel();
        });
        // Straight to the file descriptor: std's stdout holds binary data back until a newline.
        let output = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("opening stdout")?;
        let output = tokio::fs::File::from_std(std::fs::File::from(output));
        resumable::carry(redial, tunnel, input, output).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let (stream, carried) = tokio::io::duplex(PIPE);
    let (carried_read, carried_write) = tokio::io::split(carried);
    let mut carrier = tokio::spawn(resumable::carry(
        redial,
        tunnel,
        carried_read,
        carried_write,
    ));
    let config = russh::client::Config {
        // The agent sends keepalives; the tunnel has its own.
        inactivity_timeout: None,
        window_size: 8 * 1024 * 1024,
        maximum_packet_size: 65535,
        channel_buffer_size: 4096,
        nodelay: true,
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(ciphers()),
            ..russh::Preferred::DEFAULT
        },
        ..Default::default()
    };
    let mut ssh = russh::client::connect_stream(Arc::new(config), stream, AcceptAgentKey)
        .await
        .context("starting the SSH session")?;
    let auth = ssh
        .authenticate_none(user)
        .await
        .context("authenticating")?;
    if !auth.success() {
        anyhow::bail!("the agent refused the SSH session");
    }
    let mut channel = ssh
        .channel_open_session()
        .await
        .context("opening an SSH session")?;
    for pair in &args.env {
        let (name, value) = pair
            .split_once('=')
            .with_context(|| format!("--env {pair:?} must be NAME=VALUE"))?;
        channel.set_env(false, name, value).await?;
    }
    let terminal = rustix::termios::isatty(std::io::stdin());
    let mut raw = None;
    if terminal {
        let (cols, rows) = window_size();
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".to_owned());
        channel
            .request_pty(false, &term, cols, rows, 0, 0, &[])
            .await?;
        raw = Some(RawMode::enable()?);
    }
    if args.command.is_empty() {
        channel.request_shell(true).await?;
    } else {
        channel.exec(true, args.command.join(" ")).await?;
    }

    let mut input = stdin_reader();
    let mut resized = signal(SignalKind::window_change()).context("watching the window size")?;
    // Leaving ends the session for the agent too (it would otherwise keep the command running,
    // waiting for this client to resume): Ctrl-C when there is no PTY to pass it to, the
    // terminal closing, or a kill.
    let mut interrupted = signal(SignalKind::interrupt()).context("watching for Ctrl-C")?;
    let mut terminated = signal(SignalKind::terminate()).context("watching for SIGTERM")?;
    let mut hung_up = signal(SignalKind::hangup()).context("watching for SIGHUP")?;
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let mut input_open = true;
    let mut code = None;
    loop {
        tokio::select! {
            data = input.recv(), if input_open => match data {
                Some(data) => channel.data(&data[..]).await?,
                None => {
                    input_open = false;
                    channel.eof().await?;
                }
            },
            _ = resized.recv(), if terminal => {
                let (cols, rows) = window_size();
                channel.window_change(cols, rows, 0, 0).await?;
            },
            _ = interrupted.recv() => {
                code = Some(128 + 2);
                break;
            }
            _ = terminated.recv() => {
                code = Some(128 + 15);
                break;
            }
            _ = hung_up.recv() => {
                code = Some(128 + 1);
                break;
            }
            message = channel.wait() => match message {
                Some(ChannelMsg::Data { data }) => {
                    stdout.write_all(&data).await?;
                    stdout.flush().await?;
                }
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    stderr.write_all(&data).await?;
                    stderr.flush().await?;
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => code = Some(exit_status),
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    code = Some(128 + signal_number(&signal_name));
                }
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            },
        }
    }
    drop(raw);
    let _ = ssh
        .disconnect(russh::Disconnect::ByApplication, "", "")
        .await;
    drop(channel);
    drop(ssh);
    // The session is over: let the carrier tell the agent, briefly.
    let carried = tokio::time::timeout(std::time::Duration::from_secs(3), &mut carrier).await;
    match (code, carried) {
        (Some(code), _) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(255))),
        (None, Ok(Ok(Err(err)))) => Err(err),
        (None, _) => {
            anyhow::bail!("the session ended without an exit status (the connection was lost)")
        }
    }
}

/// The in-memory pipe between the SSH client and the resumable stream.
const PIPE: usize = 1024 * 1024;

/// Reads stdin on its own thread: a blocked read must not keep the process from exiting when
/// the session ends first.
pub(crate) fn stdin_reader() -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if sender.blocking_send(buffer[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    receiver
}

fn window_size() -> (u32, u32) {
    match rustix::termios::tcgetwinsize(std::io::stdout()) {
        Ok(size) if size.ws_col > 0 => (u32::from(size.ws_col), u32::from(size.ws_row)),
        _ => (80, 24),
    }
}

fn signal_number(signal: &russh::Sig) -> u32 {
    let name = match signal {
        russh::Sig::Custom(name) => format!("SIG{name}"),
        other => format!("SIG{other:?}"),
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|signal| signal as u32)
        .unwrap_or(0)
}

/// The terminal in raw mode (keys go to the remote shell as typed); restored on drop.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    fn enable() -> Result<Self> {
        let saved =
            rustix::termios::tcgetattr(std::io::stdin()).context("reading the terminal mode")?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &raw,
        )
        .context("switching the terminal to raw mode")?;
        Ok(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
        let _ = std::io::stdout().flush();
    }
}

/// The tunnel already proved the agent's identity (its endpoint id is its public key), so the
/// per-start SSH host key needs no check of its own.
struct AcceptAgentKey;

impl russh::client::Handler for AcceptAgentKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// The SSH ciphers `coder ssh` asks for, best first. The session already runs inside the
/// encrypted tunnel, so its cipher's cost is pure overhead: with AES instructions AES-GCM
/// costs a fraction of ChaCha20-Poly1305 (which took a third of both ends' CPU in bulk
/// transfers); without them ChaCha20 is the faster one.
fn ciphers() -> &'static [russh::cipher::Name] {
    use russh::cipher::{AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305};
    const HARDWARE_AES: &[russh::cipher::Name] = &[AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305];
    const SOFTWARE_AES: &[russh::cipher::Name] = &[CHACHA20_POLY1305, AES_128_GCM, AES_256_GCM];
    if hardware_aes() {
        HARDWARE_AES
    } else {
        SOFTWARE_AES
    }
}

fn hardware_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(target_arch = "aarch64")]
    return std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull");
    #[allow(unreachable_code)]
    false
}

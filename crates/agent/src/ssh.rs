//! The agent's SSH server (russh), served over tunnel streams only: shells with a PTY, commands
//! with or without one, environment, signals, exit codes, the SFTP subsystem, and local (`-L`)
//! and remote (`-R`) TCP forwarding.
//!
//! Authentication is the tunnel's: only endpoints the coordinator authorized reach this server,
//! so every SSH authentication method is accepted (OpenSSH clients still offer their keys).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::{Auth, ChannelOpenHandle, Config, Handle, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg, ChannelOpenFailure, MethodKind, MethodSet, Sig};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::process::{self, Launch, PtyRequest};
use crate::sftp;

/// What every session of this agent shares.
#[derive(Clone)]
pub(crate) struct SshServer {
    config: Arc<Config>,
    environment: Arc<process::Environment>,
}

/// What the server accepts: russh's defaults plus AES-128-GCM, which `coder ssh` prefers on
/// CPUs with AES instructions (the client's order decides; OpenSSH clients keep their own).
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_128_GCM,
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_128_CTR,
];

impl SshServer {
    pub(crate) fn new(environment: process::Environment) -> Self {
        // A fresh host key per agent start: clients trust the tunnel's identity, not this key.
        let seed: [u8; 32] = rand::random();
        let key = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
            &seed,
        ));
        let mut methods = MethodSet::empty();
        methods.push(MethodKind::None);
        methods.push(MethodKind::PublicKey);
        methods.push(MethodKind::Password);
        methods.push(MethodKind::KeyboardInteractive);
        let config = Config {
            keys: vec![key],
            methods,
            auth_rejection_time: Duration::ZERO,
            auth_rejection_time_initial: Some(Duration::ZERO),
            // The tunnel has its own keepalives; an idle shell stays open as long as it does.
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(30)),
            // Deep per-channel queues: with russh's default of 100 the session loop blocks on a
            // full forwarding channel and two-way forwarding stalls.
            channel_buffer_size: 4096,
            window_size: 8 * 1024 * 1024,
            maximum_packet_size: 65535,
            nodelay: true,
            preferred: russh::Preferred {
                cipher: std::borrow::Cow::Borrowed(CIPHERS),
                ..russh::Preferred::DEFAULT
            },
            ..Config::default()
        };
        Self {
            config: Arc::new(config),
            environment: Arc::new(environment),
        }
    }

    /// Serves one SSH connection over a tunnel stream until it closes.
    pub(crate) async fn serve(
        &self,
        stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    ) -> Result<(), russh::Error> {
        let handler = Connection {
            environment: self.environment.clone(),
            forwards: HashMap::new(),
        };
        let session = russh::server::run_stream(self.config.clone(), stream, handler).await?;
        session.await
    }
}

/// One SSH connection.
struct Connection {
    environment: Arc<process::Environment>,
    /// Remote forwards (`-R`) by bound address.
    forwards: HashMap<(String, u32), JoinHandle<()>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        for (_, task) in self.forwards.drain() {
            task.abort();
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        _key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn auth_password(&mut self, _user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        tokio::spawn(run_session(
            channel,
            session.handle(),
            self.environment.clone(),
        ));
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let target = format!("{host}:{port}");
        tokio::spawn(async move {
            match TcpStream::connect(&target).await {
                Ok(mut tcp) => {
                    let _ = tcp.set_nodelay(true);
                    reply.accept().await;
                    let mut stream = channel.into_stream();
                    let _ = tunnel::pipe::splice(&mut stream, &mut tcp).await;
                }
                Err(err) => {
                    tracing::debug!(%target, error = %err, "direct-tcpip connect failed");
                    reply
                        .reject(ChannelOpenFailure::Other {
                            code: 2,
                            reason: format!("connecting to {target}: {err}"),
                        })
                        .await;
                }
            }
        });
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let bind_host = match address {
            "" | "*" | "0.0.0.0" => "0.0.0.0",
            "localhost" => "127.0.0.1",
            other => other,
        };
        let Ok(requested) = u16::try_from(*port) else {
            return Ok(false);
        };
        let listener = match TcpListener::bind((bind_host, requested)).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::info!(address, port = requested, error = %err, "remote forward refused");
                return Ok(false);
            }
        };
        let bound = listener.local_addr().map(|a| a.port()).unwrap_or(requested);
        *port = u32::from(bound);
        let task = tokio::spawn(accept_forwarded(
            listener,
            session.handle(),
            address.to_owned(),
            *port,
        ));
        self.forwards.insert((address.to_owned(), *port), task);
        Ok(true)
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        match self.forwards.remove(&(address.to_owned(), port)) {
            Some(task) => {
                task.abort();
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Accepts connections on a remote-forwarded port and hands each to the client.
async fn accept_forwarded(listener: TcpListener, handle: Handle, address: String, port: u32) {
    loop {
        let Ok((mut tcp, peer)) = listener.accept().await else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        let handle = handle.clone();
        let address = address.clone();
        tokio::spawn(async move {
            let opened = handle
                .channel_open_forwarded_tcpip(
                    address,
                    port,
                    peer.ip().to_string(),
                    u32::from(peer.port()),
                )
                .await;
            if let Ok(channel) = opened {
                let mut stream = channel.into_stream();
                let _ = tunnel::pipe::splice(&mut stream, &mut tcp).await;
            }
        });
    }
}

/// Drives one session channel: collects the PTY and environment requests, then runs the shell,
/// command or subsystem it asks for.
async fn run_session(
    mut channel: Channel<Msg>,
    handle: Handle,
    environment: Arc<process::Environment>,
) {
    let id = channel.id();
    let mut pty: Option<PtyRequest> = None;
    let mut env: Vec<(String, String)> = Vec::new();
    let launch = loop {
        let Some(message) = channel.wait().await else {
            return;
        };
        match message {
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                ..
            } => {
                pty = Some(PtyRequest {
                    term,
                    cols: process::clamp(col_width),
                    rows: process::clamp(row_height),
                });
            }
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                ..
            } => {
                if let Some(pty) = &mut pty {
                    pty.cols = process::clamp(col_width);
                    pty.rows = process::clamp(row_height);
                }
            }
            ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            } => env.push((variable_name, variable_value)),
            ChannelMsg::RequestShell { .. } => break Launch::Shell,
            ChannelMsg::Exec { command, .. } => {
                break Launch::Command(String::from_utf8_lossy(&command).into_owned());
            }
            ChannelMsg::RequestSubsystem { name, .. } if name == "sftp" => {
                serve_sftp(channel, environment.directory.clone()).await;
                return;
            }
            ChannelMsg::Eof | ChannelMsg::Close => return,
            _ => {}
        }
    };
    let (mut read, write) = channel.split();
    let outcome = process::run(&environment, launch, pty, env, &mut read, &write).await;
    match outcome {
        Ok(process::Exit::Code(code)) => {
            let _ = write.exit_status(code).await;
        }
        Ok(process::Exit::Signal(signal)) => {
            let _ = handle
                .exit_signal_request(id, signal, false, String::new(), String::new())
                .await;
        }
        Err(err) => {
            tracing::warn!(error = %err, "starting a session's process failed");
            let message = format!("coder agent: {err}\r\n");
            let _ = write.extended_data_bytes(1, message.into_bytes()).await;
            let _ = write.exit_status(127).await;
        }
    }
    let _ = write.eof().await;
    let _ = write.close().await;
}

/// Runs the SFTP server on its own end of a pipe and pumps the channel through it, so that
/// when the server finishes the client gets an exit status (`scp` fails without one).
async fn serve_sftp(channel: Channel<Msg>, directory: std::path::PathBuf) {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    sftp::serve(theirs, directory).await;
    let (mut read, write) = channel.split();
    let (mut from_sftp, mut to_sftp) = tokio::io::split(ours);
    let inbound = async {
        while let Some(message) = read.wait().await {
            match message {
                ChannelMsg::Data { data } if to_sftp.write_all(&data).await.is_err() => break,
                ChannelMsg::Eof | ChannelMsg::Close => break,
                _ => {}
            }
        }
        let _ = to_sftp.shutdown().await;
        // Keep waiting: the server may still be answering the last requests.
        std::future::pending::<()>().await;
    };
    let outbound = async {
        let mut writer = write.make_writer();
        let _ = tunnel::pipe::copy(&mut from_sftp, &mut writer).await;
        let _ = writer.flush().await;
    };
    tokio::select! {
        () = inbound => {}
        () = outbound => {}
    }
    let _ = write.exit_status(0).await;
    let _ = write.eof().await;
    let _ = write.close().await;
}

/// The SSH name of a signal, for exit-signal messages.
pub(crate) fn ssh_signal(signal: nix::sys::signal::Signal) -> Sig {
    use nix::sys::signal::Signal::*;
    match signal {
        SIGABRT => Sig::ABRT,
        SIGALRM => Sig::ALRM,
        SIGFPE => Sig::FPE,
        SIGHUP => Sig::HUP,
        SIGILL => Sig::ILL,
        SIGINT => Sig::INT,
        SIGKILL => Sig::KILL,
        SIGPIPE => Sig::PIPE,
        SIGQUIT => Sig::QUIT,
        SIGSEGV => Sig::SEGV,
        SIGTERM => Sig::TERM,
        SIGUSR1 => Sig::USR1,
        other => Sig::Custom(other.as_str().trim_start_matches("SIG").to_owned()),
    }
}

/// The signal an SSH client asks for.
pub(crate) fn unix_signal(signal: &Sig) -> Option<nix::sys::signal::Signal> {
    use nix::sys::signal::Signal;
    let name = match signal {
        Sig::Custom(name) => format!("SIG{name}"),
        other => format!("SIG{other:?}"),
    };
    name.parse::<Signal>().ok()
}

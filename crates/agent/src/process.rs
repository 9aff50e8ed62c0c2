//! Running a session's shell or command, with or without a PTY, wired to an SSH channel.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use russh::server::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::pty_output;
use crate::ssh::{ssh_signal, unix_signal};

/// Where and as whom sessions run.
#[derive(Clone, Debug)]
pub(crate) struct Environment {
    /// The user's login shell.
    pub(crate) shell: String,
    /// The sessions' working directory.
    pub(crate) directory: PathBuf,
    /// Variables every session gets (the agent's own, minus its secrets, plus the template's).
    pub(crate) variables: BTreeMap<String, String>,
}

impl Environment {
    /// The environment for the user running the agent, with the manifest's variables.
    pub(crate) fn new(manifest: &sdk::AgentManifest) -> Self {
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten();
        let home = user
            .as_ref()
            .map(|user| user.dir.clone())
            .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/"));
        let shell = user
            .as_ref()
            .map(|user| user.shell.to_string_lossy().into_owned())
            .filter(|shell| !shell.is_empty() && !shell.ends_with("/nologin"))
            .unwrap_or_else(|| "/bin/sh".to_owned());
        let mut variables: BTreeMap<String, String> = std::env::vars()
            .filter(|(name, _)| !name.starts_with("CODER_AGENT_"))
            .collect();
        if let Some(user) = &user {
            variables.insert("USER".into(), user.name.clone());
            variables.insert("LOGNAME".into(), user.name.clone());
        }
        variables.insert("HOME".into(), home.to_string_lossy().into_owned());
        variables.insert("SHELL".into(), shell.clone());
        variables.insert("CODER".into(), "true".into());
        variables.insert(
            "CODER_WORKSPACE_NAME".into(),
            manifest.workspace_name.clone(),
        );
        variables.insert(
            "CODER_WORKSPACE_OWNER_NAME".into(),
            manifest.owner_name.clone(),
        );
        variables.extend(manifest.environment_variables.clone());
        let directory = expand_home(&manifest.directory, &home);
        Self {
            shell,
            directory: if directory.is_dir() { directory } else { home },
            variables,
        }
    }
}

fn expand_home(directory: &str, home: &std::path::Path) -> PathBuf {
    match directory {
        "" => home.to_owned(),
        "~" => home.to_owned(),
        other => match other.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => PathBuf::from(other),
        },
    }
}

/// What a session runs.
pub(crate) enum Launch {
    /// The login shell.
    Shell,
    /// A command line, run by the shell.
    Command(String),
}

/// A PTY's settings.
pub(crate) struct PtyRequest {
    pub(crate) term: String,
    pub(crate) cols: u16,
    pub(crate) rows: u16,
}

/// How the process ended.
pub(crate) enum Exit {
    Code(u32),
    Signal(russh::Sig),
}

/// Runs the process until it exits, feeding it the channel's data and signals and sending its
/// output back. A closed channel hangs the process up.
pub(crate) async fn run(
    environment: &Environment,
    launch: Launch,
    pty: Option<PtyRequest>,
    extra_env: Vec<(String, String)>,
    read: &mut ChannelReadHalf,
    write: &ChannelWriteHalf<Msg>,
) -> std::io::Result<Exit> {
    let mut variables = environment.variables.clone();
    variables.extend(extra_env);
    let args: Vec<String> = match &launch {
        Launch::Shell => vec!["-l".into()],
        Launch::Command(command) => vec!["-c".into(), command.clone()],
    };
    match pty {
        Some(pty) => {
            variables.insert("TERM".into(), pty.term.clone());
            run_with_pty(environment, &args, variables, pty, read, write).await
        }
        None => run_piped(environment, &args, variables, read, write).await,
    }
}

async fn run_with_pty(
    environment: &Environment,
    args: &[String],
    variables: BTreeMap<String, String>,
    size: PtyRequest,
    read: &mut ChannelReadHalf,
    write: &ChannelWriteHalf<Msg>,
) -> std::io::Result<Exit> {
    let (pty, pts) = pty_process::open().map_err(std::io::Error::other)?;
    pty.resize(pty_process::Size::new(size.rows, size.cols))
        .map_err(std::io::Error::other)?;
    let mut child = pty_process::Command::new(&environment.shell)
        .args(args)
        .env_clear()
        .envs(variables)
        .current_dir(&environment.directory)
        .kill_on_drop(true)
        .spawn(pts)
        .map_err(std::io::Error::other)?;
    // The shell leads its own session, so its pid is its process group.
    let group = child.id().map(|pid| Pid::from_raw(pid as i32));
    let output = pty_output::Output::start(&pty)?;
    let (_, mut input) = pty.into_split();
    let mut copying = tokio::spawn(output.copy_to(write.make_writer()));
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            message = read.wait() => match message {
                Some(ChannelMsg::Data { data }) => {
                    if input.write_all(&data).await.is_err() {
                        // The shell is exiting; its status follows.
                    }
                }
                Some(ChannelMsg::WindowChange { col_width, row_height, .. }) => {
                    let size = pty_process::Size::new(clamp(row_height), clamp(col_width));
                    let _ = input.resize(size);
                }
                Some(ChannelMsg::Signal { signal }) => send_signal(group, &signal),
                Some(ChannelMsg::Eof) | Some(_) => {}
                None => {
                    send_signal(group, &russh::Sig::HUP);
                    break child.wait().await?;
                }
            },
        }
    };
    // Output written just before the exit is still in the PTY; background jobs holding the PTY
    // open must not keep the session alive, so the drain is bounded.
    if tokio::time::timeout(Duration::from_secs(1), &mut copying)
        .await
        .is_err()
    {
        copying.abort();
    }
    Ok(exit(status))
}

async fn run_piped(
    environment: &Environment,
    args: &[String],
    variables: BTreeMap<String, String>,
    read: &mut ChannelReadHalf,
    write: &ChannelWriteHalf<Msg>,
) -> std::io::Result<Exit> {
    let mut child = tokio::process::Command::new(&environment.shell)
        .args(args)
        .env_clear()
        .envs(variables)
        .current_dir(&environment.directory)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()?;
    let group = child.id().map(|pid| Pid::from_raw(pid as i32));
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take().map(|out| {
        let writer = write.make_writer();
        tokio::spawn(copy_output(out, writer))
    });
    let stderr = child.stderr.take().map(|err| {
        let writer = write.make_writer_ext(Some(1));
        tokio::spawn(copy_output(err, writer))
    });
    let mut channel_open = true;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            message = read.wait(), if channel_open => match message {
                Some(ChannelMsg::Data { data }) => {
                    if let Some(input) = &mut stdin
                        && input.write_all(&data).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Some(ChannelMsg::Eof) => stdin = None,
                Some(ChannelMsg::Signal { signal }) => send_signal(group, &signal),
                Some(_) => {}
                None => {
                    channel_open = false;
                    send_signal(group, &russh::Sig::HUP);
                }
            },
        }
    };
    // Everything the command wrote reaches the client before its exit status.
    for task in [stdout, stderr].into_iter().flatten() {
        let _ = task.await;
    }
    Ok(exit(status))
}

async fn copy_output(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
) -> std::io::Result<u64> {
    let copied = tunnel::pipe::copy(&mut from, &mut to).await;
    let _ = to.flush().await;
    copied
}

fn send_signal(group: Option<Pid>, signal: &russh::Sig) {
    if let (Some(group), Some(signal)) = (group, unix_signal(signal)) {
        let _ = killpg(group, signal);
    }
}

fn exit(status: std::process::ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code as u32),
        (None, Some(signal)) => Signal::try_from(signal)
            .map(|signal| Exit::Signal(ssh_signal(signal)))
            .unwrap_or(Exit::Code(128 + signal as u32)),
        (None, None) => Exit::Code(255),
    }
}

pub(crate) fn clamp(value: u32) -> u16 {
    u16::try_from(value).unwrap_or(u16::MAX).max(1)
}

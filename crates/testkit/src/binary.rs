//! The real `coder` binary, run with a private config directory and `HOME`, as a user would.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use url::Url;

/// A command builder for the binary. Each `Coder` has its own config directory, so tests
/// never see each other's sessions (or the developer's).
pub struct Coder {
    binary: PathBuf,
    home: TempDir,
    envs: Vec<(String, String)>,
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with both streams unless the command succeeded.
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(
            self.code, 0,
            "command failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the command failed with `code`.
    #[track_caller]
    pub fn failure(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Coder {
    /// `binary` is `env!("CARGO_BIN_EXE_coder")`, known only to the cli crate's tests.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        crate::init_crypto();
        Self {
            binary: binary.into(),
            home: tempfile::Builder::new()
                .prefix("coder-test-")
                .tempdir()
                .unwrap(),
            envs: Vec::new(),
        }
    }

    /// This user's config directory (`CODER_CONFIG_DIR`).
    pub fn config_dir(&self) -> PathBuf {
        self.home.path().join("coderv2")
    }

    /// A private scratch directory.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Sets an environment variable for every command.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// A `Command` for the binary with the private environment (no `CODER_*` leaks in).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.args(args).stdin(Stdio::null());
        for (key, _) in std::env::vars() {
            if key.starts_with("CODER_") {
                command.env_remove(key);
            }
        }
        command
            .env("HOME", self.home.path())
            .env("CODER_CONFIG_DIR", self.config_dir())
            .env("NO_COLOR", "1");
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
    }

    /// A shell script running `coder ARGS` with this user's environment, then printing
    /// `EXIT=<code>` (for driving the binary inside a terminal, e.g. under tmux).
    pub fn script(&self, args: &[&str]) -> String {
        let quote = |text: &str| format!("'{}'", text.replace('\'', "'\\''"));
        let mut script = String::from("#!/bin/sh\n");
        script.push_str(&format!(
            "export HOME={}\n",
            quote(&self.home.path().to_string_lossy())
        ));
        script.push_str(&format!(
            "export CODER_CONFIG_DIR={}\n",
            quote(&self.config_dir().to_string_lossy())
        ));
        for (key, value) in &self.envs {
            script.push_str(&format!("export {key}={}\n", quote(value)));
        }
        script.push_str(&quote(&self.binary.to_string_lossy()));
        for arg in args {
            script.push(' ');
            script.push_str(&quote(arg));
        }
        script.push_str("\necho \"EXIT=$?\"\nsleep 60\n");
        script
    }

    /// Runs the binary to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().expect("running coder");
        Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts `coder server ARGS` and waits for it to print its URL.
    pub fn server(&self, args: &[&str]) -> ServerProcess {
        let mut full = vec!["server"];
        full.extend_from_slice(args);
        self.serve(&full, "View the Web UI: ")
    }

    /// Starts `coder wsproxy server ARGS` and waits for it to say where it serves.
    pub fn proxy_server(&self, args: &[&str]) -> ServerProcess {
        let mut full = vec!["wsproxy", "server"];
        full.extend_from_slice(args);
        self.serve(&full, "Serving workspace apps at: ")
    }

    /// Starts `coder ARGS` and waits for a line `READY URL`.
    fn serve(&self, full: &[&str], ready: &str) -> ServerProcess {
        let mut child = self
            .command(full)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting coder server");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        let stdout_sender = sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = stdout_sender.send(Line::Out(line));
            }
            let _ = stdout_sender.send(Line::Closed);
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(Line::Err(line));
            }
        });
        let mut transcript = String::new();
        let url = loop {
            match receiver.recv_timeout(Duration::from_secs(90)) {
                Ok(Line::Out(line)) => {
                    transcript.push_str(&line);
                    transcript.push('\n');
                    if let Some(url) = line.strip_prefix(ready) {
                        break Url::parse(url).expect("the printed URL parses");
                    }
                }
                Ok(Line::Err(line)) => {
                    transcript.push_str(&line);
                    transcript.push('\n');
                }
                Ok(Line::Closed) | Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    std::thread::sleep(Duration::from_millis(100));
                    while let Ok(Line::Err(line) | Line::Out(line)) = receiver.try_recv() {
                        transcript.push_str(&line);
                        transcript.push('\n');
                    }
                    panic!(
                        "coder {} did not start ({status:?}):\n{transcript}",
                        full.join(" ")
                    );
                }
            }
        };
        ServerProcess {
            child: Some(child),
            url,
            transcript,
            lines: receiver,
        }
    }
}

enum Line {
    Out(String),
    Err(String),
    Closed,
}

/// A running `coder server`; dropping it sends SIGTERM and waits.
pub struct ServerProcess {
    child: Option<Child>,
    /// The access URL it printed.
    pub url: Url,
    /// What it printed before the URL.
    pub transcript: String,
    lines: mpsc::Receiver<Line>,
}

impl ServerProcess {
    /// Sends `signal` and waits up to 60 s for the exit code; returns it and the rest of what
    /// the server printed.
    pub fn stop_with(mut self, signal: Signal) -> (Option<i32>, String) {
        self.stop(signal)
    }

    /// [`ServerProcess::stop_with`] for a server owned by a fixture that outlives it.
    pub fn stop(&mut self, signal: Signal) -> (Option<i32>, String) {
        let mut child = self.child.take().expect("the server was already stopped");
        let _ = kill(Pid::from_raw(child.id() as i32), signal);
        let mut rest = String::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                while let Ok(Line::Out(line) | Line::Err(line)) = self.lines.try_recv() {
                    rest.push_str(&line);
                    rest.push('\n');
                }
                return (status.code(), rest);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("coder server did not exit after {signal}");
            }
            while let Ok(Line::Out(line) | Line::Err(line)) = self.lines.try_recv() {
                rest.push_str(&line);
                rest.push('\n');
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            for _ in 0..600 {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
        }
    }
}

//! Reaching a workspace through its real agent: `coder ssh`, OpenSSH after `coder config-ssh`
//! (ssh, scp, sftp, -L and -R), `coder port-forward` (TCP and UDP), `coder ping` and
//! `coder speedtest`, and `--block-direct-connections`. The workspace is the local example
//! template on real Terraform; its agent is this `coder` binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::{Coder, ServerProcess, TestDb, eventually};

use crate::coder;

struct Workspace {
    coder: Coder,
    _server: ServerProcess,
    dir: PathBuf,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        // The agent is a background process of the template: stop it with the workspace.
        let _ = self.coder.run(&["delete", "dev", "--yes"]);
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("agent.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// A server, a logged-in owner, and a running workspace `dev` whose agent is ready.
async fn workspace(server_args: &[&str]) -> Workspace {
    let db = TestDb::new().await;
    let coder = coder();
    let mut args = vec![
        "--postgres-url",
        db.url.as_str(),
        "--http-address",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(server_args);
    let server = coder.server(&args);
    crate::login_first_user(&coder, &server.url);
    let template = coder.home().join("local");
    let template = template.to_str().unwrap();
    coder.run(&["templates", "init", template]).success();
    coder
        .run(&["templates", "push", "local", "-d", template, "-y"])
        .success();
    let workspaces = coder.home().join("workspaces");
    coder
        .run(&[
            "create",
            "dev",
            "--template",
            "local",
            "-y",
            &format!("--parameter=workspaces_dir={}", workspaces.display()),
            &format!("--parameter=agent_binary={}", env!("CARGO_BIN_EXE_coder")),
        ])
        .success();
    let dir = workspaces.join("admin/dev");
    eventually(Duration::from_secs(60), "the agent to be ready", || async {
        let list = coder.run(&["list", "-o", "json"]);
        let ready = list.stdout.contains("\"lifecycle_state\": \"ready\"")
            && list.stdout.contains("\"status\": \"connected\"");
        ready.then_some(())
    })
    .await;
    Workspace {
        coder,
        _server: server,
        dir,
    }
}

fn home(workspace: &Workspace) -> PathBuf {
    workspace.dir.join("home")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coder_ssh_runs_commands_and_passes_exit_codes() {
    let ws = workspace(&[]).await;
    let out = ws
        .coder
        .run(&[
            "ssh",
            "dev",
            "--",
            "echo hello from $CODER_WORKSPACE_NAME; pwd; exit 7",
        ])
        .failure(7);
    assert_eq!(
        out.stdout,
        format!("hello from dev\n{}\n", home(&ws).display()),
        "{}",
        out.stderr
    );
    let out = ws
        .coder
        .run(&[
            "ssh",
            "dev",
            "-e",
            "GREETING=hi",
            "--",
            "echo $GREETING >&2",
        ])
        .success();
    assert_eq!(out.stderr, "hi\n", "stderr stays stderr");

    // stdin reaches the command, and its end closes the command's input.
    let mut child = ws
        .coder
        .command(&["ssh", "dev", "--", "wc -c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&[b'x'; 100_000])
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "100000");

    // A signal ends the command: the exit status says so (128 + SIGTERM).
    ws.coder
        .run(&["ssh", "dev", "--", "kill -TERM $$"])
        .failure(128 + 15);

    // Asking for a workspace that does not exist, or a stopped one, says what to do.
    let out = ws.coder.run(&["ssh", "nope", "--", "true"]).failure(1);
    assert!(
        out.stderr.contains("finding workspace \"nope\""),
        "{}",
        out.stderr
    );
}

fn openssh(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_works_after_config_ssh() {
    let ws = workspace(&[]).await;
    let config = ws.coder.home().join("ssh_config");
    std::fs::write(&config, "Host other\n\tUser someone\n").unwrap();
    let config_arg = format!("--ssh-config-file={}", config.display());
    let dry = ws
        .coder
        .run(&["config-ssh", &config_arg, "--dry-run"])
        .success();
    assert!(dry.stdout.contains("Host coder.*"), "{}", dry.stdout);
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "Host other\n\tUser someone\n",
        "a dry run changes nothing"
    );
    ws.coder
        .run(&["config-ssh", &config_arg, "--yes"])
        .success();
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.starts_with("Host other\n\tUser someone\n"),
        "{written}"
    );
    let again = ws
        .coder
        .run(&["config-ssh", &config_arg, "--yes"])
        .success();
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        written,
        "idempotent"
    );

    let out = openssh(&config, &["coder.dev", "echo ok; exit 3"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");

    // scp both ways (OpenSSH 9's scp speaks SFTP), 64 MiB, checksums equal.
    let local = ws.coder.home().join("big");
    let mut random = std::fs::File::open("/dev/urandom").unwrap();
    let mut data = vec![0u8; 64 << 20];
    random.read_exact(&mut data).unwrap();
    std::fs::write(&local, &data).unwrap();
    let status = Command::new("scp")
        .arg("-F")
        .arg(&config)
        .arg(&local)
        .arg("coder.dev:big.copy")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(sha256(&home(&ws).join("big.copy")), sha256(&local));
    let back = ws.coder.home().join("big.back");
    let status = Command::new("scp")
        .arg("-F")
        .arg(&config)
        .arg("coder.dev:big.copy")
        .arg(&back)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(sha256(&back), sha256(&local));

    // sftp lists the working directory.
    let mut sftp = Command::new("sftp")
        .arg("-F")
        .arg(&config)
        .arg("-b")
        .arg("-")
        .arg("coder.dev")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    sftp.stdin
        .take()
        .unwrap()
        .write_all(b"mkdir made\nls\n")
        .unwrap();
    let listing = sftp.wait_with_output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("big.copy") && listing.contains("made"),
        "{listing}"
    );
    assert!(home(&ws).join("made").is_dir());

    // ssh -L: a local port reaches a server in the workspace.
    let target = echo_server();
    let local_port = free_port();
    let mut forward = Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
        .arg(format!("{local_port}:127.0.0.1:{target}"))
        .arg("coder.dev")
        .spawn()
        .unwrap();
    let echoed = eventually(Duration::from_secs(20), "ssh -L to forward", || async {
        echo_through(local_port, b"through -L").ok()
    })
    .await;
    assert_eq!(echoed, b"through -L");
    forward.kill().unwrap();
    let _ = forward.wait();

    // ssh -R: a port in the workspace reaches a server here.
    let remote_port = free_port();
    let mut reverse = Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-R"])
        .arg(format!("{remote_port}:127.0.0.1:{target}"))
        .arg("coder.dev")
        .spawn()
        .unwrap();
    let echoed = eventually(Duration::from_secs(20), "ssh -R to forward", || async {
        echo_through(remote_port, b"through -R").ok()
    })
    .await;
    assert_eq!(echoed, b"through -R");
    reverse.kill().unwrap();
    let _ = reverse.wait();
}

/// A TCP echo server on loopback; returns its port.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = stream.try_clone().unwrap();
                let _ = std::io::copy(&mut reader, &mut stream);
            });
        }
    });
    port
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn echo_through(port: u16, message: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(message)?;
    let mut echoed = vec![0; message.len()];
    stream.read_exact(&mut echoed)?;
    Ok(echoed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_ping_and_speedtest() {
    let ws = workspace(&[]).await;
    let tcp_target = echo_server();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_target = udp.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 2048];
        while let Ok((n, peer)) = udp.recv_from(&mut buffer) {
            let _ = udp.send_to(&buffer[..n], peer);
        }
    });
    let (tcp_local, udp_local) = (free_port(), free_port());
    let forward = ws
        .coder
        .command(&[
            "port-forward",
            "dev",
            "--tcp",
            &format!("{tcp_local}:{tcp_target}"),
            "--udp",
            &format!("{udp_local}:{udp_target}"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let echoed = eventually(Duration::from_secs(20), "port-forward --tcp", || async {
        echo_through(tcp_local, b"tcp through the tunnel").ok()
    })
    .await;
    assert_eq!(echoed, b"tcp through the tunnel");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let datagram = eventually(Duration::from_secs(20), "port-forward --udp", || async {
        client
            .send_to(b"udp datagram", ("127.0.0.1", udp_local))
            .ok()?;
        let mut buffer = [0u8; 64];
        let (n, _) = client.recv_from(&mut buffer).ok()?;
        Some(buffer[..n].to_vec())
    })
    .await;
    assert_eq!(datagram, b"udp datagram");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(forward.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = forward.wait_with_output().unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains(&format!(
            "Forwarding 127.0.0.1:{tcp_local} (tcp) to port {tcp_target} in workspace dev"
        )),
        "{printed}"
    );

    let ping = ws
        .coder
        .run(&["ping", "dev", "-n", "3", "--wait", "200ms"])
        .success();
    let pongs: Vec<&str> = ping
        .stdout
        .lines()
        .filter(|line| line.starts_with("pong from dev "))
        .collect();
    assert_eq!(pongs.len(), 3, "{}", ping.stdout);
    assert!(
        pongs
            .iter()
            .all(|line| line.contains(" via ") && line.ends_with("ms")),
        "{}",
        ping.stdout
    );
    assert!(ping.stdout.contains("3 pings sent, 3 pongs received"));

    let speed = ws
        .coder
        .run(&["speedtest", "dev", "-t", "1s", "-o", "json"])
        .success();
    let report: serde_json::Value = serde_json::from_str(&speed.stdout).unwrap();
    let mbits = report["overall"]["throughput_mbits"].as_f64().unwrap();
    assert!(mbits > 1.0, "{}", speed.stdout);
    let table = ws
        .coder
        .run(&["speedtest", "dev", "-t", "1s", "--direction", "up"])
        .success();
    assert!(table.stdout.contains("INTERVAL"), "{}", table.stdout);
    assert!(table.stdout.contains("Mbits/sec"), "{}", table.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_direct_connections_forces_the_relay() {
    let ws = workspace(&["--block-direct-connections"]).await;
    let ping = ws
        .coder
        .run(&["ping", "dev", "-n", "3", "--wait", "300ms"])
        .success();
    let pongs: Vec<&str> = ping
        .stdout
        .lines()
        .filter(|line| line.starts_with("pong from dev "))
        .collect();
    assert_eq!(pongs.len(), 3, "{}", ping.stdout);
    assert!(
        pongs
            .iter()
            .all(|line| line.contains("proxied via DERP(Coder Embedded Relay)")),
        "{}",
        ping.stdout
    );
    assert!(
        ping.stdout
            .contains("You are connected via a relay, not directly (p2p)."),
        "{}",
        ping.stdout
    );
    assert!(
        ping.stdout.contains("--block-direct-connections"),
        "{}",
        ping.stdout
    );
    let out = ws
        .coder
        .run(&["ssh", "dev", "--", "echo relayed"])
        .success();
    assert_eq!(out.stdout, "relayed\n");
    let direct = ws
        .coder
        .run(&["speedtest", "dev", "--direct", "-t", "1s"])
        .failure(1);
    assert!(
        direct.stderr.contains("--direct cannot succeed"),
        "{}",
        direct.stderr
    );
}

//! Reaching a workspace through its real agent: `coder ssh`, OpenSSH after `coder config-ssh`
//! (ssh, scp, sftp, -L and -R), `coder port-forward` (TCP and UDP), `coder ping` and
//! `coder speedtest`, and `--block-direct-connections`. The workspace is the local example
//! template on real Terraform; its agent is this `coder` binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::eventually;

use crate::coder;
use crate::fixture::{Workspace, api, free_port, home, user_with_roles, workspace, workspace_for};

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
    // Ctrl-C without a terminal leaves, and the agent ends the command rather than keep it for
    // a resume (the pattern's odd number makes it this test's process alone).
    let mut interrupted = started(&ws, "exec sleep 613.25");
    let remote = || {
        Command::new("pgrep")
            .args(["-f", "sleep 613.25"])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(remote(), "the command runs in the workspace");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(interrupted.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = interrupted.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while remote() {
        let running = Command::new("pgrep")
            .args(["-af", "613.25"])
            .output()
            .unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "the remote command outlived its session: {}\n{}",
            String::from_utf8_lossy(&running.stdout),
            std::fs::read_to_string(ws.dir.join("agent.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A session open while the workspace stops ends at once with the reason (it does not wait
    // for a tunnel that cannot come back).
    let mut open = started(&ws, "sleep 600");
    ws.coder.run(&["stop", "dev", "--yes"]).success();
    let stopped = std::time::Instant::now();
    let status = loop {
        if let Some(status) = open.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "the session outlived its workspace"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    open.stderr
        .as_mut()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("not running"), "{stderr}");

    let out = ws.coder.run(&["ssh", "dev", "--", "true"]).failure(1);
    assert_eq!(
        out.stderr,
        "error: workspace \"dev\" is stopped, not running\nhint: start it with 'coder start dev'\n"
    );
}

/// `coder ssh dev -- COMMAND`, once the session has printed that it started.
fn started(ws: &Workspace, command: &str) -> std::process::Child {
    let mut child = ws
        .coder
        .command(&["ssh", "dev", "--", &format!("echo started; {command}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    assert_eq!(first, "started\n");
    child
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

    // rsync runs its server end over ssh.
    let tree = ws.coder.home().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(tree.join("sub/b.txt"), "beta\n").unwrap();
    let status = Command::new("rsync")
        .arg("-a")
        .arg("-e")
        .arg(format!("ssh -F {}", config.display()))
        .arg(format!("{}/", tree.display()))
        .arg("coder.dev:tree/")
        .status()
        .expect("rsync is installed");
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(home(&ws).join("tree/sub/b.txt")).unwrap(),
        "beta\n"
    );

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
    // The agent reports its tunnels: `coder list` can show them.
    let listed = eventually(
        Duration::from_secs(30),
        "the connection in coder list",
        || async {
            let list = ws.coder.run(&["list", "-c", "workspace,agent,connection"]);
            list.stdout.contains("last p2p").then_some(list.stdout)
        },
    )
    .await;
    assert!(listed.contains("connected (ready)"), "{listed}");
    assert!(listed.contains("CONNECTION"), "{listed}");

    let netcheck = ws.coder.run(&["netcheck"]).success();
    let report: serde_json::Value = serde_json::from_str(&netcheck.stdout).unwrap();
    let region = &report["regions"][0];
    assert_eq!(
        region["region_name"], "Coder Embedded Relay",
        "{}",
        netcheck.stdout
    );
    assert_eq!(region["reachable"], true, "{}", netcheck.stdout);
    assert!(region["latency_ms"].as_f64().unwrap() > 0.0);

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
    // The speed tests moved megabytes through the agent's tunnels, and it says so.
    let show = eventually(
        Duration::from_secs(30),
        "the agent's traffic in coder show",
        || async {
            let show = ws.coder.run(&["show", "dev"]).stdout;
            (show.contains("MB sent") || show.contains("GB sent")).then_some(show)
        },
    )
    .await;
    assert!(
        show.contains("MB received") || show.contains("GB received"),
        "{show}"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_those_who_may_connect_learn_the_address_and_only_they_get_in() {
    let ws = workspace(&[]).await;
    let token = ws.token();
    let admin = api(&ws, token.trim());
    let workspace = admin
        .workspace_by_owner_and_name("me", "dev")
        .await
        .unwrap();
    let agent_id = workspace.latest_build.agents[0].id;
    let member = user_with_roles(&ws, &admin, "member", &[]).await;
    let template_admin = user_with_roles(&ws, &admin, "tadmin", &[sdk::Role::TemplateAdmin]).await;
    let some_endpoint = tunnel::SecretKey::generate().public().to_string();
    // A member cannot see the workspace at all; a template admin sees it but may not enter.
    let refused = member
        .coordinate(agent_id, &some_endpoint)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(404), "{refused}");
    let refused = template_admin
        .coordinate(agent_id, &some_endpoint)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    let refused = admin.coordinate(agent_id, "not-a-key").await.unwrap_err();
    assert_eq!(refused.status(), Some(400), "{refused}");

    // The owner learns the address; an endpoint that never registered, dialling that address
    // directly, is turned away by the agent itself.
    let mut events = admin.coordinate(agent_id, &some_endpoint).await.unwrap();
    let address = loop {
        let (_, event): (String, sdk::AgentAddressEvent) = events.next().await.unwrap().unwrap();
        if let Some(address) = event.address
            && !address.direct_addresses.is_empty()
        {
            break address;
        }
    };
    // The agent listens on every interface; reach its IPv4 port over loopback only, so the
    // test sends no packet to any other address.
    let port = address
        .direct_addresses
        .iter()
        .filter_map(|ip| ip.parse::<std::net::SocketAddr>().ok())
        .find(|ip| ip.is_ipv4())
        .unwrap()
        .port();
    let endpoint_id: tunnel::EndpointId = address.endpoint_id.parse().unwrap();
    let address = tunnel::EndpointAddr::new(endpoint_id)
        .with_ip_addr(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let stranger = tunnel::bind(tunnel::EndpointOptions {
        secret_key: tunnel::SecretKey::generate(),
        relays: Vec::new(),
        alpns: Vec::new(),
        direct: true,
        bind: Some("127.0.0.1:0".parse().unwrap()),
        lookup: None,
    })
    .await
    .unwrap();
    let connection = stranger
        .connect(address, tunnel::proto::AGENT_ALPN)
        .await
        .expect("the QUIC handshake itself succeeds");
    let reason = tokio::time::timeout(Duration::from_secs(20), connection.closed())
        .await
        .expect("the agent closes the connection");
    assert!(reason.to_string().contains("not authorized"), "{reason}");
    stranger.close().await;

    // A user with no access gets the same answer from the CLI.
    let out = ws
        .coder
        .run(&["ssh", "member/dev", "--", "true"])
        .failure(1);
    assert!(out.stderr.contains("finding workspace"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_shell_gets_a_pty_that_follows_the_window() {
    let ws = workspace(&[]).await;
    let terminal =
        crate::terminal::Terminal::start(&ws.coder.script(&["ssh", "dev"]), ws.coder.home());
    terminal.type_line("tty; stty size; echo ready-$((6*7))");
    let screen = terminal.wait_for("ready-42").await;
    assert!(screen.contains("/dev/pts/"), "{screen}");
    assert!(screen.contains("50 200"), "{screen}");
    terminal.resize(120, 40);
    terminal.type_line("stty size; echo resized-$((6*7))");
    let screen = terminal.wait_for("resized-42").await;
    assert!(screen.contains("40 120"), "{screen}");
    // Ctrl-C reaches the remote foreground process, not the local coder.
    terminal.type_line("sleep 100");
    std::thread::sleep(Duration::from_millis(500));
    terminal.keys("C-c");
    terminal.type_line("echo after-interrupt-$((6*7))");
    terminal.wait_for("after-interrupt-42").await;
    terminal.type_line("exit 4");
    terminal.wait_for("EXIT=4").await;
}

/// Pings with direct paths turned off: every pong comes through the embedded relay.
fn assert_relayed_pings(ws: &Workspace) {
    let ping = ws
        .coder
        .run(&[
            "--disable-direct-connections",
            "ping",
            "dev",
            "-n",
            "2",
            "--wait",
            "200ms",
        ])
        .success();
    let pongs: Vec<&str> = ping
        .stdout
        .lines()
        .filter(|line| line.starts_with("pong from dev "))
        .collect();
    assert_eq!(pongs.len(), 2, "{}", ping.stdout);
    assert!(
        pongs
            .iter()
            .all(|pong| pong.contains("proxied via DERP(Coder Embedded Relay)")),
        "{}",
        ping.stdout
    );
}

/// nginx as a layer-7 reverse proxy in front of the server (WebSocket upgrades for the relay,
/// unbuffered responses for the coordinator's event streams).
struct Nginx {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(listen: u16, upstream: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let config = format!(
            r#"daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_read_timeout 1h;
            client_max_body_size 0;
        }}
    }}
}}
"#
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed");
        Self { child, _dir: dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers too (SIGKILL would orphan them).
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_agents_connect_and_the_relay_works() {
    let (proxy_port, server_port) = (free_port(), free_port());
    let _nginx = Nginx::start(proxy_port, server_port);
    let access_url = format!("http://127.0.0.1:{proxy_port}");
    let server_address = format!("127.0.0.1:{server_port}");
    let ws = workspace(&[
        "--http-address",
        &server_address,
        "--access-url",
        &access_url,
    ])
    .await;
    // The agent reached the server (and the coordinator) through nginx: it is ready.
    let out = ws
        .coder
        .run(&["ssh", "dev", "--", "echo through nginx"])
        .success();
    assert_eq!(out.stdout, "through nginx\n");
    // Relayed: the relay's WebSocket upgrade goes through nginx too.
    assert_relayed_pings(&ws);
    let out = ws
        .coder
        .run(&[
            "--disable-direct-connections",
            "ssh",
            "dev",
            "--",
            "echo relayed through nginx",
        ])
        .success();
    assert_eq!(out.stdout, "relayed through nginx\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_with_a_private_ca_the_relay_is_trusted_like_the_api() {
    let pki = crate::tls::pki();
    let mut user = coder();
    let write = |name: &str, text: &str| {
        let path = user.home().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (cert, key, ca) = (
        write("cert.pem", &pki.server_cert),
        write("key.pem", &pki.server_key),
        write("ca.pem", &pki.ca_pem),
    );
    // The private CA is trusted the usual way: the CLI, the server and (through the
    // provisioner's environment) the agent all read SSL_CERT_FILE.
    user.env("SSL_CERT_FILE", &ca);
    let ws = workspace_for(
        user,
        &[
            "--http-address",
            "",
            "--tls-enable",
            "--tls-address",
            "127.0.0.1:0",
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
        ],
    )
    .await;
    assert_relayed_pings(&ws);
    let out = ws
        .coder
        .run(&["ssh", "dev", "--", "echo over https"])
        .success();
    assert_eq!(out.stdout, "over https\n");
}

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
    workspace_for(coder(), server_args).await
}

/// [`workspace`] for a user prepared by the caller (environment, files in its home).
async fn workspace_for(coder: Coder, server_args: &[&str]) -> Workspace {
    workspace_from(coder, server_args, |template| template).await
}

/// [`workspace_for`] with the local template's main.tf changed by `patch` before the push.
async fn workspace_from(
    coder: Coder,
    server_args: &[&str],
    patch: impl FnOnce(String) -> String,
) -> Workspace {
    let db = TestDb::new().await;
    let mut args = vec!["--postgres-url", db.url.as_str()];
    if !server_args.contains(&"--http-address") {
        args.extend(["--http-address", "127.0.0.1:0"]);
    }
    args.extend_from_slice(server_args);
    let server = coder.server(&args);
    crate::login_first_user(&coder, &server.url);
    let template = coder.home().join("local");
    let template = template.to_str().unwrap();
    coder.run(&["templates", "init", template]).success();
    let main_tf = Path::new(template).join("main.tf");
    let text = std::fs::read_to_string(&main_tf).unwrap();
    std::fs::write(&main_tf, patch(text)).unwrap();
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
    ws.coder.run(&["stop", "dev", "--yes"]).success();
    let out = ws.coder.run(&["ssh", "dev", "--", "true"]).failure(1);
    assert_eq!(
        out.stderr,
        "error: workspace \"dev\" is stopped, not running\nhint: start it with 'coder start dev'\n"
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

/// Has `admin` create a user with `roles`, then logs in as it.
async fn user_with_roles(
    ws: &Workspace,
    admin: &sdk::client::Client,
    name: &str,
    roles: &[sdk::Role],
) -> sdk::client::Client {
    admin
        .create_user(&sdk::CreateUserRequest {
            email: format!("{name}@example.com"),
            username: name.to_owned(),
            name: String::new(),
            password: sdk::Secret::new(testkit::PASSWORD),
            login_type: None,
            organization_ids: Vec::new(),
        })
        .await
        .unwrap();
    if !roles.is_empty() {
        admin
            .update_user_roles(
                name,
                &sdk::UpdateRolesRequest {
                    roles: roles.iter().map(|role| role.name().to_owned()).collect(),
                },
            )
            .await
            .unwrap();
    }
    let anonymous = sdk::client::Client::new(ws._server.url.clone(), reqwest::Client::new());
    let token = anonymous
        .login_with_password(&sdk::LoginWithPasswordRequest {
            email: format!("{name}@example.com"),
            password: sdk::Secret::new(testkit::PASSWORD),
        })
        .await
        .unwrap()
        .session_token;
    anonymous.with_session_token(token)
}

fn api(ws: &Workspace, token: &str) -> sdk::client::Client {
    sdk::client::Client::new(ws._server.url.clone(), reqwest::Client::new())
        .with_session_token(sdk::Secret::new(token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_those_who_may_connect_learn_the_address_and_only_they_get_in() {
    let ws = workspace(&[]).await;
    let token = std::fs::read_to_string(ws.coder.config_dir().join("session")).unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_proxied_on_paths_subdomains_and_port_urls() {
    let port = free_port();
    let ws = workspace_from(coder(), &["--wildcard-access-url", "*.apps.test"], |template| {
        let startup = "    startup_script = \"echo \\\"workspace ${var.coder_workspace_name} is ready\\\"\"";
        assert!(template.contains(startup), "the local template changed");
        template.replace(
            startup,
            &format!(
                "    startup_script = \"setsid nohup python3 -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1 &\"\n    apps = [{{ slug = \"files\", display_name = \"Files\", url = \"http://localhost:{port}\", healthcheck = {{ url = \"http://localhost:{port}/\", interval = 1, threshold = 2 }} }}, {{ slug = \"shared\", url = \"http://localhost:{port}\", share = \"authenticated\" }}, {{ slug = \"open\", url = \"http://localhost:{port}\", share = \"public\" }}]"
            ),
        )
    })
    .await;
    let token = std::fs::read_to_string(ws.coder.config_dir().join("session")).unwrap();
    let token = token.trim();
    let base = ws._server.url.clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(base.join(path).unwrap());
        if let Some(token) = token {
            request = request.header("Coder-Session-Token", token);
        }
        request.send()
    };
    let data: Vec<u8> = (0..(8u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(home(&ws).join("big.bin"), &data).unwrap();

    let listing = eventually(Duration::from_secs(30), "the app to answer", || async {
        let response = get("/@admin/dev/apps/files/", Some(token)).await.ok()?;
        (response.status() == 200).then_some(response.text().await.ok()?)
    })
    .await;
    assert!(listing.contains("big.bin"), "{listing}");
    let body = get("/@admin/dev/apps/files/big.bin", Some(token))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        body.as_ref() == data.as_slice(),
        "8 MiB through the app proxy, byte for byte"
    );

    eventually(
        Duration::from_secs(30),
        "the app to be reported healthy",
        || async {
            let show = ws.coder.run(&["show", "dev"]);
            show.stdout
                .contains(&format!("app files: http://localhost:{port} (healthy)"))
                .then_some(())
        },
    )
    .await;
    // The agent lists the ports its workspace listens on, named after their processes.
    let agent_id = api(&ws, token)
        .workspace_by_owner_and_name("me", "dev")
        .await
        .unwrap()
        .latest_build
        .agents[0]
        .id;
    let ports: sdk::ListeningPortsResponse = get(
        &format!("/api/v2/workspaceagents/{agent_id}/listening-ports"),
        Some(token),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let app_port = ports
        .ports
        .iter()
        .find(|listening| listening.port == port)
        .unwrap_or_else(|| panic!("port {port} is not listed: {ports:?}"));
    assert!(app_port.process_name.starts_with("python"), "{app_port:?}");

    let redirect = get("/@admin/dev/apps/files", Some(token)).await.unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/@admin/dev/apps/files/");
    assert_eq!(
        get("/@admin/dev/apps/files/", None).await.unwrap().status(),
        401
    );
    assert_eq!(
        get("/@admin/dev/apps/nope/", Some(token))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        get("/@nobody/dev/apps/files/", Some(token))
            .await
            .unwrap()
            .status(),
        404
    );
    // The same app on its own subdomain, and the same server as a port URL.
    let on_host = |host: String| {
        http.get(base.join("/big.bin").unwrap())
            .header("host", host)
            .header("Coder-Session-Token", token)
            .send()
    };
    for host in [
        "files--main--dev--admin.apps.test".to_owned(),
        format!("{port}--main--dev--admin.apps.test"),
    ] {
        let response = on_host(host.clone()).await.unwrap();
        assert_eq!(response.status(), 200, "{host}");
        assert!(
            response.bytes().await.unwrap().as_ref() == data.as_slice(),
            "{host}"
        );
    }
    assert_eq!(
        on_host("files--main--dev--nobody.apps.test".to_owned())
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        on_host("not-an-app.apps.test".to_owned())
            .await
            .unwrap()
            .status(),
        404
    );

    // A browser on a subdomain has no session there: it signs in through the dashboard.
    let app_host = "files--main--dev--admin.apps.test";
    let step = |host: Option<&str>, url: url::Url, cookie: Option<String>, session: bool| {
        let mut request = http.get(url).header("accept", "text/html");
        if let Some(host) = host {
            request = request.header("host", host);
        }
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        if session {
            request = request.header("Coder-Session-Token", token);
        }
        request.send()
    };
    let location = |response: &reqwest::Response| {
        url::Url::parse(response.headers()["location"].to_str().unwrap())
            .or_else(|_| base.join(response.headers()["location"].to_str().unwrap()))
            .unwrap()
    };
    let first = step(Some(app_host), base.join("/big.bin").unwrap(), None, false)
        .await
        .unwrap();
    assert_eq!(first.status(), 303);
    let to_dashboard = location(&first);
    assert_eq!(to_dashboard.path(), "/api/v2/applications/auth-redirect");
    let signed = step(None, to_dashboard, None, true).await.unwrap();
    assert_eq!(signed.status(), 303);
    let back = location(&signed);
    assert_eq!(back.host_str(), Some(app_host));
    let exchange = base
        .join(&format!("{}?{}", back.path(), back.query().unwrap()))
        .unwrap();
    let exchanged = step(Some(app_host), exchange.clone(), None, false)
        .await
        .unwrap();
    assert_eq!(exchanged.status(), 303);
    assert_eq!(exchanged.headers()["location"], "/big.bin");
    let set_cookie = exchanged.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && !set_cookie.contains("Domain"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let opened = step(
        Some(app_host),
        base.join("/big.bin").unwrap(),
        Some(cookie.clone()),
        false,
    )
    .await
    .unwrap();
    assert_eq!(opened.status(), 200);
    assert!(opened.bytes().await.unwrap().as_ref() == data.as_slice());
    // The cookie is good for that app's host only, and the exchange link for one use-minute.
    let elsewhere = step(
        Some("shared--main--dev--admin.apps.test"),
        base.join("/").unwrap(),
        Some(cookie),
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        elsewhere.status(),
        303,
        "another host sends the browser to sign in again"
    );
    let forged = step(
        Some("open--main--dev--admin.apps.test"),
        exchange,
        None,
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        forged.status(),
        401,
        "an exchange token is bound to its host"
    );

    // Another user learns nothing: the same 404 as for a workspace that does not exist.
    let member = user_with_roles(&ws, &api(&ws, token), "member", &[]).await;
    let member_token = member.session_token().unwrap().expose().to_owned();
    assert_eq!(
        get("/@admin/dev/apps/files/", Some(&member_token))
            .await
            .unwrap()
            .status(),
        404
    );
    // Sharing levels: any signed-in user, or anyone at all.
    assert_eq!(
        get("/@admin/dev/apps/shared/", Some(&member_token))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get("/@admin/dev/apps/shared/", None)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        get("/@admin/dev/apps/open/big.bin", None)
            .await
            .unwrap()
            .status(),
        200
    );
    // Without a session, a private app and a missing one look alike.
    assert_eq!(
        get("/@admin/dev/apps/nope/", None).await.unwrap().status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_terminal_survives_a_dropped_socket() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let ws = workspace(&[]).await;
    let token = std::fs::read_to_string(ws.coder.config_dir().join("session")).unwrap();
    let admin = api(&ws, token.trim());
    let workspace = admin
        .workspace_by_owner_and_name("me", "dev")
        .await
        .unwrap();
    let agent_id = workspace.latest_build.agents[0].id;
    let session = uuid::Uuid::new_v4();
    let mut url = ws._server.url.clone();
    url.set_scheme("ws").unwrap();
    let url = url
        .join(&format!(
            "/api/v2/workspaceagents/{agent_id}/pty?reconnect={session}&width=100&height=30"
        ))
        .unwrap();
    let connect = || {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Coder-Session-Token", token.trim().parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    /// Reads the socket until the output so far contains `text`.
    async fn read_until<S>(socket: &mut S, text: &str) -> String
    where
        S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + Unpin,
    {
        let mut seen = String::new();
        tokio::time::timeout(Duration::from_secs(20), async {
            while !seen.contains(text) {
                match socket.next().await {
                    Some(Ok(Message::Binary(bytes))) => {
                        seen.push_str(&String::from_utf8_lossy(&bytes))
                    }
                    Some(Ok(_)) => {}
                    other => panic!("the terminal closed: {other:?}\n{seen}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {text:?} in the terminal:\n{seen}"));
        seen
    }
    let (mut socket, _) = connect().await.unwrap();
    let typed = serde_json::json!({"data": "echo hello-$((6*7)); stty size\r"}).to_string();
    socket.send(Message::Text(typed.into())).await.unwrap();
    let seen = read_until(&mut socket, "hello-42").await;
    let seen = if seen.contains("30 100") {
        seen
    } else {
        read_until(&mut socket, "30 100").await
    };
    assert!(seen.contains("30 100"), "{seen}");
    drop(socket);

    // The same id reconnects to the same shell: the recent output comes back, and it still runs.
    let (mut socket, _) = connect().await.unwrap();
    read_until(&mut socket, "hello-42").await;
    let resize = serde_json::json!({"height": 40, "width": 120}).to_string();
    socket.send(Message::Text(resize.into())).await.unwrap();
    let typed = serde_json::json!({"data": "stty size; echo again-$((6*7))\r"}).to_string();
    socket.send(Message::Text(typed.into())).await.unwrap();
    let seen = read_until(&mut socket, "again-42").await;
    assert!(seen.contains("40 120"), "{seen}");

    // Someone who may not connect to the workspace gets no terminal.
    let member = user_with_roles(&ws, &admin, "member", &[]).await;
    let member_token = member.session_token().unwrap().expose().to_owned();
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Coder-Session-Token", member_token.parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(refused.to_string().contains("404"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_pass_websockets_and_say_when_the_app_is_down() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    // The app: a WebSocket echo server on loopback, which the agent reaches like any app.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() || message.is_binary() {
                        let _ = socket.send(message).await;
                    }
                }
            });
        }
    });
    let dead_port = free_port();
    let ws = workspace_from(coder(), &[], |template| {
        let startup = "    startup_script = \"echo \\\"workspace ${var.coder_workspace_name} is ready\\\"\"";
        assert!(template.contains(startup), "the local template changed");
        template.replace(
            startup,
            &format!(
                "{startup}\n    apps = [\n      {{ slug = \"echo\", url = \"http://localhost:{echo_port}\" }},\n      {{ slug = \"down\", url = \"http://localhost:{dead_port}\", healthcheck = {{ url = \"http://localhost:{dead_port}/\", interval = 1, threshold = 2 }} }},\n    ]"
            ),
        )
    })
    .await;
    let token = std::fs::read_to_string(ws.coder.config_dir().join("session")).unwrap();
    let mut url = ws._server.url.clone();
    url.set_scheme("ws").unwrap();
    let url = url.join("/@admin/dev/apps/echo/socket").unwrap();
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Coder-Session-Token", token.trim().parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    for text in ["hello", "through the app proxy"] {
        socket.send(Message::Text(text.into())).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }

    let show = eventually(Duration::from_secs(30), "health to be reported", || async {
        let show = ws.coder.run(&["show", "dev"]).stdout;
        show.contains(" (unhealthy)").then_some(show)
    })
    .await;
    assert!(
        show.contains(&format!(
            "app down: http://localhost:{dead_port} (unhealthy)"
        )),
        "{show}"
    );
    assert!(
        show.contains(&format!(
            "app echo: http://localhost:{echo_port} (disabled)"
        )),
        "{show}"
    );

    // An app that is not listening: a 502 that says so.
    let response = reqwest::Client::new()
        .get(ws._server.url.join("/@admin/dev/apps/down/").unwrap())
        .header("Coder-Session-Token", token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body = response.text().await.unwrap();
    assert!(
        body.contains(&format!("is not answering on port {dead_port}")),
        "{body}"
    );
}

/// FNV-1a: enough to tell a byte stream arrived whole and in order.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// A minimal HTTP/1.1 app: `GET /bytes/N` streams N patterned bytes; `POST /hash` answers with
/// the body's length and FNV-1a hash, and the `X-Forwarded-For` it saw. One request per
/// connection.
async fn bulk_app() -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push(line.trim_end().to_owned());
                }
                let header = |name: &str| {
                    head.iter().find_map(|line| {
                        let (key, value) = line.split_once(':')?;
                        key.eq_ignore_ascii_case(name)
                            .then(|| value.trim().to_owned())
                    })
                };
                let request_line = head.first().cloned().unwrap_or_default();
                if request_line.starts_with("GET /events ") {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n")
                        .await;
                    for i in 1..=3 {
                        let _ = stream
                            .write_all(format!("data: tick {i}\n\n").as_bytes())
                            .await;
                        let _ = stream.flush().await;
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    return;
                }
                let body = if let Some(n) = request_line
                    .strip_prefix("GET /bytes/")
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    let _ = stream
                        .write_all(
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n")
                                .as_bytes(),
                        )
                        .await;
                    let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
                    let mut left = n;
                    while left > 0 {
                        let take = left.min(chunk.len());
                        if stream.write_all(&chunk[..take]).await.is_err() {
                            return;
                        }
                        left -= take;
                    }
                    return;
                } else {
                    let length: usize = header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let mut hash = FNV_START;
                    let mut left = length;
                    let mut buffer = vec![0u8; 65536];
                    while left > 0 {
                        let n = stream
                            .read(&mut buffer[..left.min(65536)])
                            .await
                            .unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        hash = fnv1a(hash, &buffer[..n]);
                        left -= n;
                    }
                    format!(
                        "{} {hash:x} {}",
                        length - left,
                        header("x-forwarded-for").unwrap_or_default()
                    )
                };
                let _ = stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_down_and_256_mib_up_through_an_app() {
    let port = bulk_app().await;
    let ws = workspace_from(coder(), &[], |template| {
        let startup =
            "    startup_script = \"echo \\\"workspace ${var.coder_workspace_name} is ready\\\"\"";
        assert!(template.contains(startup), "the local template changed");
        template.replace(
            startup,
            &format!(
                "{startup}\n    apps = [{{ slug = \"bulk\", url = \"http://localhost:{port}\" }}]"
            ),
        )
    })
    .await;
    let token = std::fs::read_to_string(ws.coder.config_dir().join("session")).unwrap();
    let http = reqwest::Client::new();
    let base = ws._server.url.clone();

    const DOWN: usize = 1 << 30;
    let mut response = http
        .get(
            base.join(&format!("/@admin/dev/apps/bulk/bytes/{DOWN}"))
                .unwrap(),
        )
        .header("Coder-Session-Token", token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    let mut expected = FNV_START;
    for _ in 0..DOWN / chunk.len() {
        expected = fnv1a(expected, &chunk);
    }
    let (mut received, mut hash) = (0usize, FNV_START);
    while let Some(bytes) = response.chunk().await.unwrap() {
        received += bytes.len();
        hash = fnv1a(hash, &bytes);
    }
    assert_eq!(received, DOWN);
    assert_eq!(hash, expected, "1 GiB arrived whole and in order");

    const UP: usize = 256 << 20;
    let upload: Vec<u8> = (0..UP).map(|i| (i % 241) as u8).collect();
    let answer = http
        .post(base.join("/@admin/dev/apps/bulk/hash").unwrap())
        .header("Coder-Session-Token", token.trim())
        .body(upload.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let expected = format!("{UP} {:x} 127.0.0.1", fnv1a(FNV_START, &upload));
    assert_eq!(
        answer, expected,
        "256 MiB went up whole; the app saw who asked"
    );

    // Server-Sent Events arrive as they are sent, not when the response ends.
    let mut events = http
        .get(base.join("/@admin/dev/apps/bulk/events").unwrap())
        .header("Coder-Session-Token", token.trim())
        .send()
        .await
        .unwrap();
    let first = String::from_utf8_lossy(&events.chunk().await.unwrap().unwrap()).into_owned();
    assert!(first.contains("tick 1"), "{first}");
    assert!(
        !first.contains("tick 3"),
        "the first event was held back until the stream ended: {first}"
    );
    let mut rest = String::new();
    while let Some(chunk) = events.chunk().await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(rest.contains("tick 3"), "{rest}");
}

/// An HTTPS app with a self-signed certificate, answering every request with its path.
async fn https_app() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    testkit::init_crypto();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("?").to_owned();
                let body = format!("secure {path}");
                let _ = tls
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_apps_and_port_urls() {
    let port = https_app().await;
    let ws = workspace_from(coder(), &["--wildcard-access-url", "*.apps.test"], |template| {
        let startup = "    startup_script = \"echo \\\"workspace ${var.coder_workspace_name} is ready\\\"\"";
        assert!(template.contains(startup), "the local template changed");
        template.replace(
            startup,
            &format!("{startup}\n    apps = [{{ slug = \"secure\", url = \"https://localhost:{port}\" }}]"),
        )
    })
    .await;
    let token = std::fs::read_to_string(ws.coder.config_dir().join("session")).unwrap();
    let http = reqwest::Client::new();
    let base = ws._server.url.clone();
    let body = http
        .get(base.join("/@admin/dev/apps/secure/hello").unwrap())
        .header("Coder-Session-Token", token.trim())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "secure /hello");
    // A port URL with the `s` suffix speaks HTTPS to the port.
    let body = http
        .get(base.join("/there").unwrap())
        .header("host", format!("{port}s--main--dev--admin.apps.test"))
        .header("Coder-Session-Token", token.trim())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "secure /there");
}

//! Real NATs: the server on a "public" network namespace, the workspace's agent behind one NAT
//! router and the user behind another (`fixtures/nat-topology.sh`: iptables MASQUERADE, routers
//! that drop unsolicited WAN input, addresses only in 198.18.0.0/15). Needs root, `ip` and
//! `iptables` (`.ci/run` installs them).
//!
//! Easy NAT: `coder ping` reaches `p2p` via the agent router's public address, and an SSH
//! session survives a server restart. Hard NAT (`--random-fully` on both routers): traffic goes
//! through the relay, and SSH still works.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::{Coder, ServerProcess, TestDb, eventually};

const SERVER: &str = "http://198.18.0.1:3000";
const AGENT_ROUTER: &str = "198.18.0.2";

struct Topology {
    prefix: String,
    script: PathBuf,
}

impl Topology {
    fn up(mode: &str) -> Self {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the NAT tests build network namespaces and need root"
        );
        let prefix = format!("cn{}{}", std::process::id() % 100_000, &mode[..1]);
        let script = crate::manifest_dir().join("tests/it/fixtures/nat-topology.sh");
        let status = Command::new("sh")
            .arg(&script)
            .args(["up", &prefix, mode])
            .status()
            .expect("running nat-topology.sh");
        assert!(status.success(), "building the {mode} NAT topology failed");
        Self { prefix, script }
    }

    /// A wrapper that runs the coder binary inside namespace `ns`.
    fn binary_in(&self, ns: &str, dir: &Path) -> PathBuf {
        let path = dir.join(format!("coder-in-{ns}"));
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nexec ip netns exec {}-{ns} '{}' \"$@\"\n",
                self.prefix,
                env!("CARGO_BIN_EXE_coder")
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg(&self.script)
            .args(["down", &self.prefix])
            .status();
    }
}

struct Nat {
    // Field order is drop order: the workspace's agent and the server go before the network.
    user: Coder,
    server: Option<ServerProcess>,
    server_coder: Coder,
    server_args: Vec<String>,
    agent_dir: PathBuf,
    _db: TestDb,
    /// Holds the namespace wrappers.
    scratch: Coder,
    topology: Topology,
}

impl Drop for Nat {
    fn drop(&mut self) {
        crate::fixture::stop_workspace(&self.user, &self.agent_dir);
        self.server.take();
    }
}

impl Nat {
    async fn start(mode: &str) -> Self {
        Self::start_with(mode, |_| {}, |template| template).await
    }

    /// [`Nat::start`], with `network` run once the namespaces exist (before anything starts in
    /// them) and the local template's main.tf changed by `patch`.
    async fn start_with(
        mode: &str,
        network: impl FnOnce(&str),
        patch: impl FnOnce(String) -> String,
    ) -> Self {
        let topology = Topology::up(mode);
        network(&topology.prefix);
        let db = TestDb::new().await;
        let scratch = Coder::new(env!("CARGO_BIN_EXE_coder"));
        let server_coder = Coder::new(topology.binary_in("pub", scratch.home()));
        let server_args: Vec<String> = [
            "--postgres-url",
            db.url.as_str(),
            "--http-address",
            "198.18.0.1:3000",
            "--access-url",
            SERVER,
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        let args: Vec<&str> = server_args.iter().map(String::as_str).collect();
        let server = server_coder.server(&args);
        let user = Coder::new(topology.binary_in("b", scratch.home()));
        let agent = topology.binary_in("a", scratch.home());
        user.run(&[
            "login",
            SERVER,
            "--first-user-username=admin",
            "--first-user-email=admin@example.com",
            &format!("--first-user-password={}", testkit::PASSWORD),
        ])
        .success();
        let template = user.home().join("local");
        let template = template.to_str().unwrap();
        user.run(&["templates", "init", template]).success();
        let main_tf = Path::new(template).join("main.tf");
        let text = std::fs::read_to_string(&main_tf).unwrap();
        std::fs::write(&main_tf, patch(text)).unwrap();
        user.run(&["templates", "push", "local", "-d", template, "-y"])
            .success();
        let workspaces = user.home().join("workspaces");
        user.run(&[
            "create",
            "dev",
            "--template",
            "local",
            "-y",
            &format!("--parameter=workspaces_dir={}", workspaces.display()),
            &format!("--parameter=agent_binary={}", agent.display()),
        ])
        .success();
        let nat = Self {
            agent_dir: workspaces.join("admin/dev"),
            user,
            server: Some(server),
            server_coder,
            server_args,
            _db: db,
            scratch,
            topology,
        };
        nat.wait_until_ready().await;
        nat
    }

    async fn wait_until_ready(&self) {
        eventually(Duration::from_secs(60), "the agent to be ready", || async {
            let list = self.user.run(&["list", "-o", "json"]);
            let ready = list.stdout.contains("\"lifecycle_state\": \"ready\"")
                && list.stdout.contains("\"status\": \"connected\"");
            ready.then_some(())
        })
        .await;
    }

    /// Waits for `coder show dev` to report the agent's latest tunnel path.
    async fn wait_for_show(&self, text: &str) {
        eventually(Duration::from_secs(30), text, || async {
            let show = self.user.run(&["show", "dev"]);
            show.stdout.contains(text).then_some(())
        })
        .await;
    }

    fn pongs(&self, count: &str) -> Vec<String> {
        let out = self
            .user
            .run(&["ping", "dev", "-n", count, "--wait", "500ms"]);
        if out.code != 0 {
            // What the client saw of the relay, and the agent's side, to tell a network
            // problem from a coordinator one.
            let verbose = self.user.run(&["-v", "ping", "dev", "-n", "1"]);
            let relay_lines: Vec<&str> = verbose
                .stderr
                .lines()
                .filter(|line| line.contains("relay") || line.contains("connecting"))
                .collect();
            let log = std::fs::read_to_string(self.agent_dir.join("agent.log")).unwrap_or_default();
            panic!(
                "coder ping failed:\n{}\na verbose retry:\n{}\nthe agent's log:\n{log}",
                out.stderr,
                relay_lines.join("\n")
            );
        }
        out.stdout
            .lines()
            .filter(|line| line.starts_with("pong from dev "))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn easy_nat_goes_direct_and_survives_a_server_restart() {
    let mut nat = Nat::start("easy").await;
    let pongs = nat.pongs("10");
    let direct = format!("p2p via {AGENT_ROUTER}:");
    assert!(
        pongs.iter().any(|pong| pong.contains(&direct)),
        "no direct path through the agent's NAT within 10 pings:\n{}",
        pongs.join("\n")
    );
    nat.wait_for_show("last p2p").await;
    let speed = nat
        .user
        .run(&["speedtest", "dev", "-d", "-t", "1s"])
        .success();
    assert!(speed.stdout.contains(&direct), "{}", speed.stdout);

    // A running session keeps going while the server is away; new ones work once it is back.
    let session = nat
        .user
        .command(&[
            "ssh",
            "dev",
            "--",
            "for i in $(seq 1 16); do echo tick $i; sleep 0.5; done",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (code, _) = nat
        .server
        .take()
        .unwrap()
        .stop_with(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(code, Some(0));
    std::thread::sleep(Duration::from_secs(2));
    let args: Vec<&str> = nat.server_args.iter().map(String::as_str).collect();
    nat.server = Some(nat.server_coder.server(&args));
    let output = session.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && printed.contains("tick 16"),
        "the session died with the server:\n{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let again = eventually(
        Duration::from_secs(60),
        "a new session after the restart",
        || async {
            let out = nat.user.run(&["ssh", "dev", "--", "echo back"]);
            (out.code == 0).then_some(out.stdout)
        },
    )
    .await;
    assert_eq!(again, "back\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_nat_falls_back_to_the_relay() {
    let nat = Nat::start("hard").await;
    let pongs = nat.pongs("6");
    assert_eq!(pongs.len(), 6, "{}", pongs.join("\n"));
    assert!(
        pongs
            .iter()
            .all(|pong| pong.contains("proxied via DERP(Coder Embedded Relay)")),
        "{}",
        pongs.join("\n")
    );
    nat.wait_for_show("last relay (Coder Embedded Relay)").await;
    let out = nat
        .user
        .run(&["ssh", "dev", "--", "echo through the relay"])
        .success();
    assert_eq!(out.stdout, "through the relay\n");
}

/// `iptables ARGS` in the namespace `PREFIX-ns`.
fn iptables(prefix: &str, ns: &str, args: &[&str]) {
    let status = Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-{ns}"), "iptables"])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "iptables {args:?} in {ns}");
}

/// The server reaches apps over its own tunnel to the agent. A download that starts while UDP
/// out of the agent's network is blocked (so the tunnel is relayed) completes intact after
/// UDP is let through again and the tunnel moves to the direct path mid-transfer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_download_survives_the_tunnel_moving_from_relay_to_direct() {
    const BLOCK_UDP: [&str; 7] = ["FORWARD", "-i", "lan", "-p", "udp", "-j", "DROP"];
    let rule = &BLOCK_UDP[..];
    let app_port = 8000;
    let nat = Nat::start_with(
        "easy",
        |prefix| iptables(prefix, "ra", &[&["-I"], rule].concat()),
        |template| {
            crate::fixture::with_startup(
                template,
                &format!(
                    "    startup_script = \"head -c 48000000 /dev/urandom > big.bin; sha256sum big.bin > big.sha; setsid nohup python3 -m http.server {app_port} --bind 127.0.0.1 >/dev/null 2>&1 &\"\n    apps = [{{ slug = \"files\", url = \"http://localhost:{app_port}\" }}]"
                ),
            )
        },
    )
    .await;
    let prefix = nat.topology.prefix.clone();
    let home = nat.agent_dir.join("home");
    eventually(Duration::from_secs(30), "the app's file", || async {
        std::fs::read_to_string(home.join("big.sha")).ok()
    })
    .await;
    let token = std::fs::read_to_string(nat.user.config_dir().join("session")).unwrap();
    let download = nat.scratch.home().join("big.bin");
    // From the user's laptop, through the server: 48 MB at 1.5 MB/s, about 30 s.
    let mut curl = Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{prefix}-b"),
            "curl",
            "-sS",
            "--fail",
        ])
        .args(["--limit-rate", "1500k", "-H"])
        .arg(format!("Coder-Session-Token: {}", token.trim()))
        .arg(format!("{SERVER}/@admin/dev/apps/files/big.bin"))
        .arg("-o")
        .arg(&download)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    nat.wait_for_show("last relay (Coder Embedded Relay)").await;

    // Let UDP through: the tunnel under the running download moves to the direct path.
    iptables(&prefix, "ra", &[&["-D"], rule].concat());
    nat.wait_for_show("last p2p").await;
    assert!(
        curl.try_wait().unwrap().is_none(),
        "the download ended before the path changed: nothing was tested"
    );
    let output = curl.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the download broke when the path changed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected = std::fs::read_to_string(home.join("big.sha")).unwrap();
    let got = Command::new("sha256sum").arg(&download).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got.stdout)
            .split_whitespace()
            .next(),
        expected.split_whitespace().next(),
        "the file arrived changed"
    );
}

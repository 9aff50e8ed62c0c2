//! A server, a logged-in owner and a running workspace `dev` on the local example template on
//! real Terraform, whose agent is this `coder` binary: what the tunnel and app tests start from.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testkit::{Coder, ServerProcess, TestDb, eventually};

use crate::coder;

pub(crate) struct Workspace {
    pub(crate) coder: Coder,
    pub(crate) _server: ServerProcess,
    pub(crate) dir: PathBuf,
    pub(crate) db: TestDb,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        stop_workspace(&self.coder, &self.dir);
    }
}

/// Deletes workspace `dev` (of the local template, in `dir`) and stops what it left running:
/// its agent, a background process of the template, and whatever the startup script detached
/// (the tests' app servers), which is every process working inside the workspace's directory.
/// A local workspace has no container to take them down with it.
pub(crate) fn stop_workspace(coder: &Coder, dir: &Path) {
    let _ = coder.run(&["delete", "dev", "--yes"]);
    if let Ok(pid) = std::fs::read_to_string(dir.join("agent.pid")) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        // The delete removed the directory: the kernel marks such a path " (deleted)".
        let cwd = cwd.to_string_lossy();
        if Path::new(cwd.trim_end_matches(" (deleted)")).starts_with(dir) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

/// A server, a logged-in owner, and a running workspace `dev` whose agent is ready.
pub(crate) async fn workspace(server_args: &[&str]) -> Workspace {
    workspace_for(coder(), server_args).await
}

/// [`workspace`] for a user prepared by the caller (environment, files in its home).
pub(crate) async fn workspace_for(coder: Coder, server_args: &[&str]) -> Workspace {
    workspace_from(coder, server_args, |template| template).await
}

/// [`workspace_for`] with the local template's main.tf changed by `patch` before the push.
pub(crate) async fn workspace_from(
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
        db,
    }
}

pub(crate) fn home(workspace: &Workspace) -> PathBuf {
    workspace.dir.join("home")
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Has `admin` create a user with `roles`, then logs in as it.
pub(crate) async fn user_with_roles(
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

pub(crate) fn api(ws: &Workspace, token: &str) -> sdk::client::Client {
    sdk::client::Client::new(ws._server.url.clone(), reqwest::Client::new())
        .with_session_token(sdk::Secret::new(token))
}

/// The local template's startup script line, which tests replace or extend.
pub(crate) const STARTUP: &str =
    "    startup_script = \"echo \\\"workspace ${var.coder_workspace_name} is ready\\\"\"";

/// The local template's main.tf with its startup line replaced by `lines` (which may repeat
/// [`STARTUP`] to keep it).
pub(crate) fn with_startup(template: String, lines: &str) -> String {
    assert!(template.contains(STARTUP), "the local template changed");
    template.replace(STARTUP, lines)
}

impl Workspace {
    /// The owner's session token, as `coder login` saved it.
    pub(crate) fn token(&self) -> String {
        std::fs::read_to_string(self.coder.config_dir().join("session"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// The id of `dev`'s agent.
    pub(crate) async fn agent_id(&self) -> uuid::Uuid {
        api(self, &self.token())
            .workspace_by_owner_and_name("me", "dev")
            .await
            .unwrap()
            .latest_build
            .agents[0]
            .id
    }
}

/// The whole `Set-Cookie` value setting the signed app token (attributes included).
pub(crate) fn signed_app_token(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|value| value.starts_with("coder_signed_app_token="))
        .expect("a signed app token")
}

/// Reads a web terminal's WebSocket until its output so far contains `text` (20 s at most);
/// returns the output.
pub(crate) async fn terminal_output_until<S>(socket: &mut S, text: &str) -> String
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains(text) {
            match socket.next().await {
                Some(Ok(Message::Binary(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Some(Ok(_)) => {}
                other => panic!("the terminal closed: {other:?}\n{seen}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {text:?} in the terminal:\n{seen}"));
    seen
}

/// `Token: ID:SECRET` from `coder wsproxy create`'s output.
pub(crate) fn token_of(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("Token: "))
        .unwrap_or_else(|| panic!("no token in {stdout:?}"))
        .to_owned()
}

/// Has `owner` create the workspace proxy `name` (shown as `display`) and runs
/// `coder wsproxy server` for it against `primary`, listening on `port` of 127.0.0.1, with
/// the extra `CODER_*` settings in `env`.
pub(crate) fn start_proxy(
    owner: &Coder,
    primary: &url::Url,
    name: &str,
    display: &str,
    port: u16,
    env: &[(&str, &str)],
) -> ServerProcess {
    let created = owner
        .run(&[
            "wsproxy",
            "create",
            &format!("--name={name}"),
            &format!("--display-name={display}"),
        ])
        .success();
    let mut proxy = coder();
    proxy
        .env("CODER_PRIMARY_ACCESS_URL", &crate::url(primary))
        .env("CODER_PROXY_SESSION_TOKEN", &token_of(&created.stdout))
        .env("CODER_HTTP_ADDRESS", &format!("127.0.0.1:{port}"));
    for (key, value) in env {
        proxy.env(key, value);
    }
    proxy.proxy_server(&[])
}

/// A TCP forwarder on a free port of 127.0.0.1 to `target` that holds every byte back by
/// `delay` each way: a server in a far-away region (this kernel has no netem). Runs on its own
/// thread and runtime, so tests that block their own workers don't stall it. Returns the port.
pub(crate) fn far_away(target: u16, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((near, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let Ok(far) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let _ = near.set_nodelay(true);
                    let _ = far.set_nodelay(true);
                    let (near_read, near_write) = near.into_split();
                    let (far_read, far_write) = far.into_split();
                    tokio::join!(
                        delayed(near_read, far_write, delay),
                        delayed(far_read, near_write, delay)
                    );
                });
            }
        });
    });
    port
}

/// Copies `from` to `to`, each chunk `delay` after it arrived (latency, not a bandwidth cap).
async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (chunks, mut due) = tokio::sync::mpsc::unbounded_channel();
    let reading = async move {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(n) = from.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            let _ = chunks.send((tokio::time::Instant::now() + delay, buffer[..n].to_vec()));
        }
    };
    let writing = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}

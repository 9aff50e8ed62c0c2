//! Workspaces end to end: the local example template on real Terraform, built by the server's
//! built-in provisioners, driven with `coder create/list/show/stop/start/restart/delete`.
//! A stand-in agent (a script recording its environment, then sleeping) shows what the
//! template starts and stops until the real agent exists (issue #4).

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testkit::{Coder, ServerProcess, TestDb, eventually};

use crate::{coder, url};

struct Setup {
    server: ServerProcess,
    coder: Coder,
    workspaces: PathBuf,
    agent: String,
    db_url: String,
}

async fn setup(extra: &[&str]) -> Setup {
    let db = TestDb::new().await;
    let coder = coder();
    let mut args = vec!["--postgres-url", db.url.as_str()];
    if !extra.contains(&"--http-address") {
        args.extend(["--http-address", "127.0.0.1:0"]);
    }
    args.extend_from_slice(extra);
    let server = coder.server(&args);
    crate::login_first_user(&coder, &server.url);
    let template = coder.home().join("local");
    coder
        .run(&["templates", "init", template.to_str().unwrap()])
        .success();
    coder
        .run(&[
            "templates",
            "push",
            "local",
            "-d",
            template.to_str().unwrap(),
            "-y",
        ])
        .success();
    let agent = coder.home().join("fake-agent");
    std::fs::write(
        &agent,
        "#!/bin/sh\nenv | grep '^CODER_AGENT_' | sort > agent.env\nexec sleep 300\n",
    )
    .unwrap();
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    Setup {
        server,
        workspaces: coder.home().join("workspaces"),
        agent: agent.to_str().unwrap().to_owned(),
        coder,
        db_url: db.url,
    }
}

fn agent_pid(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join("agent.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether the process exists and is not a zombie waiting to be reaped.
fn is_running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name.
    let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
    kill(Pid::from_raw(pid), None).is_ok() && state != Some(Some('Z'))
}

/// The stand-in agent's environment, once it has written it.
async fn agent_env(dir: &Path) -> String {
    let file = dir.join("home/agent.env");
    eventually(Duration::from_secs(10), "the agent to start", || {
        let file = file.clone();
        async move {
            std::fs::read_to_string(&file)
                .ok()
                .filter(|text| !text.is_empty())
        }
    })
    .await
}

/// An address that stays the same across restarts, for tests that restart the server: the
/// CLI's saved URL and an agent's `CODER_AGENT_URL` stay right.
fn fixed_address() -> String {
    format!("127.0.0.1:{}", crate::fixture::free_port())
}

/// The server again on `db_url` and `address`, with `extra` options.
fn serve_again(coder: &Coder, db_url: &str, address: &str, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--postgres-url", db_url, "--http-address", address];
    args.extend_from_slice(extra);
    coder.server(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_stop_start_restart_delete() {
    let setup = setup(&[]).await;
    let coder = &setup.coder;
    let parameters = [
        format!("--parameter=workspaces_dir={}", setup.workspaces.display()),
        format!("--parameter=agent_binary={}", setup.agent),
    ];
    let out = coder
        .run(&[
            "create",
            "dev",
            "--template",
            "local",
            "-y",
            &parameters[0],
            &parameters[1],
        ])
        .success();
    assert!(out.stderr.contains("==> apply"), "{}", out.stderr);
    assert!(
        out.stderr.contains("Apply complete! Resources: 2 added"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .starts_with("The dev workspace has been created at "),
        "{}",
        out.stdout
    );
    let dir = setup.workspaces.join("admin/dev");

    // The template got the workspace's facts: the agent runs with the server's URL and a token.
    let env = agent_env(&dir).await;
    assert!(
        env.contains(&format!("CODER_AGENT_URL={}\n", url(&setup.server.url))),
        "{env}"
    );
    let first_token = env
        .lines()
        .find_map(|line| line.strip_prefix("CODER_AGENT_TOKEN="))
        .unwrap()
        .to_owned();
    assert_eq!(first_token.len(), 32);
    let pid = agent_pid(&dir).unwrap();
    assert!(is_running(pid));

    let table = coder.run(&["list"]).success().stdout;
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("admin/dev  local     running  "),
        "{table}"
    );
    let shown: serde_json::Value =
        serde_json::from_str(&coder.run(&["show", "dev", "-o", "json"]).success().stdout).unwrap();
    assert_eq!(shown["latest_build"]["status"], "running");
    assert_eq!(
        shown["latest_build"]["agent"]["dir"],
        format!("{}/home", dir.display())
    );
    assert!(
        !shown.to_string().contains(&first_token),
        "the agent token is never shown"
    );

    let out = coder
        .run(&["create", "dev", "--template", "local", "-y", &parameters[0]])
        .failure(1);
    assert!(
        out.stderr
            .contains("admin already has a workspace named \"dev\"."),
        "{}",
        out.stderr
    );

    coder.run(&["stop", "dev"]).success();
    assert!(!is_running(pid), "stop ends the agent");
    assert!(dir.join("home").is_dir(), "stop keeps the home directory");
    assert_eq!(agent_pid(&dir), None);
    let shown = coder.run(&["show", "dev"]).success().stdout;
    assert!(shown.contains("Status:     stopped"), "{shown}");

    std::fs::remove_file(dir.join("home/agent.env")).unwrap();
    coder.run(&["restart", "dev"]).success();
    let env = agent_env(&dir).await;
    let token = env
        .lines()
        .find_map(|line| line.strip_prefix("CODER_AGENT_TOKEN="))
        .unwrap();
    assert_ne!(token, first_token, "every build gets a fresh agent token");
    let builds = coder.run(&["show", "dev"]).success().stdout;
    assert!(builds.contains("Last build: #4 start"), "{builds}");

    let out = coder
        .run(&["templates", "delete", "local", "--yes"])
        .failure(1);
    assert!(
        out.stderr
            .contains("Template \"local\" is used by 1 workspace(s); delete them first."),
        "{}",
        out.stderr
    );
    let pid = agent_pid(&dir).unwrap();
    coder.run(&["delete", "dev", "--yes"]).success();
    coder
        .run(&["templates", "delete", "local", "--yes"])
        .success();
    assert!(!is_running(pid));
    assert!(!dir.exists(), "delete removes the workspace's directory");
    let out = coder.run(&["list"]).success();
    assert!(
        out.stderr.contains("No workspaces found."),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_and_unknown_parameters_are_reported() {
    let setup = setup(&[]).await;
    let required = crate::manifest_dir().join("tests/it/fixtures/required");
    setup
        .coder
        .run(&[
            "templates",
            "push",
            "required",
            "-d",
            required.to_str().unwrap(),
            "-y",
        ])
        .success();
    let out = setup
        .coder
        .run(&["create", "eu", "--template", "required", "-y"])
        .failure(1);
    assert_eq!(
        out.stderr,
        "error: parameter \"region\" is required: pass --parameter region=VALUE\n"
    );
    setup
        .coder
        .run(&[
            "create",
            "eu",
            "--template",
            "required",
            "--parameter",
            "region=eu-west",
            "--parameter",
            "api_key=s3cr3t-value",
        ])
        .success();
    let shown: serde_json::Value = serde_json::from_str(
        &setup
            .coder
            .run(&["show", "eu", "-o", "json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(shown["latest_build"]["agent"]["env"]["REGION"], "eu-west");
    let parameters = &shown["latest_build"]["parameters"];
    assert_eq!(parameters[0]["name"], "api_key");
    assert_eq!(
        parameters[0]["value"], "********",
        "sensitive values are never shown"
    );
    assert_eq!(parameters[1]["value"], "eu-west");
    let text = setup.coder.run(&["show", "eu"]).success().stdout;
    assert!(!text.contains("s3cr3t-value"), "{text}");

    let out = setup
        .coder
        .run(&[
            "create",
            "dev",
            "--template",
            "local",
            "-y",
            "--parameter",
            "colour=blue",
        ])
        .failure(1);
    assert!(
        out.stderr
            .contains("colour: the template has no such parameter"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_build_survives_a_server_restart() {
    let Setup {
        server,
        coder,
        workspaces,
        agent,
        db_url,
    } = setup(&[]).await;
    let (code, _) = server.stop_with(Signal::SIGTERM);
    assert_eq!(code, Some(0));
    let token = std::fs::read_to_string(coder.config_dir().join("session")).unwrap();
    let serve = |extra: &[&str]| serve_again(&coder, &db_url, "127.0.0.1:0", extra);
    let client = |server: &ServerProcess| {
        sdk::client::Client::new(server.url.clone(), reqwest::Client::new())
            .with_session_token(sdk::Secret::new(token.trim()))
    };

    // No provisioner: the build waits in the queue.
    let server = serve(&["--provisioner-daemons", "0"]);
    let template = client(&server)
        .template_by_name("coder", "local")
        .await
        .unwrap()
        .unwrap();
    let parameter = |name: &str, value: &str| sdk::WorkspaceBuildParameter {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    let workspace = client(&server)
        .create_workspace(
            "me",
            &sdk::CreateWorkspaceRequest {
                name: "queued".to_owned(),
                template_id: Some(template.id),
                template_version_id: None,
                rich_parameter_values: vec![
                    parameter("workspaces_dir", workspaces.to_str().unwrap()),
                    parameter("agent_binary", &agent),
                ],
            },
        )
        .await
        .unwrap();
    assert_eq!(workspace.latest_build.status, sdk::WorkspaceStatus::Pending);
    let (code, _) = server.stop_with(Signal::SIGTERM);
    assert_eq!(code, Some(0));

    // Back with provisioners: the queued build runs.
    let server = serve(&[]);
    let client = client(&server);
    eventually(
        Duration::from_secs(60),
        "the queued build to run after the restart",
        || {
            let client = client.clone();
            async move {
                let workspace = client
                    .workspace_by_owner_and_name("me", "queued")
                    .await
                    .ok()?;
                (workspace.latest_build.status == sdk::WorkspaceStatus::Running).then_some(())
            }
        },
    )
    .await;
    let dir = workspaces.join("admin/queued");
    let pid = agent_pid(&dir).unwrap();
    coder
        .run(&["delete", "queued", "--yes", "--url", &url(&server.url)])
        .success();
    assert!(!is_running(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coder_create_follows_its_build_across_a_server_restart() {
    let address = fixed_address();
    let Setup {
        server,
        coder,
        workspaces,
        agent,
        db_url,
    } = setup(&["--http-address", &address]).await;
    let serve = |extra: &[&str]| serve_again(&coder, &db_url, &address, extra);
    let (code, _) = server.stop_with(Signal::SIGTERM);
    assert_eq!(code, Some(0));
    // No provisioner: the build waits in the queue while `coder create` follows its log.
    let server = serve(&["--provisioner-daemons", "0"]);
    let create = coder
        .command(&[
            "create",
            "dev",
            "--template",
            "local",
            "-y",
            &format!("--parameter=workspaces_dir={}", workspaces.display()),
            &format!("--parameter=agent_binary={agent}"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(30), "the build to be queued", || {
        let listed = coder.run(&["list"]).stdout.contains("dev");
        async move { listed.then_some(()) }
    })
    .await;
    let (code, _) = server.stop_with(Signal::SIGTERM);
    assert_eq!(code, Some(0));

    // Back with provisioners: the build runs, and the same `coder create` sees it through.
    let server = serve(&[]);
    let output = tokio::task::spawn_blocking(move || create.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("==> "),
        "the build's log reached the CLI: {stderr}"
    );
    let dir = workspaces.join("admin/dev");
    let pid = agent_pid(&dir).unwrap();
    coder
        .run(&["delete", "dev", "--yes", "--url", &url(&server.url)])
        .success();
    assert!(!is_running(pid));
}

/// Processes whose command line contains `word`.
fn processes_with(word: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(word))
                && is_running(*pid)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_cancels_a_running_build() {
    let setup = setup(&[]).await;
    let slow = crate::manifest_dir().join("tests/it/fixtures/slow");
    setup
        .coder
        .run(&[
            "templates",
            "push",
            "slow",
            "-d",
            slow.to_str().unwrap(),
            "-y",
        ])
        .success();
    let marker = format!("coder-cancel-marker-{}", std::process::id());
    let mut create = setup
        .coder
        .command(&[
            "create",
            "busy",
            "--template",
            "slow",
            "-y",
            "--parameter",
            &format!("marker={marker}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = create.stderr.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = sender.send(line);
        }
    });
    let mut transcript = String::new();
    while !transcript.contains("started slow build") {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the build starts");
        transcript.push_str(&line);
        transcript.push('\n');
    }
    assert!(
        !processes_with(&marker).is_empty(),
        "the build's process runs"
    );
    kill(Pid::from_raw(create.id() as i32), Signal::SIGINT).unwrap();
    let status = create.wait().unwrap();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
        transcript.push_str(&line);
        transcript.push('\n');
    }
    assert_eq!(status.code(), Some(1), "{transcript}");
    assert!(
        transcript.contains("Interrupt caught: canceling the build"),
        "{transcript}"
    );
    assert!(
        transcript.contains("error: the start build of \"busy\" canceled: the job was cancelled"),
        "{transcript}"
    );
    eventually(
        Duration::from_secs(10),
        "Terraform's child process to stop",
        || {
            let left = processes_with(&marker);
            async move { left.is_empty().then_some(()) }
        },
    )
    .await;
    let shown = setup.coder.run(&["show", "busy"]).success().stdout;
    assert!(shown.contains("Status:     canceled"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_connects_runs_its_startup_script_and_reports_its_shutdown() {
    let setup = setup(&[]).await;
    let coder = &setup.coder;
    let workspaces_dir = format!("--parameter=workspaces_dir={}", setup.workspaces.display());
    let agent_binary = format!("--parameter=agent_binary={}", env!("CARGO_BIN_EXE_coder"));
    coder
        .run(&[
            "create",
            "real",
            "--template",
            "local",
            "-y",
            &workspaces_dir,
            &agent_binary,
        ])
        .success();

    let agent = eventually(
        Duration::from_secs(30),
        "the agent to be connected and ready",
        || async {
            let shown: serde_json::Value =
                serde_json::from_str(&coder.run(&["show", "real", "-o", "json"]).success().stdout)
                    .ok()?;
            let agent = shown["latest_build"]["agents"][0].clone();
            (agent["status"] == "connected"
                && agent["lifecycle_state"] == "ready"
                && agent["version"] != "")
                .then_some(agent)
        },
    )
    .await;
    let shown = coder.run(&["show", "real"]).success().stdout;
    assert!(
        shown.contains("Agent:      main (connected, ready, version "),
        "{shown}"
    );
    assert!(
        shown.contains("    workspace real is ready"),
        "the startup log is shown: {shown}"
    );
    let table = coder.run(&["list"]).success().stdout;
    assert!(
        table.lines().nth(1).unwrap().contains("  running  true  "),
        "{table}"
    );

    coder.run(&["stop", "real"]).success();
    let token = std::fs::read_to_string(coder.config_dir().join("session")).unwrap();
    let client = sdk::client::Client::new(setup.server.url.clone(), reqwest::Client::new())
        .with_session_token(sdk::Secret::new(token.trim()));
    let agent_id: uuid::Uuid = agent["id"].as_str().unwrap().parse().unwrap();
    eventually(Duration::from_secs(30), "the agent to report off", || {
        let client = client.clone();
        async move {
            let agent = client.workspace_agent(agent_id).await.ok()?;
            (agent.lifecycle_state == sdk::WorkspaceAgentLifecycle::Off).then_some(())
        }
    })
    .await;
    let log = std::fs::read_to_string(setup.workspaces.join("admin/real/agent.log")).unwrap();
    assert!(log.contains("agent connected"), "{log}");
    assert!(!log.contains("no longer current"), "{log}");
    coder.run(&["delete", "real", "--yes"]).success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_the_agent_runs_its_shutdown_script_even_with_the_server_gone() {
    let mut ws = crate::fixture::workspace_from(coder(), &[], |template| {
        crate::fixture::with_startup(
            template,
            "    startup_script = \"echo ready\"\n    shutdown_script = \"echo saved > stopped.txt\"",
        )
    })
    .await;
    let pid = agent_pid(&ws.dir).expect("the template records its agent's pid");
    // The server is gone at once, as when a whole node goes down; only the agent is told.
    ws._server.stop(Signal::SIGKILL);
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let stopped = crate::fixture::home(&ws).join("stopped.txt");
    // Well inside the 30 s that Kubernetes and systemd give before SIGKILL.
    eventually(Duration::from_secs(5), "the shutdown script to run", || {
        let saved = std::fs::read_to_string(&stopped).unwrap_or_default();
        async move { (saved == "saved\n").then_some(()) }
    })
    .await;
    eventually(Duration::from_secs(20), "the agent to exit", || {
        let exited = !is_running(pid);
        async move { exited.then_some(()) }
    })
    .await;
    let log = std::fs::read_to_string(ws.dir.join("agent.log")).unwrap();
    assert!(log.contains("agent stopped"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_comes_back_after_the_server_restarts() {
    let address = fixed_address();
    let Setup {
        server,
        coder,
        workspaces,
        db_url,
        ..
    } = setup(&["--http-address", &address]).await;
    let agent_binary = format!("--parameter=agent_binary={}", env!("CARGO_BIN_EXE_coder"));
    let workspaces_dir = format!("--parameter=workspaces_dir={}", workspaces.display());
    coder
        .run(&[
            "create",
            "dev",
            "--template",
            "local",
            "-y",
            &workspaces_dir,
            &agent_binary,
        ])
        .success();
    let status = |coder: &Coder| {
        let shown: serde_json::Value =
            serde_json::from_str(&coder.run(&["show", "dev", "-o", "json"]).success().stdout)
                .unwrap();
        let agent = &shown["latest_build"]["agents"][0];
        (
            agent["status"].as_str().unwrap_or_default().to_owned(),
            agent["last_connected_at"].to_string(),
        )
    };
    eventually(Duration::from_secs(30), "the agent to connect", || {
        let connected = status(&coder).0 == "connected";
        async move { connected.then_some(()) }
    })
    .await;
    let (code, _) = server.stop_with(Signal::SIGTERM);
    assert_eq!(code, Some(0));

    let server = serve_again(&coder, &db_url, &address, &[]);
    let before = status(&coder).1;
    // Heartbeats every 10 s, retried through the outage: the agent shows up again by itself.
    eventually(
        Duration::from_secs(40),
        "the agent to reconnect after the restart",
        || {
            let (state, last) = status(&coder);
            let back = state == "connected" && last != before;
            async move { back.then_some(()) }
        },
    )
    .await;
    coder
        .run(&["delete", "dev", "--yes", "--url", &url(&server.url)])
        .success();
}

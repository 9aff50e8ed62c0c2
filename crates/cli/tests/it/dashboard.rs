//! The dashboard in a real browser: headless Chromium (Debian's) driven by playwright-core
//! through `site/e2e/dashboard.mjs`, against a real `coder server` and a real
//! `coder wsproxy server`. The script makes its assertions as a user sees the pages; this file
//! starts the processes it needs and checks the script passed. Screenshots of each page are
//! kept under `$CARGO_TARGET_DIR/dashboard-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testkit::{TestDb, eventually};

use crate::coder;
use crate::fixture::{STARTUP, free_port, start_proxy, with_startup};

const EMAIL: &str = "admin@example.com";

fn site_dir() -> PathBuf {
    crate::manifest_dir().join("../../site")
}

fn screenshots() -> PathBuf {
    // Beside the build, where CI keeps artifacts; one folder per run.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::manifest_dir().join("../../target"));
    target.join("dashboard-screenshots")
}

/// Runs one phase of the browser script; panics with its output when a check fails.
#[allow(clippy::print_stdout)] // The browser's steps, for --no-capture.
fn browser(phase: &str, env: &[(&str, String)]) {
    let mut command = Command::new("node");
    command
        .current_dir(site_dir())
        .arg("e2e/dashboard.mjs")
        .arg(phase)
        .env("SCREENSHOTS", screenshots())
        .env("CODER_EMAIL", EMAIL)
        .env("CODER_PASSWORD", testkit::PASSWORD);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command
        .output()
        .expect("node (Debian's nodejs) is installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success() && stdout.trim_end().ends_with("ok"),
        "the dashboard's {phase} checks failed (screenshots in {}):\n{stdout}\n{stderr}",
        screenshots().display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_sets_up_creates_a_workspace_and_follows_the_chosen_proxy() {
    let db = TestDb::new().await;
    let coder = coder();
    let server = coder.server(&[
        "--postgres-url",
        &db.url,
        "--http-address",
        "127.0.0.1:0",
        "--proxy-health-interval",
        "5s",
    ]);
    let primary = crate::url(&server.url);

    // A new deployment: the browser creates the first user.
    browser("setup", &[("CODER_URL", primary.clone())]);
    coder
        .run(&[
            "login",
            &primary,
            "--email",
            EMAIL,
            "--password",
            testkit::PASSWORD,
        ])
        .success();

    // The local template, with an app (a file server on the workspace's home) to open.
    let app_port = free_port();
    let template = coder.home().join("local");
    let template = template.to_str().unwrap();
    coder.run(&["templates", "init", template]).success();
    let main_tf = Path::new(template).join("main.tf");
    let text = std::fs::read_to_string(&main_tf).unwrap();
    let startup = format!(
        "{STARTUP}\n    # (the app)\n    apps = [{{ slug = \"files\", url = \"http://localhost:{app_port}\" }}]"
    )
    .replace(
        "is ready\\\"\"",
        &format!(
            "is ready\\\"; echo hello > hello.txt; setsid nohup python3 -m http.server {app_port} --bind 127.0.0.1 >/dev/null 2>&1 &\""
        ),
    );
    std::fs::write(&main_tf, with_startup(text, &startup)).unwrap();
    coder
        .run(&["templates", "push", "local", "-d", template, "-y"])
        .success();

    // A workspace proxy on another host name (cookies for 127.0.0.1 do not reach localhost),
    // so apps and the terminal there authorize through the primary as in a real deployment.
    let proxy_port = free_port();
    let proxy_url = format!("http://localhost:{proxy_port}");
    let proxy = start_proxy(
        &coder,
        &server.url,
        "sydney",
        "Sydney",
        proxy_port,
        &[
            ("CODER_ACCESS_URL", &proxy_url),
            ("CODER_WILDCARD_ACCESS_URL", "*.apps.localhost"),
        ],
    );
    eventually(Duration::from_secs(30), "the proxy to be ok", || async {
        let listed = coder.run(&["wsproxy", "ls"]).success().stdout;
        listed
            .lines()
            .any(|line| line.starts_with("sydney") && line.trim_end().ends_with(" ok"))
            .then_some(())
    })
    .await;

    let workspaces = coder.home().join("workspaces");
    browser(
        "main",
        &[
            ("CODER_URL", primary.clone()),
            ("PROXY_URL", proxy_url.clone()),
            ("PROXY_NAME", "sydney".to_owned()),
            ("PROXY_DISPLAY_NAME", "Sydney".to_owned()),
            ("PROXY_PID", proxy.pid().to_string()),
            ("WORKSPACES_DIR", workspaces.display().to_string()),
            ("AGENT_BINARY", env!("CARGO_BIN_EXE_coder").to_owned()),
        ],
    );
    for page in [
        "setup",
        "login",
        "templates",
        "create-workspace",
        "workspaces",
        "workspace",
        "proxy-menu",
        "proxy-settings",
        "workspace-proxies",
        "health",
        "users",
        "app-through-proxy",
        "terminal",
        "proxy-fallback",
        "workspaces-narrow",
    ] {
        let shot = screenshots().join(format!("{page}.png"));
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "a screenshot of {page} at {}", shot.display());
    }

    // The workspace the browser created is real: stop its agent and app with it.
    crate::fixture::stop_workspace(&coder, &workspaces.join("admin/dev"));
}

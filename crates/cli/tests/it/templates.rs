//! `coder templates` and provisioners, with the real server, real Terraform and real
//! provisioner daemons (built-in, and external `coder provisioner start` processes).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testkit::{Coder, ServerProcess, TestDb};

use crate::{coder, url};

const PSK: &str = "a-long-random-pre-shared-key";

/// A server on a fresh database and a user logged in as its owner.
async fn server_and_owner(extra: &[&str]) -> (ServerProcess, Coder) {
    let db = TestDb::new().await;
    let coder = coder();
    let mut args = vec![
        "--postgres-url",
        db.url.as_str(),
        "--http-address",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let server = coder.server(&args);
    crate::login_first_user(&coder, &server.url);
    (server, coder)
}

fn fixture(name: &str) -> String {
    crate::manifest_dir()
        .join("tests/it/fixtures")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_imports_with_a_live_log_and_a_change_summary() {
    let (_server, coder) = server_and_owner(&[]).await;
    let dir = coder.home().join("local");
    let dir = dir.to_str().unwrap();
    coder.run(&["templates", "init", dir]).success();

    let out = coder
        .run(&["templates", "push", "local", "-d", dir, "-y"])
        .success();
    assert!(out.stderr.contains("==> init"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("Terraform has been successfully initialized!"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("Plan: 2 to add, 0 to change, 0 to destroy."),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.starts_with(
            "Changes:\n  + resource terraform_data.agent[0]\n  + resource terraform_data.home\n"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("Template \"local\" has been created with version "),
        "{}",
        out.stdout
    );

    let table = coder.run(&["templates", "list"]).success().stdout;
    assert_eq!(
        table
            .lines()
            .next()
            .unwrap()
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>(),
        ["NAME", "ACTIVE VERSION", "LAST UPDATED", "CREATED BY"]
    );
    assert!(
        table.lines().nth(1).unwrap().starts_with("local  "),
        "{table}"
    );

    let main_tf = Path::new(dir).join("main.tf");
    let text = std::fs::read_to_string(&main_tf)
        .unwrap()
        .replace("/tmp/coder-workspaces", "/srv/workspaces");
    std::fs::write(&main_tf, text).unwrap();
    let out = coder
        .run(&[
            "templates",
            "push",
            "local",
            "-d",
            dir,
            "--name",
            "second",
            "-m",
            "move",
        ])
        .success();
    assert_eq!(
        out.stdout,
        "Changes:\n  ~ parameter workspaces_dir (default \"/tmp/coder-workspaces\" -> default \"/srv/workspaces\")\n\
         Template \"local\" updated: version second is active.\n"
    );
    let versions: serde_json::Value = serde_json::from_str(
        &coder
            .run(&["templates", "versions", "list", "local", "-o", "json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(versions[1]["name"], "second");
    assert_eq!(versions[1]["message"], "move");
    assert_eq!(versions[1]["job"]["status"], "succeeded");
    assert!(
        versions[1]["job"]["worker_name"]
            .as_str()
            .unwrap()
            .starts_with("built-in-")
    );
    let table = coder
        .run(&["templates", "versions", "list", "local"])
        .success()
        .stdout;
    assert!(
        table.lines().nth(1).unwrap().starts_with("second ")
            && table.lines().nth(1).unwrap().ends_with("Active"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syntax_error_fails_the_import_with_terraforms_message() {
    let (_server, coder) = server_and_owner(&[]).await;
    let out = coder
        .run(&[
            "templates",
            "push",
            "broken",
            "-d",
            &fixture("broken"),
            "-y",
        ])
        .failure(1);
    assert!(
        out.stderr.contains("Unclosed configuration block"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "error: the template version's import failed: terraform init failed (exit status: 1):"
        ),
        "{}",
        out.stderr
    );
    let out = coder.run(&["templates", "list"]).success();
    assert!(
        out.stderr.contains("No templates found."),
        "no template is created from a failed import"
    );
}

/// A running `coder provisioner start`.
struct Provisioner(Child);

impl Provisioner {
    fn start(coder: &Coder, server: &ServerProcess, args: &[&str]) -> Self {
        let mut full = vec!["provisioner", "start", "--url"];
        let server_url = url(&server.url);
        full.push(&server_url);
        full.extend_from_slice(args);
        let mut child = coder
            .command(&full)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        assert!(first.starts_with("Started provisioner daemon"), "{first}");
        Self(child)
    }
}

impl Drop for Provisioner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_provisioners_take_only_jobs_with_their_tags() {
    let (server, coder) = server_and_owner(&[
        "--provisioner-daemons",
        "0",
        "--provisioner-daemon-psk",
        PSK,
    ])
    .await;
    let out = coder
        .run(&[
            "provisioner",
            "start",
            "--url",
            &url(&server.url),
            "--psk",
            "a-wrong-key-of-some-length",
        ])
        .failure(1);
    assert!(
        out.stderr.contains("Invalid provisioner key."),
        "{}",
        out.stderr
    );

    let _eu = Provisioner::start(
        &coder,
        &server,
        &["--psk", PSK, "--name", "eu-1", "--tag", "region=eu"],
    );
    let _us = Provisioner::start(
        &coder,
        &server,
        &["--psk", PSK, "--name", "us-1", "--tag", "region=us"],
    );
    let dir = coder.home().join("local");
    let dir = dir.to_str().unwrap();
    coder.run(&["templates", "init", dir]).success();
    for (region, expected) in [("eu", "eu-1"), ("us", "us-1"), ("eu", "eu-1")] {
        coder
            .run(&[
                "templates",
                "push",
                "local",
                "-d",
                dir,
                "-y",
                "--provisioner-tag",
                &format!("region={region}"),
            ])
            .success();
        let versions: serde_json::Value = serde_json::from_str(
            &coder
                .run(&["templates", "versions", "list", "local", "-o", "json"])
                .success()
                .stdout,
        )
        .unwrap();
        let last = versions.as_array().unwrap().last().unwrap();
        assert_eq!(last["job"]["worker_name"], expected, "{last}");
        assert_eq!(last["job"]["tags"]["region"], region);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_provisioner_fails_its_job_in_bounded_time_and_the_next_one_works() {
    let (server, coder) = server_and_owner(&[
        "--provisioner-daemons",
        "0",
        "--provisioner-daemon-psk",
        PSK,
        "--provisioner-heartbeat-timeout",
        "3s",
    ])
    .await;
    // A terraform that hangs in `plan`, so the provisioner can be killed mid-job.
    let wrapper = coder.home().join("slow-terraform");
    let pid_file = coder.home().join("slow-terraform.pid");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = plan ]; then echo $$ > '{}'; echo planning slowly; exec sleep 60; fi\nexec terraform \"$@\"\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let slow = Provisioner::start(
        &coder,
        &server,
        &[
            "--psk",
            PSK,
            "--name",
            "doomed",
            "--terraform",
            wrapper.to_str().unwrap(),
        ],
    );
    let dir = coder.home().join("local");
    let dir = dir.to_str().unwrap();
    coder.run(&["templates", "init", dir]).success();

    let mut push = coder
        .command(&["templates", "push", "local", "-d", dir, "-y"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = push.stderr.take().unwrap();
    let (lines_sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_sender.send(line);
        }
    });
    let mut transcript = String::new();
    while !transcript.contains("planning slowly") {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the import reaches plan");
        transcript.push_str(&line);
        transcript.push('\n');
    }
    kill(Pid::from_raw(slow.0.id() as i32), Signal::SIGKILL).unwrap();
    let killed_at = std::time::Instant::now();
    let status = push.wait().unwrap();
    let waited = killed_at.elapsed();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
        transcript.push_str(&line);
        transcript.push('\n');
    }
    assert_eq!(status.code(), Some(1), "{transcript}");
    assert!(
        transcript
            .contains("the provisioner \"doomed\" stopped responding (no heartbeat for 3 seconds)"),
        "{transcript}"
    );
    // Heartbeat timeout (3 s) plus the reaper's period (5 s), with room for a slow machine.
    assert!(
        waited < Duration::from_secs(30),
        "the job failed {waited:?} after the kill"
    );
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let _ = kill(Pid::from_raw(pid.trim().parse().unwrap()), Signal::SIGKILL);
    }
    drop(slow);

    let _healthy = Provisioner::start(&coder, &server, &["--psk", PSK, "--name", "healthy"]);
    let out = coder
        .run(&["templates", "push", "local", "-d", dir, "-y"])
        .success();
    assert!(
        out.stdout.contains("Template \"local\" has been created"),
        "{}",
        out.stdout
    );
}

//! `coder server` with no `--postgres-url`: the built-in PostgreSQL cluster in the config
//! directory, across clean restarts, a SIGKILL, and a second server on the same directory.

use nix::sys::signal::Signal;

use crate::{coder, url};

fn postmaster_pid(coder: &testkit::Coder) -> Option<i32> {
    let text =
        std::fs::read_to_string(coder.config_dir().join("postgres/data/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn is_running(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[test]
fn built_in_postgres_survives_restarts_and_sigkill() {
    let coder = coder();
    let server = coder.server(&["--http-address", "127.0.0.1:0"]);
    let dir = coder.config_dir().join("postgres");
    assert!(
        server
            .transcript
            .contains(&format!("Using built-in PostgreSQL ({})", dir.display())),
        "{}",
        server.transcript
    );
    crate::login_first_user(&coder, &server.url);

    // Nothing in the cluster's directory is readable by others.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&entry.metadata().unwrap().permissions());
        assert_eq!(
            mode & 0o077,
            0,
            "{} is mode {mode:o}",
            entry.path().display()
        );
    }

    // A second server cannot take the same cluster.
    let out = coder
        .run(&["server", "--http-address", "127.0.0.1:0"])
        .failure(1);
    assert!(
        out.stderr.contains(&format!(
            "another coder server is already using the built-in PostgreSQL in {}",
            dir.display()
        )),
        "{}",
        out.stderr
    );

    // A clean stop stops PostgreSQL too.
    let pid = postmaster_pid(&coder).expect("postgres is running");
    let (code, rest) = server.stop_with(Signal::SIGTERM);
    assert_eq!(code, Some(0), "{rest}");
    assert!(!is_running(pid), "postgres {pid} outlived the server");
    assert_eq!(postmaster_pid(&coder), None);

    // Users and sessions survive a restart.
    let server = coder.server(&["--http-address", "127.0.0.1:0"]);
    let out = coder.run(&["whoami", "--url", &url(&server.url)]).success();
    assert!(
        out.stdout.contains("authenticated as admin"),
        "{}",
        out.stdout
    );

    // SIGKILL leaves PostgreSQL orphaned; the next start stops it and carries on.
    let orphan = postmaster_pid(&coder).expect("postgres is running");
    let (code, _) = server.stop_with(Signal::SIGKILL);
    assert_eq!(code, None);
    assert!(
        is_running(orphan),
        "postgres dies with the server only on a clean stop"
    );
    let server = coder.server(&["--http-address", "127.0.0.1:0"]);
    assert!(!is_running(orphan), "the orphan was stopped");
    let out = coder.run(&["whoami", "--url", &url(&server.url)]).success();
    assert!(
        out.stdout.contains("authenticated as admin"),
        "{}",
        out.stdout
    );
    let (code, rest) = server.stop_with(Signal::SIGINT);
    assert_eq!(code, Some(0), "{rest}");
    assert_eq!(postmaster_pid(&coder), None);
}

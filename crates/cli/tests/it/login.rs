//! `coder login`, `whoami`, `logout`, and the commands that are not implemented yet.

use crate::terminal::Terminal;
use std::os::unix::fs::PermissionsExt;

use testkit::{PASSWORD, TestServer};

use crate::{coder, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_login_creates_the_owner_and_saves_a_private_session() {
    let server = TestServer::start().await;
    let coder = coder();
    let out = coder
        .run(&[
            "login",
            &url(&server.url),
            "--first-user-username=admin",
            "--first-user-email=admin@example.com",
            &format!("--first-user-password={PASSWORD}"),
        ])
        .success();
    assert_eq!(
        out.stdout,
        "Welcome to Coder, admin! You're authenticated.\n"
    );
    for file in ["session", "url"] {
        let mode = std::fs::metadata(coder.config_dir().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let out = coder.run(&["whoami"]).success();
    assert_eq!(
        out.stdout,
        format!(
            "Coder is running at {}/, You're authenticated as admin !\n",
            url(&server.url)
        )
    );
    // The owner exists now: the first-user flags cannot make another.
    let second = crate::coder();
    let out = second
        .run(&[
            "login",
            &url(&server.url),
            "--email=admin@example.com",
            &format!("--password={PASSWORD}"),
        ])
        .success();
    assert!(out.stdout.contains("admin"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused_without_leaking_it() {
    let server = TestServer::start().await;
    server.first_user().await;
    let out = coder()
        .run(&[
            "login",
            &url(&server.url),
            "--email=admin@example.com",
            "--password=hunter2-wrong",
        ])
        .failure(1);
    assert_eq!(
        out.stderr,
        "error: logging in: Incorrect email or password.\n"
    );
    assert!(!out.stdout.contains("hunter2") && !out.stderr.contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_a_token() {
    let server = TestServer::start().await;
    let admin = server.first_user().await;
    let coder = coder();
    coder
        .run(&["login", &url(&server.url), "--token", admin.token.expose()])
        .success();
    assert!(
        coder
            .run(&["whoami"])
            .success()
            .stdout
            .contains("authenticated as admin")
    );

    let out = crate::coder()
        .run(&[
            "login",
            &url(&server.url),
            "--token",
            "abcdefghij-0123456789abcdefghijkl",
        ])
        .failure(1);
    assert!(
        out.stderr
            .starts_with("error: Your session token is invalid."),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: log in again"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_terminal_login_says_what_to_pass() {
    let server = TestServer::start().await;
    let out = coder().run(&["login", &url(&server.url)]).failure(1);
    assert_eq!(
        out.stderr,
        "error: this deployment has no user yet, and this is not a terminal\n\
         hint: pass --first-user-username, --first-user-email and --first-user-password\n"
    );
    server.first_user().await;
    let out = coder().run(&["login", &url(&server.url)]).failure(1);
    assert!(out.stderr.contains("hint: pass --token"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_to_something_that_is_not_coder() {
    let server = TestServer::start().await;
    let metrics = server.metrics_url.join("/").unwrap();
    let out = coder().run(&["login", &url(&metrics)]).failure(1);
    assert!(
        out.stderr.starts_with(&format!(
            "error: checking that {metrics} is a Coder deployment:"
        )),
        "{}",
        out.stderr
    );
    let out = coder().run(&["login", "http://127.0.0.1:1"]).failure(1);
    assert!(
        out.stderr
            .contains("request to http://127.0.0.1:1/api/v2/buildinfo failed"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_and_forgets() {
    let server = TestServer::start().await;
    let admin = server.first_user().await;
    let coder = coder();
    coder
        .run(&["login", &url(&server.url), "--token", admin.token.expose()])
        .success();
    let out = coder.run(&["logout", "--yes"]).success();
    assert_eq!(
        out.stdout,
        "You are no longer logged in. You can log in using 'coder login <url>'.\n"
    );
    let out = coder.run(&["whoami"]).failure(1);
    assert_eq!(
        out.stderr,
        "error: you are not logged in\nhint: log in with 'coder login <url>'\n"
    );
    assert_eq!(
        admin.client.user("me").await.unwrap_err().status(),
        Some(401)
    );
}

#[test]
fn unknown_commands_are_usage_errors() {
    let coder = coder();
    let out = coder.run(&["no-such-command"]).failure(2);
    assert!(
        out.stderr
            .contains("unrecognized subcommand 'no-such-command'")
    );
    let out = coder.run(&["wsproxy", "no-such-command"]).failure(2);
    assert!(
        out.stderr
            .contains("unrecognized subcommand 'no-such-command'"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_first_login_prompts_on_a_terminal() {
    let server = TestServer::start().await;
    let coder = coder();
    let terminal = Terminal::start(&coder.script(&["login", &url(&server.url)]), coder.home());
    terminal.wait_for("What username would you like?").await;
    terminal.type_line("admin");
    terminal.wait_for("What's your email?").await;
    terminal.type_line("admin@example.com");
    terminal.wait_for("Enter a password:").await;
    terminal.type_line(PASSWORD);
    terminal.wait_for("Confirm password:").await;
    terminal.type_line(PASSWORD);
    let screen = terminal.wait_for("EXIT=").await;
    assert!(
        screen.contains("Welcome to Coder, admin! You're authenticated."),
        "{screen}"
    );
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        !screen.contains(PASSWORD),
        "the password is never echoed: {screen}"
    );
    assert!(
        coder
            .run(&["whoami"])
            .success()
            .stdout
            .contains("authenticated as admin")
    );

    // Signing in again prompts for email and password.
    let again = crate::coder();
    let terminal = Terminal::start(&again.script(&["login", &url(&server.url)]), again.home());
    terminal.wait_for("Email:").await;
    terminal.type_line("admin@example.com");
    terminal.wait_for("Password:").await;
    terminal.type_line("not-the-password");
    let screen = terminal.wait_for("EXIT=").await;
    assert!(
        screen.contains("error: logging in: Incorrect email or password."),
        "{screen}"
    );
    assert!(screen.contains("EXIT=1"), "{screen}");
}

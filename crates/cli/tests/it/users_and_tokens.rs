//! `coder users` and `coder tokens` against a real server.

use testkit::{PASSWORD, TestServer};

use crate::{coder, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_create_list_use_remove() {
    let server = TestServer::start().await;
    let admin = server.first_user().await;
    let coder = coder();
    coder
        .run(&["login", &url(&server.url), "--token", admin.token.expose()])
        .success();

    let token = coder
        .run(&["tokens", "create", "--name", "ci", "--lifetime", "24h"])
        .success()
        .stdout;
    let token = token.trim();
    assert_eq!(token.len(), 33, "{token}");

    let mut other = crate::coder();
    other
        .env("CODER_URL", &url(&server.url))
        .env("CODER_SESSION_TOKEN", token);
    assert!(
        other
            .run(&["whoami"])
            .success()
            .stdout
            .contains("authenticated as admin")
    );

    let table = coder.run(&["tokens", "list"]).success().stdout;
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        [
            "ID", "NAME", "LAST", "USED", "EXPIRES", "AT", "CREATED", "AT"
        ]
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&token[..10]) && row.contains("  ci  "),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &coder
            .run(&["tokens", "list", "-o", "json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(json[0]["token_name"], "ci");
    assert_eq!(json[0]["lifetime_seconds"], 86400);

    let out = coder.run(&["tokens", "remove", "ci"]).success();
    assert_eq!(out.stdout, "Token has been deleted.\n");
    let out = other.run(&["whoami"]).failure(1);
    assert!(
        out.stderr.contains("Your session token is invalid."),
        "{}",
        out.stderr
    );

    let out = coder
        .run(&["tokens", "create", "--lifetime", "soon"])
        .failure(2);
    assert!(out.stderr.contains("--lifetime"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_create_list_suspend_activate() {
    let server = TestServer::start().await;
    let admin = server.first_user().await;
    let coder = coder();
    coder
        .run(&["login", &url(&server.url), "--token", admin.token.expose()])
        .success();

    let out = coder
        .run(&[
            "users",
            "create",
            "--email",
            "bob@example.com",
            "--username",
            "bob",
            "--password",
            PASSWORD,
        ])
        .success();
    assert!(
        out.stdout
            .starts_with("Created user \"bob\" (bob@example.com).\n"),
        "{}",
        out.stdout
    );
    let out = coder
        .run(&[
            "users",
            "create",
            "--email",
            "carol@example.com",
            "--username",
            "carol",
        ])
        .success();
    assert!(
        out.stdout.contains("Their password is: "),
        "a generated password is shown: {}",
        out.stdout
    );
    let out = coder
        .run(&[
            "users",
            "create",
            "--email",
            "bob@example.com",
            "--username",
            "bob2",
        ])
        .failure(1);
    assert!(
        out.stderr
            .contains("A user with this email already exists."),
        "{}",
        out.stderr
    );

    let table = coder.run(&["users", "list"]).success().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0]
            .split("  ")
            .map(str::trim)
            .filter(|cell| !cell.is_empty())
            .collect::<Vec<_>>(),
        ["USERNAME", "EMAIL", "CREATED AT", "STATUS"]
    );
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[1].starts_with("admin ")
            && lines[2].starts_with("bob ")
            && lines[3].starts_with("carol ")
    );
    let table = coder
        .run(&["users", "list", "-c", "username,status,roles"])
        .success()
        .stdout;
    assert_eq!(table.lines().next().unwrap(), "USERNAME  STATUS  ROLES");
    assert!(table.contains("admin     active  owner"), "{table}");

    let bob = crate::coder();
    bob.run(&[
        "login",
        &url(&server.url),
        "--email",
        "bob@example.com",
        "--password",
        PASSWORD,
    ])
    .success();
    let out = bob.run(&["users", "list"]).failure(1);
    assert_eq!(
        out.stderr,
        "error: Forbidden. Your roles do not allow you to read users.\n"
    );

    assert_eq!(
        coder.run(&["users", "suspend", "bob"]).success().stdout,
        "User \"bob\" is suspended.\n"
    );
    let out = bob.run(&["whoami"]).failure(1);
    assert!(
        out.stderr.contains("Your account is suspended."),
        "{}",
        out.stderr
    );
    coder.run(&["users", "activate", "bob"]).success();
    bob.run(&["whoami"]).success();

    let json: serde_json::Value = serde_json::from_str(
        &coder
            .run(&["users", "show", "bob", "-o", "json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(json["status"], "active");
    assert_eq!(json["email"], "bob@example.com");
}

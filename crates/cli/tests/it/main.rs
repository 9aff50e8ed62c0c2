//! The real `coder` binary, driven as a user would: against an in-process server for client
//! commands, and as `coder server` itself (external or built-in PostgreSQL) for the rest.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

mod apps;
mod builtin_postgres;
mod dashboard;
mod fixture;
mod login;
mod nat;
mod packaging;
mod server;
mod templates;
mod terminal;
mod tls;
mod tunnels;
mod users_and_tokens;
mod workspaces;
mod wsproxy;

use testkit::Coder;

/// This package's directory, as the test runner states it when the test runs: the path
/// compiled in goes stale when the same target directory serves a clone elsewhere.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    )
}

/// A fresh user of the binary, with its own config directory.
fn coder() -> Coder {
    Coder::new(env!("CARGO_BIN_EXE_coder"))
}

/// Logs `coder` in to the server at `server_url` as its first user, `admin` (an owner).
fn login_first_user(coder: &Coder, server_url: &url::Url) {
    coder
        .run(&[
            "login",
            &url(server_url),
            "--first-user-username=admin",
            "--first-user-email=admin@example.com",
            &format!("--first-user-password={}", testkit::PASSWORD),
        ])
        .success();
}

/// The URL as users type it (no trailing slash).
fn url(url: &url::Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

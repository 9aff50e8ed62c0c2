//! The real `coder` binary, driven as a user would: against an in-process server for client
//! commands, and as `coder server` itself (external or built-in PostgreSQL) for the rest.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

mod builtin_postgres;
mod login;
mod server;
mod templates;
mod tls;
mod users_and_tokens;
mod workspaces;

use testkit::Coder;

/// A fresh user of the binary, with its own config directory.
fn coder() -> Coder {
    Coder::new(env!("CARGO_BIN_EXE_coder"))
}

/// The URL as users type it (no trailing slash).
fn url(url: &url::Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

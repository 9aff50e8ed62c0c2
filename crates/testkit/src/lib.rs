//! Test helpers, used only as a dev-dependency: [`TestDb`] (a fresh database per test on the
//! run's throwaway cluster), [`TestServer`] (the real server in-process on `127.0.0.1:0`),
//! [`Coder`] (the real `coder` binary with a private config directory), and [`eventually`].
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod binary;
mod db;
mod server;
mod wait;

pub use binary::{Coder, Output, ServerProcess};
pub use db::TestDb;
pub use server::{PROVISIONER_PSK, TestServer, UserClient, config as server_config};
pub use wait::eventually;

/// Installs the crypto provider the binary uses; idempotent.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A password that passes validation, for fixtures.
pub const PASSWORD: &str = "correct-horse-battery";

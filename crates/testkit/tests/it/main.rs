//! Repository-wide checks of the layering rules in STYLE.md.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

mod tidy;

/// This package's directory, as the test runner states it when the test runs: the path
/// compiled in goes stale when the same target directory serves a clone elsewhere.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    )
}

//! Repository-wide checks of the layering rules in STYLE.md.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

mod tidy;

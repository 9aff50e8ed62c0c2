//! Provisioner jobs on the real `terraform` binary (offline: the templates use only
//! Terraform's built-in `terraform_data` and `local-exec`).
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

mod jobs;

use std::path::{Path, PathBuf};

use provisioner::{Job, JobError, JobKind, LogLine, Outcome, WorkspaceFacts};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// This package's directory, as the test runner states it when the test runs: the path
/// compiled in goes stale when the same target directory serves a clone elsewhere.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    )
}

/// A template directory of this test suite, as the tar archive users upload.
fn template(name: &str) -> Vec<u8> {
    let dir = manifest_dir().join("tests/it/templates").join(name);
    tar_dir(&dir)
}

fn tar_dir(dir: &Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_dir_all(".", dir).unwrap();
    builder.into_inner().unwrap()
}

fn terraform() -> PathBuf {
    PathBuf::from("terraform")
}

/// Runs a job to the end, collecting its log.
async fn run(job: Job, work_root: &Path) -> (Result<Outcome, JobError>, Vec<LogLine>) {
    let (sender, mut receiver) = mpsc::channel(1024);
    let collector = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Some(line) = receiver.recv().await {
            lines.push(line);
        }
        lines
    });
    let result = provisioner::run(
        job,
        &terraform(),
        work_root,
        sender,
        CancellationToken::new(),
    )
    .await;
    (result, collector.await.unwrap())
}

fn job(kind: JobKind, source: Vec<u8>) -> Job {
    Job {
        kind,
        source,
        facts: WorkspaceFacts {
            access_url: "http://127.0.0.1:3000".into(),
            workspace_name: "dev".into(),
            workspace_owner: "admin".into(),
            ..WorkspaceFacts::default()
        },
        parameters: Default::default(),
        state: None,
    }
}

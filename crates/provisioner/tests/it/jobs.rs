//! Imports and builds of the test templates.

use std::time::Duration;

use provisioner::{JobError, JobKind, LogLevel, Resource, Transition};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{job, run, template, terraform};

fn addresses(resources: &[Resource]) -> Vec<&str> {
    resources
        .iter()
        .map(|resource| resource.address.as_str())
        .collect()
}

#[tokio::test]
async fn import_reports_variables_resources_and_agent_settings() {
    let work = tempfile::tempdir().unwrap();
    let (result, logs) = run(job(JobKind::Import, template("workspace")), work.path()).await;
    let outcome = result.unwrap();
    let names: Vec<&str> = outcome
        .variables
        .iter()
        .map(|variable| variable.name.as_str())
        .collect();
    assert_eq!(names, ["greeting", "root"]);
    assert_eq!(
        outcome.variables[0].default,
        Some(serde_json::json!("hello"))
    );
    assert_eq!(
        outcome.variables[0].description,
        "Written into the running marker"
    );
    assert_eq!(
        addresses(&outcome.resources),
        ["terraform_data.home", "terraform_data.running[0]"]
    );
    let agent = outcome.agent.unwrap();
    assert_eq!(agent.startup_script, "echo started");
    assert_eq!(agent.env["GREETING"], "hello");
    assert_eq!(agent.apps[0].slug, "web");
    assert_eq!(agent.apps[0].share, "owner");
    assert_eq!(agent.apps[0].healthcheck.as_ref().unwrap().threshold, 3);
    assert!(
        logs.iter().any(|line| line.stage == "init"
            && line
                .output
                .contains("Terraform has been successfully initialized")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|line| line.stage == "plan" && line.output.starts_with("Plan: 2 to add")),
        "{logs:?}"
    );
    // The work directory is gone afterwards.
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn builds_start_stop_start_delete_with_state_carried_between_them() {
    let work = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("dev");
    let build = |transition, state: Option<Vec<u8>>| {
        let mut job = job(JobKind::Build { transition }, template("workspace"));
        job.parameters
            .insert("root".into(), root.path().to_str().unwrap().into());
        job.parameters.insert("greeting".into(), "hi there".into());
        job.state = state;
        job
    };

    let (result, logs) = run(build(Transition::Start, None), work.path()).await;
    let started = result.unwrap();
    assert!(
        logs.iter().any(|line| line.stage == "apply"
            && line.output.contains("Apply complete! Resources: 2 added")),
        "{logs:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("running")).unwrap(),
        "hi there\n"
    );
    assert!(dir.join("home").is_dir());
    assert_eq!(
        addresses(&started.resources),
        ["terraform_data.home", "terraform_data.running[0]"]
    );
    assert_eq!(started.agent.unwrap().env["GREETING"], "hi there");

    let (result, _) = run(build(Transition::Stop, started.state), work.path()).await;
    let stopped = result.unwrap();
    assert!(
        !dir.join("running").exists(),
        "stop removes ephemeral resources"
    );
    assert!(dir.join("home").is_dir(), "stop keeps persistent resources");
    assert_eq!(addresses(&stopped.resources), ["terraform_data.home"]);
    assert!(stopped.agent.is_none());

    let (result, _) = run(build(Transition::Start, stopped.state), work.path()).await;
    let restarted = result.unwrap();
    assert!(dir.join("running").exists());

    let (result, _) = run(build(Transition::Delete, restarted.state), work.path()).await;
    let deleted = result.unwrap();
    assert!(!dir.exists(), "delete destroys everything");
    assert!(deleted.resources.is_empty());
}

#[tokio::test]
async fn a_syntax_error_fails_with_terraforms_message() {
    let work = tempfile::tempdir().unwrap();
    let (result, logs) = run(job(JobKind::Import, template("broken")), work.path()).await;
    let err = result.unwrap_err();
    let JobError::Terraform { stage, errors, .. } = &err else {
        panic!("unexpected error {err:?}");
    };
    assert_eq!(stage, "init");
    assert!(errors.contains("Unclosed configuration block"), "{errors}");
    assert!(
        err.to_string()
            .starts_with("terraform init failed (exit status: 1):\n"),
        "{err}"
    );
    assert!(
        logs.iter().any(|line| line.level == LogLevel::Error
            && line.output.contains("Unclosed configuration block")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn invalid_sources_and_parameters_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let (result, _) = run(
        job(JobKind::Import, b"not a tar archive at all".repeat(40)),
        work.path(),
    )
    .await;
    assert!(matches!(result, Err(JobError::Source(_))), "{result:?}");

    let mut reserved = job(JobKind::Import, template("workspace"));
    reserved
        .parameters
        .insert("coder_agent_token".into(), "x".into());
    let (result, _) = run(reserved, work.path()).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "invalid parameter name \"coder_agent_token\": names starting with coder_ are reserved for the workspace's facts"
    );
}

#[tokio::test]
async fn a_missing_terraform_binary_is_named() {
    let work = tempfile::tempdir().unwrap();
    let (sender, _receiver) = mpsc::channel(1024);
    let result = provisioner::run(
        job(JobKind::Import, template("workspace")),
        std::path::Path::new("/nonexistent/terraform"),
        work.path(),
        sender,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "terraform was not found (/nonexistent/terraform); install it on the provisioner's PATH"
    );
}

#[tokio::test]
async fn cancelling_stops_terraform_promptly() {
    let work = tempfile::tempdir().unwrap();
    let (sender, mut receiver) = mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let job = job(
        JobKind::Build {
            transition: Transition::Start,
        },
        template("slow"),
    );
    let running = tokio::spawn({
        let cancel = cancel.clone();
        let work = work.path().to_owned();
        async move { provisioner::run(job, &terraform(), &work, sender, cancel).await }
    });
    // Cancel once the slow provisioner has started.
    while let Some(line) = receiver.recv().await {
        if line.output.contains("sleeping") {
            break;
        }
    }
    let started = std::time::Instant::now();
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&result, Err(JobError::ApplyFailed { error, .. }) if matches!(**error, JobError::Cancelled)),
        "{result:?}"
    );
    eprintln!("terraform stopped {:?} after the cancel", started.elapsed());
}

#[tokio::test]
async fn a_failed_apply_keeps_the_state_of_what_it_created() {
    let work = tempfile::tempdir().unwrap();
    let start = JobKind::Build {
        transition: Transition::Start,
    };
    let (result, logs) = run(job(start, template("half")), work.path()).await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("terraform apply failed"), "{err}");
    assert!(
        logs.iter()
            .any(|line| line.output.contains("failing on purpose")),
        "the provisioner's output is in the log"
    );
    let state = err
        .partial_state()
        .expect("a failed apply returns its state");
    let text = String::from_utf8_lossy(state);
    assert!(
        text.contains("terraform_data") && text.contains("\"made\""),
        "{text}"
    );

    // With that state, deleting the workspace destroys what the failed build created.
    let mut delete = job(
        JobKind::Build {
            transition: Transition::Delete,
        },
        template("half"),
    );
    delete.state = Some(state.to_vec());
    let (result, logs) = run(delete, work.path()).await;
    let outcome = result.unwrap();
    assert!(outcome.resources.is_empty(), "{:?}", outcome.resources);
    assert!(
        logs.iter().any(|line| line
            .output
            .contains("terraform_data.made: Destruction complete")),
        "the resource is destroyed"
    );
}

#[test]
fn every_example_template_is_formatted() {
    let examples = crate::manifest_dir().join("../../examples/templates");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&examples).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let fmt = std::process::Command::new(terraform())
            .args(["fmt", "-check", "-diff"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            fmt.status.success(),
            "terraform fmt -check in {}:\n{}",
            dir.display(),
            String::from_utf8_lossy(&fmt.stdout)
        );
        checked.push(dir.file_name().unwrap().to_string_lossy().into_owned());
    }
    checked.sort();
    assert_eq!(checked, ["docker", "kubernetes", "local"]);
}

#[tokio::test]
async fn the_local_example_template_imports() {
    let dir = crate::manifest_dir().join("../../examples/templates/local");
    let work = tempfile::tempdir().unwrap();
    let (result, logs) = run(job(JobKind::Import, crate::tar_dir(&dir)), work.path()).await;
    let outcome = result.unwrap_or_else(|err| panic!("{err}\n{logs:?}"));
    let names: Vec<&str> = outcome
        .variables
        .iter()
        .map(|variable| variable.name.as_str())
        .collect();
    assert_eq!(names, ["agent_binary", "workspaces_dir"]);
    assert_eq!(
        addresses(&outcome.resources),
        ["terraform_data.agent[0]", "terraform_data.home"]
    );
    assert_eq!(
        outcome.agent.unwrap().dir,
        "/tmp/coder-workspaces/admin/dev/home"
    );
}

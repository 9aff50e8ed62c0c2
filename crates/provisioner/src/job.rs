//! A provisioner job: a template import (validate and plan) or a workspace build (apply for
//! start and stop, destroy for delete), in a fresh work directory that is removed afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use sdk::AgentSettings;

use crate::contract::{WorkspaceFacts, agent_settings};
use crate::source::{self, SourceError};
use crate::terraform::{LogLevel, LogLine, Terraform};

const STATE_FILE: &str = "terraform.tfstate";
const PLAN_FILE: &str = "coder.plan";

/// What a build does to the workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    /// Create or start its resources (`coder_workspace_start_count` = 1).
    Start,
    /// Stop: ephemeral resources go, persistent ones stay (`coder_workspace_start_count` = 0).
    Stop,
    /// Destroy everything.
    Delete,
}

/// The kind of job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// Check a template version: `init`, `validate`, and a `plan` of a started workspace.
    Import,
    /// Build a workspace.
    Build {
        /// What the build does.
        transition: Transition,
    },
}

/// Everything a job needs, none of it read from anywhere else.
#[derive(Clone, Debug)]
pub struct Job {
    /// What to do.
    pub kind: JobKind,
    /// The template's source, a tar archive.
    pub source: Vec<u8>,
    /// The workspace's facts (placeholders for imports).
    pub facts: WorkspaceFacts,
    /// The template's own variables, by name (values as Terraform reads `TF_VAR_`s).
    pub parameters: BTreeMap<String, String>,
    /// The workspace's Terraform state from its last build.
    pub state: Option<Vec<u8>>,
}

/// A resource Terraform plans or manages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Its address, e.g. `terraform_data.home`.
    pub address: String,
    /// Its type, e.g. `terraform_data`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its name, e.g. `home`.
    pub name: String,
}

/// A variable the template declares beyond the `coder_*` facts: a parameter users set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateVariable {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its default, if it has one.
    pub default: Option<serde_json::Value>,
    /// Whether its value must stay hidden.
    pub sensitive: bool,
}

/// What a successful job produced.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The new Terraform state (builds).
    pub state: Option<Vec<u8>>,
    /// Planned (import) or managed (build) resources, by address.
    pub resources: Vec<Resource>,
    /// The template's variables (import).
    pub variables: Vec<TemplateVariable>,
    /// The agent's settings (import, and builds that start the workspace).
    pub agent: Option<AgentSettings>,
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The template's source was refused.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// `terraform` is not installed.
    #[error("terraform was not found ({}); install it on the provisioner's PATH", binary.display())]
    TerraformMissing {
        /// The binary looked for.
        binary: PathBuf,
    },
    /// A Terraform step failed; `errors` is the end of what it printed on stderr.
    #[error("terraform {stage} failed ({status}):\n{errors}")]
    Terraform {
        /// The step.
        stage: String,
        /// How it exited.
        status: String,
        /// Its last error lines.
        errors: String,
    },
    /// A parameter's name is reserved or not a Terraform identifier.
    #[error("invalid parameter name {name:?}: {reason}")]
    InvalidParameter {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The template's `coder_agent` output does not follow the contract.
    #[error("the template's coder_agent output is invalid: {0}")]
    InvalidAgentOutput(String),
    /// A build's apply failed or was cancelled part way: Terraform's state still records what
    /// it created, and it must be kept so the next build (or the delete) can manage it.
    #[error("{error}")]
    ApplyFailed {
        /// Why it failed.
        #[source]
        error: Box<JobError>,
        /// The state Terraform left, if any.
        state: Option<Vec<u8>>,
    },
    /// Terraform's JSON was not what this version understands.
    #[error("unexpected output from terraform {command}")]
    UnexpectedJson {
        /// The command.
        command: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The job was cancelled; Terraform was asked to stop (SIGINT) and, if it would not, killed.
    #[error("the job was cancelled")]
    Cancelled,
    /// Working with the job's directory failed.
    #[error("preparing the job's work directory")]
    Io(#[source] std::io::Error),
}

/// Runs `job` with `terraform` in a new directory under `work_root`, sending every log line to
/// `logs`. Cancel it through `cancel`: Terraform then stops gracefully and the job fails with
/// [`JobError::Cancelled`].
pub async fn run(
    job: Job,
    terraform: &Path,
    work_root: &Path,
    logs: mpsc::Sender<LogLine>,
    cancel: CancellationToken,
) -> Result<Outcome, JobError> {
    for name in job.parameters.keys() {
        check_parameter_name(name)?;
    }
    tokio::fs::create_dir_all(work_root)
        .await
        .map_err(JobError::Io)?;
    let dir = tempfile::Builder::new()
        .prefix("coder-job-")
        .tempdir_in(work_root)
        .map_err(JobError::Io)?;
    let source = job.source.clone();
    let path = dir.path().to_owned();
    tokio::task::spawn_blocking(move || source::unpack(&source, &path))
        .await
        .map_err(|err| JobError::Io(std::io::Error::other(err)))??;
    if let Some(state) = &job.state {
        tokio::fs::write(dir.path().join(STATE_FILE), state)
            .await
            .map_err(JobError::Io)?;
    }
    let transition = match job.kind {
        JobKind::Import => Transition::Start,
        JobKind::Build { transition } => transition,
    };
    let mut env = job.facts.environment(transition);
    if job.kind == JobKind::Import {
        let path = dir.path().to_owned();
        let placeholders =
            tokio::task::spawn_blocking(move || crate::variables::required_placeholders(&path))
                .await
                .map_err(|err| JobError::Io(std::io::Error::other(err)))?;
        env.extend(
            placeholders
                .into_iter()
                .filter(|(name, _)| !job.parameters.contains_key(name))
                .map(|(name, value)| (format!("TF_VAR_{name}"), value)),
        );
    }
    env.extend(
        job.parameters
            .iter()
            .map(|(name, value)| (format!("TF_VAR_{name}"), value.clone())),
    );
    let terraform = Terraform {
        binary: terraform.to_owned(),
        dir: dir.path().to_owned(),
        env,
    };
    note(&logs, "setup", "initializing terraform").await;
    terraform
        .run(
            "init",
            &["init", "-input=false", "-no-color"],
            &logs,
            &cancel,
        )
        .await?;
    let outcome = match job.kind {
        JobKind::Import => import(&terraform, &logs, &cancel).await?,
        JobKind::Build { transition } => build(&terraform, transition, &logs, &cancel).await?,
    };
    note(&logs, "cleanup", "done").await;
    Ok(outcome)
}

impl JobError {
    /// The Terraform state a failed build left behind, to be saved like a successful one's.
    pub fn partial_state(&self) -> Option<&[u8]> {
        match self {
            JobError::ApplyFailed { state, .. } => state.as_deref(),
            _ => None,
        }
    }
}

async fn note(logs: &mpsc::Sender<LogLine>, stage: &str, text: &str) {
    let _ = logs
        .send(LogLine {
            stage: stage.to_owned(),
            level: LogLevel::Info,
            output: text.to_owned(),
        })
        .await;
}

async fn import(
    terraform: &Terraform,
    logs: &mpsc::Sender<LogLine>,
    cancel: &CancellationToken,
) -> Result<Outcome, JobError> {
    terraform
        .run("validate", &["validate", "-no-color"], logs, cancel)
        .await?;
    terraform
        .run(
            "plan",
            &[
                "plan",
                "-input=false",
                "-no-color",
                &format!("-out={PLAN_FILE}"),
            ],
            logs,
            cancel,
        )
        .await?;
    let mut plan: Plan = parse(
        &terraform
            .capture("show", &["show", "-json", PLAN_FILE])
            .await?,
        "show -json (plan)",
    )?;
    let variables = plan
        .configuration
        .root_module
        .variables
        .into_iter()
        .filter(|(name, _)| !name.starts_with("coder_"))
        .map(|(name, variable)| TemplateVariable {
            name,
            description: variable.description,
            default: variable.default,
            sensitive: variable.sensitive,
        })
        .collect();
    let mut resources: Vec<Resource> = plan
        .resource_changes
        .into_iter()
        .filter(|change| change.mode == "managed")
        .map(|change| Resource {
            address: change.address,
            kind: change.kind,
            name: change.name,
        })
        .collect();
    resources.sort_by(|a, b| a.address.cmp(&b.address));
    let agent = plan
        .planned_values
        .outputs
        .remove("coder_agent")
        .and_then(|output| output.value)
        .map(agent_settings)
        .transpose()
        .map_err(JobError::InvalidAgentOutput)?;
    Ok(Outcome {
        state: None,
        resources,
        variables,
        agent,
    })
}

async fn build(
    terraform: &Terraform,
    transition: Transition,
    logs: &mpsc::Sender<LogLine>,
    cancel: &CancellationToken,
) -> Result<Outcome, JobError> {
    let mut args = vec!["apply", "-input=false", "-no-color", "-auto-approve"];
    if transition == Transition::Delete {
        args.push("-destroy");
    }
    let applied = terraform.run("apply", &args, logs, cancel).await;
    let state = tokio::fs::read(terraform.dir.join(STATE_FILE)).await.ok();
    if let Err(error) = applied {
        return Err(JobError::ApplyFailed {
            error: Box::new(error),
            state,
        });
    }
    let shown: State = parse(
        &terraform.capture("show", &["show", "-json"]).await?,
        "show -json (state)",
    )?;
    let mut resources: Vec<Resource> = shown
        .values
        .map(|values| values.root_module.resources)
        .unwrap_or_default()
        .into_iter()
        .filter(|resource| resource.mode == "managed")
        .map(|resource| Resource {
            address: resource.address,
            kind: resource.kind,
            name: resource.name,
        })
        .collect();
    resources.sort_by(|a, b| a.address.cmp(&b.address));
    let agent = if transition == Transition::Start {
        let outputs: BTreeMap<String, Output> = parse(
            &terraform.capture("output", &["output", "-json"]).await?,
            "output -json",
        )?;
        outputs
            .get("coder_agent")
            .and_then(|output| output.value.clone())
            .map(agent_settings)
            .transpose()
            .map_err(JobError::InvalidAgentOutput)?
    } else {
        None
    };
    Ok(Outcome {
        state,
        resources,
        variables: Vec::new(),
        agent,
    })
}

fn check_parameter_name(name: &str) -> Result<(), JobError> {
    let invalid = |reason| JobError::InvalidParameter {
        name: name.to_owned(),
        reason,
    };
    if name.starts_with("coder_") {
        return Err(invalid(
            "names starting with coder_ are reserved for the workspace's facts",
        ));
    }
    let mut bytes = name.bytes();
    let starts_well = bytes
        .next()
        .is_some_and(|byte| byte.is_ascii_alphabetic() || byte == b'_');
    if !starts_well
        || !bytes.all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-'))
    {
        return Err(invalid("not a Terraform variable name"));
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    command: &'static str,
) -> Result<T, JobError> {
    serde_json::from_slice(bytes).map_err(|source| JobError::UnexpectedJson { command, source })
}

// The parts of Terraform's JSON formats read here.

#[derive(Deserialize)]
struct Plan {
    #[serde(default)]
    configuration: Configuration,
    #[serde(default)]
    resource_changes: Vec<ResourceChange>,
    #[serde(default)]
    planned_values: PlannedValues,
}

#[derive(Default, Deserialize)]
struct Configuration {
    #[serde(default)]
    root_module: ConfigModule,
}

#[derive(Default, Deserialize)]
struct ConfigModule {
    #[serde(default)]
    variables: BTreeMap<String, ConfigVariable>,
}

#[derive(Deserialize)]
struct ConfigVariable {
    #[serde(default)]
    default: Option<serde_json::Value>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    sensitive: bool,
}

#[derive(Deserialize)]
struct ResourceChange {
    address: String,
    mode: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
}

#[derive(Default, Deserialize)]
struct PlannedValues {
    #[serde(default)]
    outputs: BTreeMap<String, Output>,
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    value: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct State {
    #[serde(default)]
    values: Option<StateValues>,
}

#[derive(Deserialize)]
struct StateValues {
    #[serde(default)]
    root_module: StateModule,
}

#[derive(Default, Deserialize)]
struct StateModule {
    #[serde(default)]
    resources: Vec<StateResource>,
}

#[derive(Deserialize)]
struct StateResource {
    address: String,
    mode: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, ok: bool) {
        assert_eq!(check_parameter_name(name).is_ok(), ok, "{name:?}");
    }

    #[test]
    fn parameter_names() {
        check("cpu", true);
        check("disk_size-gb", true);
        check("coder_agent_token", false);
        check("9lives", false);
        check("a b", false);
        check("", false);
    }
}

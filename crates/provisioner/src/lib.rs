//! Runs provisioner jobs: Terraform in a fresh work directory per job, with the template's
//! source unpacked into it, the workspace's facts passed in as variables, its state carried
//! in and out, and every line Terraform prints streamed to the caller.
//!
//! It owns the template contract (the `coder_*` variables in, the `coder_agent` output back;
//! see `contract`) and the daemon loop (`daemon`) that claims jobs from the server's API,
//! streams their logs, sends heartbeats and reports outcomes. It never touches the database:
//! built-in and external provisioners alike reach the server only through its API. Main types:
//! [`Job`], [`Outcome`], [`run`], [`daemon::Daemon`].

mod contract;
pub mod daemon;
mod job;
mod source;
mod terraform;
mod variables;

pub use contract::WorkspaceFacts;
pub use job::{Job, JobError, JobKind, Outcome, Resource, TemplateVariable, Transition, run};
pub use source::SourceError;
pub use terraform::{LogLevel, LogLine};

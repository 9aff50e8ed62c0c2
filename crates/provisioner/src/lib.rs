//! Runs provisioner jobs: Terraform in a fresh work directory per job, with the template's
//! source unpacked into it, the workspace's facts passed in as variables, its state carried
//! in and out, and every line Terraform prints streamed to the caller.
//!
//! It owns the template contract (the `coder_*` variables in, the `coder_agent` output back;
//! see `contract`). It does not touch the database or the API: its caller (the server's
//! built-in daemons or `coder provisioner start`) fetches jobs and reports results. Main
//! types: [`Job`], [`Outcome`], [`run`].

mod contract;
mod job;
mod source;
mod terraform;

pub use contract::WorkspaceFacts;
pub use job::{Job, JobError, JobKind, Outcome, Resource, TemplateVariable, Transition, run};
pub use source::SourceError;
pub use terraform::{LogLevel, LogLine};

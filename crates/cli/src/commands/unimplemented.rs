//! Commands that a later issue implements: they say so and fail, and never pretend to work.

use std::process::ExitCode;

use anyhow::Result;

/// Whatever arguments were given; ignored.
#[derive(Debug, clap::Args)]
pub(crate) struct Rest {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<String>,
}

pub(crate) fn run(command: &str, issue: u32) -> Result<ExitCode> {
    Err(crate::output::hint(
        anyhow::anyhow!("'coder {command}' is not implemented yet"),
        format!("it is planned in issue #{issue}"),
    ))
}

//! `coder whoami`: the deployment and the user this CLI is authenticated as.

use std::process::ExitCode;

use anyhow::Result;

use crate::commands::GlobalArgs;
use crate::output;
use crate::session;

pub(crate) async fn run(global: &GlobalArgs) -> Result<ExitCode> {
    let client = session::client(global)?;
    let me = client.user("me").await.map_err(session::explain)?;
    output::line(format!(
        "Coder is running at {}, You're authenticated as {} !",
        client.url(),
        me.username
    ))?;
    Ok(ExitCode::SUCCESS)
}

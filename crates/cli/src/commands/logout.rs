//! `coder logout`: revokes the session on the server and forgets it locally.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::commands::GlobalArgs;
use crate::output;
use crate::session::{self, ConfigDir};

#[derive(Debug, clap::Args)]
pub(crate) struct LogoutArgs {
    /// Don't ask for confirmation.
    #[arg(short, long)]
    yes: bool,
}

pub(crate) async fn run(global: &GlobalArgs, args: LogoutArgs) -> Result<ExitCode> {
    let config = ConfigDir::new(&global.config_dir());
    let client = session::client(global)?;
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("not a terminal: pass --yes to log out");
        }
        output::prompt("Are you sure you want to log out? (yes/no) ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "yes") {
            bail!("logout cancelled");
        }
    }
    match client.logout().await {
        // An already invalid session is as good as revoked.
        Ok(()) | Err(sdk::client::ClientError::Api { status: 401, .. }) => {}
        Err(err) => return Err(err.into()),
    }
    config.clear_session()?;
    output::line("You are no longer logged in. You can log in using 'coder login <url>'.")?;
    Ok(ExitCode::SUCCESS)
}

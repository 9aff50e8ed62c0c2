//! `coder provisioner start`: an external provisioner daemon, authenticated with the server's
//! pre-shared key, taking only jobs whose tags it has.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use provisioner::daemon::Daemon;
use sdk::Secret;
use sdk::client::Client;
use tokio_util::sync::CancellationToken;

use crate::commands::GlobalArgs;
use crate::output;
use crate::session;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ProvisionerCommand {
    /// Run a provisioner daemon until interrupted.
    Start(StartArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct StartArgs {
    /// The server's pre-shared key (its --provisioner-daemon-psk).
    #[arg(long, env = "CODER_PROVISIONER_DAEMON_PSK", hide_env_values = true)]
    psk: Option<String>,
    /// Tags as key=value; the daemon takes only jobs whose tags it has.
    #[arg(
        short,
        long = "tag",
        env = "CODER_PROVISIONERD_TAGS",
        value_delimiter = ','
    )]
    tags: Vec<String>,
    /// The daemon's name in job listings [default: the host name].
    #[arg(long, env = "CODER_PROVISIONER_DAEMON_NAME")]
    name: Option<String>,
    /// The terraform binary.
    #[arg(long, env = "CODER_PROVISIONER_TERRAFORM", default_value = "terraform")]
    terraform: String,
}

pub(crate) fn parse_tags(tags: &[String]) -> Result<BTreeMap<String, String>> {
    tags.iter()
        .filter(|tag| !tag.is_empty())
        .map(|tag| match tag.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => bail!("invalid tag {tag:?}: use key=value"),
        })
        .collect()
}

pub(crate) async fn run(global: &GlobalArgs, command: ProvisionerCommand) -> Result<ExitCode> {
    let ProvisionerCommand::Start(args) = command;
    let url = session::deployment_url(global)?.ok_or_else(|| {
        output::hint(
            anyhow::anyhow!("no deployment URL"),
            "pass --url or set CODER_URL to the server's URL",
        )
    })?;
    let psk = args.psk.filter(|psk| !psk.is_empty()).ok_or_else(|| {
        output::hint(
            anyhow::anyhow!("no pre-shared key"),
            "pass --psk or set CODER_PROVISIONER_DAEMON_PSK to the server's --provisioner-daemon-psk",
        )
    })?;
    let tags = parse_tags(&args.tags)?;
    let name = match args.name {
        Some(name) => name,
        None => nix::unistd::gethostname()
            .context("reading the host name")?
            .to_string_lossy()
            .into_owned(),
    };
    let client =
        Client::new(url.clone(), session::http_client()?).with_provisioner_key(Secret::new(psk));
    let daemon = Daemon {
        name: name.clone(),
        tags: tags.clone(),
        terraform: args.terraform.into(),
        work_root: std::env::temp_dir().join("coder-provisioner"),
    };
    let cancel = CancellationToken::new();
    let mut running = tokio::spawn(daemon.run(client, cancel.clone()));
    let tags_text = if tags.is_empty() {
        "none".to_owned()
    } else {
        tags.iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    output::line(format!(
        "Started provisioner daemon {name:?} for {} (tags: {tags_text})",
        url.as_str().trim_end_matches('/')
    ))?;
    let result = tokio::select! {
        result = wait_for_signal() => {
            result?;
            output::line("Interrupt caught: finishing the running job's cancellation, then exiting")?;
            cancel.cancel();
            (&mut running).await
        }
        result = &mut running => result,
    };
    match result.context("the provisioner daemon panicked")? {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(err) => Err(anyhow::Error::new(err).context("the server refused this provisioner")),
    }
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        let tags = parse_tags(&["region=eu".into(), "gpu=".into()]).unwrap();
        assert_eq!(tags["region"], "eu");
        assert_eq!(tags["gpu"], "");
        assert!(parse_tags(&["nonsense".into()]).is_err());
    }
}

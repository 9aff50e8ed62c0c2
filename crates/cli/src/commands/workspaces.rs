//! The workspace commands: `create`, `list`, `show`, `start`, `stop`, `restart`, `delete`.
//! Each build's log streams live to stderr, as a progress display.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use sdk::client::Client;
use sdk::{
    CreateWorkspaceBuildRequest, CreateWorkspaceRequest, ProvisionerJobStatus, Workspace,
    WorkspaceBuild, WorkspaceBuildParameter, WorkspaceTransition,
};

use crate::commands::GlobalArgs;
use crate::output::{self, Format, Table};
use crate::session;

#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    /// The workspace's name (or owner/name to create it for someone else).
    name: String,
    /// The template to build it from.
    #[arg(short, long, env = "CODER_TEMPLATE_NAME")]
    template: String,
    /// Parameter values as name=value.
    #[arg(
        long = "parameter",
        env = "CODER_RICH_PARAMETER",
        value_delimiter = ','
    )]
    parameters: Vec<String>,
    /// Don't ask for confirmation (or for parameters with defaults).
    #[arg(short, long)]
    yes: bool,
    /// The organization.
    #[arg(long, short = 'O', env = "CODER_ORGANIZATION")]
    org: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Every user's workspaces (owners and template admins).
    #[arg(short, long)]
    all: bool,
    /// Columns to show: workspace, template, status, healthy, last built, outdated, agent,
    /// connection.
    #[arg(
        short,
        long = "column",
        value_delimiter = ',',
        default_value = "workspace,template,status,healthy,last built,outdated"
    )]
    column: Vec<String>,
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Debug, clap::Args)]
pub(crate) struct WorkspaceArgs {
    /// The workspace: name, or owner/name.
    workspace: String,
    /// Don't ask for confirmation.
    #[arg(short, long)]
    yes: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// The workspace: name, or owner/name.
    workspace: String,
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

fn split_name(name: &str) -> (&str, &str) {
    name.split_once('/').unwrap_or(("me", name))
}

pub(crate) async fn find(client: &Client, name: &str) -> Result<Workspace> {
    let (owner, workspace) = split_name(name);
    client
        .workspace_by_owner_and_name(owner, workspace)
        .await
        .map_err(session::explain)
        .with_context(|| format!("finding workspace {name:?}"))
}

fn parse_parameters(values: &[String]) -> Result<BTreeMap<String, String>> {
    values
        .iter()
        .filter(|value| !value.is_empty())
        .map(|value| match value.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
            _ => bail!("invalid --parameter {value:?}: use name=value"),
        })
        .collect()
}

fn to_wire(values: BTreeMap<String, String>) -> Vec<WorkspaceBuildParameter> {
    values
        .into_iter()
        .map(|(name, value)| WorkspaceBuildParameter { name, value })
        .collect()
}

/// Streams a build's log to stderr and returns the finished build. Ctrl-C cancels the build
/// (Terraform stops gracefully) and keeps following until it has ended.
async fn follow(client: &Client, build: &WorkspaceBuild) -> Result<WorkspaceBuild> {
    let mut stage = String::new();
    let path = format!("/api/v2/workspacebuilds/{}/logs", build.id);
    let following = client.follow_job_logs(&path, |log| {
        if log.stage != stage {
            stage = log.stage.clone();
            output::note(format!("==> {stage}"));
        }
        if !log.output.is_empty() {
            output::note(format!("    {}", log.output));
        }
    });
    tokio::pin!(following);
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("handling Ctrl-C")?;
    let mut canceled = false;
    loop {
        tokio::select! {
            result = &mut following => {
                result.map_err(session::explain).context("following the build's log")?;
                break;
            }
            _ = interrupt.recv() => {
                if canceled {
                    bail!("stopped waiting; the build is being canceled");
                }
                canceled = true;
                output::note("Interrupt caught: canceling the build (Ctrl-C again to stop waiting)...");
                client.cancel_workspace_build(build.id).await.map_err(session::explain)?;
            }
        }
    }
    let build = client
        .workspace_build(build.id)
        .await
        .map_err(session::explain)?;
    if build.job.status != ProvisionerJobStatus::Succeeded {
        bail!(
            "the {} build of {:?} {}: {}",
            build.transition.name(),
            build.workspace_name,
            build.job.status.name(),
            build.job.error
        );
    }
    Ok(build)
}

pub(crate) async fn create(global: &GlobalArgs, args: CreateArgs) -> Result<ExitCode> {
    let client = session::client(global)?;
    let org = match args.org {
        Some(org) => org,
        None => client
            .organizations()
            .await
            .map_err(session::explain)?
            .into_iter()
            .find(|organization| organization.is_default)
            .map(|organization| organization.name)
            .context("you belong to no organization")?,
    };
    let template = client
        .template_by_name(&org, &args.template)
        .await
        .map_err(session::explain)?
        .with_context(|| format!("template {:?} not found", args.template))?;
    let mut values = parse_parameters(&args.parameters)?;
    let declared = client
        .template_version_variables(template.active_version_id)
        .await
        .map_err(session::explain)?;
    let interactive = std::io::stdin().is_terminal();
    for variable in &declared {
        if values.contains_key(&variable.name) || (!variable.required && (args.yes || !interactive))
        {
            continue;
        }
        if !interactive {
            bail!(
                "parameter {:?} is required: pass --parameter {}=VALUE",
                variable.name,
                variable.name
            );
        }
        let default = variable.default_value.as_ref().map(|value| {
            value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned)
        });
        let about = if variable.description.is_empty() {
            String::new()
        } else {
            format!(" ({})", variable.description)
        };
        output::prompt(match &default {
            Some(default) => format!("{}{about} [{default}]: ", variable.name),
            None => format!("{}{about}: ", variable.name),
        });
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        let answer = answer.trim().to_owned();
        match (answer.is_empty(), default) {
            (true, Some(_)) => {}
            (true, None) => bail!("parameter {:?} is required", variable.name),
            (false, _) => {
                values.insert(variable.name.clone(), answer);
            }
        }
    }
    let (owner, name) = split_name(&args.name);
    let workspace = client
        .create_workspace(
            owner,
            &CreateWorkspaceRequest {
                name: name.to_owned(),
                template_id: Some(template.id),
                template_version_id: None,
                rich_parameter_values: to_wire(values),
            },
        )
        .await
        .map_err(session::explain)
        .context("creating the workspace")?;
    output::note(format!("Building workspace {:?}...", workspace.name));
    follow(&client, &workspace.latest_build).await?;
    output::line(format!(
        "The {} workspace has been created at {}!",
        workspace.name,
        chrono::Utc::now().format("%b %e %H:%M")
    ))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn list(global: &GlobalArgs, args: ListArgs) -> Result<ExitCode> {
    let client = session::client(global)?;
    let query = if args.all { "" } else { "owner:me" };
    let response = client.workspaces(query).await.map_err(session::explain)?;
    if args.output == Format::Json {
        output::json(&response.workspaces)?;
        return Ok(ExitCode::SUCCESS);
    }
    if response.workspaces.is_empty() {
        output::note(
            "No workspaces found. Create one with 'coder create <name> --template <template>'.",
        );
        return Ok(ExitCode::SUCCESS);
    }
    let columns = [
        "workspace",
        "template",
        "status",
        "healthy",
        "last built",
        "outdated",
        "agent",
        "connection",
    ];
    let mut table = Table::new(&columns, &args.column)?;
    for workspace in &response.workspaces {
        let agents = &workspace.latest_build.agents;
        table.row(vec![
            format!("{}/{}", workspace.owner_name, workspace.name),
            workspace.template_name.clone(),
            workspace.latest_build.status.name().to_owned(),
            healthy(&workspace.latest_build),
            output::time(workspace.latest_build.created_at),
            workspace.outdated.to_string(),
            agents
                .iter()
                .map(|agent| {
                    format!(
                        "{} ({})",
                        status_name(agent.status),
                        agent.lifecycle_state.name()
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            agents
                .iter()
                .map(connection_summary)
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    table.print()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn show(global: &GlobalArgs, args: ShowArgs) -> Result<ExitCode> {
    let client = session::client(global)?;
    let workspace = find(&client, &args.workspace).await?;
    if args.output == Format::Json {
        output::json(&workspace)?;
        return Ok(ExitCode::SUCCESS);
    }
    let build = &workspace.latest_build;
    output::line(format!(
        "Workspace:  {}/{}",
        workspace.owner_name, workspace.name
    ))?;
    output::line(format!(
        "Template:   {} (version {}{})",
        workspace.template_name,
        build.template_version_name,
        if workspace.outdated { ", outdated" } else { "" }
    ))?;
    output::line(format!("Status:     {}", build.status.name()))?;
    output::line(format!(
        "Last build: #{} {} by {} at {} ({})",
        build.build_number,
        build.transition.name(),
        build.initiator_name,
        output::time(build.created_at),
        build.job.status.name()
    ))?;
    if !build.job.error.is_empty() {
        output::line(format!("Error:      {}", build.job.error))?;
    }
    if !build.parameters.is_empty() {
        output::line("Parameters:")?;
        for parameter in &build.parameters {
            output::line(format!("  {} = {}", parameter.name, parameter.value))?;
        }
    }
    if !build.resources.is_empty() {
        output::line("Resources:")?;
        for resource in &build.resources {
            output::line(format!("  {}", resource.address))?;
        }
    }
    for agent in &build.agents {
        output::line(format!(
            "Agent:      {} ({}, {}{})",
            agent.name,
            status_name(agent.status),
            agent.lifecycle_state.name(),
            if agent.version.is_empty() {
                String::new()
            } else {
                format!(", version {}", agent.version)
            }
        ))?;
        if !agent.last_connection_path.is_empty() {
            output::line(format!("  connections: {}", connection_summary(agent)))?;
        }
        if !agent.directory.is_empty() {
            output::line(format!("  directory: {}", agent.directory))?;
        }
        for app in &agent.apps {
            let health = if app.health.is_empty() {
                String::new()
            } else {
                format!(" ({})", app.health)
            };
            output::line(format!(
                "  app {}: {}{}{health}",
                app.slug, app.url, app.command
            ))?;
        }
        let logs = client
            .workspace_agent_logs(agent.id)
            .await
            .map_err(session::explain)?;
        if !logs.is_empty() {
            output::line("  startup log:")?;
            let skip = logs.len().saturating_sub(20);
            for log in &logs[skip..] {
                output::line(format!("    {}", log.output))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `true` when the workspace's agent is connected and ready, `false` when it is not, blank
/// when the workspace has no running agent.
fn healthy(build: &WorkspaceBuild) -> String {
    if build.status != sdk::WorkspaceStatus::Running || build.agents.is_empty() {
        return String::new();
    }
    build
        .agents
        .iter()
        .all(|agent| {
            agent.status == sdk::WorkspaceAgentStatus::Connected
                && agent.lifecycle_state == sdk::WorkspaceAgentLifecycle::Ready
        })
        .to_string()
}

/// A byte count as people read it.
fn bytes(count: i64) -> String {
    let count = count.max(0) as f64;
    match count {
        c if c >= 1e9 => format!("{:.1} GB", c / 1e9),
        c if c >= 1e6 => format!("{:.1} MB", c / 1e6),
        c if c >= 1e3 => format!("{:.1} kB", c / 1e3),
        c => format!("{c} B"),
    }
}

/// `2 open, last p2p at <time>, 1.2 MB received, 3.4 kB sent`; blank before the first tunnel.
fn connection_summary(agent: &sdk::WorkspaceAgent) -> String {
    if agent.last_connection_path.is_empty() {
        return String::new();
    }
    let at = agent
        .last_connection_at
        .map(|at| format!(" at {}", output::time(at)))
        .unwrap_or_default();
    format!(
        "{} open, last {}{at}, {} received, {} sent",
        agent.connection_count,
        agent.last_connection_path,
        bytes(agent.rx_bytes),
        bytes(agent.tx_bytes)
    )
}

fn status_name(status: sdk::WorkspaceAgentStatus) -> &'static str {
    match status {
        sdk::WorkspaceAgentStatus::Connecting => "connecting",
        sdk::WorkspaceAgentStatus::Connected => "connected",
        sdk::WorkspaceAgentStatus::Disconnected => "disconnected",
        sdk::WorkspaceAgentStatus::Timeout => "timeout",
    }
}

/// Posts a build and follows it.
async fn build(
    client: &Client,
    workspace: &Workspace,
    transition: WorkspaceTransition,
) -> Result<WorkspaceBuild> {
    let build = client
        .create_workspace_build(
            workspace.id,
            &CreateWorkspaceBuildRequest {
                transition,
                template_version_id: None,
                rich_parameter_values: Vec::new(),
            },
        )
        .await
        .map_err(session::explain)
        .with_context(|| format!("starting a {} build", transition.name()))?;
    follow(client, &build).await
}

pub(crate) async fn transition(
    global: &GlobalArgs,
    args: WorkspaceArgs,
    transition: WorkspaceTransition,
) -> Result<ExitCode> {
    let client = session::client(global)?;
    let workspace = find(&client, &args.workspace).await?;
    if transition == WorkspaceTransition::Delete && !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("not a terminal: pass --yes to delete {:?}", args.workspace);
        }
        output::prompt(format!(
            "Delete workspace {:?} and everything in it? (yes/no) ",
            args.workspace
        ));
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "yes") {
            bail!("cancelled");
        }
    }
    build(&client, &workspace, transition).await?;
    let at = chrono::Utc::now().format("%b %e %H:%M");
    output::line(match transition {
        WorkspaceTransition::Start => {
            format!("The {} workspace has been started at {at}!", workspace.name)
        }
        WorkspaceTransition::Stop => {
            format!("The {} workspace has been stopped at {at}!", workspace.name)
        }
        WorkspaceTransition::Delete => {
            format!("The {} workspace has been deleted at {at}!", workspace.name)
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn restart(global: &GlobalArgs, args: WorkspaceArgs) -> Result<ExitCode> {
    let client = session::client(global)?;
    let workspace = find(&client, &args.workspace).await?;
    build(&client, &workspace, WorkspaceTransition::Stop).await?;
    build(&client, &workspace, WorkspaceTransition::Start).await?;
    output::line(format!(
        "The {} workspace has been restarted at {}!",
        workspace.name,
        chrono::Utc::now().format("%b %e %H:%M")
    ))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_parameters() {
        assert_eq!(split_name("dev"), ("me", "dev"));
        assert_eq!(split_name("bob/dev"), ("bob", "dev"));
        let values = parse_parameters(&["cpu=4".into(), "dir=/a=b".into()]).unwrap();
        assert_eq!(values["cpu"], "4");
        assert_eq!(values["dir"], "/a=b");
        assert!(parse_parameters(&["oops".into()]).is_err());
    }
}

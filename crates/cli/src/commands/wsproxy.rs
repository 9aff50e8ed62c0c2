//! `coder wsproxy` (alias `workspace-proxy`): create, list, edit, delete workspace proxies and
//! regenerate their tokens (owners only); `coder wsproxy server` runs one.

use std::process::ExitCode;

use anyhow::{Context, Result};
use sdk::{CreateWorkspaceProxyRequest, PatchWorkspaceProxy, ProxyHealthStatus, WorkspaceProxy};

use crate::commands::GlobalArgs;
use crate::output::{self, Table};
use crate::session;

const COLUMNS: &[&str] = &[
    "id",
    "name",
    "display name",
    "icon url",
    "healthy",
    "url",
    "wildcard hostname",
    "derp enabled",
    "derp only",
    "status",
    "error",
    "checked at",
    "created at",
    "updated at",
    "version",
    "proxy token",
];

/// How `create`, `edit` and `regenerate-token` print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProxyFormat {
    /// A sentence and the token.
    Text,
    /// Columns with a header.
    Table,
    /// The proxy (and token) as JSON.
    Json,
}

/// How `ls` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ListFormat {
    /// Columns with a header.
    Table,
    /// Every proxy as JSON.
    Json,
    /// Columns without a header.
    Text,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Columns {
    /// Columns to show: id, name, display name, icon url, healthy, url, wildcard hostname,
    /// derp enabled, derp only, status (alias: proxy status), error, checked at, created at,
    /// updated at, version, proxy token.
    #[arg(short, long, value_delimiter = ',')]
    column: Option<Vec<String>>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum WsproxyCommand {
    /// Create a workspace proxy and print its token (shown only once).
    Create {
        /// The proxy's name: letters, digits and hyphens; "primary" is reserved.
        #[arg(long)]
        name: Option<String>,
        /// The name shown to users (default: the name).
        #[arg(long)]
        display_name: Option<String>,
        /// An icon URL or path, e.g. /emojis/2194.png.
        #[arg(long)]
        icon: Option<String>,
        /// Print only the token.
        #[arg(long)]
        only_token: bool,
        /// Never prompt (fail when --name is missing).
        #[arg(long)]
        no_prompt: bool,
        #[command(flatten)]
        columns: Columns,
        #[arg(short, long, value_enum, default_value = "text")]
        output: ProxyFormat,
    },
    /// List workspace proxies: the primary first, with each one's URL and health.
    #[command(alias = "list")]
    Ls {
        #[command(flatten)]
        columns: Columns,
        #[arg(short, long, value_enum, default_value = "table")]
        output: ListFormat,
    },
    /// Change a proxy's name, display name or icon.
    Edit {
        #[arg(value_name = "NAME|ID")]
        proxy: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        icon: Option<String>,
        #[command(flatten)]
        columns: Columns,
        #[arg(short, long, value_enum, default_value = "text")]
        output: ProxyFormat,
    },
    /// Delete a workspace proxy.
    #[command(alias = "rm")]
    Delete {
        #[arg(value_name = "NAME|ID")]
        proxy: String,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// Make a new token for a proxy; the old one stops working at once.
    RegenerateToken {
        #[arg(value_name = "NAME|ID")]
        proxy: String,
        /// Print only the token.
        #[arg(long)]
        only_token: bool,
        #[command(flatten)]
        columns: Columns,
        #[arg(short, long, value_enum, default_value = "text")]
        output: ProxyFormat,
    },
    /// Run a workspace proxy.
    Server(Box<super::wsproxy_server::ProxyServerArgs>),
}

pub(crate) async fn run(global: &GlobalArgs, command: WsproxyCommand) -> Result<ExitCode> {
    if let WsproxyCommand::Server(args) = command {
        return super::wsproxy_server::run(global, *args).await;
    }
    let client = session::client(global)?;
    match command {
        WsproxyCommand::Create {
            name,
            display_name,
            icon,
            only_token,
            no_prompt,
            columns,
            output,
        } => {
            let name = match name {
                Some(name) => name,
                None if no_prompt || !std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                    anyhow::bail!("--name is required");
                }
                None => prompt("Proxy name: ")?,
            };
            let response = client
                .create_workspace_proxy(&CreateWorkspaceProxyRequest {
                    name,
                    display_name: display_name.unwrap_or_default(),
                    icon: icon.unwrap_or_default(),
                })
                .await
                .map_err(session::explain)
                .context("creating the workspace proxy")?;
            let what = format!(
                "Workspace Proxy {:?} created successfully.",
                response.proxy.name
            );
            print_token(&response, &what, only_token, columns, output)?;
        }
        WsproxyCommand::Ls { columns, output } => {
            let proxies = client.workspace_proxies().await.map_err(session::explain)?;
            if output == ListFormat::Json {
                return output::json(&proxies).map(|()| ExitCode::SUCCESS);
            }
            let mut table = table(columns, &["name", "url", "status"])?;
            for proxy in &proxies {
                table.row(cells(proxy, ""));
            }
            let text = table.render();
            if output == ListFormat::Text {
                // The same columns without the header line.
                for row in text.lines().skip(1) {
                    output::line(row)?;
                }
            } else {
                output::line(text)?;
            }
        }
        WsproxyCommand::Edit {
            proxy,
            name,
            display_name,
            icon,
            columns,
            output,
        } => {
            let response = client
                .patch_workspace_proxy(
                    &proxy,
                    &PatchWorkspaceProxy {
                        name,
                        display_name,
                        icon,
                        regenerate_token: false,
                    },
                )
                .await
                .map_err(session::explain)
                .with_context(|| format!("editing workspace proxy {proxy:?}"))?;
            let sentence = format!("Workspace proxy {:?} updated.", response.proxy.name);
            print_one(&response, "", &sentence, columns, output)?;
        }
        WsproxyCommand::Delete { proxy, yes } => {
            if !yes && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                let answer = prompt(&format!(
                    "Delete workspace proxy {proxy:?}? Users connected through it fall back to the primary. (yes/no) "
                ))?;
                if !matches!(answer.as_str(), "y" | "yes") {
                    anyhow::bail!("not deleted");
                }
            }
            client
                .delete_workspace_proxy(&proxy)
                .await
                .map_err(session::explain)
                .with_context(|| format!("deleting workspace proxy {proxy:?}"))?;
            output::line(format!("Workspace proxy {proxy:?} deleted successfully."))?;
        }
        WsproxyCommand::RegenerateToken {
            proxy,
            only_token,
            columns,
            output,
        } => {
            let response = client
                .patch_workspace_proxy(
                    &proxy,
                    &PatchWorkspaceProxy {
                        regenerate_token: true,
                        ..PatchWorkspaceProxy::default()
                    },
                )
                .await
                .map_err(session::explain)
                .with_context(|| format!("regenerating the token of workspace proxy {proxy:?}"))?;
            let what = format!(
                "Workspace Proxy {:?} has a new token; the old one no longer works.",
                response.proxy.name
            );
            print_token(&response, &what, only_token, columns, output)?;
        }
        WsproxyCommand::Server(_) => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

fn prompt(question: &str) -> Result<String> {
    output::prompt(question);
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim().to_owned())
}

fn table(columns: Columns, default: &[&str]) -> Result<Table<'static>> {
    let chosen: Vec<String> = columns
        .column
        .unwrap_or_else(|| default.iter().map(|c| (*c).to_owned()).collect())
        .into_iter()
        .map(|column| match column.trim().to_lowercase().as_str() {
            // Coder's name for the column.
            "proxy status" => "status".to_owned(),
            _ => column,
        })
        .collect();
    Table::new(COLUMNS, &chosen)
}

/// A new token: alone with `--only-token`, else after `what` and the warning that it is shown
/// once (or as a table or JSON).
fn print_token(
    response: &sdk::UpdateWorkspaceProxyResponse,
    what: &str,
    only_token: bool,
    columns: Columns,
    format: ProxyFormat,
) -> Result<()> {
    let token = response
        .proxy_token
        .as_ref()
        .map(|token| token.expose().to_owned())
        .unwrap_or_default();
    if only_token {
        return output::line(&token);
    }
    let sentence = format!("{what} Save this token, it will not be shown again.\nToken: {token}");
    print_one(response, &token, &sentence, columns, format)
}

fn print_one(
    response: &sdk::UpdateWorkspaceProxyResponse,
    token: &str,
    sentence: &str,
    columns: Columns,
    format: ProxyFormat,
) -> Result<()> {
    match format {
        ProxyFormat::Text => output::line(sentence),
        ProxyFormat::Json => output::json(response),
        ProxyFormat::Table => {
            let mut table = table(columns, &["name", "url", "proxy token"])?;
            table.row(cells(&response.proxy, token));
            table.print()
        }
    }
}

/// `ok`, or the status with why (`unhealthy: ...`); warnings (version skew) follow `ok`.
fn status_text(proxy: &WorkspaceProxy) -> String {
    let status = proxy.status.status.as_str();
    let report = &proxy.status.report;
    match (
        proxy.status.status,
        report.errors.first(),
        report.warnings.first(),
    ) {
        (ProxyHealthStatus::Ok, _, Some(warning)) => format!("{status} (warning: {warning})"),
        (_, Some(error), _) => format!("{status}: {error}"),
        _ => status.to_owned(),
    }
}

fn cells(proxy: &WorkspaceProxy, token: &str) -> Vec<String> {
    vec![
        proxy.id.to_string(),
        proxy.name.clone(),
        proxy.display_name.clone(),
        proxy.icon_url.clone(),
        proxy.healthy.to_string(),
        proxy.path_app_url.clone(),
        proxy.wildcard_hostname.clone(),
        proxy.derp_enabled.to_string(),
        proxy.derp_only.to_string(),
        status_text(proxy),
        proxy.status.report.errors.join("; "),
        proxy
            .status
            .checked_at
            .map(output::time)
            .unwrap_or_default(),
        output::time(proxy.created_at),
        output::time(proxy.updated_at),
        proxy.version.clone(),
        token.to_owned(),
    ]
}

//! `coder tokens`: create, list and remove personal API tokens.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use sdk::CreateTokenRequest;

use crate::commands::GlobalArgs;
use crate::output::{self, Format, Table};
use crate::session;

const COLUMNS: &[&str] = &[
    "id",
    "name",
    "last used",
    "expires at",
    "created at",
    "owner",
];

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokensCommand {
    /// Create a token and print it (it is shown only once).
    Create {
        /// A name unique among your tokens.
        #[arg(short, long, env = "CODER_TOKEN_NAME")]
        name: Option<String>,
        /// How long the token works, e.g. 30d, 12h (default: the server's).
        #[arg(long, env = "CODER_TOKEN_LIFETIME", value_parser = parse_duration)]
        lifetime: Option<Duration>,
    },
    /// List your tokens.
    #[command(alias = "ls")]
    List {
        /// Every user's tokens (owners only).
        #[arg(short, long)]
        all: bool,
        /// Columns to show (id, name, last used, expires at, created at, owner).
        #[arg(short, long, value_delimiter = ',')]
        column: Option<Vec<String>>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Delete a token, by name or id.
    #[command(aliases = ["rm", "delete"])]
    Remove {
        // Not named `token`: that id belongs to the global --token flag.
        #[arg(value_name = "NAME|ID")]
        name_or_id: String,
    },
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|err| format!("{err} (e.g. 30d, 12h)"))
}

pub(crate) async fn run(global: &GlobalArgs, command: TokensCommand) -> Result<ExitCode> {
    let client = session::client(global)?;
    match command {
        TokensCommand::Create { name, lifetime } => {
            let lifetime = lifetime.map_or(0, |lifetime| {
                i64::try_from(lifetime.as_nanos()).unwrap_or(i64::MAX)
            });
            let response = client
                .create_token(
                    "me",
                    &CreateTokenRequest {
                        lifetime,
                        scope: String::new(),
                        token_name: name.unwrap_or_default(),
                    },
                )
                .await
                .map_err(session::explain)
                .context("creating the token")?;
            output::line(response.key.expose())?;
        }
        TokensCommand::List {
            all,
            column,
            output,
        } => {
            let path_user = "me";
            let tokens = if all {
                client.all_tokens().await
            } else {
                client.tokens(path_user).await
            }
            .map_err(session::explain)?;
            if output == Format::Json {
                return output::json(&tokens).map(|()| ExitCode::SUCCESS);
            }
            let default: Vec<String> = ["id", "name", "last used", "expires at", "created at"]
                .into_iter()
                .chain(all.then_some("owner"))
                .map(str::to_owned)
                .collect();
            let mut table = Table::new(COLUMNS, &column.unwrap_or(default))?;
            for token in &tokens {
                table.row(vec![
                    token.key.id.to_string(),
                    token.key.token_name.clone(),
                    output::time(token.key.last_used),
                    output::time(token.key.expires_at),
                    output::time(token.key.created_at),
                    token.username.clone(),
                ]);
            }
            if tokens.is_empty() {
                output::note("No tokens found.");
            } else {
                table.print()?;
            }
        }
        TokensCommand::Remove { name_or_id: token } => {
            let id = match client.token_by_name("me", &token).await {
                Ok(found) => found.key.id.0,
                Err(sdk::client::ClientError::Api { status: 404, .. }) => token.clone(),
                Err(err) => return Err(session::explain(err)),
            };
            client
                .delete_api_key("me", &id)
                .await
                .map_err(session::explain)
                .with_context(|| format!("deleting token {token:?}"))?;
            output::line("Token has been deleted.")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `coder users`: list, create, show, suspend and activate users (admins).

use std::process::ExitCode;

use anyhow::{Context, Result};
use rand::Rng;
use rand::distr::Alphanumeric;
use sdk::{CreateUserRequest, LoginType, Secret, User};

use crate::commands::GlobalArgs;
use crate::output::{self, Format, Table};
use crate::session;

const COLUMNS: &[&str] = &[
    "id",
    "username",
    "name",
    "email",
    "created at",
    "last seen at",
    "status",
    "roles",
    "login type",
];

#[derive(Debug, clap::Subcommand)]
pub(crate) enum UsersCommand {
    /// List users.
    #[command(alias = "ls")]
    List {
        /// Columns to show (id, username, name, email, created at, last seen at, status,
        /// roles, login type).
        #[arg(
            short,
            long,
            value_delimiter = ',',
            default_value = "username,email,created at,status"
        )]
        column: Vec<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Create a user.
    Create {
        #[arg(short, long)]
        email: String,
        #[arg(short, long)]
        username: String,
        /// The user's full name.
        #[arg(short = 'n', long)]
        full_name: Option<String>,
        /// The password; a random one is generated (and printed) when omitted.
        #[arg(short, long, env = "CODER_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// password, or none for accounts that only use API tokens.
        #[arg(long, default_value = "password", value_parser = ["password", "none"])]
        login_type: String,
    },
    /// Show a user (a username, an id, or 'me').
    Show {
        user: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Suspend a user: their tokens stop working at once.
    Suspend { user: String },
    /// Reactivate a suspended user.
    Activate { user: String },
}

pub(crate) async fn run(global: &GlobalArgs, command: UsersCommand) -> Result<ExitCode> {
    let client = session::client(global)?;
    match command {
        UsersCommand::List { column, output } => {
            let response = client.users("").await.map_err(session::explain)?;
            print_users(&response.users, &column, output)?;
        }
        UsersCommand::Show { user, output } => {
            let user = client.user(&user).await.map_err(session::explain)?;
            let columns: Vec<String> = COLUMNS.iter().map(|name| (*name).to_owned()).collect();
            match output {
                Format::Json => output::json(&user)?,
                Format::Table => print_users(&[user], &columns, Format::Table)?,
            }
        }
        UsersCommand::Create {
            email,
            username,
            full_name,
            password,
            login_type,
        } => {
            let login_type = if login_type == "none" {
                LoginType::None
            } else {
                LoginType::Password
            };
            let generated = password.is_none() && login_type == LoginType::Password;
            let password = match (password, login_type) {
                (Some(password), _) => password,
                (None, LoginType::Password) => rand::rng()
                    .sample_iter(&Alphanumeric)
                    .take(20)
                    .map(char::from)
                    .collect(),
                (None, _) => String::new(),
            };
            let user = client
                .create_user(&CreateUserRequest {
                    email,
                    username,
                    name: full_name.unwrap_or_default(),
                    password: Secret::new(password.clone()),
                    login_type: Some(login_type),
                    organization_ids: Vec::new(),
                })
                .await
                .map_err(session::explain)
                .context("creating the user")?;
            output::line(format!(
                "Created user {:?} ({}).",
                user.username, user.email
            ))?;
            if generated {
                output::line(format!("Their password is: {password}"))?;
            }
            output::line(format!(
                "They can log in with: coder login {}",
                client.url().as_str().trim_end_matches('/')
            ))?;
        }
        UsersCommand::Suspend { user } => {
            let user = client.suspend_user(&user).await.map_err(session::explain)?;
            output::line(format!("User {:?} is suspended.", user.username))?;
        }
        UsersCommand::Activate { user } => {
            let user = client
                .activate_user(&user)
                .await
                .map_err(session::explain)?;
            output::line(format!("User {:?} is active.", user.username))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_users(users: &[User], columns: &[String], format: Format) -> Result<()> {
    if format == Format::Json {
        return output::json(&users);
    }
    let mut table = Table::new(COLUMNS, columns)?;
    for user in users {
        let roles: Vec<&str> = user.roles.iter().map(|role| role.name.as_str()).collect();
        table.row(vec![
            user.id.to_string(),
            user.username.clone(),
            user.name.clone(),
            user.email.clone(),
            output::time(user.created_at),
            output::time(user.last_seen_at),
            user.status.name().to_owned(),
            if roles.is_empty() {
                "member".to_owned()
            } else {
                roles.join(",")
            },
            match user.login_type {
                LoginType::Password => "password",
                LoginType::Token => "token",
                LoginType::None => "none",
            }
            .to_owned(),
        ]);
    }
    table.print()
}

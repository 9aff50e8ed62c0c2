//! `coder login [URL]`: creates the first user when there is none, else signs in (token,
//! password prompt, or flags), and saves the URL and session token in the config directory.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use sdk::client::Client;
use sdk::{CreateFirstUserRequest, LoginWithPasswordRequest, Secret};

use crate::commands::GlobalArgs;
use crate::output;
use crate::session::{self, ConfigDir};

#[derive(Debug, clap::Args)]
pub(crate) struct LoginArgs {
    /// The deployment's URL (default: --url, CODER_URL, or the last one used).
    url: Option<String>,
    /// The first user's username, when the deployment has no user yet.
    #[arg(long, env = "CODER_FIRST_USER_USERNAME")]
    first_user_username: Option<String>,
    /// The first user's email.
    #[arg(long, env = "CODER_FIRST_USER_EMAIL")]
    first_user_email: Option<String>,
    /// The first user's password.
    #[arg(long, env = "CODER_FIRST_USER_PASSWORD", hide_env_values = true)]
    first_user_password: Option<String>,
    /// The first user's full name.
    #[arg(long, env = "CODER_FIRST_USER_FULL_NAME")]
    first_user_full_name: Option<String>,
    /// Accepted for compatibility; there is no trial.
    #[arg(long, env = "CODER_FIRST_USER_TRIAL", hide = true)]
    first_user_trial: bool,
    /// Email to sign in with, instead of being prompted.
    #[arg(long, env = "CODER_EMAIL")]
    email: Option<String>,
    /// Password to sign in with, instead of being prompted.
    #[arg(long, env = "CODER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

pub(crate) async fn run(global: &GlobalArgs, args: LoginArgs) -> Result<ExitCode> {
    let url = match &args.url {
        Some(url) => session::parse_deployment_url(url)?,
        None => session::deployment_url(global)?.ok_or_else(|| {
            output::hint(
                anyhow::anyhow!("no deployment URL given"),
                "run 'coder login <url>', e.g. 'coder login http://127.0.0.1:3000'",
            )
        })?,
    };
    let client = Client::new(url.clone(), session::http_client()?);
    let build = client
        .build_info()
        .await
        .with_context(|| format!("checking that {url} is a Coder deployment"))?;
    if build.workspace_proxy {
        return Err(output::hint(
            anyhow::anyhow!("{url} is a workspace proxy, not the deployment"),
            format!(
                "log in at the dashboard's URL: coder login {}",
                build.dashboard_url
            ),
        ));
    }
    let interactive = std::io::stdin().is_terminal();
    let token = if !client.has_first_user().await? {
        create_first_user(&client, &args, interactive).await?
    } else if let Some(token) = &global.token {
        Secret::new(token.clone())
    } else {
        let email = match &args.email {
            Some(email) => email.clone(),
            None if interactive => ask("Email: ", "")?,
            None => {
                return Err(output::hint(
                    anyhow::anyhow!("not a terminal, and no credentials given"),
                    "pass --token (see 'coder tokens create'), or --email and --password",
                ));
            }
        };
        let password = match &args.password {
            Some(password) => Secret::new(password.clone()),
            None if interactive => ask_secret("Password: ")?,
            None => bail!("--password is required with --email when not in a terminal"),
        };
        login_with_password(&client, email, password).await?
    };
    let client = client.with_session_token(token.clone());
    let me = client.user("me").await.map_err(session::explain)?;
    ConfigDir::new(&global.config_dir()).save(&url, &token)?;
    output::line(format!(
        "Welcome to Coder, {}! You're authenticated.",
        me.username
    ))?;
    Ok(ExitCode::SUCCESS)
}

async fn create_first_user(client: &Client, args: &LoginArgs, interactive: bool) -> Result<Secret> {
    let given = (
        args.first_user_username.clone(),
        args.first_user_email.clone(),
        args.first_user_password.clone(),
    );
    let (username, email, password) = match given {
        (Some(username), Some(email), Some(password)) => (username, email, Secret::new(password)),
        _ if interactive => {
            output::note("Your Coder deployment hasn't been set up!");
            let default_name = std::env::var("USER").unwrap_or_default();
            let username = ask("What username would you like? ", &default_name)?;
            let email = ask("What's your email? ", "")?;
            let password = ask_secret("Enter a password: ")?;
            let confirm = ask_secret("Confirm password: ")?;
            if password != confirm {
                bail!("the passwords do not match");
            }
            (username, email, password)
        }
        _ => {
            return Err(output::hint(
                anyhow::anyhow!("this deployment has no user yet, and this is not a terminal"),
                "pass --first-user-username, --first-user-email and --first-user-password",
            ));
        }
    };
    client
        .create_first_user(&CreateFirstUserRequest {
            email: email.clone(),
            username,
            name: args.first_user_full_name.clone().unwrap_or_default(),
            password: password.clone(),
            trial: args.first_user_trial,
        })
        .await
        .context("creating the first user")?;
    login_with_password(client, email, password).await
}

async fn login_with_password(client: &Client, email: String, password: Secret) -> Result<Secret> {
    let response = client
        .login_with_password(&LoginWithPasswordRequest { email, password })
        .await
        .context("logging in")?;
    Ok(response.session_token)
}

fn ask(question: &str, default: &str) -> Result<String> {
    if default.is_empty() {
        output::prompt(question);
    } else {
        output::prompt(format!("{question}({default}) "));
    }
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("reading your answer")?;
    let answer = answer.trim();
    Ok(if answer.is_empty() { default } else { answer }.to_owned())
}

fn ask_secret(question: &str) -> Result<Secret> {
    rpassword::prompt_password(question)
        .map(Secret::new)
        .context("reading the password")
}

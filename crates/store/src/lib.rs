//! PostgreSQL for the control plane: versioned migrations, every SQL query, and the built-in
//! cluster that runs the system's own PostgreSQL binaries when no URL is given.
//!
//! This crate stands alone (no workspace dependencies) and is used only by `coderd`; no other
//! crate holds SQL text. Rows ([`UserRow`], [`ApiKeyRow`], ...) are plain data and are never
//! serialized: the server converts them to API types by hand. Main types: [`Store`] and
//! [`builtin::BuiltinPostgres`].

mod agents;
mod api_keys;
pub mod builtin;
mod error;
mod files;
mod jobs;
mod organizations;
mod pubsub;
mod templates;
mod users;
mod workspace_proxies;
mod workspaces;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

pub use agents::{AgentLogRow, NewAgentLog, WorkspaceAgentRow};
pub use api_keys::{ApiKeyRow, NewApiKey};
pub use error::Error;
pub use files::FileRow;
pub use jobs::{JOB_POSTED_CHANNEL, JOB_UPDATED_CHANNEL, JobLogRow, JobRow, NewJob, NewJobLog};
pub use organizations::OrganizationRow;
pub use pubsub::{Listener, Notification};
pub use templates::{NewTemplate, TemplateRow, TemplateVersionRow};
pub use users::{NewUser, UserFilter, UserRow};
pub use workspace_proxies::{ProxyRegistration, Registered, WorkspaceProxyRow};
pub use workspaces::{NewWorkspaceBuild, PostBuild, WorkspaceBuildRow, WorkspaceRow};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A handle on the database: a connection pool. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    url: String,
}

impl Store {
    /// Connects to the database at `url` (a `postgres://` URL; `?host=/dir` for a Unix socket).
    ///
    /// Fails within the pool's acquire timeout when the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let options = PgConnectOptions::from_str(url).map_err(Error::InvalidUrl)?;
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(Error::Connect)?;
        Ok(Self {
            pool,
            url: url.to_owned(),
        })
    }

    /// Brings the schema up to date. Safe to run from several servers at once: sqlx holds a
    /// PostgreSQL advisory lock for the whole run, so the second server waits and then finds
    /// nothing left to do.
    pub async fn migrate(&self) -> Result<(), Error> {
        MIGRATOR.run(&self.pool).await.map_err(Error::Migrate)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The URL this store connected to (it may hold a password: never print it).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Closes every connection; later queries fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Creates an empty database `name` on the server at `admin_url` and returns its URL
    /// (test harnesses give each test its own database this way).
    pub async fn create_database(admin_url: &str, name: &str) -> Result<String, Error> {
        use sqlx::ConnectOptions;
        let (options, mut connection) = admin_connection(admin_url, name).await?;
        // `admin_connection` checked the name; identifiers cannot be bound as parameters.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await?;
        let _ = sqlx::Connection::close(connection).await;
        Ok(options.database(name).to_url_lossy().to_string())
    }

    /// Opens or closes the database `name` to connections, ending its current ones when
    /// closing: what a server sees when its database goes away (tests of what must keep
    /// working without it).
    pub async fn set_database_open(admin_url: &str, name: &str, open: bool) -> Result<(), Error> {
        let (_, mut connection) = admin_connection(admin_url, name).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {open}"
        )))
        .execute(&mut connection)
        .await?;
        if !open {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(name)
            .execute(&mut connection)
            .await?;
        }
        let _ = sqlx::Connection::close(connection).await;
        Ok(())
    }

    /// The key app tokens are signed with, made by the first server that asks (racing servers
    /// agree: only one insert wins). `fresh` is the key to store when there is none yet.
    pub async fn app_signing_key(&self, fresh: &str) -> Result<String, Error> {
        sqlx::query(
            "INSERT INTO site_configs (key, value) VALUES ('app_signing_key', $1)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(fresh)
        .execute(&self.pool)
        .await?;
        let key: String =
            sqlx::query_scalar("SELECT value FROM site_configs WHERE key = 'app_signing_key'")
                .fetch_one(&self.pool)
                .await?;
        Ok(key)
    }

    /// The deployment's id, created by the first migration.
    pub async fn deployment_id(&self) -> Result<String, Error> {
        let id: String =
            sqlx::query_scalar("SELECT value FROM site_configs WHERE key = 'deployment_id'")
                .fetch_one(&self.pool)
                .await?;
        Ok(id)
    }
}

/// A connection to the server at `admin_url` for statements about the database `name`, whose
/// name must be a plain identifier (it is spliced into SQL: identifiers cannot be parameters).
async fn admin_connection(
    admin_url: &str,
    name: &str,
) -> Result<(PgConnectOptions, sqlx::PgConnection), Error> {
    use sqlx::Connection;
    if !name
        .bytes()
        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
    {
        return Err(Error::Query(sqlx::Error::Protocol(format!(
            "invalid database name {name:?}"
        ))));
    }
    let options = PgConnectOptions::from_str(admin_url).map_err(Error::InvalidUrl)?;
    let connection = sqlx::PgConnection::connect_with(&options)
        .await
        .map_err(Error::Connect)?;
    Ok((options, connection))
}

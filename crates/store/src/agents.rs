//! Workspace agents: created for a started build, found by their token's hash, and the
//! lifecycle, heartbeats and logs they report.

use chrono::{DateTime, Utc};
use serde_json::Value as JsonValue;
use uuid::Uuid;

use crate::{Error, Store};

/// A row of `workspace_agents`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct WorkspaceAgentRow {
    pub id: Uuid,
    pub build_id: Uuid,
    pub name: String,
    pub auth_token_hash: Vec<u8>,
    pub settings: JsonValue,
    pub lifecycle_state: String,
    pub version: String,
    pub first_connected_at: Option<DateTime<Utc>>,
    pub last_connected_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub connection_count: i32,
    pub last_connection_path: String,
    pub last_connection_at: Option<DateTime<Utc>>,
    pub app_health: JsonValue,
    pub rx_bytes: i64,
    pub tx_bytes: i64,
}

/// A row of `workspace_agent_logs`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AgentLogRow {
    pub id: i64,
    pub agent_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub source: String,
    pub level: String,
    pub output: String,
}

/// A log line to append.
#[derive(Clone, Debug)]
pub struct NewAgentLog {
    pub source: String,
    pub level: String,
    pub output: String,
}

impl Store {
    /// Creates the agent of a build (once; a second call changes nothing).
    pub async fn insert_workspace_agent(
        &self,
        build_id: Uuid,
        auth_token_hash: &[u8],
        settings: &JsonValue,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO workspace_agents (id, build_id, auth_token_hash, settings)
             VALUES ($1, $2, $3, $4) ON CONFLICT (build_id) DO NOTHING",
        )
        .bind(Uuid::new_v4())
        .bind(build_id)
        .bind(auth_token_hash)
        .bind(settings)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The agent whose token hashes to `hash`.
    pub async fn workspace_agent_by_token_hash(
        &self,
        hash: &[u8],
    ) -> Result<Option<WorkspaceAgentRow>, Error> {
        Ok(
            sqlx::query_as("SELECT * FROM workspace_agents WHERE auth_token_hash = $1")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The agent with this id.
    pub async fn workspace_agent(&self, id: Uuid) -> Result<Option<WorkspaceAgentRow>, Error> {
        Ok(
            sqlx::query_as("SELECT * FROM workspace_agents WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The agent of a build, if it has one.
    pub async fn workspace_agent_by_build(
        &self,
        build_id: Uuid,
    ) -> Result<Option<WorkspaceAgentRow>, Error> {
        Ok(
            sqlx::query_as("SELECT * FROM workspace_agents WHERE build_id = $1")
                .bind(build_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Records that the agent is alive, and its version when given.
    pub async fn touch_workspace_agent(
        &self,
        id: Uuid,
        version: Option<&str>,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE workspace_agents
             SET last_connected_at = now(), first_connected_at = coalesce(first_connected_at, now()),
                 version = coalesce($2, version), updated_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .bind(version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records what the agent reports about its tunnels: how many are open, the path of the
    /// latest (`last_at` is when that connection was made), and bytes received and sent.
    pub async fn record_agent_connections(
        &self,
        id: Uuid,
        open: i32,
        last_path: &str,
        last_at: Option<DateTime<Utc>>,
        traffic: (i64, i64),
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE workspace_agents
             SET connection_count = $2,
                 last_connection_path = CASE WHEN $3 = '' THEN last_connection_path ELSE $3 END,
                 last_connection_at = coalesce($4, last_connection_at),
                 rx_bytes = $5, tx_bytes = $6
             WHERE id = $1",
        )
        .bind(id)
        .bind(open)
        .bind(last_path)
        .bind(last_at)
        .bind(traffic.0)
        .bind(traffic.1)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces the agent's report of its apps' health (slug → status).
    pub async fn set_agent_app_health(&self, id: Uuid, health: &JsonValue) -> Result<(), Error> {
        sqlx::query(
            "UPDATE workspace_agents SET app_health = $2, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(health)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the agent's lifecycle state.
    pub async fn set_workspace_agent_lifecycle(&self, id: Uuid, state: &str) -> Result<(), Error> {
        sqlx::query(
            "UPDATE workspace_agents SET lifecycle_state = $2, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(state)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Appends log lines from the agent.
    pub async fn append_agent_logs(
        &self,
        agent_id: Uuid,
        logs: &[NewAgentLog],
    ) -> Result<(), Error> {
        if logs.is_empty() {
            return Ok(());
        }
        let sources: Vec<&str> = logs.iter().map(|log| log.source.as_str()).collect();
        let levels: Vec<&str> = logs.iter().map(|log| log.level.as_str()).collect();
        let outputs: Vec<&str> = logs.iter().map(|log| log.output.as_str()).collect();
        sqlx::query(
            "INSERT INTO workspace_agent_logs (agent_id, source, level, output)
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[])",
        )
        .bind(agent_id)
        .bind(&sources)
        .bind(&levels)
        .bind(&outputs)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An agent's log lines after `after`, in order.
    pub async fn agent_logs(&self, agent_id: Uuid, after: i64) -> Result<Vec<AgentLogRow>, Error> {
        Ok(sqlx::query_as(
            "SELECT * FROM workspace_agent_logs WHERE agent_id = $1 AND id > $2 ORDER BY id",
        )
        .bind(agent_id)
        .bind(after)
        .fetch_all(&self.pool)
        .await?)
    }
}

//! `GET /api/v2/debug/health` (owners): the deployment checked from the server's side, what
//! the dashboard's health page shows. Each check says healthy or not, one summary line, the
//! error when there is one, and warnings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::auth::CurrentUser;
use crate::authz::{Action, Resource};
use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/debug/health", get(health))
}

/// A job waiting longer than this for a provisioner is worth a warning.
const PENDING_WARNING: Duration = Duration::from_secs(60);
const ACCESS_URL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Serialize)]
struct Report {
    healthy: bool,
    checked_at: DateTime<Utc>,
    version: &'static str,
    checks: BTreeMap<&'static str, Check>,
}

#[derive(Serialize, Default)]
struct Check {
    healthy: bool,
    summary: String,
    error: String,
    warnings: Vec<String>,
}

impl Check {
    fn ok(summary: String) -> Self {
        Self {
            healthy: true,
            summary,
            ..Self::default()
        }
    }

    fn failed(summary: &str, error: String) -> Self {
        Self {
            healthy: false,
            summary: summary.to_owned(),
            error,
            ..Self::default()
        }
    }
}

async fn health(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<Report>, ApiError> {
    current
        .subject
        .authorize(Action::Read, Resource::Deployment)?;
    let (database, access_url, relay, proxies, provisioners) = tokio::join!(
        database(&state),
        access_url(&state),
        relay(&state),
        proxies(&state),
        provisioners(&state),
    );
    let checks = BTreeMap::from([
        ("database", database),
        ("access_url", access_url),
        ("relay", relay),
        ("workspace_proxy", proxies),
        ("provisioners", provisioners),
    ]);
    Ok(Json(Report {
        healthy: checks.values().all(|check| check.healthy),
        checked_at: Utc::now(),
        version: crate::VERSION,
        checks,
    }))
}

async fn database(state: &AppState) -> Check {
    let started = Instant::now();
    match state.store.ping().await {
        Ok(()) => Check::ok(format!(
            "PostgreSQL answers in {:.1} ms.",
            started.elapsed().as_secs_f64() * 1000.0
        )),
        Err(err) => Check::failed("PostgreSQL does not answer.", err.to_string()),
    }
}

/// What users and agents reach: this server's own /healthz through the access URL.
async fn access_url(state: &AppState) -> Check {
    let url = state.config.access_url.clone();
    let Ok(healthz) = url.join("/healthz") else {
        return Check::failed("The access URL is not usable.", url.to_string());
    };
    let client = match reqwest::Client::builder()
        .timeout(ACCESS_URL_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(err) => return Check::failed("No HTTP client.", err.to_string()),
    };
    let started = Instant::now();
    match client.get(healthz.clone()).send().await {
        Ok(response) if response.status().is_success() => Check::ok(format!(
            "{} answers in {:.1} ms.",
            url.as_str().trim_end_matches('/'),
            started.elapsed().as_secs_f64() * 1000.0
        )),
        Ok(response) => Check::failed(
            "The access URL answers with an error.",
            format!("GET {healthz}: {}", response.status()),
        ),
        Err(err) => Check::failed(
            "The access URL cannot be reached from the server.",
            format!("GET {healthz}: {err}"),
        ),
    }
}

async fn relay(state: &AppState) -> Check {
    let map = match super::workspace_proxies::relay_map(state).await {
        Ok(map) => map,
        Err(err) => return Check::failed("The relay map cannot be built.", err.user_text()),
    };
    let names: Vec<String> = map
        .regions
        .values()
        .map(|region| format!("{} ({})", region.region_name, region.region_id))
        .collect();
    if !tunnel::relay_map::has_relay(&map) {
        return Check::failed(
            "No relay: tunnels that cannot go direct fail.",
            "the relay map has no relay; enable --derp-server-enable or run a workspace proxy"
                .into(),
        );
    }
    let mut check = Check::ok(format!(
        "{} relay region{}: {}.",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    ));
    if let Some(relay) = &state.relay {
        let stats = relay.stats();
        check.summary.push_str(&format!(
            " The embedded relay has {} client{} connected.",
            stats.accepts.saturating_sub(stats.disconnects),
            if stats.accepts.saturating_sub(stats.disconnects) == 1 {
                ""
            } else {
                "s"
            }
        ));
    }
    if state.config.block_direct_connections {
        check
            .warnings
            .push("Direct connections are blocked: every tunnel is relayed.".into());
    }
    check
}

async fn proxies(state: &AppState) -> Check {
    let rows = match state.store.workspace_proxies().await {
        Ok(rows) => rows,
        Err(err) => return Check::failed("Workspace proxies cannot be listed.", err.to_string()),
    };
    let mut failing = Vec::new();
    let mut warnings = Vec::new();
    for row in &rows {
        let status = state.proxy_health.status(row);
        match status.status {
            sdk::ProxyHealthStatus::Ok
            | sdk::ProxyHealthStatus::Unregistered
            | sdk::ProxyHealthStatus::Unknown => {}
            other => {
                let why = status.report.errors.join("; ");
                failing.push(format!(
                    "{}: {}{}",
                    row.name,
                    other.as_str(),
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({why})")
                    }
                ));
            }
        }
        warnings.extend(
            status
                .report
                .warnings
                .iter()
                .map(|warning| format!("{}: {warning}", row.name)),
        );
    }
    let mut check = if rows.is_empty() {
        Check::ok("No workspace proxies: the primary serves every region.".into())
    } else if failing.is_empty() {
        Check::ok(format!(
            "{} workspace prox{}, none failing.",
            rows.len(),
            if rows.len() == 1 { "y" } else { "ies" }
        ))
    } else {
        Check::failed(
            "Some workspace proxies are failing; their users fall back to the primary.",
            failing.join("; "),
        )
    };
    check.warnings = warnings;
    check
}

async fn provisioners(state: &AppState) -> Check {
    match state.store.pending_jobs().await {
        Ok((0, _)) => Check::ok("No jobs are waiting for a provisioner.".into()),
        Ok((count, oldest)) if Duration::from_secs_f64(oldest) > PENDING_WARNING => {
            let mut check = Check::ok(format!("{count} job(s) waiting for a provisioner."));
            check.warnings.push(format!(
                "The oldest has waited {oldest:.0} s: are provisioners with matching tags running?"
            ));
            check
        }
        Ok((count, _)) => Check::ok(format!("{count} job(s) waiting for a provisioner.")),
        Err(err) => Check::failed("The job queue cannot be read.", err.to_string()),
    }
}

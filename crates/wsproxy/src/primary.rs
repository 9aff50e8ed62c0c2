//! The proxy and its primary: registering (at start, then every 15 s), deregistering on a clean
//! stop, and the health report the primary fetches to decide whether users may use us.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use sdk::client::ClientError;
use sdk::{ProxyHealthReport, RegisterWorkspaceProxyRequest, RegisterWorkspaceProxyResponse};
use tokio_util::sync::CancellationToken;

use crate::{Registered, State};

/// How often a running proxy checks in.
const REGISTER_INTERVAL: Duration = Duration::from_secs(15);
/// How long one registration may take.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
/// Consecutive failed re-registrations after which the proxy stops (the primary has long since
/// stopped sending users here).
const MAX_FAILURES: u32 = 10;
/// How long the first registration keeps retrying an unreachable primary.
const FIRST_REGISTRATION_PATIENCE: Duration = Duration::from_secs(30);
/// How long the health report waits for the primary.
const PRIMARY_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why registering failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("the primary refused the proxy token: {0}")]
    BadToken(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the primary refused the registration: {0}")]
    Refused(String),
    #[error("registering with the primary failed: {0}")]
    Failed(String),
    #[error("the primary's answer is unusable: {0}")]
    BadAnswer(String),
}

fn request(state: &State) -> RegisterWorkspaceProxyRequest {
    let wildcard = state
        .config
        .wildcard_access_url
        .as_deref()
        .unwrap_or_default()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .to_owned();
    RegisterWorkspaceProxyRequest {
        access_url: state
            .config
            .access_url
            .as_str()
            .trim_end_matches('/')
            .to_owned(),
        wildcard_hostname: wildcard,
        derp_enabled: state.config.relay_enabled,
        derp_only: state.config.derp_only,
        replica_id: state.replica_id,
        hostname: hostname(),
        version: state.config.version.clone(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

async fn register(state: &State) -> Result<RegisterWorkspaceProxyResponse, RegistrationError> {
    let body = request(state);
    let attempt = state.primary.register_workspace_proxy(&body);
    match tokio::time::timeout(REGISTER_TIMEOUT, attempt).await {
        Err(_) => Err(RegistrationError::Failed("timed out".into())),
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(err)) => Err(match &err {
            ClientError::Api { status: 401, .. } => RegistrationError::BadToken(err.to_string()),
            ClientError::Api { status: 409, .. } => RegistrationError::Conflict(err.to_string()),
            ClientError::Api { status, .. } if *status < 500 => {
                RegistrationError::Refused(err.to_string())
            }
            _ => RegistrationError::Failed(error_chain(&err)),
        }),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The first registration: sets up what serving apps needs. An unreachable primary is retried
/// for a while; a refusal (bad token, another instance holding it) is final.
pub(crate) async fn register_first(
    state: &State,
) -> Result<RegisterWorkspaceProxyResponse, RegistrationError> {
    let deadline = tokio::time::Instant::now() + FIRST_REGISTRATION_PATIENCE;
    let answer = loop {
        match register(state).await {
            Ok(answer) => break answer,
            Err(RegistrationError::Failed(reason)) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%reason, "registering with the primary failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(err) => return Err(err),
        }
    };
    let key = hex::decode(answer.app_signing_key.expose())
        .map_err(|_| RegistrationError::BadAnswer("the app signing key is not hex".into()))?;
    let agents = apps::agents::AgentConnector::new(
        crate::addresses::Remote::new(state.primary.clone()),
        answer.derp_map.clone(),
        !state.config.block_direct_connections,
    );
    let _ = state.registered.set(Registered {
        signer: apps::tokens::Signer::new(&key),
        app_client: apps::client::client(agents.clone()),
        agents,
        deployment_id: answer.deployment_id.clone(),
    });
    Ok(answer)
}

/// Re-registers every 15 s; after too many failures in a row, reports why on `failed`.
pub(crate) async fn keep_registered(
    state: Arc<State>,
    cancel: CancellationToken,
    failed: tokio::sync::watch::Sender<Option<String>>,
) {
    let mut failures = 0;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(REGISTER_INTERVAL) => {}
        }
        match register(&state).await {
            Ok(_) => {
                failures = 0;
                *state
                    .registration_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
            }
            Err(err) => {
                failures += 1;
                tracing::warn!(error = %err, failures, "re-registering with the primary failed");
                *state
                    .registration_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(err.to_string());
                if failures > MAX_FAILURES {
                    let _ = failed.send(Some(format!(
                        "failed to re-register with the primary {failures} times in a row: {err}"
                    )));
                    return;
                }
            }
        }
    }
}

/// Tells the primary this instance is gone (best effort: a stop must not hang on it).
pub(crate) async fn deregister(state: &State) {
    let request = sdk::DeregisterWorkspaceProxyRequest {
        replica_id: state.replica_id,
    };
    let attempt = state.primary.deregister_workspace_proxy(&request);
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(())) => tracing::info!("deregistered from the primary"),
        Ok(Err(err)) => tracing::warn!(error = %err, "deregistering from the primary failed"),
        Err(_) => tracing::warn!("deregistering from the primary timed out"),
    }
}

/// What `/healthz-report` says: errors make the primary mark us unhealthy; warnings don't.
pub(crate) async fn health_report(state: &State) -> ProxyHealthReport {
    let mut report = ProxyHealthReport::default();
    if let Some(error) = state
        .registration_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
    {
        report.errors.push(error);
    }
    match tokio::time::timeout(PRIMARY_CHECK_TIMEOUT, state.primary.build_info()).await {
        Err(_) => report.errors.push(format!(
            "the primary at {} did not answer within 5 s",
            state.config.primary_access_url
        )),
        Ok(Err(err)) => report.errors.push(format!(
            "cannot reach the primary at {}: {}",
            state.config.primary_access_url,
            error_chain(&err)
        )),
        Ok(Ok(info)) if info.workspace_proxy => report.errors.push(format!(
            "{} is a workspace proxy, not the primary",
            state.config.primary_access_url
        )),
        Ok(Ok(info)) if info.version != state.config.version => report.warnings.push(format!(
            "this proxy runs version {}, the primary {}",
            state.config.version, info.version
        )),
        Ok(Ok(_)) => {}
    }
    report
}

//! App health: each app with a healthcheck is probed every `interval` seconds; it is
//! `initializing` until its first good answer (2xx or 3xx), `healthy` while they keep coming,
//! and `unhealthy` after `threshold` failures in a row. Apps without a healthcheck are
//! `disabled`. Changes are reported to the server as the whole map.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sdk::client::Client;
use sdk::{AgentApp, AppHealthRequest};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A probe that takes longer than this failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Probes the apps and reports their health until `stop` fires.
pub(crate) async fn watch(client: Client, apps: Vec<AgentApp>, stop: CancellationToken) {
    if apps.is_empty() {
        return;
    }
    let healths: Arc<Mutex<BTreeMap<String, String>>> = Arc::new(Mutex::new(
        apps.iter()
            .map(|app| {
                let initial = if app.healthcheck.is_some() {
                    "initializing"
                } else {
                    "disabled"
                };
                (app.slug.clone(), initial.to_owned())
            })
            .collect(),
    ));
    let changed = Arc::new(Notify::new());
    changed.notify_one();
    let http = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build();
    let Ok(http) = http else {
        tracing::warn!("app health checks are off: no HTTP client");
        return;
    };
    let mut probes = tokio::task::JoinSet::new();
    for app in apps {
        let Some(check) = app.healthcheck.clone() else {
            continue;
        };
        let (http, healths, changed) = (http.clone(), healths.clone(), changed.clone());
        probes.spawn(async move {
            let mut interval =
                tokio::time::interval(Duration::from_secs(u64::from(check.interval.max(1))));
            let mut failures = 0u32;
            loop {
                interval.tick().await;
                let good = http
                    .get(&check.url)
                    .send()
                    .await
                    .is_ok_and(|response| response.status().as_u16() < 400);
                let mut map = healths.lock().unwrap_or_else(PoisonError::into_inner);
                let current = map.get(&app.slug).cloned().unwrap_or_default();
                let next = if good {
                    failures = 0;
                    "healthy"
                } else {
                    failures += 1;
                    if current == "healthy" && failures < check.threshold.max(1) {
                        "healthy"
                    } else if current == "initializing" && failures < check.threshold.max(1) {
                        "initializing"
                    } else {
                        "unhealthy"
                    }
                };
                if current != next {
                    tracing::info!(app = %app.slug, from = %current, to = next, "app health changed");
                    map.insert(app.slug.clone(), next.to_owned());
                    changed.notify_one();
                }
            }
        });
    }
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = changed.notified() => {}
        }
        let request = AppHealthRequest {
            healths: healths
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        };
        if let Err(err) = client.agent_report_app_health(&request).await {
            tracing::warn!(error = %err, "reporting app health failed; retrying");
            tokio::time::sleep(Duration::from_secs(2)).await;
            changed.notify_one();
        }
    }
    probes.abort_all();
}

//! The primary's view of its workspace proxies: every `--proxy-health-interval` (and soon after
//! a proxy is created, changed, registers or leaves) it fetches each registered proxy's
//! `/healthz-report` and derives a status: `unregistered` (never deployed), `unreachable` (no
//! answer), `unhealthy` (answers with errors, or is not a proxy) or `ok`.
//!
//! Statuses live in memory, per server: every replica checks for itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use sdk::{ProxyHealthReport, ProxyHealthStatus, WorkspaceProxyStatus};
use store::{Store, WorkspaceProxyRow};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metrics::Metrics;

/// How long one proxy may take to answer its health report.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How many proxies are checked at once.
const PARALLEL_CHECKS: usize = 5;
/// How soon after a change the next round runs (changes come in bursts: create, register).
const REFRESH_DELAY: Duration = Duration::from_millis(200);

/// The proxies' last statuses, and the loop that refreshes them. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ProxyHealth {
    inner: Arc<Inner>,
}

struct Inner {
    statuses: Mutex<HashMap<Uuid, WorkspaceProxyStatus>>,
    wake: Notify,
    /// Bumped after every finished round, for waiters of [`ProxyHealth::refreshed`].
    rounds: tokio::sync::watch::Sender<u64>,
    interval: Duration,
}

impl ProxyHealth {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                statuses: Mutex::default(),
                wake: Notify::new(),
                rounds: tokio::sync::watch::Sender::new(0),
                interval,
            }),
        }
    }

    /// A proxy's status as last checked (`unregistered` if it never registered).
    pub(crate) fn status(&self, proxy: &WorkspaceProxyRow) -> WorkspaceProxyStatus {
        if proxy.url.is_empty() {
            return WorkspaceProxyStatus {
                status: ProxyHealthStatus::Unregistered,
                report: ProxyHealthReport::default(),
                checked_at: None,
            };
        }
        self.inner
            .statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&proxy.id)
            .cloned()
            .unwrap_or(WorkspaceProxyStatus {
                status: ProxyHealthStatus::Unknown,
                report: ProxyHealthReport::default(),
                checked_at: None,
            })
    }

    /// Whether the proxy is usable now.
    pub(crate) fn healthy(&self, proxy: &WorkspaceProxyRow) -> bool {
        self.status(proxy).status == ProxyHealthStatus::Ok
    }

    /// Asks for a round of checks now rather than at the next interval.
    pub(crate) fn refresh_soon(&self) {
        self.inner.wake.notify_one();
    }

    /// Asks for a round and waits (up to `limit`) until one that started after this call ends.
    pub(crate) async fn refresh(&self, limit: Duration) {
        let mut rounds = self.inner.rounds.subscribe();
        let seen = *rounds.borrow_and_update();
        self.refresh_soon();
        let _ = tokio::time::timeout(limit, async {
            // The round in flight may have started before the change: wait for the next one.
            while rounds.changed().await.is_ok() {
                if *rounds.borrow() >= seen + 2 {
                    return;
                }
                self.refresh_soon();
            }
        })
        .await;
    }

    /// Checks every proxy until `shutdown`.
    pub(crate) async fn run(
        self,
        store: Store,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) {
        let http = match reqwest::Client::builder()
            .timeout(CHECK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(format!("coderd/{} proxy-health", crate::VERSION))
            .build()
        {
            Ok(http) => http,
            Err(err) => {
                tracing::error!(error = %err, "workspace proxy health checks are off: no HTTP client");
                return;
            }
        };
        loop {
            let started = Instant::now();
            match store.workspace_proxies().await {
                Ok(proxies) => {
                    let results = self.round(&http, proxies).await;
                    metrics.proxy_checks(started.elapsed(), &results);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "listing workspace proxies for health checks failed")
                }
            }
            self.inner.rounds.send_modify(|round| *round += 1);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.inner.interval) => {}
                () = self.inner.wake.notified() => tokio::time::sleep(REFRESH_DELAY).await,
            }
        }
    }

    async fn round(
        &self,
        http: &reqwest::Client,
        proxies: Vec<WorkspaceProxyRow>,
    ) -> Vec<(Uuid, ProxyHealthStatus)> {
        let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL_CHECKS));
        let mut checks = tokio::task::JoinSet::new();
        let mut results = Vec::new();
        for proxy in proxies {
            if proxy.url.is_empty() {
                results.push((proxy.id, ProxyHealthStatus::Unregistered));
                continue;
            }
            let (http, limit) = (http.clone(), limit.clone());
            checks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                (proxy.id, check(&http, &proxy.url).await)
            });
        }
        let mut fresh = HashMap::new();
        while let Some(joined) = checks.join_next().await {
            if let Ok((id, status)) = joined {
                results.push((id, status.status));
                fresh.insert(id, status);
            }
        }
        *self
            .inner
            .statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = fresh;
        results
    }
}

/// One proxy's health, from its `/healthz-report`.
async fn check(http: &reqwest::Client, url: &str) -> WorkspaceProxyStatus {
    let status = |status, errors: Vec<String>, warnings: Vec<String>| WorkspaceProxyStatus {
        status,
        report: ProxyHealthReport { errors, warnings },
        checked_at: Some(Utc::now()),
    };
    let report_url = format!("{}/healthz-report", url.trim_end_matches('/'));
    let response = match http.get(&report_url).send().await {
        Ok(response) => response,
        Err(err) => {
            let mut message = format!("request to proxy failed: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            return status(ProxyHealthStatus::Unreachable, vec![message], Vec::new());
        }
    };
    let code = response.status();
    let is_coder = response.headers().contains_key("x-coder-build-version");
    let body = response.bytes().await.unwrap_or_default();
    let not_a_proxy = || {
        status(
            ProxyHealthStatus::Unhealthy,
            vec![format!(
                "{url} answers as a Coder server but not as a workspace proxy; is it a primary?"
            )],
            Vec::new(),
        )
    };
    if code == reqwest::StatusCode::NOT_FOUND && is_coder {
        return not_a_proxy();
    }
    if !code.is_success() {
        let detail = serde_json::from_slice::<sdk::Response>(&body)
            .map(|answer| answer.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
        return status(
            ProxyHealthStatus::Unhealthy,
            vec![format!(
                "the proxy's health report answered {code}: {}",
                detail.trim()
            )],
            Vec::new(),
        );
    }
    match serde_json::from_slice::<ProxyHealthReport>(&body) {
        Ok(report) if report.errors.is_empty() => {
            status(ProxyHealthStatus::Ok, Vec::new(), report.warnings)
        }
        Ok(report) => status(ProxyHealthStatus::Unhealthy, report.errors, report.warnings),
        Err(_) if is_coder => not_a_proxy(),
        Err(_) => status(
            ProxyHealthStatus::Unhealthy,
            vec![format!("{url} does not answer as a Coder workspace proxy")],
            Vec::new(),
        ),
    }
}

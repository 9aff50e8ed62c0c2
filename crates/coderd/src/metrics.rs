//! The server's Prometheus metrics: HTTP requests (`httpd::metrics`, Coder's names) and the
//! workspace proxies' health checks.

use std::sync::Arc;

use axum::Router;
use httpd::metrics::HttpMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProxyLabels {
    proxy_id: String,
}

/// The server's metrics registry.
pub struct Metrics {
    registry: Registry,
    http: Arc<HttpMetrics>,
    proxy_check_duration: Histogram,
    proxy_check_results: Family<ProxyLabels, Gauge>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let http = Arc::new(HttpMetrics::register(&mut registry));
        let proxy_check_duration = httpd::metrics::latency_histogram();
        let proxy_check_results = Family::<ProxyLabels, Gauge>::default();
        registry.register(
            "coderd_proxyhealth_health_check_duration_seconds",
            "How long each round of workspace proxy health checks took",
            proxy_check_duration.clone(),
        );
        registry.register(
            "coderd_proxyhealth_health_check_results",
            "Each workspace proxy's last health: -3 unknown, -2 unreachable, -1 unhealthy, 0 unregistered, 1 ok",
            proxy_check_results.clone(),
        );
        Self {
            registry,
            http,
            proxy_check_duration,
            proxy_check_results,
        }
    }

    /// The HTTP request metrics, for the router's middleware.
    pub(crate) fn http(&self) -> Arc<HttpMetrics> {
        self.http.clone()
    }

    /// Records a round of proxy health checks and each proxy's result.
    pub(crate) fn proxy_checks(
        &self,
        took: std::time::Duration,
        results: &[(uuid::Uuid, sdk::ProxyHealthStatus)],
    ) {
        self.proxy_check_duration.observe(took.as_secs_f64());
        self.proxy_check_results.clear();
        for (id, status) in results {
            let value = match status {
                sdk::ProxyHealthStatus::Unknown => -3,
                sdk::ProxyHealthStatus::Unreachable => -2,
                sdk::ProxyHealthStatus::Unhealthy => -1,
                sdk::ProxyHealthStatus::Unregistered => 0,
                sdk::ProxyHealthStatus::Ok => 1,
            };
            self.proxy_check_results
                .get_or_create(&ProxyLabels {
                    proxy_id: id.to_string(),
                })
                .set(value);
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        httpd::metrics::encode(&self.registry)
    }
}

/// The router of the Prometheus listener: the metrics at `/metrics` (and `/`).
pub fn router(metrics: Arc<Metrics>) -> Router {
    httpd::metrics::router(move || metrics.encode())
}

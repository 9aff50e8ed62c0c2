//! HTTP request metrics with Coder's names (`coderd_api_*`), recorded by a middleware under each
//! route's template, and the Prometheus listener's router.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets in seconds, as Coder uses for its API.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    code: u16,
    method: String,
    path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    path: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// A latency histogram with [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Requests processed, their latencies, and how many are in flight.
pub struct HttpMetrics {
    requests_processed: Family<RequestLabels, Counter>,
    request_latencies: HistogramFamily,
    concurrent_requests: Gauge,
}

impl HttpMetrics {
    /// The metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let requests_processed = Family::<RequestLabels, Counter>::default();
        let request_latencies: HistogramFamily =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let concurrent_requests = Gauge::default();
        // prometheus-client appends `_total` to counters.
        registry.register(
            "coderd_api_requests_processed",
            "The total number of processed API requests",
            requests_processed.clone(),
        );
        registry.register(
            "coderd_api_request_latencies_seconds",
            "Latency distribution of requests in seconds",
            request_latencies.clone(),
        );
        registry.register(
            "coderd_api_concurrent_requests",
            "The number of concurrent API requests",
            concurrent_requests.clone(),
        );
        Self {
            requests_processed,
            request_latencies,
            concurrent_requests,
        }
    }
}

/// `registry` in the OpenMetrics text format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(err) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(error = %err, "encoding metrics failed");
    }
    text
}

/// Decrements the concurrency gauge even when the request is cancelled.
struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Records every routed request under its route template (never the raw path, which would
/// make one series per user or id).
pub async fn track(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    metrics.concurrent_requests.inc();
    let in_flight = InFlight(&metrics.concurrent_requests);
    let started = Instant::now();
    let response = next.run(request).await;
    drop(in_flight);
    metrics
        .request_latencies
        .get_or_create(&RouteLabels {
            method: method.clone(),
            path: path.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests_processed
        .get_or_create(&RequestLabels {
            code: response.status().as_u16(),
            method,
            path,
        })
        .inc();
    response
}

/// The router of a Prometheus listener: `encode()`'s text at `/metrics` (and `/`).
pub fn router(encode: impl Fn() -> String + Clone + Send + Sync + 'static) -> Router {
    let handler = move || {
        let text = encode();
        async move {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                text,
            )
                .into_response()
        }
    };
    Router::new()
        .route("/metrics", get(handler.clone()))
        .route("/", get(handler))
}

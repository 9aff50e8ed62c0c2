//! The server in-process on real PostgreSQL, driven over HTTP as clients do.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

mod api;
mod auth;
mod authz;
mod database;
mod relay;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use testkit::TestServer;

/// Sends a raw request and returns the status and JSON body (`Null` when not JSON).
async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, server.url.join(path).unwrap());
    if let Some(token) = token {
        request = request.header(sdk::SESSION_TOKEN_HEADER, token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

//! API conventions: error bodies, limits, headers, health, build info, metrics.

use reqwest::{Method, StatusCode};
use serde_json::json;
use testkit::TestServer;

use crate::send;

#[tokio::test]
async fn build_info_and_health_need_no_session() {
    let server = TestServer::start().await;
    let info = server.client().build_info().await.unwrap();
    assert_eq!(info.version, coderd::VERSION);
    assert!(!info.workspace_proxy);
    assert_eq!(info.external_url, server.url.as_str().trim_end_matches('/'));
    assert_eq!(info.deployment_id.len(), 36);

    let response = reqwest::get(server.url.join("/healthz").unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-coder-build-version"], coderd::VERSION);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["x-request-id"].len(), 36);
    assert_eq!(response.text().await.unwrap(), "OK");
}

#[tokio::test]
async fn malformed_and_oversized_bodies_get_clear_errors() {
    let server = TestServer::start().await;
    let url = server.url.join("/api/v2/users/login").unwrap();
    let client = reqwest::Client::new();

    let response = client
        .post(url.clone())
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Request body must be valid JSON.");
    assert!(body["detail"].as_str().unwrap().contains("EOF"), "{body}");

    let (status, body) = send(
        &server,
        Method::POST,
        "/api/v2/users/login",
        None,
        Some(json!({"email": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Request body has the wrong shape.");

    let response = client.post(url.clone()).body("{}").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let huge = format!(
        "{{\"email\": \"{}\", \"password\": \"x\"}}",
        "a".repeat(2 << 20)
    );
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Request body is too large.");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let server = TestServer::start().await;
    let (status, body) = send(&server, Method::GET, "/api/v2/nope", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Route not found.");
    let (status, body) = send(&server, Method::DELETE, "/api/v2/buildinfo", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["message"], "Method not allowed on this route.");
}

#[tokio::test]
async fn metrics_use_coders_names_and_route_templates() {
    let server = TestServer::start().await;
    let admin = server.first_user().await;
    admin.client.user("admin").await.unwrap();
    let text = reqwest::get(server.metrics_url.clone())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"coderd_api_requests_processed_total{code="200",method="GET",path="/api/v2/users/{user}"} 2"#),
        "{text}"
    );
    assert!(
        text.contains("# TYPE coderd_api_request_latencies_seconds histogram"),
        "{text}"
    );
    assert!(text.contains("coderd_api_concurrent_requests 0"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn template_sources_are_size_limited_and_deduplicated() {
    let server = TestServer::start().await;
    let admin = server.first_user().await;
    let response = reqwest::Client::new()
        .post(server.url.join("/api/v2/files").unwrap())
        .header(sdk::SESSION_TOKEN_HEADER, admin.token.expose())
        .header("content-type", sdk::TAR_MIME_TYPE)
        .body(vec![0u8; (10 << 20) + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["message"], "The file is too large.");

    let first = admin
        .client
        .upload_tar(b"same bytes".to_vec())
        .await
        .unwrap();
    let again = admin
        .client
        .upload_tar(b"same bytes".to_vec())
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    let other = admin
        .client
        .upload_tar(b"other bytes".to_vec())
        .await
        .unwrap();
    assert_ne!(first.id, other.id);
}

#[tokio::test]
async fn disabled_path_apps_say_where_apps_live() {
    let server = TestServer::start_with(|config| config.disable_path_apps = true).await;
    let admin = server.first_user().await;
    let response = reqwest::Client::new()
        .get(server.url.join("/@admin/dev/apps/code/").unwrap())
        .header(sdk::SESSION_TOKEN_HEADER, admin.token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: sdk::Response = response.json().await.unwrap();
    assert!(body.detail.contains("--disable-path-apps"), "{body:?}");
}

#[tokio::test]
async fn the_sign_in_form_keeps_redirects_on_this_server() {
    let server = TestServer::start().await;
    server.first_user().await;
    let form = reqwest::get(
        server
            .url
            .join("/login?redirect=https://evil.example/")
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let html = form.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\" action=\"/login\">"),
        "{html}"
    );
    assert!(
        html.contains("name=\"redirect\" value=\"/\""),
        "an absolute redirect becomes /: {html}"
    );
}

#[tokio::test]
async fn the_dashboard_is_served_for_its_pages_and_a_new_deployment_goes_to_setup() {
    let server = TestServer::start().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| http.get(server.url.join(path).unwrap()).send();

    // No user yet: signing in means setting up.
    let login = get("/login").await.unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    assert_eq!(login.headers()["location"], "/setup");

    for page in [
        "/",
        "/workspaces",
        "/@alice/dev",
        "/templates/local/workspace",
        "/setup",
    ] {
        let response = get(page).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        assert_eq!(
            response.headers()["content-type"],
            "text/html; charset=utf-8"
        );
        assert_eq!(response.headers()["cache-control"], "no-cache");
        let policy = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        let html = response.text().await.unwrap();
        assert!(html.contains("<div id=\"root\">"), "{page}: {html}");
        // The script it names is embedded and cached for good.
        let script = html
            .split('"')
            .find(|part| part.starts_with("/assets/") && part.ends_with(".js"))
            .unwrap()
            .to_owned();
        let asset = get(&script).await.unwrap();
        assert_eq!(asset.status(), StatusCode::OK);
        assert_eq!(
            asset.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert!(
            asset.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
    }
    // Not the dashboard's: a real 404.
    assert_eq!(
        get("/assets/missing.js").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get("/wp-admin").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get("/workspacesX").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // The proxy picker times the primary like a proxy: from any origin.
    let latency = get("/latency-check").await.unwrap();
    assert_eq!(latency.status(), StatusCode::OK);
    assert_eq!(latency.headers()["access-control-allow-origin"], "*");
    assert_eq!(latency.headers()["timing-allow-origin"], "*");
}

#[tokio::test]
async fn owners_read_the_deployment_health_and_members_may_not() {
    let server = TestServer::start().await;
    let owner = server.first_user().await;
    let (status, report) = send(
        &server,
        Method::GET,
        "/api/v2/debug/health",
        Some(owner.token.expose()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let checks = &report["checks"];
    for check in [
        "database",
        "access_url",
        "relay",
        "workspace_proxy",
        "provisioners",
    ] {
        assert!(checks[check]["summary"].is_string(), "{check}: {checks}");
    }
    assert_eq!(checks["database"]["healthy"], true, "{checks}");
    assert_eq!(checks["access_url"]["healthy"], true, "{checks}");
    assert_eq!(checks["workspace_proxy"]["healthy"], true, "{checks}");

    let member = server.user_with_roles(&owner.client, "member", &[]).await;
    let (status, refused) = send(
        &server,
        Method::GET,
        "/api/v2/debug/health",
        Some(member.token.expose()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused["message"].is_string());
}

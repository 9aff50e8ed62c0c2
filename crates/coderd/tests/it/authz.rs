//! The authorization matrix: every endpoint × every role → the status a user sees.

use reqwest::{Method, StatusCode};
use sdk::Role;
use serde_json::{Value, json};
use testkit::TestServer;

use crate::send;

/// The callers, in the order of each row's expected statuses.
const CALLERS: [&str; 5] = [
    "anonymous",
    "member",
    "template-admin",
    "user-admin",
    "owner",
];

struct Case {
    method: Method,
    /// `{target}` is a plain member's username; `{caller}` the caller's own name.
    path: &'static str,
    body: Option<fn(&str) -> Value>,
    expected: [u16; 5],
}

fn case(method: Method, path: &'static str, expected: [u16; 5]) -> Case {
    Case {
        method,
        path,
        body: None,
        expected,
    }
}

fn with_body(
    method: Method,
    path: &'static str,
    body: fn(&str) -> Value,
    expected: [u16; 5],
) -> Case {
    Case {
        method,
        path,
        body: Some(body),
        expected,
    }
}

#[tokio::test]
async fn every_endpoint_by_role() {
    let server = TestServer::start().await;
    let admin = server.first_user().await;
    let member = server.user_with_roles(&admin.client, "member", &[]).await;
    let template_admin = server
        .user_with_roles(&admin.client, "tadmin", &[Role::TemplateAdmin])
        .await;
    let user_admin = server
        .user_with_roles(&admin.client, "uadmin", &[Role::UserAdmin])
        .await;
    server.user_with_roles(&admin.client, "target", &[]).await;
    let callers: [(Option<&str>, &str); 5] = [
        (None, "anonymous"),
        (Some(member.token.expose()), "member"),
        (Some(template_admin.token.expose()), "tadmin"),
        (Some(user_admin.token.expose()), "uadmin"),
        (Some(admin.token.expose()), "admin"),
    ];

    let cases = [
        case(Method::GET, "/healthz", [200, 200, 200, 200, 200]),
        case(Method::GET, "/api/v2/buildinfo", [200, 200, 200, 200, 200]),
        case(
            Method::GET,
            "/api/v2/users/first",
            [200, 200, 200, 200, 200],
        ),
        case(Method::GET, "/api/v2/users/me", [401, 200, 200, 200, 200]),
        case(
            Method::GET,
            "/api/v2/users/{caller}",
            [401, 200, 200, 200, 200],
        ),
        case(Method::GET, "/api/v2/users", [401, 403, 200, 200, 200]),
        with_body(
            Method::POST,
            "/api/v2/users",
            |caller| json!({"email": format!("new-{caller}@example.com"), "username": format!("new-{caller}"), "password": testkit::PASSWORD}),
            [401, 403, 403, 201, 201],
        ),
        case(
            Method::GET,
            "/api/v2/users/{target}",
            [401, 404, 200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/v2/users/{target}/roles",
            [401, 404, 200, 200, 200],
        ),
        case(
            Method::PUT,
            "/api/v2/users/{target}/status/suspend",
            [401, 404, 403, 200, 200],
        ),
        case(
            Method::PUT,
            "/api/v2/users/{target}/status/activate",
            [401, 404, 403, 200, 200],
        ),
        with_body(
            Method::PUT,
            "/api/v2/users/{target}/roles",
            |_| json!({"roles": []}),
            [401, 404, 403, 200, 200],
        ),
        with_body(
            Method::PUT,
            "/api/v2/users/{target}/roles",
            |_| json!({"roles": ["owner"]}),
            [401, 404, 403, 403, 200],
        ),
        with_body(
            Method::PUT,
            "/api/v2/users/{target}/roles",
            |_| json!({"roles": []}),
            [401, 404, 403, 403, 200],
        ),
        case(
            Method::PUT,
            "/api/v2/users/admin/status/suspend",
            [401, 404, 403, 403, 400],
        ),
        case(
            Method::GET,
            "/api/v2/users/me/keys/tokens",
            [401, 200, 200, 200, 200],
        ),
        with_body(
            Method::POST,
            "/api/v2/users/me/keys/tokens",
            |caller| json!({"token_name": format!("mine-{caller}")}),
            [401, 201, 201, 201, 201],
        ),
        case(
            Method::GET,
            "/api/v2/users/{target}/keys/tokens",
            [401, 404, 404, 404, 200],
        ),
        with_body(
            Method::POST,
            "/api/v2/users/{target}/keys/tokens",
            |caller| json!({"token_name": format!("for-target-{caller}")}),
            [401, 404, 404, 404, 201],
        ),
        case(
            Method::GET,
            "/api/v2/users/me/keys/tokens?include_all=true",
            [401, 403, 403, 403, 200],
        ),
        case(
            Method::DELETE,
            "/api/v2/users/{target}/keys/nonexistent",
            [401, 404, 404, 404, 404],
        ),
        case(
            Method::GET,
            "/api/v2/organizations",
            [401, 200, 200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/v2/organizations/coder",
            [401, 200, 200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/v2/experiments",
            [401, 200, 200, 200, 200],
        ),
        case(
            Method::POST,
            "/api/v2/users/logout",
            [401, 200, 200, 200, 200],
        ),
    ];

    let mut mismatches = Vec::new();
    for case in &cases {
        for (idx, (token, caller)) in callers.iter().enumerate() {
            // Logout last, so the other cases keep their sessions.
            let path = case
                .path
                .replace("{target}", "target")
                .replace("{caller}", caller);
            let body = case.body.map(|body| body(caller));
            let (status, response) = send(&server, case.method.clone(), &path, *token, body).await;
            if status != StatusCode::from_u16(case.expected[idx]).unwrap() {
                mismatches.push(format!(
                    "{} {path} as {}: expected {}, got {status} {response}",
                    case.method, CALLERS[idx], case.expected[idx]
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "authorization mismatches:\n{}",
        mismatches.join("\n")
    );
}

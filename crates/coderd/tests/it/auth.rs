//! Authentication: the first user, password login, sessions, cookies, tokens, suspension.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use sdk::{CreateFirstUserRequest, CreateTokenRequest, LoginWithPasswordRequest, Secret};
use serde_json::json;
use testkit::{PASSWORD, TestServer, eventually};

use crate::send;

fn first_user_request(username: &str) -> CreateFirstUserRequest {
    CreateFirstUserRequest {
        email: format!("{username}@example.com"),
        username: username.to_owned(),
        name: String::new(),
        password: Secret::new(PASSWORD),
        trial: false,
    }
}

#[tokio::test]
async fn exactly_one_first_user_even_when_racing() {
    let server = TestServer::start().await;
    let client = server.client();
    assert!(!client.has_first_user().await.unwrap());
    let attempts = (0..8).map(|idx| {
        let client = client.clone();
        async move {
            client
                .create_first_user(&first_user_request(&format!("owner{idx}")))
                .await
        }
    });
    let results = futures_join_all(attempts).await;
    let created = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(created, 1, "{results:?}");
    for result in results.iter().filter_map(|result| result.as_ref().err()) {
        assert_eq!(result.status(), Some(409));
        assert_eq!(
            result.to_string(),
            "The initial user has already been created!"
        );
    }
    assert!(client.has_first_user().await.unwrap());
    let (status, _) = send(&server, Method::GET, "/api/v2/users/first", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

#[tokio::test]
async fn first_user_is_validated() {
    let server = TestServer::start().await;
    let (status, body) = send(
        &server,
        Method::POST,
        "/api/v2/users/first",
        None,
        Some(json!({"email": "not-an-email", "username": "bad name", "password": "short"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Validation failed.");
    let fields: Vec<&str> = body["validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|validation| validation["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["username", "email", "password"]);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let server = TestServer::start().await;
    server.first_user().await;
    for (email, password) in [
        ("admin@example.com", "wrong-password"),
        ("nobody@example.com", PASSWORD),
    ] {
        let (status, body) = send(
            &server,
            Method::POST,
            "/api/v2/users/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, json!({"message": "Incorrect email or password."}));
    }
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_address() {
    let server = TestServer::start_with(|config| config.login_attempts_per_minute = 3).await;
    server.first_user().await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, body) = send(
            &server,
            Method::POST,
            "/api/v2/users/login",
            None,
            Some(json!({"email": "admin@example.com", "password": "guess"})),
        )
        .await;
        statuses.push(status.as_u16());
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["message"], "Too many login attempts.");
        }
    }
    // first_user() used one attempt.
    assert_eq!(statuses, [401, 401, 429, 429]);
}

#[tokio::test]
async fn session_cookie_is_http_only_and_authenticates() {
    let server = TestServer::start().await;
    server.first_user().await;
    let response = reqwest::Client::new()
        .post(server.url.join("/api/v2/users/login").unwrap())
        .json(&json!({"email": "admin@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("coder_session_token="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP access URL: {cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();

    let client = reqwest::Client::new();
    let me = client
        .get(server.url.join("/api/v2/users/me").unwrap())
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);

    // A cookie-authenticated write from another site is refused; from our own origin it works.
    let tokens = server.url.join("/api/v2/users/me/keys/tokens").unwrap();
    let cross_site = client
        .post(tokens.clone())
        .header("cookie", &pair)
        .header("origin", "https://evil.example.com")
        .json(&json!({"token_name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    let same_site = client
        .post(tokens)
        .header("cookie", &pair)
        .header("origin", server.url.as_str().trim_end_matches('/'))
        .json(&json!({"token_name": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(same_site.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn query_token_is_accepted_only_for_websockets() {
    let server = TestServer::start().await;
    let admin = server.first_user().await;
    let url = server
        .url
        .join(&format!(
            "/api/v2/users/me?coder_session_token={}",
            admin.token.expose()
        ))
        .unwrap();
    let plain = reqwest::get(url.clone()).await.unwrap();
    assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
    let upgrade = reqwest::Client::new()
        .get(url)
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .send()
        .await
        .unwrap();
    assert_eq!(upgrade.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let server = TestServer::start().await;
    let admin = server.first_user().await;
    admin.client.logout().await.unwrap();
    let err = admin.client.user("me").await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(
        err.to_string(),
        "Your session token is invalid. Log in again with 'coder login'."
    );
}

#[tokio::test]
async fn malformed_and_forged_tokens_are_refused() {
    let server = TestServer::start().await;
    let admin = server.first_user().await;
    let real = admin.token.expose().to_owned();
    let forged = format!("{}-{}", &real[..10], "A".repeat(22));
    for token in ["garbage", forged.as_str(), ""] {
        let (status, body) =
            send(&server, Method::GET, "/api/v2/users/me", Some(token), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("Your session token is invalid"),
            "{body}"
        );
    }
    let (status, body) = send(&server, Method::GET, "/api/v2/users/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "You are not signed in.");
}

#[tokio::test]
async fn suspension_stops_every_token_at_once() {
    let server = TestServer::start().await;
    let admin = server.first_user().await;
    let bob = server.user_with_roles(&admin.client, "bob", &[]).await;
    let token = bob
        .client
        .create_token(
            "me",
            &CreateTokenRequest {
                token_name: "ci".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .key;
    let token_client = server.client().with_session_token(token);
    token_client.user("me").await.unwrap();

    admin.client.suspend_user("bob").await.unwrap();
    for client in [&bob.client, &token_client] {
        let err = client.user("me").await.unwrap_err();
        assert_eq!(err.status(), Some(401));
        assert!(
            err.to_string().starts_with("Your account is suspended"),
            "{err}"
        );
    }
    let err = server
        .client()
        .login_with_password(&LoginWithPasswordRequest {
            email: "bob@example.com".into(),
            password: Secret::new(PASSWORD),
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));

    admin.client.activate_user("bob").await.unwrap();
    token_client.user("me").await.unwrap();
    // An owner cannot suspend itself.
    let err = admin.client.suspend_user("admin").await.unwrap_err();
    assert_eq!(err.to_string(), "You cannot suspend yourself.");
}

#[tokio::test]
async fn token_lifecycle() {
    let server =
        TestServer::start_with(|config| config.max_token_lifetime = Duration::from_secs(3600))
            .await;
    let admin = server.first_user().await;
    let create = |name: &str, lifetime: Duration| CreateTokenRequest {
        token_name: name.to_owned(),
        lifetime: lifetime.as_nanos() as i64,
        scope: String::new(),
    };
    let too_long = admin
        .client
        .create_token("me", &create("long", Duration::from_secs(7200)))
        .await;
    assert_eq!(
        too_long.unwrap_err().to_string(),
        "Token lifetime is longer than this deployment allows (1h)."
    );

    let token = admin
        .client
        .create_token("me", &create("ci", Duration::from_secs(60)))
        .await
        .unwrap()
        .key;
    assert!(token.expose().len() == 33 && token.expose().as_bytes()[10] == b'-');
    let duplicate = admin
        .client
        .create_token("me", &create("CI", Duration::from_secs(60)))
        .await;
    assert_eq!(duplicate.unwrap_err().status(), Some(409));

    let listed = admin.client.tokens("me").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key.token_name, "ci");
    assert_eq!(listed[0].key.lifetime_seconds, 60);
    assert_eq!(listed[0].username, "admin");
    let listed_json = serde_json::to_string(&listed).unwrap();
    assert!(
        !listed_json.contains(token.expose().split('-').nth(1).unwrap()),
        "secrets are never listed"
    );

    let token_client = server.client().with_session_token(token);
    assert_eq!(token_client.user("me").await.unwrap().username, "admin");
    admin
        .client
        .delete_api_key("me", &listed[0].key.id.0)
        .await
        .unwrap();
    assert_eq!(
        token_client.user("me").await.unwrap_err().status(),
        Some(401)
    );

    // A token that expires stops working.
    let short = admin
        .client
        .create_token("me", &create("short", Duration::from_secs(1)))
        .await
        .unwrap()
        .key;
    let short_client = server.client().with_session_token(short);
    eventually(Duration::from_secs(10), "the 1s token to expire", || {
        let client = short_client.clone();
        async move {
            match client.user("me").await {
                Err(err)
                    if err
                        .to_string()
                        .starts_with("Your session token has expired") =>
                {
                    Some(())
                }
                _ => None,
            }
        }
    })
    .await;
}

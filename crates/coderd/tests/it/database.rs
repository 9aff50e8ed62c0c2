//! The database under the server: concurrent start-up on one database, and restarts.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use testkit::{TestDb, TestServer, eventually};

use crate::send;

#[tokio::test]
async fn two_servers_starting_at_once_share_one_database() {
    let db = TestDb::new().await;
    let (first, second) = tokio::join!(
        TestServer::start_on(&db.url, |_| {}),
        TestServer::start_on(&db.url, |_| {}),
    );
    // One created the first user; the other sees it at once, and both answer.
    let admin = first.first_user().await;
    assert!(second.client().has_first_user().await.unwrap());
    let via_second = second.client().with_session_token(admin.token.clone());
    assert_eq!(via_second.user("me").await.unwrap().username, "admin");
    assert_eq!(
        first.client().build_info().await.unwrap().deployment_id,
        second.client().build_info().await.unwrap().deployment_id
    );
}

#[tokio::test]
async fn a_restarted_server_keeps_users_and_sessions() {
    let server = TestServer::start().await;
    let admin = server.first_user().await;
    let db_url = server.db_url.clone();
    server.stop().await;
    let server = TestServer::start_on(&db_url, |_| {}).await;
    let client = server.client().with_session_token(admin.token);
    assert_eq!(client.user("me").await.unwrap().username, "admin");
}

#[tokio::test]
async fn a_database_restart_fails_requests_clearly_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("postgres");
    let postgres = coderd::BuiltinPostgres::start(&cluster).await.unwrap();
    let server = TestServer::start_on(postgres.url(), |_| {}).await;
    let admin = server.first_user().await;

    postgres.stop().await.unwrap();
    let (status, body) = send(
        &server,
        Method::GET,
        "/api/v2/users/me",
        Some(admin.token.expose()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["message"], "An internal error occurred.");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Quote request id "),
        "{body}"
    );
    assert!(
        !body.to_string().contains("postgres"),
        "internals stay in the log: {body}"
    );

    let postgres = coderd::BuiltinPostgres::start(&cluster).await.unwrap();
    let me = eventually(
        Duration::from_secs(30),
        "the server to use the restarted database",
        || {
            let client = admin.client.clone();
            async move { client.user("me").await.ok() }
        },
    )
    .await;
    assert_eq!(me.username, "admin");
    server.stop().await;
    postgres.stop().await.unwrap();
}

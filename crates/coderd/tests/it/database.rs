//! The database under the server: concurrent start-up on one database, and restarts.

use testkit::{TestDb, TestServer};

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

//! The job queue on real PostgreSQL (the run's cluster, a database per test).
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] functions.

mod jobs;

use store::{NewJob, NewUser, Store, TemplateVersionRow};
use uuid::Uuid;

/// A migrated store on a fresh database.
async fn store() -> Store {
    let admin_url = std::env::var("CODER_TEST_POSTGRES_URL")
        .expect("CODER_TEST_POSTGRES_URL is not set: run the tests with ./scripts/test");
    let name = format!("store_{}", Uuid::new_v4().simple());
    let url = Store::create_database(&admin_url, &name).await.unwrap();
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store
}

struct Fixture {
    user: Uuid,
    organization: Uuid,
    file: Uuid,
}

async fn fixture(store: &Store) -> Fixture {
    let user = Uuid::new_v4();
    store
        .insert_user(&NewUser {
            id: user,
            email: "admin@example.com".into(),
            username: "admin".into(),
            name: String::new(),
            hashed_password: None,
            login_type: "none".into(),
            rbac_roles: vec!["owner".into()],
            organization_ids: Vec::new(),
        })
        .await
        .unwrap();
    let organization = store.default_organization().await.unwrap().id;
    let file = store
        .insert_file("abc", user, "application/x-tar", b"archive")
        .await
        .unwrap();
    Fixture {
        user,
        organization,
        file,
    }
}

/// Posts a template import job with `tags`; returns the job's id.
async fn post_job(store: &Store, fixture: &Fixture, tags: serde_json::Value) -> Uuid {
    let job = NewJob {
        id: Uuid::new_v4(),
        organization_id: fixture.organization,
        initiator_id: fixture.user,
        job_type: "template_version_import".into(),
        input: serde_json::json!({}),
        file_id: fixture.file,
        tags,
    };
    let version = TemplateVersionRow {
        id: Uuid::new_v4(),
        template_id: None,
        organization_id: fixture.organization,
        name: format!("v-{}", job.id.simple()),
        message: String::new(),
        job_id: job.id,
        created_by: fixture.user,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    };
    store.insert_template_version(&version, &job).await.unwrap();
    job.id
}

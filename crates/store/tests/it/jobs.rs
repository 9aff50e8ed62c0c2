//! Claiming, routing, notifying, cancelling and reaping jobs.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use store::{JOB_POSTED_CHANNEL, JOB_UPDATED_CHANNEL, NewJobLog};
use uuid::Uuid;

use crate::{fixture, post_job, store};

#[tokio::test]
async fn concurrent_provisioners_never_share_a_job() {
    let store = store().await;
    let fixture = fixture(&store).await;
    let mut posted = BTreeSet::new();
    for _ in 0..20 {
        posted.insert(post_job(&store, &fixture, json!({})).await);
    }
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let worker = Uuid::new_v4();
                let mut claimed = Vec::new();
                while let Some(job) = store.acquire_job(worker, "w", &json!({})).await.unwrap() {
                    assert_eq!(job.worker_id, Some(worker));
                    claimed.push(job.id);
                }
                claimed
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.await.unwrap());
    }
    assert_eq!(claimed.len(), 20, "every job claimed exactly once");
    assert_eq!(claimed.into_iter().collect::<BTreeSet<_>>(), posted);
}

#[tokio::test]
async fn jobs_go_only_to_provisioners_with_their_tags() {
    let store = store().await;
    let fixture = fixture(&store).await;
    let job = post_job(&store, &fixture, json!({"region": "eu"})).await;
    let worker = Uuid::new_v4();
    assert!(
        store
            .acquire_job(worker, "w", &json!({}))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .acquire_job(worker, "w", &json!({"region": "us"}))
            .await
            .unwrap()
            .is_none()
    );
    let claimed = store
        .acquire_job(worker, "w", &json!({"region": "eu", "gpu": "yes"}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, job);
}

#[tokio::test]
async fn posting_a_job_and_logging_notify_listeners() {
    let store = store().await;
    let fixture = fixture(&store).await;
    let mut posted = store.listen(&[JOB_POSTED_CHANNEL]).await.unwrap();
    let job = post_job(&store, &fixture, json!({})).await;
    let event = tokio::time::timeout(Duration::from_secs(10), posted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.payload, job.to_string());

    let mut logs = store.listen(&[JOB_UPDATED_CHANNEL]).await.unwrap();
    let line = |output: &str| NewJobLog {
        level: "info".into(),
        stage: "init".into(),
        output: output.into(),
    };
    store
        .append_job_logs(job, &[line("one"), line("two")])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), logs.recv())
        .await
        .unwrap()
        .unwrap();
    let all = store.job_logs(job, 0).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|log| log.output.as_str())
            .collect::<Vec<_>>(),
        ["one", "two"]
    );
    let after_first = store.job_logs(job, all[0].id).await.unwrap();
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].output, "two");
}

#[tokio::test]
async fn a_silent_provisioners_job_fails_with_a_clear_message() {
    let store = store().await;
    let fixture = fixture(&store).await;
    let job = post_job(&store, &fixture, json!({})).await;
    let worker = Uuid::new_v4();
    store
        .acquire_job(worker, "eu-1", &json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.heartbeat_job(job, worker).await.unwrap(), Some(false));
    assert!(
        store
            .reap_stale_jobs(Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "a live job stays"
    );

    // With a zero window any heartbeat from an earlier transaction is already too old.
    assert_eq!(store.reap_stale_jobs(Duration::ZERO).await.unwrap(), [job]);
    let row = store.job(job).await.unwrap().unwrap();
    assert!(row.completed_at.is_some());
    assert_eq!(
        row.error.as_deref(),
        Some("the provisioner \"eu-1\" stopped responding (no heartbeat for 0 seconds)")
    );
    // The provisioner no longer holds it: its late heartbeat and result are refused.
    assert_eq!(store.heartbeat_job(job, worker).await.unwrap(), None);
    assert!(!store.complete_job(job, worker, None, None).await.unwrap());
}

#[tokio::test]
async fn cancelling_pending_and_running_jobs() {
    let store = store().await;
    let fixture = fixture(&store).await;
    let pending = post_job(&store, &fixture, json!({})).await;
    let row = store.cancel_job(pending).await.unwrap().unwrap();
    assert!(row.completed_at.is_some());
    assert_eq!(row.error.as_deref(), Some("canceled before it started"));
    let worker = Uuid::new_v4();
    assert!(
        store
            .acquire_job(worker, "w", &json!({}))
            .await
            .unwrap()
            .is_none(),
        "a canceled job is never claimed"
    );

    let running = post_job(&store, &fixture, json!({})).await;
    store
        .acquire_job(worker, "w", &json!({}))
        .await
        .unwrap()
        .unwrap();
    let row = store.cancel_job(running).await.unwrap().unwrap();
    assert!(row.canceled_at.is_some() && row.completed_at.is_none());
    assert_eq!(
        store.heartbeat_job(running, worker).await.unwrap(),
        Some(true)
    );
    assert!(
        store
            .complete_job(running, worker, Some("canceled"), None)
            .await
            .unwrap()
    );
    assert!(
        store.cancel_job(running).await.unwrap().is_none(),
        "an ended job cannot be canceled"
    );
}

#[tokio::test]
async fn queued_jobs_survive_a_reconnect() {
    let store = store().await;
    let fixture = fixture(&store).await;
    let job = post_job(&store, &fixture, json!({})).await;
    store.close().await;
    let reopened = store::Store::connect(&store.url()).await.unwrap();
    let claimed = reopened
        .acquire_job(Uuid::new_v4(), "w", &json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, job);
}

//! The console's read models (`ConsoleStore`) on both backends: every filter, the three
//! sort orders with keyset pages, text search, throughput and failing instances.

use crate::helpers::db::{both_backends, TestDb};
use chrono::Utc;
use dbs_archiver::model::{Job, JobError, JobId, JobSource, JobState, RemoteStatus};
use dbs_archiver::store::console::{JobQuery, JobSort};
use dbs_archiver::store::{ClaimParams, Fence, JobPatch};
use std::time::Duration;

const OWNER: &str = "console-test";

/// Claim every claimable job (one per instance) as a worker would.
async fn claim_all(db: &TestDb) -> Vec<Job> {
    db.store
        .job_claim(&ClaimParams {
            owner: OWNER.into(),
            limit: 100,
            lease: Duration::from_secs(60),
            now: Utc::now() + chrono::Duration::seconds(1),
        })
        .await
        .unwrap()
}

pub async fn advance(
    db: &TestDb,
    id: JobId,
    from: JobState,
    to: JobState,
    remote: RemoteStatus,
    error: Option<JobError>,
) {
    let ok = db
        .store
        .job_update(
            &Fence {
                id,
                state: from,
                owner: Some(OWNER.into()),
            },
            &JobPatch {
                to: Some(to),
                remote: Some(remote),
                last_error: error.map(Some),
                release_lease: to.is_terminal(),
                reason: format!("test moves it to {to}"),
                request_id: Some(format!("req-{id}")),
                ..JobPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(ok, "fence held for job {id}");
}

/// a1 failed (code Boom), a2 cancelled, a3 queued; b1 submitting, b2 cancelled;
/// c1 succeeded (task dt-c-1, 1000 bytes), c2 queued. Returns the jobs by name.
pub async fn fixture(db: &TestDb) -> std::collections::HashMap<&'static str, JobId> {
    let mut ids = std::collections::HashMap::new();
    for (name, inst) in [
        ("a1", "rm-a"),
        ("a2", "rm-a"),
        ("a3", "rm-a"),
        ("b1", "rm-b"),
        ("b2", "rm-b"),
        ("c1", "rm-c"),
        ("c2", "rm-c"),
    ] {
        ids.insert(name, db.enqueue(inst).await.id);
    }
    for n in ["a2", "b2"] {
        let j = db.store.job_cancel(ids[n], "test").await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Cancelled);
    }
    let claimed: Vec<JobId> = claim_all(db).await.iter().map(|j| j.id).collect();
    assert_eq!(claimed.len(), 3, "one job per instance claimed");
    let task = |t: &str, size: Option<i64>| RemoteStatus {
        task_id: Some(t.into()),
        status: Some("exporting".into()),
        progress: Some("1/2".into()),
        export_data_size: size,
        ..RemoteStatus::default()
    };
    let (a1, c1) = (ids["a1"], ids["c1"]);
    advance(
        db,
        c1,
        JobState::Submitting,
        JobState::Running,
        task("dt-c-1", None),
        None,
    )
    .await;
    advance(
        db,
        c1,
        JobState::Running,
        JobState::Succeeded,
        task("dt-c-1", Some(1000)),
        None,
    )
    .await;
    advance(
        db,
        a1,
        JobState::Submitting,
        JobState::Running,
        task("dt-a-1", None),
        None,
    )
    .await;
    let boom = JobError {
        code: "Boom".into(),
        message: "the export <failed> & stopped".into(),
        request_id: Some("REQ-BOOM-1".into()),
    };
    advance(
        db,
        a1,
        JobState::Running,
        JobState::Failed,
        task("dt-a-1", None),
        Some(boom),
    )
    .await;
    ids
}

async fn ids_of(db: &TestDb, q: JobQuery) -> Vec<JobId> {
    db.store
        .console_jobs(&q)
        .await
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.id)
        .collect()
}

/// Walk every page of `q` and return the ids in order.
async fn all_pages(db: &TestDb, mut q: JobQuery) -> Vec<JobId> {
    let mut out = Vec::new();
    for _ in 0..20 {
        let page = db.store.console_jobs(&q).await.unwrap();
        assert!(page.jobs.len() <= q.page_size() as usize);
        out.extend(page.jobs.iter().map(|j| j.id));
        match page.next {
            Some(next) => q.after = Some(next),
            None => return out,
        }
    }
    panic!("pagination did not end");
}

async fn console_job_filters(db: TestDb) {
    let ids = fixture(&db).await;
    let id = |n: &str| ids[n];
    let q = JobQuery::default;
    let now = Utc::now();
    let hour = chrono::Duration::hours(1);
    let all: Vec<JobId> = {
        let mut v: Vec<JobId> = ids.values().copied().collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    };
    let cases: Vec<(&str, JobQuery, Vec<JobId>)> = vec![
        (
            "state",
            JobQuery {
                state: Some(JobState::Cancelled),
                ..q()
            },
            vec![id("b2"), id("a2")],
        ),
        (
            "state failed",
            JobQuery {
                state: Some(JobState::Failed),
                ..q()
            },
            vec![id("a1")],
        ),
        (
            "instance",
            JobQuery {
                instance: Some("rm-a".into()),
                ..q()
            },
            vec![id("a3"), id("a2"), id("a1")],
        ),
        (
            "region",
            JobQuery {
                region: Some("cn-shanghai".into()),
                ..q()
            },
            vec![],
        ),
        (
            "error code",
            JobQuery {
                error_code: Some("Boom".into()),
                ..q()
            },
            vec![id("a1")],
        ),
        (
            "source sql",
            JobQuery {
                source: Some(JobSource::Sql),
                ..q()
            },
            vec![],
        ),
        (
            "source api",
            JobQuery {
                source: Some(JobSource::Api),
                ..q()
            },
            all.clone(),
        ),
        // Text search: an instance prefix, or a task id exactly.
        (
            "search prefix",
            JobQuery {
                search: Some("rm-b".into()),
                ..q()
            },
            vec![id("b2"), id("b1")],
        ),
        (
            "search all",
            JobQuery {
                search: Some("rm-".into()),
                ..q()
            },
            all.clone(),
        ),
        (
            "search task",
            JobQuery {
                search: Some("dt-c-1".into()),
                ..q()
            },
            vec![id("c1")],
        ),
        (
            "created from",
            JobQuery {
                created_from: Some(now + hour),
                ..q()
            },
            vec![],
        ),
        (
            "created to",
            JobQuery {
                created_to: Some(now + hour),
                ..q()
            },
            all.clone(),
        ),
        (
            "finished from",
            JobQuery {
                finished_from: Some(now - hour),
                ..q()
            },
            vec![id("c1"), id("b2"), id("a2"), id("a1")],
        ),
        (
            "finished to",
            JobQuery {
                finished_to: Some(now - hour),
                ..q()
            },
            vec![],
        ),
        (
            "combined",
            JobQuery {
                state: Some(JobState::Cancelled),
                instance: Some("rm-b".into()),
                ..q()
            },
            vec![id("b2")],
        ),
    ];
    for (name, query, expected) in cases {
        assert_eq!(ids_of(&db, query).await, expected, "{name}");
    }
}

async fn console_job_sorts_and_keyset_pages(db: TestDb) {
    let ids = fixture(&db).await;
    let mut by_id: Vec<JobId> = ids.values().copied().collect();
    by_id.sort_unstable_by(|a, b| b.cmp(a));

    // Newest first, two per page: every job once, in order.
    let pages = all_pages(
        &db,
        JobQuery {
            limit: 2,
            ..JobQuery::default()
        },
    )
    .await;
    assert_eq!(pages, by_id);
    // Oldest first.
    let asc = all_pages(
        &db,
        JobQuery {
            limit: 3,
            ascending: true,
            ..JobQuery::default()
        },
    )
    .await;
    let mut rev = by_id.clone();
    rev.reverse();
    assert_eq!(asc, rev);

    // By instance then id, ascending, pages of 2 crossing instance boundaries.
    let by_instance = all_pages(
        &db,
        JobQuery {
            limit: 2,
            sort: JobSort::Instance,
            ascending: true,
            ..JobQuery::default()
        },
    )
    .await;
    let expected: Vec<JobId> = ["a1", "a2", "a3", "b1", "b2", "c1", "c2"]
        .iter()
        .map(|n| ids[n])
        .collect();
    assert_eq!(by_instance, expected);
    let desc = all_pages(
        &db,
        JobQuery {
            limit: 3,
            sort: JobSort::Instance,
            ..JobQuery::default()
        },
    )
    .await;
    let mut expected_desc = expected.clone();
    expected_desc.reverse();
    assert_eq!(desc, expected_desc);

    // By finish time: only finished jobs, newest finish first, one per page.
    let finished = all_pages(
        &db,
        JobQuery {
            limit: 1,
            sort: JobSort::Finished,
            ..JobQuery::default()
        },
    )
    .await;
    assert_eq!(finished.len(), 4);
    let jobs: Vec<Job> = {
        let mut v = Vec::new();
        for id in &finished {
            v.push(db.store.job_get(*id).await.unwrap().unwrap());
        }
        v
    };
    for w in jobs.windows(2) {
        let key = |j: &Job| (j.finished_at.unwrap(), j.id);
        assert!(key(&w[0]) > key(&w[1]), "finish order: {:?}", finished);
    }
}

async fn console_throughput_and_failing_instances(db: TestDb) {
    fixture(&db).await;
    let hour = chrono::Duration::hours(1);
    let since = Utc::now() - hour;
    let buckets = db.store.console_throughput(since, hour, 2).await.unwrap();
    assert_eq!(buckets.len(), 2);
    let succeeded: i64 = buckets.iter().map(|b| b.succeeded).sum();
    let failed: i64 = buckets.iter().map(|b| b.failed).sum();
    let bytes: i64 = buckets.iter().map(|b| b.bytes).sum();
    assert_eq!((succeeded, failed, bytes), (1, 1, 1000));
    // Nothing before the window.
    let old = db
        .store
        .console_throughput(since - hour * 10, hour, 5)
        .await
        .unwrap();
    assert_eq!(old.iter().map(|b| b.succeeded + b.failed).sum::<i64>(), 0);

    let failing = db.store.console_failing_instances(since, 10).await.unwrap();
    assert_eq!(failing.len(), 1);
    assert_eq!(failing[0].key.instance, "rm-a");
    assert_eq!(failing[0].failures, 1);
    assert!(db
        .store
        .console_failing_instances(Utc::now() + hour, 10)
        .await
        .unwrap()
        .is_empty());
}

both_backends!(
    console_job_filters,
    console_job_sorts_and_keyset_pages,
    console_throughput_and_failing_instances,
);

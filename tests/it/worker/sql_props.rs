//! Property test over the public SQL interface: random rows (types, ranges, states,
//! NULLs, unicode, infinities) inserted with plain SQL while the worker runs. After each,
//! either the database refused the row, or the store can read it back; at the end every
//! valid job has been drained to success and every accepted hostile row has ended or
//! waits for its time, with no service stopped.
//!
//! A seeded generator: `SQL_PROPS_SEED` (default a fixed seed, printed) and
//! `SQL_PROPS_CASES` (default 300 per backend; set more behind the flag for long runs).

use super::{full_request, instance, sim_config, test_config, Rig};
use crate::helpers::db::{both_backends, Backend, TestDb};
use dbs_archiver::clock::Clock;
use dbs_archiver::model::JobState;
use dbs_archiver::store::JobFilter;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

const INSTANCES: usize = 12;

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The candidates for one column: valid values, wrong types, out of range, hostile text.
fn candidates(backend: Backend, column: &str, rng: &mut StdRng) -> Vec<String> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut c = match column {
        "region" => s(&[
            "'cn-hangzhou'",
            "''",
            "NULL",
            "'cn hangzhou'",
            "'cn-杭州'",
            "42",
        ]),
        "instance" => {
            let mut v = s(&["NULL", "'rm-ünï'", "'rm-w9999'"]);
            v.push(quoted(&"a".repeat(129)));
            v.push(quoted("x'); DROP TABLE jobs; --"));
            v.push(quoted(&instance(rng.random_range(0..INSTANCES))));
            v
        }
        "bak_set_type" => s(&["'full'", "'pitr'", "'FULL'", "NULL", "1"]),
        "bak_set_id" => s(&["NULL", "''", "'x y'", "'1460000101'"]),
        "download_point_in_time" => {
            let mut v = s(&[
                "NULL",
                "1661331864",
                "-1",
                "0",
                "253402300800000",
                "'abc'",
                "1.5",
            ]);
            v.push((now_ms - 3_600_000).to_string());
            v
        }
        "format" => s(&["'CSV'", "'SQL'", "'Parquet'", "'csv'", "NULL", "''"]),
        "target_type" => s(&["'URL'", "'OSS'", "'oss'", "NULL"]),
        "target_bucket" => s(&["'archive'", "'Bad_Bucket'", "'ab'", "NULL"]),
        "target_path" => s(&["'a/b'", "'a/../b'", "'ok/path'", "NULL"]),
        "target_oss_region" => s(&["'cn-hangzhou'", "'x y'", "NULL"]),
        "priority" => s(&[
            "0",
            "1000",
            "-1000",
            "1001",
            "2147483647",
            "-2147483648",
            "'high'",
            "1.5",
        ]),
        "max_attempts" => s(&["1", "100", "0", "101", "'x'", "5"]),
        "attempts" => s(&["0", "3", "-1", "'x'"]),
        "polls" => s(&["0", "7"]),
        "state" => s(&[
            "'queued'",
            "'submitting'",
            "'running'",
            "'succeeded'",
            "'failed'",
            "'cancelled'",
            "'bogus'",
            "NULL",
        ]),
        "source" => s(&["'sql'", "'api'", "'email'", "NULL"]),
        "lease_owner" => s(&["NULL", "'me'"]),
        "remote_task_id" => s(&["NULL", "'dt-x'"]),
        "idempotency_key" => {
            let mut v = s(&["NULL", "'😀'", "'k k'"]);
            v.push(quoted(&"k".repeat(300)));
            v.push(quoted(&format!("key-{}", rng.random::<u32>())));
            v
        }
        "is_physical" => s(&["0", "1", "2", "'x'", "NULL"]),
        "use_zstd" | "is_cluster" | "primary_key_type_only" => {
            s(&["'true'", "'false'", "'TRUE'", "'maybe'", "NULL"])
        }
        "admin_database" => s(&["'admin'", "'a.b'", "'a$b'", "NULL"]),
        "cluster_name" => s(&["'dds-c1'", "'dds c1'", "NULL"]),
        "bak_set_size" => s(&["NULL", "0", "-1", "'big'", "1073741824"]),
        _ => Vec::new(),
    };
    let times = match backend {
        Backend::Sqlite => {
            let mut v = s(&["-1", "253402300800000", "'soon'", "NULL"]);
            v.push(now_ms.to_string());
            v.push(format!("{}.5", now_ms));
            v.push((now_ms + 7_200_000).to_string());
            v
        }
        Backend::Postgres => s(&[
            "now()",
            "'-infinity'",
            "'infinity'",
            "'262143-01-01'",
            "'1969-12-31'",
            "now() + interval '2 hours'",
            "NULL",
        ]),
    };
    if matches!(
        column,
        "run_at" | "created_at" | "next_poll_at" | "finished_at" | "lease_expires_at"
    ) {
        c = times;
    }
    c
}

const MUTABLE: &[&str] = &[
    "region",
    "instance",
    "bak_set_type",
    "bak_set_id",
    "download_point_in_time",
    "format",
    "target_type",
    "target_bucket",
    "target_path",
    "target_oss_region",
    "priority",
    "max_attempts",
    "attempts",
    "polls",
    "state",
    "source",
    "lease_owner",
    "remote_task_id",
    "idempotency_key",
    "is_physical",
    "use_zstd",
    "is_cluster",
    "primary_key_type_only",
    "admin_database",
    "cluster_name",
    "bak_set_size",
    "run_at",
    "created_at",
    "next_poll_at",
    "finished_at",
    "lease_expires_at",
];

/// A valid full-backup row on one of the simulator's instances, with 1-3 columns replaced.
fn random_insert(backend: Backend, rng: &mut StdRng) -> String {
    let inst = instance(rng.random_range(0..INSTANCES));
    let req = full_request(&inst, rng.random_range(0..3));
    let mut cols: Vec<(String, String)> = vec![
        ("region".into(), quoted(&req.region)),
        ("instance".into(), quoted(&inst)),
        ("bak_set_type".into(), "'full'".into()),
        (
            "bak_set_id".into(),
            quoted(req.bak_set_id.as_deref().unwrap()),
        ),
        ("format".into(), "'CSV'".into()),
        ("target_type".into(), "'URL'".into()),
    ];
    for _ in 0..rng.random_range(1..=3) {
        let column = MUTABLE[rng.random_range(0..MUTABLE.len())];
        let pool = candidates(backend, column, rng);
        let value = pool[rng.random_range(0..pool.len())].clone();
        match cols.iter_mut().find(|(c, _)| c == column) {
            Some(slot) => slot.1 = value,
            None => cols.push((column.to_string(), value)),
        }
    }
    let names: Vec<_> = cols.iter().map(|(c, _)| c.as_str()).collect();
    let values: Vec<_> = cols.iter().map(|(_, v)| v.as_str()).collect();
    format!(
        "INSERT INTO jobs ({}) VALUES ({})",
        names.join(", "),
        values.join(", ")
    )
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn hostile_rows_never_stop_the_queue(db: TestDb) {
    let seed = env_u64("SQL_PROPS_SEED", 0x5eed_0014);
    let cases = env_u64("SQL_PROPS_CASES", 300);
    println!(
        "sql_props: seed {seed:#x}, {cases} cases on {:?}",
        db.backend
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let backend = db.backend;
    let rig = Rig::start(db, |c| sim_config(c, INSTANCES), test_config()).await;

    // Known-valid jobs, one per instance, enqueued through the API's path.
    let mut valid = Vec::new();
    for i in 0..INSTANCES {
        valid.push(rig.enqueue(full_request(&instance(i), i)).await.id);
    }

    let (mut refused, mut accepted) = (0u64, Vec::new());
    for case in 0..cases {
        let sql = random_insert(backend, &mut rng);
        match rig.db.exec(&sql).await {
            Err(_) => refused += 1,
            Ok(_) => {
                let id = rig.db.query_i64("SELECT max(id) FROM jobs").await;
                let job = rig
                    .db
                    .store
                    .job_get(id)
                    .await
                    .unwrap_or_else(|e| panic!("case {case}: {sql}\naccepted but unreadable: {e}"))
                    .unwrap_or_else(|| panic!("case {case}: {sql}\naccepted row is gone"));
                assert!(
                    job.state == JobState::Queued,
                    "case {case}: {sql}\na SQL insert made a {:?} job",
                    job.state
                );
                accepted.push(id);
            }
        }
        // The worker runs between the inserts, as `serve` would.
        if case % 20 == 0 {
            rig.step().await;
            rig.advance(Duration::from_secs(30));
        }
    }

    // Drain: every valid job succeeds; every accepted row ends or waits for its time.
    for _ in 0..400 {
        rig.step().await;
        let open = rig
            .db
            .query_i64("SELECT count(*) FROM jobs WHERE state IN ('submitting', 'running')")
            .await;
        let mut valid_done = true;
        for id in &valid {
            valid_done &= rig.job(*id).await.state.is_terminal();
        }
        let now = rig.clock.now();
        let due = rig
            .jobs_in(JobState::Queued)
            .await
            .iter()
            .filter(|j| j.run_at <= now)
            .count();
        if open == 0 && valid_done && due == 0 {
            break;
        }
        rig.advance(Duration::from_secs(30));
    }
    for id in &valid {
        let job = rig.job(*id).await;
        assert_eq!(job.state, JobState::Succeeded, "valid job {id}: {job:?}");
    }
    let now = rig.clock.now();
    for id in &accepted {
        let job = rig.job(*id).await;
        assert!(
            job.state.is_terminal() || (job.state == JobState::Queued && job.run_at > now),
            "accepted row {id} neither ended nor waits for its time: {job:?}"
        );
    }
    // Every row reads, page by page.
    let mut cursor = None;
    loop {
        let page = rig
            .db
            .store
            .job_list(&JobFilter {
                cursor,
                limit: 200,
                ..Default::default()
            })
            .await
            .expect("every page reads");
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    println!(
        "sql_props: {refused} refused, {} accepted (all read back, drained or waiting)",
        accepted.len()
    );
    assert!(
        refused > 0 && !accepted.is_empty(),
        "the generator must try both kinds"
    );
}

both_backends!(hostile_rows_never_stop_the_queue);

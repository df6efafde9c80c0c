//! Bad SQL inserts: every CHECK rule rejects what the cloud would reject, and the error
//! names the rule. One test per rule, each on both backends.

use crate::helpers::db::{both_backends, Backend, TestDb};

/// A valid minimal row; each test overrides one column (`NULL` removes it).
const BASE: &[(&str, &str)] = &[
    ("region", "'cn-hangzhou'"),
    ("instance", "'rm-1'"),
    ("bak_set_type", "'full'"),
    ("bak_set_id", "'1001'"),
    ("format", "'CSV'"),
    ("target_type", "'URL'"),
];

fn insert(overrides: &[(&str, &str)]) -> String {
    let mut cols: Vec<(&str, &str)> = BASE.to_vec();
    for (col, val) in overrides {
        match cols.iter_mut().find(|(c, _)| c == col) {
            Some(slot) => slot.1 = val,
            None => cols.push((col, val)),
        }
    }
    let names: Vec<_> = cols.iter().map(|(c, _)| *c).collect();
    let values: Vec<_> = cols.iter().map(|(_, v)| *v).collect();
    format!(
        "INSERT INTO jobs ({}) VALUES ({})",
        names.join(", "),
        values.join(", ")
    )
}

async fn rejects(db: &TestDb, rule: &str, overrides: &[(&str, &str)]) {
    // The base row itself is fine (so the failure is the override's fault).
    let err = db
        .exec(&insert(overrides))
        .await
        .expect_err("the insert must be rejected");
    let text = err.to_string();
    assert!(text.contains(rule), "error should name {rule}: {text}");
    assert_eq!(db.query_i64("SELECT count(*) FROM jobs").await, 0);
}

async fn base_row_is_accepted(db: TestDb) {
    db.exec(&insert(&[])).await.unwrap();
    assert_eq!(db.query_i64("SELECT count(*) FROM jobs").await, 1);
}

async fn region_required(db: TestDb) {
    rejects(&db, "jobs_region_required", &[("region", "' '")]).await;
}

async fn instance_required(db: TestDb) {
    rejects(&db, "jobs_instance_required", &[("instance", "NULL")]).await;
}

async fn bak_set_type_valid(db: TestDb) {
    rejects(
        &db,
        "jobs_bak_set_type_valid",
        &[("bak_set_type", "'incremental'")],
    )
    .await;
}

async fn full_requires_bak_set_id(db: TestDb) {
    rejects(
        &db,
        "jobs_full_requires_bak_set_id",
        &[("bak_set_id", "NULL")],
    )
    .await;
}

async fn pitr_requires_point_in_time(db: TestDb) {
    rejects(
        &db,
        "jobs_pitr_requires_point_in_time",
        &[("bak_set_type", "'pitr'"), ("bak_set_id", "NULL")],
    )
    .await;
}

async fn bak_set_size_not_negative(db: TestDb) {
    rejects(&db, "jobs_bak_set_size_bytes", &[("bak_set_size", "-1")]).await;
}

async fn format_valid(db: TestDb) {
    rejects(&db, "jobs_format_valid", &[("format", "'csv'")]).await;
}

async fn format_required(db: TestDb) {
    rejects(&db, "jobs_format_valid", &[("format", "NULL")]).await;
}

async fn target_type_valid(db: TestDb) {
    rejects(&db, "jobs_target_type_valid", &[("target_type", "'S3'")]).await;
}

const OSS: &[(&str, &str)] = &[
    ("target_type", "'OSS'"),
    ("target_bucket", "'archive'"),
    ("target_path", "'rm-1/2024'"),
    ("target_oss_region", "'cn-hangzhou'"),
];

fn oss_without(column: &str) -> Vec<(&'static str, &'static str)> {
    OSS.iter()
        .map(|(c, v)| if *c == column { (*c, "NULL") } else { (*c, *v) })
        .collect()
}

async fn oss_requires_bucket(db: TestDb) {
    db.exec(&insert(OSS)).await.expect("a full OSS row is fine");
    db.exec("DELETE FROM jobs").await.unwrap();
    rejects(
        &db,
        "jobs_oss_requires_bucket",
        &oss_without("target_bucket"),
    )
    .await;
}

async fn oss_requires_path(db: TestDb) {
    rejects(&db, "jobs_oss_requires_path", &oss_without("target_path")).await;
}

async fn oss_requires_bucket_region(db: TestDb) {
    rejects(
        &db,
        "jobs_oss_requires_bucket_region",
        &oss_without("target_oss_region"),
    )
    .await;
}

async fn max_attempts_positive(db: TestDb) {
    rejects(&db, "jobs_max_attempts_range", &[("max_attempts", "0")]).await;
}

/// An UPDATE of a stored row is held to the same rules (an INSERT may not set `attempts`
/// or `state` at all: see `store::hostile`).
async fn rejects_update(db: &TestDb, rule: &str, set: &str) {
    db.exec(&insert(&[])).await.unwrap();
    let err = db
        .exec(&format!("UPDATE jobs SET {set}"))
        .await
        .expect_err("the update must be rejected")
        .to_string();
    assert!(err.contains(rule), "error should name {rule}: {err}");
}

async fn attempts_not_negative(db: TestDb) {
    rejects_update(&db, "jobs_attempts_counter", "attempts = -1").await;
}

async fn state_valid(db: TestDb) {
    rejects_update(&db, "jobs_state_valid", "state = 'done'").await;
}

async fn source_valid(db: TestDb) {
    rejects(&db, "jobs_source_valid", &[("source", "'email'")]).await;
}

async fn fire_time_with_schedule(db: TestDb) {
    let fire = match db.backend {
        Backend::Sqlite => "1704067200000",
        Backend::Postgres => "'2024-01-01T00:00:00Z'",
    };
    rejects(&db, "jobs_fire_time_with_schedule", &[("fire_time", fire)]).await;
}

async fn one_active_job_per_instance(db: TestDb) {
    let lease = match db.backend {
        Backend::Sqlite => "4102444800000",
        Backend::Postgres => "'2100-01-01T00:00:00Z'",
    };
    db.exec(&insert(&[])).await.unwrap();
    db.exec(&insert(&[])).await.unwrap();
    db.exec("UPDATE jobs SET state = 'running', remote_task_id = 'dt-1' WHERE id = 1")
        .await
        .unwrap();
    let err = db
        .exec(&format!(
            "UPDATE jobs SET state = 'submitting', lease_owner = 'w', lease_expires_at = {lease} \
             WHERE id = 2"
        ))
        .await
        .expect_err("a second active job on one instance must be rejected");
    let text = err.to_string();
    match db.backend {
        // PostgreSQL names the index; SQLite names its columns.
        Backend::Postgres => assert!(text.contains("jobs_one_active_per_instance"), "{text}"),
        Backend::Sqlite => assert!(
            text.contains("UNIQUE constraint failed: jobs.region, jobs.instance"),
            "{text}"
        ),
    }
    // Queued jobs for the same instance are fine.
    db.exec(&insert(&[])).await.unwrap();
}

async fn idempotency_key_unique(db: TestDb) {
    db.exec(&insert(&[("idempotency_key", "'k1'")]))
        .await
        .unwrap();
    let err = db
        .exec(&insert(&[("idempotency_key", "'k1'")]))
        .await
        .unwrap_err()
        .to_string();
    match db.backend {
        Backend::Postgres => assert!(err.contains("jobs_idempotency_key_unique"), "{err}"),
        Backend::Sqlite => assert!(err.contains("jobs.idempotency_key"), "{err}"),
    }
}

both_backends!(
    base_row_is_accepted,
    region_required,
    instance_required,
    bak_set_type_valid,
    full_requires_bak_set_id,
    pitr_requires_point_in_time,
    bak_set_size_not_negative,
    format_valid,
    format_required,
    target_type_valid,
    oss_requires_bucket,
    oss_requires_path,
    oss_requires_bucket_region,
    max_attempts_positive,
    attempts_not_negative,
    state_valid,
    source_valid,
    fire_time_with_schedule,
    one_active_job_per_instance,
    idempotency_key_unique,
);

//! The database holds `model::bounds` exactly: each boundary is accepted and one past it
//! is refused, by plain SQL, on both backends. This is what keeps the migrations' numbers
//! and the Rust bounds one set of rules.

use crate::helpers::db::{both_backends, Backend, TestDb};
use dbs_archiver::model::bounds;

/// An `INSERT` of a minimal valid row with `col = val` (a SQL literal).
fn insert(col: &str, val: &str) -> String {
    let (cols, vals) = (
        "region, instance, bak_set_type, bak_set_id, format, target_type",
        "'cn-hangzhou', 'rm-1', 'full', '1001', 'CSV', 'URL'",
    );
    if cols.split(", ").any(|c| c == col) {
        let mut v: Vec<String> = vals.split(", ").map(str::to_string).collect();
        let i = cols.split(", ").position(|c| c == col).unwrap();
        v[i] = val.to_string();
        return format!("INSERT INTO jobs ({cols}) VALUES ({})", v.join(", "));
    }
    format!("INSERT INTO jobs ({cols}, {col}) VALUES ({vals}, {val})")
}

async fn accepts(db: &TestDb, col: &str, val: &str) {
    let sql = insert(col, val);
    db.exec(&sql)
        .await
        .unwrap_or_else(|e| panic!("{sql} must be accepted: {e}"));
    db.exec("DELETE FROM jobs").await.unwrap();
}

async fn refuses(db: &TestDb, col: &str, val: &str) {
    let sql = insert(col, val);
    let err = db.exec(&sql).await.expect_err(&sql).to_string();
    assert!(err.contains("jobs_"), "{sql}: {err}");
}

/// A time literal for `ms` UNIX milliseconds on this backend.
fn time(db: &TestDb, ms: i64) -> String {
    match db.backend {
        Backend::Sqlite => ms.to_string(),
        Backend::Postgres => format!("TIMESTAMPTZ 'epoch' + INTERVAL '1 millisecond' * {ms}"),
    }
}

async fn numbers_stop_at_the_bounds(db: TestDb) {
    let (lo, hi) = (*bounds::PRIORITY.start(), *bounds::PRIORITY.end());
    accepts(&db, "priority", &lo.to_string()).await;
    accepts(&db, "priority", &hi.to_string()).await;
    refuses(&db, "priority", &(lo - 1).to_string()).await;
    refuses(&db, "priority", &(hi + 1).to_string()).await;
    let (lo, hi) = (*bounds::MAX_ATTEMPTS.start(), *bounds::MAX_ATTEMPTS.end());
    accepts(&db, "max_attempts", &lo.to_string()).await;
    accepts(&db, "max_attempts", &hi.to_string()).await;
    refuses(&db, "max_attempts", &(lo - 1).to_string()).await;
    refuses(&db, "max_attempts", &(hi + 1).to_string()).await;
}

async fn times_stop_at_the_bounds(db: TestDb) {
    let (lo, hi) = (*bounds::TIME_MS.start(), *bounds::TIME_MS.end());
    for col in ["run_at", "created_at", "updated_at"] {
        accepts(&db, col, &time(&db, lo)).await;
        accepts(&db, col, &time(&db, hi)).await;
        refuses(&db, col, &time(&db, lo - 1)).await;
        refuses(&db, col, &time(&db, hi + 1)).await;
    }
}

async fn point_in_time_is_milliseconds(db: TestDb) {
    let pitr = |v: i64| {
        format!(
            "INSERT INTO jobs (region, instance, bak_set_type, download_point_in_time, format, \
             target_type) VALUES ('cn-hangzhou', 'rm-1', 'pitr', {v}, 'CSV', 'URL')"
        )
    };
    let lo = bounds::POINT_IN_TIME_MIN_MS;
    db.exec(&pitr(lo))
        .await
        .expect("the first millisecond value");
    db.exec(&pitr(*bounds::TIME_MS.end())).await.expect("9999");
    let err = db.exec(&pitr(lo - 1)).await.unwrap_err().to_string();
    assert!(err.contains("jobs_point_in_time_ms"), "{err}");
    let err = db
        .exec(&pitr(*bounds::TIME_MS.end() + 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("jobs_point_in_time_ms"), "{err}");
}

async fn lengths_stop_at_the_bounds(db: TestDb) {
    let quoted = |s: String| format!("'{s}'");
    let id_max = *bounds::IDENTIFIER_LEN.end();
    accepts(&db, "instance", &quoted("r".repeat(id_max))).await;
    refuses(&db, "instance", &quoted("r".repeat(id_max + 1))).await;
    accepts(&db, "cluster_name", &quoted("c".repeat(id_max))).await;
    refuses(&db, "cluster_name", &quoted("c".repeat(id_max + 1))).await;
    let key_max = *bounds::IDEMPOTENCY_KEY_LEN.end();
    accepts(&db, "idempotency_key", &quoted("k".repeat(key_max))).await;
    refuses(&db, "idempotency_key", &quoted("k".repeat(key_max + 1))).await;
    let (lo, hi) = (*bounds::BUCKET_LEN.start(), *bounds::BUCKET_LEN.end());
    accepts(&db, "target_bucket", &quoted("b".repeat(lo))).await;
    accepts(&db, "target_bucket", &quoted("b".repeat(hi))).await;
    refuses(&db, "target_bucket", &quoted("b".repeat(lo - 1))).await;
    refuses(&db, "target_bucket", &quoted("b".repeat(hi + 1))).await;
    accepts(
        &db,
        "target_path",
        &quoted("p".repeat(bounds::TEXT_MAX_LEN)),
    )
    .await;
    refuses(
        &db,
        "target_path",
        &quoted("p".repeat(bounds::TEXT_MAX_LEN + 1)),
    )
    .await;
}

both_backends!(
    numbers_stop_at_the_bounds,
    times_stop_at_the_bounds,
    point_in_time_is_milliseconds,
    lengths_stop_at_the_bounds,
);

//! Fresh databases for tests: a SQLite file in a temp dir, or a new PostgreSQL database
//! on the server at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! migrated and wrapped in a [`TestDb`].
//!
//! Run one body against both backends with [`both_backends!`]:
//!
//! ```ignore
//! use crate::helpers::db::{both_backends, TestDb};
//!
//! async fn enqueue_then_claim(db: TestDb) { /* use db.store */ }
//! both_backends!(enqueue_then_claim); // tests enqueue_then_claim::sqlite and ::postgres
//! ```
//!
//! Off CI an unreachable PostgreSQL skips the postgres case with a loud message; with
//! `CI=true` it panics, because CI must never pass by skipping.
#![allow(dead_code)]

use dbs_archiver::model::{DownloadRequest, JobSource};
use dbs_archiver::store::{self, DynStore, NewJob};
use sqlx::Connection;
use std::sync::atomic::{AtomicU64, Ordering};
use tempfile::TempDir;
use tokio::sync::OnceCell;

/// Default server for the postgres cases.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Pool size of test stores: small, since many tests share one server.
const TEST_POOL: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated, empty database that lives as long as this value.
pub struct TestDb {
    pub store: DynStore,
    /// Connect more handles (a "second process") or a raw SQL client with this.
    pub url: String,
    pub backend: Backend,
    /// Keeps the SQLite file alive.
    _dir: Option<TempDir>,
    /// The PostgreSQL database to drop on cleanup.
    pg_database: Option<String>,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("backend", &self.backend)
            .field("url", &self.url)
            .finish()
    }
}

impl TestDb {
    /// Another store handle on the same database, as a second process would have.
    pub async fn connect_again(&self) -> DynStore {
        store::connect(&self.url, TEST_POOL)
            .await
            .expect("second store handle")
    }

    /// Run SQL text (several statements allowed) through a separate, plain connection, as
    /// an operator's SQL client would. Errors come back for the test to inspect.
    pub async fn exec(&self, sql: &str) -> Result<u64, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
                let done = sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await?;
                Ok(done.rows_affected())
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                let done = sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await?;
                Ok(done.rows_affected())
            }
        }
    }

    /// One integer from a query run on a separate connection (e.g. `SELECT count(*) …`).
    pub async fn query_i64(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
        }
    }

    /// Enqueue a minimal valid full-backup job for `instance` in `cn-hangzhou`.
    pub async fn enqueue(&self, instance: &str) -> dbs_archiver::model::Job {
        self.store
            .job_enqueue(NewJob::new(
                DownloadRequest::example_full("cn-hangzhou", instance, "1001"),
                JobSource::Api,
            ))
            .await
            .expect("enqueue")
            .job
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_database.take() else {
            return;
        };
        // Best effort, off the test's runtime: WITH (FORCE) closes our own pool's sessions.
        let admin = admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                sqlx::raw_sql(&sql).execute(&mut conn).await.ok()?;
                conn.close().await.ok()
            })
        })
        .join();
    }
}

/// The PostgreSQL server tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_string())
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}_{}_{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

/// A migrated SQLite database in a fresh temp dir.
pub async fn sqlite() -> TestDb {
    let db = sqlite_unmigrated().await;
    db.store.migrate().await.expect("migrate sqlite");
    db
}

/// A SQLite database file with no tables yet (for migration tests).
pub async fn sqlite_unmigrated() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = store::connect(&url, TEST_POOL).await.expect("open sqlite");
    TestDb {
        store,
        url,
        backend: Backend::Sqlite,
        _dir: Some(dir),
        pg_database: None,
    }
}

/// Whether the server answers, checked once per test binary.
async fn postgres_reachable() -> bool {
    static REACHABLE: OnceCell<bool> = OnceCell::const_new();
    *REACHABLE
        .get_or_init(|| async {
            let url = admin_url();
            match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                sqlx::PgConnection::connect(&url),
            )
            .await
            {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                    true
                }
                Ok(Err(e)) => unreachable_postgres(&url, &e.to_string()),
                Err(_) => unreachable_postgres(&url, "connect timed out"),
            }
        })
        .await
}

fn unreachable_postgres(url: &str, why: &str) -> bool {
    let url = dbs_archiver::config::redact_url(url);
    if on_ci() {
        panic!("PostgreSQL at {url} is unreachable ({why}) and CI=true: postgres tests must run");
    }
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! PostgreSQL at {url} is unreachable ({why}).\n\
         !!! SKIPPING every postgres test case. Start PostgreSQL or set DATABASE_URL.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    false
}

/// A migrated, brand-new PostgreSQL database; `None` (after a loud message) when the
/// server is unreachable off CI.
pub async fn postgres() -> Option<TestDb> {
    let db = postgres_unmigrated().await?;
    db.store.migrate().await.expect("migrate postgres");
    Some(db)
}

/// A brand-new PostgreSQL database with no tables yet (for migration tests).
pub async fn postgres_unmigrated() -> Option<TestDb> {
    if !postgres_reachable().await {
        return None;
    }
    let admin = admin_url();
    let name = format!("dbs_archiver_test_{}", unique_suffix());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to DATABASE_URL");
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let _ = conn.close().await;
    let mut url = url::Url::parse(&admin).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    let url = url.to_string();
    let db = TestDb {
        store: store::connect(&url, TEST_POOL)
            .await
            .expect("open postgres test database"),
        url,
        backend: Backend::Postgres,
        _dir: None,
        pg_database: Some(name),
    };
    Some(db)
}

/// Every backend available: SQLite always, PostgreSQL when reachable (see [`postgres`]).
pub async fn backends() -> Vec<TestDb> {
    let mut all = vec![sqlite().await];
    all.extend(postgres().await);
    all
}

/// Generate `NAME::sqlite` and `NAME::postgres` tests that call `async fn NAME(db: TestDb)`.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::db::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::helpers::db::postgres().await {
                    super::$name(db).await;
                }
            }
        }
    )+};
}
pub(crate) use both_backends;

impl TestDb {
    /// Insert `jobs` queued full-backup jobs spread round-robin over `instances`
    /// instances (`rm-0` … in `cn-hangzhou`) with one SQL statement.
    pub async fn seed(&self, jobs: u32, instances: u32) {
        let select = "SELECT 'cn-hangzhou', 'rm-' || (n % {instances}), 'full', '1', 'CSV', \
                      'URL', 'api'";
        let cols = "INSERT INTO jobs (region, instance, bak_set_type, bak_set_id, format, \
                    target_type, source)";
        let sql = match self.backend {
            Backend::Sqlite => format!(
                "{cols} WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g \
                 WHERE n < {jobs}) {select} FROM g"
            ),
            Backend::Postgres => format!("{cols} {select} FROM generate_series(1, {jobs}) AS g(n)"),
        }
        .replace("{instances}", &instances.to_string());
        self.exec(&sql).await.expect("seed jobs");
    }
}

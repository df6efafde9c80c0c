//! Wake-ups for jobs inserted by another process (a SQL client's `INSERT`): SQLite has no
//! NOTIFY, so a dedicated connection reads `PRAGMA data_version` every [`INTERVAL`] (it
//! changes when any other connection commits) and, when it moved, whether `jobs` holds a
//! newer id than before. Only new jobs wake the workers: a migration, a heartbeat or an
//! update does not, and neither does a job this store enqueued itself (it woke them
//! already; `own_newest` is the highest such id).
//!
//! Idle cost: the database file and its WAL are `stat`ed every interval, and SQLite is
//! asked only when one of them changed (`bench all` measured 1.2 % CPU for an idle
//! `serve` when every interval ran the PRAGMA). Without the watcher a SQL insert waited
//! for the dispatcher's idle poll (about 1 s). A write that lands in the same coarse
//! mtime tick as a `stat`, with no change of size, is noticed at that idle poll.

use super::super::wake::Wakeups;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the watcher looks: the wake-up latency of a SQL insert from another process.
pub(crate) const INTERVAL: Duration = Duration::from_millis(50);

/// Watch until `stop` fires; reconnects after an error.
pub(crate) async fn run(
    options: SqliteConnectOptions,
    file: Option<PathBuf>,
    notify: Wakeups,
    own_newest: Arc<AtomicI64>,
    stop: CancellationToken,
) {
    loop {
        let mut conn: SqliteConnection = tokio::select! {
            _ = stop.cancelled() => return,
            c = options.connect() => match c {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "SQLite change watcher cannot connect; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            }
        };
        let mut version: Option<i64> = None;
        let mut newest = newest_job(&mut conn).await;
        let mut stamp = file.as_deref().map(stamp_of);
        // Whether the current stamp has been looked at again after it stopped changing. A
        // commit writes its WAL frames (moving the stamp) a moment before it becomes
        // visible, so a check that raced it can read the old `data_version`: one more check
        // once the stamp is stable sees it. Without this a SQL INSERT was sometimes missed
        // until the next write (`plain_sql_insert_wakes_the_sqlite_notifier`, under load).
        let mut confirmed = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(INTERVAL) => {}
            }
            if let Some(path) = file.as_deref() {
                let now = stamp_of(path);
                let settled = stamp.as_ref() == Some(&now);
                stamp = Some(now);
                if settled && confirmed && version.is_some() {
                    continue; // neither the file nor its WAL changed: nothing committed
                }
                confirmed = settled;
            }
            let now = match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                .fetch_one(&mut conn)
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "SQLite change watcher lost its connection; reconnecting");
                    break;
                }
            };
            if version.is_some_and(|v| v != now) {
                let latest = newest_job(&mut conn).await;
                if latest > newest.max(own_newest.load(Ordering::Relaxed)) {
                    notify.wake();
                }
                newest = latest;
            }
            version = Some(now);
        }
    }
}

/// Modification time and size of the database file and of its WAL: any commit changes
/// one of them.
type Stamp = [Option<(std::time::SystemTime, u64)>; 2];

pub(crate) fn stamp_of(db: &Path) -> Stamp {
    let of = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    };
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    [of(db), of(Path::new(&wal))]
}

/// The highest job id (0 before the first job, or before the table exists).
async fn newest_job(conn: &mut SqliteConnection) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT coalesce(max(id), 0) FROM jobs")
        .fetch_one(conn)
        .await
        .unwrap_or(0)
}

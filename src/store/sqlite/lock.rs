//! One `serve` per SQLite file: an exclusive advisory lock on `<dbfile>.lock`.
//!
//! SQLite itself would let two servers share the file, but then both would dispatch and
//! the one-process design (design.md "Scaling out") breaks quietly. The lock makes the
//! second `serve` fail fast with a message that says why. CLI commands do not take it, so
//! they keep working while `serve` runs.

use crate::store::StoreError;
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::path::PathBuf;

/// Holds the lock until dropped (the OS releases it when the file closes, also on a crash).
#[derive(Debug)]
pub struct ProcessLock {
    path: Option<PathBuf>,
    _file: Option<File>,
}

impl ProcessLock {
    /// The lock file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }
}

/// The database file named by a `sqlite:` URL, or `None` for `:memory:`.
pub(crate) fn database_path(url: &str) -> Result<Option<PathBuf>, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::Config(format!("database.url: not a sqlite:// URL: {url:?}")))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        return Ok(None);
    }
    Ok(Some(PathBuf::from(path)))
}

/// Take the exclusive lock of the database at `url` for this process.
///
/// Fails with [`StoreError::Locked`] when another process holds it.
pub fn acquire_process_lock(url: &str) -> Result<ProcessLock, StoreError> {
    let Some(db) = database_path(url)? else {
        return Ok(ProcessLock {
            path: None,
            _file: None,
        });
    };
    let mut name = db.clone().into_os_string();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            StoreError::Config(format!("cannot open lock file {}: {e}", path.display()))
        })?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(ProcessLock {
            path: Some(path),
            _file: Some(file),
        }),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(StoreError::Locked(format!(
            "another `dbs-archiver serve` is using {} (lock file {}); SQLite allows one \
             server per database file — stop the other one, or use PostgreSQL to run several",
            db.display(),
            path.display()
        ))),
        Err(e) => Err(StoreError::Config(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

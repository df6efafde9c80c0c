//! One `serve` per SQLite file.

use dbs_archiver::store::sqlite::acquire_process_lock;
use dbs_archiver::store::StoreError;

#[test]
fn second_holder_is_refused_with_a_clear_message_until_the_first_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    let first = acquire_process_lock(&url).unwrap();
    assert!(first.path().unwrap().ends_with("q.db.lock"));
    match acquire_process_lock(&url) {
        Err(StoreError::Locked(msg)) => {
            assert!(msg.contains("another `dbs-archiver serve`"), "{msg}");
            assert!(msg.contains("q.db"), "{msg}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    let again = acquire_process_lock(&url).unwrap();
    // Another database file is independent.
    let other = format!("sqlite://{}", dir.path().join("other.db").display());
    let _b = acquire_process_lock(&other).unwrap();
    drop(again);
}

#[test]
fn in_memory_database_needs_no_lock() {
    let lock = acquire_process_lock("sqlite::memory:").unwrap();
    assert!(lock.path().is_none());
}

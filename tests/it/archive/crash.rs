//! `serve` is SIGKILLed in the middle of streaming an archive; the next `serve` rescues the
//! fetch when its lease expires and resumes it with a range request, and the stored object
//! is byte-identical to what the link serves.

use super::*;
use crate::helpers::db::both_backends;
use crate::worker::crash::{serve_command, tail};
use crate::worker::REGION;
use dbs_archiver::archive::ArchiveState;
use dbs_archiver::model::JobSource;
use dbs_archiver::sim::{Durations, Simulator};
use dbs_archiver::store::NewJob;

/// 12 MB exported, fetched at 2 MiB/s: about six seconds to kill it in.
const CRASH_BACKUP_BYTES: i64 = 20_000_000;

async fn serve_killed_mid_stream_resumes_with_a_range_request(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SimConfig::demo()
        .fleet(Default::default())
        .with_instances(REGION, "rm-w", 1)
        .durations(Durations {
            initializing: Duration::from_millis(300),
            queueing: Duration::from_millis(300),
            running: Duration::from_secs(1),
            url_expiry: Duration::from_secs(3 * 86_400),
        });
    for b in &mut config.fleet.instances[0].backup_sets {
        b.size_bytes = CRASH_BACKUP_BYTES;
    }
    let sim = Simulator::start(config, "127.0.0.1:0").await.unwrap();
    let mut req = full_request(&instance(0), 0);
    req.sink = Some("local".into());
    let job = db
        .store
        .job_enqueue(NewJob::new(req, JobSource::Api))
        .await
        .unwrap()
        .job;
    let settings = dir.path().join("archive.toml");
    std::fs::write(
        &settings,
        "[archive]\nlease_seconds = 2\nidle_poll_ms = 100\nbandwidth_bytes_per_second = 2097152\n\n\
         [[sinks]]\nname = \"local\"\nkind = \"local\"\npath = \"archives\"\n",
    )
    .unwrap();
    let spawn = |n: usize| {
        serve_command(&db.url, &sim, dir.path(), n)
            .env("DBS_ARCHIVER_CONFIG", &settings)
            .spawn()
            .expect("spawn serve")
    };

    // Wait until the first process has streamed part of the file, then SIGKILL it.
    let mut first = spawn(0);
    let mut progress = 0;
    for _ in 0..600 {
        if let Some(a) = db.store.archive_get_by_job(job.id).await.unwrap() {
            assert_ne!(
                a.state,
                ArchiveState::Stored,
                "too fast to kill: raise the size"
            );
            if a.state == ArchiveState::Fetching && a.bytes_done > 1_000_000 {
                progress = a.bytes_done;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(progress > 0, "no fetch progress:\n{}", tail(dir.path(), 0));
    first.kill().expect("SIGKILL serve");
    first.wait().unwrap();

    // A fresh process takes over once the dead one's lease expires.
    let mut second = spawn(1);
    let mut archive = None;
    for _ in 0..600 {
        let a = db.store.archive_get_by_job(job.id).await.unwrap().unwrap();
        if matches!(a.state, ArchiveState::Stored | ArchiveState::Failed) {
            archive = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = second.kill();
    second.wait().unwrap();
    let archive = archive.unwrap_or_else(|| panic!("not stored:\n{}", tail(dir.path(), 1)));
    assert_eq!(archive.state, ArchiveState::Stored, "{archive:?}");

    let job = db.store.job_get(job.id).await.unwrap().unwrap();
    let bytes = served_bytes(&job);
    assert_eq!(archive.sha256.as_deref(), Some(sha256_hex(&bytes).as_str()));
    let path = local_file(archive.location.as_deref().unwrap());
    assert!(path.starts_with(dir.path().join("archives")), "{path:?}");
    assert!(std::fs::read(&path).unwrap() == bytes, "byte-identical");
    let task = job.remote.task_id.unwrap();
    let starts: Vec<u64> = sim
        .file_requests()
        .into_iter()
        .filter(|r| r.task_id == task)
        .map(|r| r.range_start)
        .collect();
    assert_eq!(starts.len(), 2, "one request per process: {starts:?}");
    assert_eq!(starts[0], 0);
    assert!(
        starts[1] >= progress as u64,
        "the second process resumed at the bytes on disk ({starts:?}, recorded {progress})"
    );
    let events = db.store.archive_events(archive.id).await.unwrap();
    assert!(
        events.iter().any(|e| e.reason.contains("lease expired")),
        "the rescue is in the history"
    );
    sim.shutdown().await;
}

both_backends!(serve_killed_mid_stream_resumes_with_a_range_request);

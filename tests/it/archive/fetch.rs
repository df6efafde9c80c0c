//! Fetching into a local-directory sink: the happy path, a connection dropped mid-body,
//! and links that expired.

use super::*;
use crate::helpers::db::both_backends;
use dbs_archiver::archive::ArchiveState;
use dbs_archiver::sim::FileFaults;

async fn url_archive_lands_in_local_sink_verified(db: TestDb) {
    let a = ArchiveRig::start(db, BACKUP_BYTES, vec![]).await;
    let job = a.succeeded_url_job(0, 0, Some("local")).await;
    let fetcher = a.fetcher(fetcher_config(None));

    let report = fetcher.run_once().await.unwrap();
    assert_eq!((report.created, report.stored), (1, 1), "{report:?}");

    let archive = a.archive_of(&job).await;
    let bytes = served_bytes(&job);
    assert_eq!(archive.state, ArchiveState::Stored);
    assert_eq!(archive.size, Some(bytes.len() as i64));
    assert_eq!(archive.size, job.remote.export_data_size);
    assert_eq!(archive.sha256.as_deref(), Some(sha256_hex(&bytes).as_str()));
    let location = archive.location.clone().unwrap();
    let on_disk = std::fs::read(local_file(&location)).unwrap();
    assert!(
        on_disk == bytes,
        "the stored file is byte-identical to the served one"
    );
    let task = job.remote.task_id.as_deref().unwrap();
    let bak_set = job.request.bak_set_id.as_deref().unwrap();
    assert!(
        location.contains(&format!(
            "/archives/{}/{}/",
            job.request.region, job.request.instance
        )) && location.ends_with(&format!("/{task}_{bak_set}.csv.tar.gz")),
        "object name from the default template: {location}"
    );
    // No partial file is left behind, and the history says what happened.
    let partial = a.sinks.get("local").unwrap().partial_path(archive.id);
    assert!(!partial.exists());
    let events = a.rig.db.store.archive_events(archive.id).await.unwrap();
    let states: Vec<_> = events.iter().map(|e| e.to_state).collect();
    assert_eq!(
        states,
        [
            ArchiveState::Pending,
            ArchiveState::Fetching,
            ArchiveState::Stored
        ]
    );
    // A second round finds nothing to do: the job is archived once.
    let again = fetcher.run_once().await.unwrap();
    assert_eq!((again.created, again.stored), (0, 0));
}

async fn dropped_connection_resumes_with_a_range_request(db: TestDb) {
    let a = ArchiveRig::start(db, BACKUP_BYTES, vec![]).await;
    let job = a.succeeded_url_job(1, 0, None).await;
    // The default sink archives jobs that name none.
    let fetcher = a.fetcher(fetcher_config(Some("local")));
    a.rig.sim.set_file_faults(FileFaults {
        drop_next: 1,
        drop_after_bytes: 400_000,
    });

    let first = fetcher.run_once().await.unwrap();
    assert_eq!((first.stored, first.retried), (0, 1), "{first:?}");
    let archive = a.archive_of(&job).await;
    assert_eq!(archive.state, ArchiveState::Pending);
    assert_eq!(
        archive.last_error_code.as_deref(),
        Some("Archive.TransferInterrupted"),
        "{archive:?}"
    );
    let partial_len = archive.bytes_done;
    assert!(
        partial_len > 0 && partial_len <= 400_000,
        "progress kept: {partial_len}"
    );
    assert!(
        archive.run_at > a.rig.ctx.clock.now(),
        "retry is scheduled, not immediate"
    );

    // Not due yet: nothing happens until the backoff has passed.
    assert_eq!(fetcher.run_once().await.unwrap().stored, 0);
    a.rig.advance(Duration::from_secs(15));
    let second = fetcher.run_once().await.unwrap();
    assert_eq!(second.stored, 1, "{second:?}");

    let archive = a.archive_of(&job).await;
    let bytes = served_bytes(&job);
    let on_disk = std::fs::read(local_file(archive.location.as_deref().unwrap())).unwrap();
    assert!(on_disk == bytes, "byte-identical after the resume");
    assert_eq!(archive.sha256.as_deref(), Some(sha256_hex(&bytes).as_str()));
    let task = job.remote.task_id.clone().unwrap();
    let starts: Vec<u64> = a
        .rig
        .sim
        .file_requests()
        .into_iter()
        .filter(|r| r.task_id == task)
        .map(|r| r.range_start)
        .collect();
    assert_eq!(
        starts,
        [0, partial_len as u64],
        "the second request asked only for the rest"
    );
}

async fn expired_link_fails_with_a_clear_error_and_an_alert(db: TestDb) {
    let a = ArchiveRig::start(db, BACKUP_BYTES, vec![]).await;
    let fetcher = a.fetcher(fetcher_config(Some("local")));
    let before = counter(dbs_archiver::archive::metrics::LINK_EXPIRED);

    // The cloud answers 403: the task itself has expired (simulated time jumps past the
    // three days), although the link's own expiry time has not come yet.
    let dead = a.succeeded_url_job(0, 0, None).await;
    assert_eq!(fetcher.discover().await.unwrap(), 1);
    a.rig.sim.advance(Duration::from_secs(4 * 86_400));
    let r = fetcher.run_once().await.unwrap();
    assert_eq!((r.stored, r.failed), (0, 1), "{r:?}");
    let archive = a.archive_of(&dead).await;
    let task = dead.remote.task_id.clone().unwrap();
    assert!(
        a.rig
            .sim
            .file_requests()
            .iter()
            .any(|r| r.task_id == task && r.status == 403),
        "the link was tried and refused"
    );
    assert_eq!(archive.state, ArchiveState::Failed);
    assert_eq!(
        archive.last_error_code.as_deref(),
        Some("Archive.UrlExpired")
    );
    let message = archive.last_error.clone().unwrap();
    assert!(message.contains("download link expired"), "{message}");
    assert!(
        !message.contains("Expires="),
        "no signed URL in errors: {message}"
    );

    // The link's own expiry time passed before the fetch ran: no request is made.
    let late = a.succeeded_url_job(1, 0, None).await;
    assert_eq!(fetcher.discover().await.unwrap(), 1);
    a.rig.advance(Duration::from_secs(3 * 3600));
    let r = fetcher.run_once().await.unwrap();
    assert_eq!(r.failed, 1, "{r:?}");
    let archive = a.archive_of(&late).await;
    assert_eq!(archive.state, ArchiveState::Failed);
    assert_eq!(
        archive.last_error_code.as_deref(),
        Some("Archive.UrlExpired")
    );
    assert!(archive.last_error.unwrap().contains("expired at"));
    let task = late.remote.task_id.unwrap();
    assert!(
        a.rig.sim.file_requests().iter().all(|r| r.task_id != task),
        "an expired link is not even tried"
    );
    assert!(
        counter(dbs_archiver::archive::metrics::LINK_EXPIRED) >= before + 2.0,
        "the alert counter moved"
    );
    // Failed archives stay failed (no silent retry loop).
    a.rig.advance(Duration::from_secs(3600));
    assert_eq!(fetcher.run_once().await.unwrap(), Default::default());
}

async fn unknown_sink_is_refused_and_reported(db: TestDb) {
    let a = ArchiveRig::start(db, BACKUP_BYTES, vec![]).await;
    // A request naming a sink that is not configured (a plain SQL insert can do this).
    let job = a.succeeded_url_job(2, 0, Some("nowhere")).await;
    let fetcher = a.fetcher(fetcher_config(None));
    fetcher.run_once().await.unwrap();
    let archive = a.archive_of(&job).await;
    assert_eq!(archive.state, ArchiveState::Failed);
    assert_eq!(
        archive.last_error_code.as_deref(),
        Some("Archive.UnknownSink")
    );
    assert!(archive.last_error.unwrap().contains("\"nowhere\""));
}

both_backends!(
    url_archive_lands_in_local_sink_verified,
    dropped_connection_resumes_with_a_range_request,
    expired_link_fails_with_a_clear_error_and_an_alert,
    unknown_sink_is_refused_and_reported,
);

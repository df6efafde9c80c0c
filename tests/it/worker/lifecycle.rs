//! `serve` in-process: `App::run` until the token fires, the two-phase stop, and the
//! SQLite process lock.

use super::*;
use crate::helpers::db::{both_backends, Backend};
use dbs_archiver::app::App;
use dbs_archiver::config::Settings;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

fn settings_for(db_url: &str, sim: &SimHandle) -> Settings {
    let creds = sim.credentials();
    let env = [
        ("DATABASE__URL", db_url.to_string()),
        ("DATABASE__MAX_CONNECTIONS", "4".into()),
        ("DBS__ENDPOINT", sim.endpoint()),
        ("DBS__RDS_ENDPOINT", sim.endpoint()),
        ("DBS__ACCESS_KEY_ID", creds.access_key_id.clone()),
        (
            "DBS__ACCESS_KEY_SECRET",
            creds.access_key_secret.expose_secret().to_string(),
        ),
        ("DBS__CALLS_PER_SECOND_PER_REGION", "1000".into()),
        ("WORKER__IDLE_POLL_MS", "50".into()),
        ("WORKER__SHUTDOWN_GRACE_SECONDS", "2".into()),
        ("TRACKER__POLL_INITIAL_SECONDS", "0.2".into()),
        ("TRACKER__POLL_MAX_SECONDS", "0.5".into()),
        ("SCHEDULER__ENABLED", "false".into()),
        ("API__LISTEN", "127.0.0.1:0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("DBS_ARCHIVER__{k}"), v));
    Settings::load_from(None, env).expect("settings")
}

/// Jobs flow through `App::run`; cancelling the token stops every service, returns Ok,
/// and leaves no lease behind.
async fn run_until_cancelled_then_stop_cleanly(db: TestDb) {
    let sim = Simulator::start(
        SimConfig::demo()
            .fleet(Default::default())
            .with_instances(REGION, "rm-w", 3)
            .durations(short_durations())
            .time_scale(40.0),
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let settings = settings_for(&db.url, &sim);
    let store = db.store.clone();
    let ids = enqueue_pitr_jobs(&store, 3, 2).await;
    let token = CancellationToken::new();
    let app = App::build(settings).await.expect("build");
    let run = tokio::spawn(app.run(token.clone()));
    // The first wave finishes; the second is in flight when we stop.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = store
            .job_count_by_state()
            .await
            .unwrap()
            .iter()
            .filter(|(s, _)| *s == JobState::Succeeded)
            .map(|(_, n)| *n)
            .sum::<i64>();
        if done >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "jobs did not progress"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    token.cancel();
    let result = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("stops within the grace period")
        .expect("no panic");
    assert!(result.is_ok(), "{result:?}");
    for id in ids {
        let j = store.job_get(id).await.unwrap().unwrap();
        assert!(
            j.lease_owner.is_none(),
            "job {id} ({}) still leased after a clean stop",
            j.state
        );
    }
    sim.shutdown().await;
}

/// On SQLite, a second `serve` on the same database fails at once, saying why
/// (PostgreSQL runs any number of them, so there is nothing to test there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_serve_on_one_sqlite_file_fails_fast() {
    let db = crate::helpers::db::sqlite().await;
    assert_eq!(db.backend, Backend::Sqlite);
    let sim = Simulator::start(SimConfig::demo(), "127.0.0.1:0")
        .await
        .unwrap();
    let first = App::build(settings_for(&db.url, &sim))
        .await
        .expect("first");
    let err = App::build(settings_for(&db.url, &sim))
        .await
        .expect_err("second must fail")
        .to_string();
    assert!(err.contains("another `dbs-archiver serve`"), "{err}");
    drop(first);
    App::build(settings_for(&db.url, &sim))
        .await
        .expect("lock released with the first app");
    sim.shutdown().await;
}

both_backends!(run_until_cancelled_then_stop_cleanly);

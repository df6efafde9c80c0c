//! Crash safety: `serve` runs as a child process and is killed with SIGKILL at random
//! moments (20 times) while 100 jobs over 10 instances run against a simulator whose
//! CreateDownload sometimes creates the task and then never answers. After a final,
//! undisturbed run every job has succeeded and the simulator holds exactly one task per
//! job: nothing lost, nothing submitted twice. The last process is stopped with SIGTERM
//! and must exit cleanly (graceful shutdown).

use super::*;
use crate::helpers::db::both_backends;
use dbs_archiver::sim::{FaultRule, Faults};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const KILLS: usize = 20;
const JOBS_PER_INSTANCE: usize = 10;
const INSTANCES: usize = 10;

/// A `serve` child process with short leases and polls, logging to `dir/serve-N.log`.
pub(crate) fn spawn_serve(db_url: &str, sim: &SimHandle, dir: &Path, n: usize) -> Child {
    serve_command(db_url, sim, dir, n)
        .spawn()
        .expect("spawn dbs-archiver serve")
}

/// The command [`spawn_serve`] runs, for callers that change a setting (a later `env`
/// replaces an earlier one).
pub(crate) fn serve_command(db_url: &str, sim: &SimHandle, dir: &Path, n: usize) -> Command {
    let log = std::fs::File::create(dir.join(format!("serve-{n}.log"))).expect("log file");
    let creds = sim.credentials();
    use secrecy::ExposeSecret;
    // A long soak can pin a copy of the binary, so rebuilding meanwhile changes nothing.
    let bin = std::env::var_os("DBS_ARCHIVER_SERVE_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_dbs-archiver").into());
    let mut command = Command::new(bin);
    command
        .arg("serve")
        .current_dir(dir)
        .env("DBS_ARCHIVER__DATABASE__URL", db_url)
        .env("DBS_ARCHIVER__DATABASE__MAX_CONNECTIONS", "4")
        .env("DBS_ARCHIVER__DBS__ENDPOINT", sim.endpoint())
        .env("DBS_ARCHIVER__DBS__RDS_ENDPOINT", sim.endpoint())
        .env("DBS_ARCHIVER__DBS__ACCESS_KEY_ID", &creds.access_key_id)
        .env(
            "DBS_ARCHIVER__DBS__ACCESS_KEY_SECRET",
            creds.access_key_secret.expose_secret(),
        )
        .env("DBS_ARCHIVER__DBS__REQUEST_TIMEOUT_MS", "1000")
        .env("DBS_ARCHIVER__DBS__CONNECT_TIMEOUT_MS", "1000")
        .env("DBS_ARCHIVER__DBS__CALLS_PER_SECOND_PER_REGION", "1000")
        .env("DBS_ARCHIVER__DBS__BURST", "1000")
        .env("DBS_ARCHIVER__WORKER__LEASE_SECONDS", "3")
        .env("DBS_ARCHIVER__WORKER__HEARTBEAT_SECONDS", "1")
        .env("DBS_ARCHIVER__WORKER__RESCUE_INTERVAL_SECONDS", "1")
        .env("DBS_ARCHIVER__WORKER__IDLE_POLL_MS", "100")
        .env("DBS_ARCHIVER__WORKER__SHUTDOWN_GRACE_SECONDS", "3")
        .env("DBS_ARCHIVER__WORKER__RETRY__BASE_SECONDS", "0.2")
        .env("DBS_ARCHIVER__WORKER__RETRY__CAP_SECONDS", "2")
        .env("DBS_ARCHIVER__TRACKER__POLL_INITIAL_SECONDS", "0.3")
        .env("DBS_ARCHIVER__TRACKER__POLL_MAX_SECONDS", "1")
        .env("DBS_ARCHIVER__TRACKER__POLL_GROWTH", "1.2")
        .env("DBS_ARCHIVER__SCHEDULER__ENABLED", "false")
        .env("DBS_ARCHIVER__API__LISTEN", "127.0.0.1:0")
        .env("DBS_ARCHIVER__TELEMETRY__LOG_LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    command
}

/// The last 40 log lines of the `n`-th child.
pub(crate) fn tail(dir: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(dir.join(format!("serve-{n}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

async fn sigkill_at_random_moments_loses_and_doubles_nothing(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(stalling_sim(INSTANCES), "127.0.0.1:0")
        .await
        .unwrap();
    let store = db.store.clone();
    let ids = enqueue_pitr_jobs(&store, INSTANCES, JOBS_PER_INSTANCE).await;

    for n in 0..KILLS {
        let mut child = spawn_serve(&db.url, &sim, dir.path(), n);
        let ms = rand::random_range(300..1500u64);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited early ({status}):\n{}", tail(dir.path(), n));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
    let before_final = sim.stats().total_tasks_created();

    let n = KILLS;
    let mut child = spawn_serve(&db.url, &sim, dir.path(), n);
    wait_until_drained(
        &store,
        &mut [(n, &mut child)],
        dir.path(),
        Duration::from_secs(150),
    )
    .await;
    // Graceful stop: SIGTERM, clean exit within the grace period.
    let status = sigterm_and_wait(&mut child, dir.path(), n);
    assert!(
        status.success(),
        "serve exit: {status}\n{}",
        tail(dir.path(), n)
    );

    let stats = sim.stats();
    eprintln!(
        "crash test ({:?}): {KILLS} kills, {} tasks before the final run, {} CreateDownload calls, {} timed out after create",
        db.backend,
        before_final,
        stats.calls_of("CreateDownload"),
        stats.count("CreateDownload", "Stalled")
    );
    assert_all_succeeded_with_one_task_each(&store, &sim, &ids).await;
    sim.shutdown().await;
}

/// Poll until no job is open, failing if a child (log number, process) exits or `within`
/// passes. Reads that fail (the database may be restarting) are retried.
pub(super) async fn wait_until_drained(
    store: &dbs_archiver::store::DynStore,
    children: &mut [(usize, &mut Child)],
    dir: &Path,
    within: Duration,
) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let counts = store.job_count_by_state().await;
        if let Ok(counts) = &counts {
            let open: i64 = counts
                .iter()
                .filter(|(s, _)| !s.is_terminal())
                .map(|(_, c)| *c)
                .sum();
            if open == 0 {
                return;
            }
        }
        for (n, child) in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("serve {n} exited ({status}):\n{}", tail(dir, *n));
            }
        }
        if std::time::Instant::now() > deadline {
            let mut logs = String::new();
            for (n, child) in children.iter_mut() {
                let _ = child.kill();
                logs.push_str(&tail(dir, *n));
            }
            panic!("jobs still open: {counts:?}\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// SIGTERM the child and wait (at most 15 s) for it to exit; its exit status.
pub(super) fn sigterm_and_wait(
    child: &mut Child,
    dir: &Path,
    n: usize,
) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(term.success());
    let stop_deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            std::time::Instant::now() < stop_deadline,
            "serve did not stop on SIGTERM:\n{}",
            tail(dir, n)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Instances `rm-w0001…` whose tasks take about 2 s, where 30% of CreateDownloads create
/// the task and then never answer, and where the one-task-per-instance rule is off, so a
/// second submission shows up as a second task instead of being refused.
pub(super) fn stalling_sim(instances: usize) -> SimConfig {
    SimConfig::demo()
        .fleet(Default::default())
        .with_instances(REGION, "rm-w", instances)
        .durations(short_durations())
        .time_scale(40.0) // 80 simulated seconds ⇒ about 2 s per task
        .enforce_one_active(false)
        .stall(Duration::from_millis(1500))
        .faults(Faults {
            timeout_after_create: FaultRule::probability(0.3).for_actions(&["CreateDownload"]),
            ..Faults::default()
        })
}

/// Nothing lost, nothing submitted twice: every job succeeded with a task of its own, the
/// simulator created exactly one task per job (the same number on every instance) and
/// never saw two active tasks on one instance.
pub(super) async fn assert_all_succeeded_with_one_task_each(
    store: &dbs_archiver::store::DynStore,
    sim: &SimHandle,
    ids: &[i64],
) {
    let mut tasks = Vec::new();
    for id in ids {
        let j = store.job_get(*id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Succeeded, "job {id}: {:?}", j.last_error);
        tasks.push(j.remote.task_id.expect("task id"));
    }
    tasks.sort();
    tasks.dedup();
    assert_eq!(tasks.len(), ids.len(), "one distinct task per job");
    let stats = sim.stats();
    assert_eq!(
        stats.total_tasks_created(),
        ids.len() as u64,
        "exactly one task per job (no double submission)"
    );
    let per_instance = ids.len() as u64 / stats.tasks_created.len().max(1) as u64;
    for (inst, n) in &stats.tasks_created {
        assert_eq!(*n, per_instance, "{inst}");
    }
    assert_eq!(
        stats.max_active_any(),
        1,
        "two active tasks on one instance"
    );
}

both_backends!(sigkill_at_random_moments_loses_and_doubles_nothing);

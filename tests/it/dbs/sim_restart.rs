//! `serve --simulate` twice on one database: the second simulator reloads the first one's
//! tasks (kept next to the SQLite file), so the jobs that were running when the first
//! process died finish instead of failing with `Tracker.TaskMissing`.

use dbs_archiver::model::JobState;
use dbs_archiver::store::JobFilter;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEMO_REQUESTS: &str = "4";

fn spawn_demo(db_url: &str, dir: &Path, n: usize, time_scale: &str) -> Child {
    let log = std::fs::File::create(dir.join(format!("demo-{n}.log"))).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_dbs-archiver"))
        .args(["serve", "--simulate", "--demo-requests", DEMO_REQUESTS])
        .args(["--sim-time-scale", time_scale])
        .current_dir(dir)
        .env("DBS_ARCHIVER__DATABASE__URL", db_url)
        .env("DBS_ARCHIVER__API__LISTEN", "127.0.0.1:0")
        .env("DBS_ARCHIVER__SCHEDULER__ENABLED", "false")
        .env("DBS_ARCHIVER__TELEMETRY__LOG_LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn dbs-archiver serve --simulate")
}

fn log_of(dir: &Path, n: usize) -> String {
    std::fs::read_to_string(dir.join(format!("demo-{n}.log"))).unwrap_or_default()
}

async fn count(db: &crate::helpers::db::TestDb, state: JobState) -> i64 {
    db.store
        .job_count_by_state()
        .await
        .unwrap()
        .iter()
        .find(|(s, _)| *s == state)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

#[tokio::test]
async fn restarted_demo_keeps_the_simulator_tasks() {
    let db = crate::helpers::db::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let state_file = dbs_archiver::cli::serve::sim_state_path(None, &db.url).expect("sqlite file");

    // First run: slow tasks (about two minutes each); stop it (SIGKILL, as a crash would)
    // once the demo jobs are running remotely.
    let mut first = spawn_demo(&db.url, dir.path(), 1, "30");
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&db, JobState::Running).await < 4 {
        if let Ok(Some(status)) = first.try_wait() {
            panic!("serve exited early ({status}):\n{}", log_of(dir.path(), 1));
        }
        assert!(
            Instant::now() < deadline,
            "demo jobs never ran:\n{}",
            log_of(dir.path(), 1)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // The demo has no configured token: it made one for the console, in a file only its
    // owner can read, and the log names the file but never the token.
    let token_file = dbs_archiver::cli::serve::demo_token_path(&db.url).expect("sqlite file");
    let token = std::fs::read_to_string(&token_file).expect("demo console token written");
    let token = token.trim().to_string();
    assert!(token.len() >= 32, "a long random token");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only the owner reads the token");
    let log = log_of(dir.path(), 1);
    assert!(
        log.contains(".console-token"),
        "the log names the file:\n{log}"
    );
    assert!(!log.contains(&token), "the token never appears in the log");
    assert!(
        state_file.exists(),
        "{} was not written",
        state_file.display()
    );
    let running = db
        .store
        .job_list(&JobFilter {
            state: Some(JobState::Running),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs;
    let saved = std::fs::read_to_string(&state_file).unwrap();
    for job in &running {
        let task = job
            .remote
            .task_id
            .as_deref()
            .expect("running job has a task");
        assert!(saved.contains(task), "task {task} not saved");
    }

    // Second run on the same database, fast: every job finishes, none goes missing.
    let mut second = spawn_demo(&db.url, dir.path(), 2, "3000");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open = count(&db, JobState::Queued).await
            + count(&db, JobState::Submitting).await
            + count(&db, JobState::Running).await;
        if open == 0 {
            break;
        }
        if let Ok(Some(status)) = second.try_wait() {
            panic!("serve exited early ({status}):\n{}", log_of(dir.path(), 2));
        }
        assert!(
            Instant::now() < deadline,
            "jobs still open after the restart:\n{}",
            log_of(dir.path(), 2)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        token,
        "a restarted demo keeps its console token"
    );

    let jobs = db
        .store
        .job_list(&JobFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs;
    assert_eq!(jobs.len(), 4, "the restart enqueued nothing new");
    for job in &jobs {
        assert_eq!(
            job.state,
            JobState::Succeeded,
            "job {} {:?}:\n{}",
            job.id,
            job.last_error,
            log_of(dir.path(), 2)
        );
    }
    for job in &running {
        let after = jobs.iter().find(|j| j.id == job.id).unwrap();
        assert_eq!(
            after.remote.task_id, job.remote.task_id,
            "job {} followed its first task to the end",
            job.id
        );
    }
}

//! Schedules firing while `serve` is SIGKILLed and restarted: a schedule fires every two
//! seconds for three instances (`overlap = "queue"`, `misfire = "fire_all"`) while the
//! process is killed six times at random moments, each time down for up to two seconds.
//! Every fire time from the first to the last is enqueued exactly once per instance (no
//! gap, no duplicate), and once the schedule is off the queue drains with exactly one
//! remote task per job.

use super::crash::{
    assert_all_succeeded_with_one_task_each, serve_command, sigterm_and_wait, stalling_sim, tail,
    wait_until_drained,
};
use super::*;
use crate::helpers::db::both_backends;
use std::collections::BTreeMap;

const KILLS: usize = 6;
const INSTANCES: usize = 3;
const EVERY_SECONDS: i64 = 2;

fn schedule_toml() -> String {
    let targets: Vec<String> = (0..INSTANCES)
        .map(|i| format!("\"{REGION}/{}\"", instance(i)))
        .collect();
    format!(
        r#"[[scheduler.schedules]]
name = "every-two-seconds"
cron = "*/{EVERY_SECONDS} * * * * *"
timezone = "UTC"
targets = {{ kind = "list", instances = [{}] }}
template = {{ format = "CSV", target_type = "OSS", bucket = "archive", bucket_region = "{REGION}", path = "{{instance}}/{{fire_time}}/" }}
backup = "pitr_at_fire_time"
overlap = "queue"
misfire = "fire_all"
"#,
        targets.join(", ")
    )
}

async fn schedule_fires_once_each_across_sigkills(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("schedules.toml");
    std::fs::write(&config, schedule_toml()).unwrap();
    // Tasks of about 0.2 s, so the queue keeps up with the fires.
    let sim = Simulator::start(stalling_sim(INSTANCES).time_scale(400.0), "127.0.0.1:0")
        .await
        .unwrap();
    let store = db.store.clone();
    let spawn = |n: usize, scheduler: bool| {
        serve_command(&db.url, &sim, dir.path(), n)
            .env("DBS_ARCHIVER_CONFIG", &config)
            .env("DBS_ARCHIVER__SCHEDULER__ENABLED", scheduler.to_string())
            .env("DBS_ARCHIVER__SCHEDULER__LEASE_SECONDS", "2")
            .env("DBS_ARCHIVER__SCHEDULER__TICK_SECONDS", "0.2")
            .spawn()
            .expect("spawn serve")
    };

    for n in 0..KILLS {
        let mut child = spawn(n, true);
        tokio::time::sleep(Duration::from_millis(rand::random_range(1500..4000u64))).await;
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited early ({status}):\n{}", tail(dir.path(), n));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..2000u64))).await;
    }
    // One undisturbed run that fires, stops gracefully, then a drain with the scheduler off.
    let mut child = spawn(KILLS, true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = sigterm_and_wait(&mut child, dir.path(), KILLS);
    assert!(status.success(), "serve exit: {status}");
    let mut child = spawn(KILLS + 1, false);
    wait_until_drained(
        &store,
        &mut [(KILLS + 1, &mut child)],
        dir.path(),
        Duration::from_secs(120),
    )
    .await;
    let _ = sigterm_and_wait(&mut child, dir.path(), KILLS + 1);

    let jobs = list_jobs(&store, None).await;
    let mut fires: BTreeMap<String, Vec<chrono::DateTime<Utc>>> = BTreeMap::new();
    for j in &jobs {
        assert!(
            j.schedule_id.is_some(),
            "job {} not from the schedule",
            j.id
        );
        fires
            .entry(j.request.instance.clone())
            .or_default()
            .push(j.fire_time.expect("fire time"));
    }
    assert_eq!(fires.len(), INSTANCES, "every instance got jobs");
    let first = fires.values().next().unwrap().clone();
    for (inst, times) in &mut fires {
        times.sort();
        let n = times.len();
        times.dedup();
        assert_eq!(times.len(), n, "{inst}: a fire enqueued twice");
        for w in times.windows(2) {
            assert_eq!(
                (w[1] - w[0]).num_seconds(),
                EVERY_SECONDS,
                "{inst}: fires missing between {} and {}",
                w[0],
                w[1]
            );
        }
    }
    let mut first_sorted = first;
    first_sorted.sort();
    for (inst, times) in &fires {
        assert_eq!(
            times, &first_sorted,
            "{inst}: not the same fires as the others"
        );
    }
    assert!(
        first_sorted.len() >= 10,
        "too few fires to mean anything: {}",
        first_sorted.len()
    );
    eprintln!(
        "schedule kills ({:?}): {KILLS} kills, {} fires x {INSTANCES} instances, each once",
        db.backend,
        first_sorted.len()
    );
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    assert_all_succeeded_with_one_task_each(&store, &sim, &ids).await;
    sim.shutdown().await;
}

both_backends!(schedule_fires_once_each_across_sigkills);

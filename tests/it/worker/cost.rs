//! Polling cost: cloud API calls per finished download with the default poll schedule
//! (10 s growing ×1.5 to 5 min) and the simulator's default task length (~67 simulated
//! minutes: 2 min initializing, 5 queueing, 60 running), URL targets.
//!
//! Time jumps from one due poll to the next, so the figures are exact counts, not timing.
//! Run with `cargo test --test it worker::cost -- --nocapture` to see them.

use super::*;
use crate::helpers::db::both_backends;

/// Move the shared clock to the next moment something is due: the next poll of a running
/// job, or (when nothing runs) a queued job's run_at; at least one second ahead. Queued
/// jobs behind a running one on the same instance wait for it, not for their run_at.
async fn advance_to_next_due(rig: &Rig) {
    let now = rig.clock.now();
    let mut next: Option<chrono::DateTime<Utc>> = None;
    for j in rig.jobs_in(JobState::Running).await {
        if let Some(t) = j.next_poll_at {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
    }
    if next.is_none() {
        for j in rig.jobs_in(JobState::Queued).await {
            next = Some(next.map_or(j.run_at, |n| n.min(j.run_at)));
        }
    }
    let target = next.unwrap_or(now).max(now + chrono::Duration::seconds(1));
    rig.clock.set(target);
}

async fn run_cost(rig: &Rig, label: &str, jobs: usize) -> f64 {
    let mut steps = 0;
    while rig.open_jobs().await > 0 {
        rig.step().await;
        advance_to_next_due(rig).await;
        steps += 1;
        assert!(steps < 100_000, "runaway");
    }
    for j in rig.jobs_in(JobState::Succeeded).await {
        assert!(j.remote.download_url.is_some());
    }
    assert_eq!(rig.jobs_in(JobState::Succeeded).await.len(), jobs);
    let stats = rig.sim.stats();
    let per_job = stats.total_calls() as f64 / jobs as f64;
    let mut by_action: Vec<String> = stats
        .calls
        .iter()
        .map(|(a, m)| format!("{a}={}", m.values().sum::<u64>()))
        .collect();
    by_action.sort();
    println!(
        "API calls per finished download, {label}: {per_job:.2} ({} calls for {jobs} jobs: {})",
        stats.total_calls(),
        by_action.join(", ")
    );
    per_job
}

fn long_tasks(clock: &ManualClock, instances: usize) -> SimConfig {
    SimConfig::demo()
        .fleet(Default::default())
        .with_instances(REGION, "rm-w", instances)
        .clock(Arc::new(clock.clone()))
}

async fn api_calls_per_job_100_instances(db: TestDb) {
    let mut config = test_config();
    config.concurrency = 100;
    let rig = Rig::start(db, |c| long_tasks(c, 100), config).await;
    for i in 0..100 {
        let mut r = full_request(&instance(i), 0);
        r.target_type = TargetType::Url;
        rig.enqueue(r).await;
    }
    let per_job = run_cost(&rig, "100 long tasks on 100 instances", 100).await;
    // 1 create + 1 URL fetch + the polls of a ~67-minute task (≈ 20 with this schedule).
    assert!(per_job <= 30.0, "{per_job}");
}

async fn api_calls_per_job_1_instance(db: TestDb) {
    let rig = Rig::start(db, |c| long_tasks(c, 1), test_config()).await;
    for k in 0..100 {
        // Distinct requests: three backup sets × formats × a path… keep it simple: PITR.
        let mut r = pitr_request(&instance(0), k);
        r.target_type = TargetType::Url;
        r.target_bucket = None;
        r.target_oss_region = None;
        r.target_path = None;
        rig.enqueue(r).await;
    }
    let per_job = run_cost(
        &rig,
        "100 long tasks on 1 instance (run one at a time)",
        100,
    )
    .await;
    assert!(per_job <= 30.0, "{per_job}");
    assert_eq!(rig.sim.stats().max_active_any(), 1);
}

both_backends!(api_calls_per_job_100_instances);

// Sequential by the cloud's rule: 100 × 67 simulated minutes; one backend is enough for a
// measurement of the worker's call pattern (the store is exercised by the other tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_calls_per_job_1_instance_sqlite() {
    api_calls_per_job_1_instance(crate::helpers::db::sqlite().await).await;
}

/// Issue 11, part 4: with the predictive plan and the default bounds (10 s … 1 h), a task
/// of 30 minutes costs at most 12 calls and one of 6 hours at most 20 (CreateDownload,
/// the polls, and the URL fetch of these URL targets), and each is noticed within 10 % of
/// its length. The clock jumps from one due poll to the next, so these are exact counts.
async fn predictive_polling(db: TestDb, minutes: u64, max_calls: f64) {
    let task = Duration::from_secs(minutes * 60);
    let prepare = Duration::from_secs(7 * 60);
    let mut config = test_config();
    config.poll.max = Duration::from_secs(3600);
    let rig = Rig::start(
        db,
        |c| {
            long_tasks(c, 20).durations(Durations {
                initializing: Duration::from_secs(120),
                queueing: prepare - Duration::from_secs(120),
                running: task - prepare,
                ..Durations::default()
            })
        },
        config,
    )
    .await;
    for i in 0..20 {
        rig.enqueue(full_request(&instance(i), 0)).await;
    }
    let mut noticed = std::collections::HashMap::new();
    let mut steps = 0;
    while rig.open_jobs().await > 0 {
        rig.step().await;
        for j in rig.jobs_in(JobState::Succeeded).await {
            noticed.entry(j.id).or_insert((j, rig.clock.now()));
        }
        advance_to_next_due(&rig).await;
        steps += 1;
        assert!(steps < 100_000, "runaway");
    }
    assert_eq!(noticed.len(), 20);
    let mut worst = 0.0f64;
    for (job, at) in noticed.values() {
        let t = rig
            .sim
            .task(job.remote.task_id.as_deref().unwrap())
            .unwrap();
        let end = t.gmt_create_ms + task.as_millis() as i64;
        worst = worst.max((at.timestamp_millis() - end) as f64 / 1000.0);
    }
    let stats = rig.sim.stats();
    let per_job = stats.total_calls() as f64 / 20.0;
    println!(
        "predictive polling, {minutes} min tasks: {per_job:.2} calls per job ({} DescribeDownloadTask), noticed at most {worst:.0} s ({:.1} %) after the end",
        stats.calls_of("DescribeDownloadTask"),
        100.0 * worst / task.as_secs_f64()
    );
    assert!(per_job <= max_calls, "{per_job} calls per job");
    assert!(worst <= 0.10 * task.as_secs_f64(), "{worst} s late");
}

async fn predictive_polling_30_minutes(db: TestDb) {
    predictive_polling(db, 30, 12.0).await;
}

async fn predictive_polling_6_hours(db: TestDb) {
    predictive_polling(db, 360, 20.0).await;
}

both_backends!(predictive_polling_30_minutes, predictive_polling_6_hours);

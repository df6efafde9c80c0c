//! Cloud API calls per finished job, and how late we notice a task has finished, for tasks
//! of a given length (issue 11, part 4: 30 minutes and 6 hours).
//!
//! The simulator runs the tasks (2 min initializing, 5 min queueing, the rest running)
//! with simulated time `scale` times faster than real time, and the tracker's time
//! settings (poll bounds, idle wake-up, client rate) are divided or multiplied by the same
//! factor, so the call pattern is the one a real task of that length would see while the
//! run takes about `wall_seconds`. The detection delay of a job is the time between its
//! task finishing in the simulator (creation + the task's length, simulated) and the job
//! being recorded `succeeded`, in simulated time.

use super::common::{self, Backend, TempDb};
use dbs_archiver::app::App;
use dbs_archiver::model::JobState;
use dbs_archiver::sim::{Durations, SimConfig, Simulator};
use dbs_archiver::store::JobFilter;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Initializing + queueing of every simulated task; the rest of its length is running.
const PREPARE: Duration = Duration::from_secs(7 * 60);

/// Issue 11's targets: the most calls per task for a task of this length (seconds).
pub fn target_calls(task_seconds: f64) -> Option<f64> {
    match task_seconds.round() as u64 {
        1800 => Some(12.0),
        21_600 => Some(20.0),
        _ => None,
    }
}

/// Issue 11's target: completion noticed within this share of the task's length.
pub const TARGET_DELAY_SHARE: f64 = 0.10;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CostResult {
    pub backend: Backend,
    pub jobs: u32,
    pub instances: u32,
    /// Length of each simulated task (creation to finished), simulated seconds.
    pub task_seconds: f64,
    pub time_scale: f64,
    pub succeeded: u64,
    pub calls: u64,
    pub calls_per_job: f64,
    /// Calls per succeeded job, by action.
    pub per_job_by_action: BTreeMap<String, f64>,
    pub by_action: BTreeMap<String, u64>,
    /// Task finished → job succeeded, simulated seconds.
    pub delay_p50_s: f64,
    pub delay_p99_s: f64,
    /// The same as a share of `task_seconds` (0.05 = 5 %).
    pub delay_p50_share: f64,
    pub delay_p99_share: f64,
    /// Jobs whose task could not be matched for the delay (should be 0).
    pub unmatched: u64,
    pub seconds: f64,
}

impl CostResult {
    /// Whether calls per job and the p99 delay meet issue 11's targets (`None`: no target
    /// for this task length).
    pub fn verdict(&self) -> Option<(bool, bool)> {
        let calls = target_calls(self.task_seconds)?;
        Some((
            self.calls_per_job <= calls,
            self.delay_p99_share <= TARGET_DELAY_SHARE,
        ))
    }

    /// One line for the console and the report.
    pub fn summary(&self) -> String {
        let verdict = match (target_calls(self.task_seconds), self.verdict()) {
            (Some(t), Some((calls_ok, delay_ok))) => format!(
                "; target ≤ {t:.0} calls {}, ≤ {:.0} % {}",
                if calls_ok { "met" } else { "MISSED" },
                TARGET_DELAY_SHARE * 100.0,
                if delay_ok { "met" } else { "MISSED" }
            ),
            _ => String::new(),
        };
        format!(
            "{:.2} calls/job ({}), delay p50 {:.0} s ({:.1} %), p99 {:.0} s ({:.1} %){verdict}",
            self.calls_per_job,
            self.per_job_by_action
                .iter()
                .map(|(a, n)| format!("{a} {n:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.delay_p50_s,
            self.delay_p50_share * 100.0,
            self.delay_p99_s,
            self.delay_p99_share * 100.0,
        )
    }
}

/// `jobs` OSS jobs over `instances`, each task `task` long (simulated), the whole run
/// squeezed into about `wall_seconds` per task in sequence on an instance.
pub async fn round(
    backend: Backend,
    database_url: &str,
    jobs: u32,
    instances: u32,
    task: Duration,
    wall_seconds: f64,
) -> anyhow::Result<CostResult> {
    let task_s = task.as_secs_f64();
    anyhow::ensure!(task > PREPARE, "tasks must be longer than {PREPARE:?}");
    let scale = task_s / wall_seconds.max(1.0);
    // One name per task length: a finished round's pools may still hold its file open.
    let label = format!("cost{}", task.as_secs() / 60);
    let db = TempDb::create(backend, database_url, &label).await?;
    let result = async {
        let durations = Durations {
            initializing: Duration::from_secs(120),
            queueing: PREPARE - Duration::from_secs(120),
            running: task - PREPARE,
            ..Durations::default()
        };
        let sim = Simulator::start(
            common::sim_fleet(
                SimConfig::demo().durations(durations).time_scale(scale),
                instances,
            )
            .seed(rand::random()),
            "127.0.0.1:0",
        )
        .await?;
        let mut s = common::settings(&db.url, &sim.endpoint())?;
        s.tracker.poll_initial_seconds /= scale;
        s.tracker.poll_max_seconds /= scale;
        s.worker.idle_poll_ms = ((s.worker.idle_poll_ms as f64 / scale) as u64).max(20);
        s.dbs.calls_per_second_per_region *= scale;
        s.dbs.burst = (f64::from(s.dbs.burst) * scale) as u32;
        s.validate()?;
        let app = App::build(s).await?;
        let stop = CancellationToken::new();
        let running = tokio::spawn(app.run(stop.clone()));
        let started = Instant::now();
        db.execute(&common::seed_sql(backend, jobs, instances, 0))
            .await?;
        let store = dbs_archiver::store::connect(&db.url, 2).await?;
        // Tasks of one instance run one at a time.
        let per_instance = f64::from(jobs.div_ceil(instances));
        let limit = Duration::from_secs_f64(per_instance * wall_seconds * 3.0 + 30.0);
        loop {
            let open: i64 = store
                .job_count_by_state()
                .await?
                .iter()
                .filter(|(s, _)| !s.is_terminal())
                .map(|(_, n)| *n)
                .sum();
            if open == 0 || started.elapsed() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        stop.cancel();
        let _ = running.await;

        // Detection delay: the task's finish (wall ms of creation + its length at this
        // scale) against the job's finished_at, scaled back to simulated seconds.
        let finish_ms: HashMap<String, f64> = sim
            .tasks()
            .into_iter()
            .filter(|t| t.retries == 0)
            .map(|t| (t.task_id, t.gmt_create_ms as f64 + task_s * 1000.0 / scale))
            .collect();
        let mut delays = Vec::new();
        let (mut succeeded, mut unmatched) = (0u64, 0u64);
        let mut filter = JobFilter {
            state: Some(JobState::Succeeded),
            limit: 1000,
            ..Default::default()
        };
        loop {
            let page = store.job_list(&filter).await?;
            for j in &page.jobs {
                succeeded += 1;
                let end = j.remote.task_id.as_ref().and_then(|id| finish_ms.get(id));
                match (end, j.finished_at) {
                    (Some(end), Some(done)) => delays
                        .push(((done.timestamp_millis() as f64 - end) * scale / 1000.0).max(0.0)),
                    _ => unmatched += 1,
                }
            }
            match page.next_cursor {
                Some(c) => filter.cursor = Some(c),
                None => break,
            }
        }
        delays.sort_by(f64::total_cmp);
        let stats = sim.stats();
        sim.shutdown().await;
        let by_action: BTreeMap<String, u64> = stats
            .calls
            .iter()
            .map(|(a, m)| (a.clone(), m.values().sum()))
            .collect();
        let per = |n: u64| n as f64 / succeeded.max(1) as f64;
        let (p50, p99) = (common::pct(&delays, 0.50), common::pct(&delays, 0.99));
        Ok::<_, anyhow::Error>(CostResult {
            backend,
            jobs,
            instances,
            task_seconds: task_s,
            time_scale: scale,
            succeeded,
            calls: stats.total_calls(),
            calls_per_job: per(stats.total_calls()),
            per_job_by_action: by_action
                .iter()
                .map(|(a, n)| (a.clone(), per(*n)))
                .collect(),
            by_action,
            delay_p50_s: p50,
            delay_p99_s: p99,
            delay_p50_share: p50 / task_s,
            delay_p99_share: p99 / task_s,
            unmatched,
            seconds,
        })
    }
    .await;
    db.drop_db().await?;
    result
}

/// `bench cost`: the measurement above for each task length, on each backend asked for.
#[derive(Debug, clap::Args)]
pub struct CostArgs {
    /// Task lengths in simulated minutes.
    #[arg(long, value_delimiter = ',', default_value = "30,360")]
    minutes: Vec<u64>,
    /// Jobs, one per instance.
    #[arg(long, default_value_t = 100)]
    jobs: u32,
    /// Real seconds one task lasts (sets the time scale).
    #[arg(long, default_value_t = 40.0)]
    wall_seconds: f64,
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sqlite,postgres"
    )]
    backend: Vec<Backend>,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
}

pub async fn run(args: CostArgs) -> anyhow::Result<()> {
    for b in &args.backend {
        for m in &args.minutes {
            let task = Duration::from_secs(m * 60);
            let c = round(
                *b,
                &args.database_url,
                args.jobs,
                args.jobs,
                task,
                args.wall_seconds,
            )
            .await?;
            println!("{} {m} min tasks: {}", b.name(), c.summary());
        }
    }
    Ok(())
}

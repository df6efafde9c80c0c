//! Issue 11's targets as rows of `bench all`'s report: each with the figure this run
//! measured, the goal, a verdict and, when missed, by how much. Ratios are ours ÷ theirs
//! and name both command lines, so a reader can rerun either side alone.

use super::all::Results;
use super::common::Backend;
use super::latency::Path as LatPath;
use super::peer::{PeerMode, PeerOutcome, PeerResult};
use super::report::{Goal, TargetRow, Unit};

/// The 1M backlog the issue names; opt-in in `bench all`.
const STORE_1M: u32 = 1_000_000;
/// The drains the issue names: 20k jobs on 20k instances and on 2k instances.
const DRAINS: [(u32, u32); 2] = [(20_000, 20_000), (20_000, 2_000)];
/// "Flat from 1k to 1M": the largest backlog at least this share of the smallest one's
/// jobs/s (our reading of "flat"; run-to-run noise here is ~±15 %).
const FLAT: f64 = 0.8;
/// MiB → MB (the 50 MB).
const MIB_TO_MB: f64 = 1.048_576;

fn peers(r: &Results, mode: PeerMode) -> Vec<&PeerResult> {
    match &r.peer {
        PeerOutcome::Ran(ps) => ps.iter().filter(|p| p.mode == mode).collect(),
        PeerOutcome::Skipped { .. } => vec![],
    }
}

fn peer_skipped(r: &Results) -> Option<&str> {
    match &r.peer {
        PeerOutcome::Skipped { skipped } => Some(skipped),
        PeerOutcome::Ran(_) => None,
    }
}

fn drain_command(backend: Backend, jobs: u32, instances: u32, concurrency: u32) -> String {
    format!(
        "`cargo run --release --bin bench -- drain --backend {} --jobs {jobs} --instances \
         {instances} --concurrency {concurrency}`",
        backend.name()
    )
}

pub fn rows(r: &Results) -> Vec<TargetRow> {
    let mut rows = Vec::new();
    store_race(r, &mut rows);
    store_flat(r, &mut rows);
    drain_race(r, &mut rows);
    scheduler(r, &mut rows);
    dispatch(r, &mut rows);
    idle(r, &mut rows);
    sqlite_vs_postgres(r, &mut rows);
    rows
}

fn store_race(r: &Results, rows: &mut Vec<TargetRow>) {
    let theirs = peers(r, PeerMode::PerfTest);
    let mut ns: Vec<u32> = r.store.iter().map(|x| x.backlog).collect();
    ns.extend(theirs.iter().map(|p| p.jobs));
    ns.push(STORE_1M);
    ns.sort_unstable();
    ns.dedup();
    for n in ns {
        let ours = r
            .store
            .iter()
            .find(|x| x.backend == Backend::Postgres && x.backlog == n);
        let peer = theirs.iter().find(|p| p.jobs == n);
        let (figure, detail) = match (ours, peer) {
            (Some(o), Some(p)) => (
                Some(o.jobs_per_second / p.jobs_per_second),
                format!(
                    "ours {:.0} jobs/s: `{}` ÷ theirs {:.0} jobs/s: `{}`",
                    o.jobs_per_second,
                    o.command(),
                    p.jobs_per_second,
                    p.command
                ),
            ),
            (None, _) if n == STORE_1M => (
                None,
                "opt-in: `bench all --store-backlogs 1000,10000,100000,1000000`".into(),
            ),
            (Some(o), None) => (
                None,
                format!(
                    "ours {:.0} jobs/s; graphile-worker not measured ({})",
                    o.jobs_per_second,
                    peer_skipped(r).unwrap_or("failed, see FAILED rows")
                ),
            ),
            (None, _) => (None, "ours failed, see FAILED rows".into()),
        };
        rows.push(TargetRow {
            target: format!(
                "`bench store` claim + complete ÷ graphile-worker perf-test settings, backlog {n}"
            ),
            backend: "postgres".into(),
            figure,
            unit: Unit::Ratio,
            goal: Goal::AtLeast(1.0),
            stretch: Some(Goal::AtLeast(1.5)),
            detail,
        });
    }
}

fn store_flat(r: &Results, rows: &mut Vec<TargetRow>) {
    for b in [Backend::Sqlite, Backend::Postgres] {
        let mut xs: Vec<_> = r.store.iter().filter(|x| x.backend == b).collect();
        xs.sort_by_key(|x| x.backlog);
        let (Some(first), Some(last)) = (xs.first(), xs.last()) else {
            continue;
        };
        let all: Vec<String> = xs
            .iter()
            .map(|x| format!("{}: {:.0}", x.backlog, x.jobs_per_second))
            .collect();
        rows.push(TargetRow {
            target: format!(
                "`bench store` flat: jobs/s at backlog {} ÷ at {}",
                last.backlog, first.backlog
            ),
            backend: b.name().into(),
            figure: Some(last.jobs_per_second / first.jobs_per_second),
            unit: Unit::Ratio,
            goal: Goal::AtLeast(FLAT),
            stretch: None,
            detail: format!(
                "jobs/s by backlog: {}{}",
                all.join(", "),
                if last.backlog < STORE_1M {
                    "; 1M is opt-in (`--store-backlogs …,1000000`)"
                } else {
                    ""
                }
            ),
        });
    }
}

fn drain_race(r: &Results, rows: &mut Vec<TargetRow>) {
    let theirs = peers(r, PeerMode::Default);
    let conc = r.drain_knobs.concurrency;
    for b in [Backend::Postgres, Backend::Sqlite] {
        let mut sizes: Vec<(u32, u32)> = r
            .drain
            .iter()
            .filter(|d| d.backend == b)
            .map(|d| (d.jobs, d.instances))
            .collect();
        if b == Backend::Postgres {
            sizes.extend(DRAINS);
        }
        sizes.sort_unstable();
        sizes.dedup();
        for (n, m) in sizes {
            let ours = r
                .drain
                .iter()
                .find(|d| d.backend == b && d.jobs == n && d.instances == m);
            let peer = theirs.iter().find(|p| p.jobs == n);
            let (figure, detail) = match (ours, peer) {
                (Some(o), Some(p)) => (
                    Some(o.jobs_per_second / p.jobs_per_second),
                    format!(
                        "ours {:.0} jobs/s: {} ÷ theirs {:.0} jobs/s: `{}`",
                        o.jobs_per_second,
                        drain_command(b, n, m, conc),
                        p.jobs_per_second,
                        p.command
                    ),
                ),
                (Some(o), None) => (
                    None,
                    format!(
                        "ours {:.0} jobs/s; graphile-worker not measured at {n} ({})",
                        o.jobs_per_second,
                        peer_skipped(r).unwrap_or("failed or not run, see FAILED rows")
                    ),
                ),
                (None, _) => (
                    None,
                    format!("not in this run: `bench all --drain {n}:{m}`"),
                ),
            };
            rows.push(TargetRow {
                target: format!(
                    "end-to-end drain {n} jobs / {m} instances ÷ graphile-worker defaults, \
                     concurrency {}",
                    peer.map_or(10, |p| p.concurrency)
                ),
                backend: b.name().into(),
                figure,
                unit: Unit::Ratio,
                goal: Goal::AtLeast(1.0),
                stretch: None,
                detail,
            });
        }
    }
}

fn scheduler(r: &Results, rows: &mut Vec<TargetRow>) {
    for s in &r.scheduler {
        let goal = match (s.schedules, s.backend.as_str()) {
            (10_000, "postgres") => Goal::Below(1.0),
            (10_000, _) => Goal::Below(2.0),
            _ => Goal::Report,
        };
        rows.push(TargetRow {
            target: format!(
                "scheduler: {} schedules due in one minute, p99 fire lag",
                s.schedules
            ),
            backend: s.backend.clone(),
            figure: Some(s.p99_s),
            unit: Unit::Seconds,
            goal,
            stretch: None,
            detail: format!(
                "p50 {:.3} s, max {:.3} s, {:.0} fires/s: `cargo run --release --bin bench -- \
                 scheduler --backend {} --schedules {}`",
                s.p50_s, s.max_s, s.fires_per_second, s.backend, s.schedules
            ),
        });
    }
    if !r.scheduler.iter().any(|s| s.schedules == 100_000) {
        rows.push(TargetRow {
            target: "scheduler: 100000 schedules due in one minute, p99 fire lag".into(),
            backend: "both".into(),
            figure: None,
            unit: Unit::Seconds,
            goal: Goal::Report,
            stretch: None,
            detail: "opt-in: `bench all --schedules 10000,100000`".into(),
        });
    }
}

fn dispatch(r: &Results, rows: &mut Vec<TargetRow>) {
    for l in r.latency.iter().filter(|l| l.path == LatPath::Sql) {
        rows.push(TargetRow {
            target: "dispatch after a SQL INSERT, p99".into(),
            backend: l.backend.name().into(),
            figure: Some(l.p99_ms),
            unit: Unit::Ms,
            goal: Goal::AtMost(match l.backend {
                Backend::Postgres => 5.0,
                Backend::Sqlite => 100.0,
            }),
            stretch: None,
            detail: format!(
                "p50 {:.1} ms, max {:.1} ms, {} samples{}",
                l.p50_ms,
                l.max_ms,
                l.samples,
                if l.missing > 0 {
                    format!(", {} never dispatched", l.missing)
                } else {
                    String::new()
                }
            ),
        });
    }
}

fn idle(r: &Results, rows: &mut Vec<TargetRow>) {
    for i in &r.idle {
        let note = format!(
            "{} future jobs{}, {:.0} s window",
            i.future_jobs,
            if i.future_jobs < 1_000_000 {
                " (the target is at 1M: `--idle-jobs 1000000`)"
            } else {
                ""
            },
            i.window_seconds
        );
        rows.push(TargetRow {
            target: "idle `serve` with 1M future jobs, CPU".into(),
            backend: i.backend.name().into(),
            figure: Some(i.total_cpu_percent()),
            unit: Unit::Percent,
            goal: Goal::Below(1.0),
            stretch: None,
            detail: match i.database_cpu_percent {
                Some(db) => format!(
                    "{note}; serve {:.2}% + its PostgreSQL backends {db:.2}%",
                    i.cpu_percent
                ),
                None => format!("{note}; the queries run inside serve"),
            },
        });
        rows.push(TargetRow {
            target: "idle `serve` with 1M future jobs, RSS (max)".into(),
            backend: i.backend.name().into(),
            figure: Some(i.rss_mib_max * MIB_TO_MB),
            unit: Unit::Mb,
            goal: Goal::Below(50.0),
            stretch: None,
            detail: format!("{note}; mean {:.1} MB", i.rss_mib_mean * MIB_TO_MB),
        });
    }
}

/// "SQLite within 0.5× of PostgreSQL on every figure": SQLite ÷ PostgreSQL for rates,
/// PostgreSQL ÷ SQLite for costs and latencies, so ≥ 0.5 is within in both cases.
fn sqlite_vs_postgres(r: &Results, rows: &mut Vec<TargetRow>) {
    let mut pair = |what: String, sqlite: f64, pg: f64, higher_is_better: bool| {
        let (figure, how) = if higher_is_better {
            (sqlite / pg, "SQLite ÷ PostgreSQL")
        } else {
            (pg / sqlite, "PostgreSQL ÷ SQLite (lower is better)")
        };
        rows.push(TargetRow {
            target: format!("SQLite within 0.5× of PostgreSQL: {what}"),
            backend: "both".into(),
            figure: Some(figure),
            unit: Unit::Ratio,
            goal: Goal::AtLeast(0.5),
            stretch: None,
            detail: format!("{how}: SQLite {sqlite:.2}, PostgreSQL {pg:.2}"),
        });
    };
    for s in r.drain.iter().filter(|d| d.backend == Backend::Sqlite) {
        if let Some(p) = r.drain.iter().find(|d| {
            d.backend == Backend::Postgres && d.jobs == s.jobs && d.instances == s.instances
        }) {
            pair(
                format!("drain {}/{} jobs/s", s.jobs, s.instances),
                s.jobs_per_second,
                p.jobs_per_second,
                true,
            );
        }
    }
    for s in r.store.iter().filter(|x| x.backend == Backend::Sqlite) {
        if let Some(p) = r
            .store
            .iter()
            .find(|x| x.backend == Backend::Postgres && x.backlog == s.backlog)
        {
            pair(
                format!("store backlog {} jobs/s", s.backlog),
                s.jobs_per_second,
                p.jobs_per_second,
                true,
            );
        }
    }
    for s in r.latency.iter().filter(|l| l.backend == Backend::Sqlite) {
        if let Some(p) = r
            .latency
            .iter()
            .find(|l| l.backend == Backend::Postgres && l.path == s.path)
        {
            let path = match s.path {
                LatPath::Sql => "SQL INSERT",
                LatPath::Api => "POST /v1/downloads",
            };
            pair(
                format!("dispatch after {path}, p99 ms"),
                s.p99_ms,
                p.p99_ms,
                false,
            );
        }
    }
    for s in r.scheduler.iter().filter(|s| s.backend == "sqlite") {
        if let Some(p) = r
            .scheduler
            .iter()
            .find(|p| p.backend == "postgres" && p.schedules == s.schedules)
        {
            pair(
                format!("scheduler {} p99 fire lag, s", s.schedules),
                s.p99_s,
                p.p99_s,
                false,
            );
        }
    }
    let idle_s = r.idle.iter().find(|i| i.backend == Backend::Sqlite);
    let idle_p = r.idle.iter().find(|i| i.backend == Backend::Postgres);
    if let (Some(s), Some(p)) = (idle_s, idle_p) {
        pair(
            "idle CPU % (serve + database)".into(),
            s.total_cpu_percent(),
            p.total_cpu_percent(),
            false,
        );
        pair(
            "idle RSS MB".into(),
            s.rss_mib_max * MIB_TO_MB,
            p.rss_mib_max * MIB_TO_MB,
            false,
        );
    }
}

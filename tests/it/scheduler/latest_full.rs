//! `latest_full` resolved through the real DbsClient against the simulator's RDS
//! DescribeBackups over TCP: the newest successful available full backup fills BakSetId and
//! BakSetSize; an instance without one gets a recorded `no_backup` skip.

use super::*;
use crate::helpers::db::both_backends;
use crate::worker::client_for;
use dbs_archiver::model::{BakSetType, InstanceKey};
use dbs_archiver::scheduler::model::{RunOutcome, SkipReason, Targets};
use dbs_archiver::sim::{BackupSetSpec, InstanceSpec, SimConfig, Simulator};

async fn latest_full_against_the_simulator(db: TestDb) {
    let now = Utc::now();
    let failed_newer = BackupSetSpec {
        id: "9990001".into(),
        size_bytes: 1,
        start_time: now - chrono::Duration::hours(2),
        end_time: now - chrono::Duration::hours(1),
        status: "Failed".into(),
        backup_type: "FullBackup".into(),
        tables: 1,
    };
    let mut config = SimConfig::demo().with_instance(InstanceSpec {
        id: "rm-nobackup".into(),
        region: "cn-hangzhou".into(),
        engine: "MySQL".into(),
        backup_sets: vec![],
        reject_with: None,
        cluster_name: None,
    });
    // A failed (newer) backup on rm-demo0001 must not be chosen.
    config.fleet.instances[0].backup_sets.push(failed_newer);
    let expected = config.fleet.instances[0]
        .backup_sets
        .iter()
        .filter(|b| b.is_downloadable())
        .max_by_key(|b| b.end_time)
        .unwrap()
        .clone();
    let sim = Simulator::start(config, "127.0.0.1:0").await.unwrap();
    let client = client_for(&sim, None);

    // The scheduler's clock is independent of the client's (which signs with real time).
    let clock = ManualClock::new(utc("2026-01-01T00:00:30Z"));
    let mut spec = pitr_spec("lf", "* * * * *", "UTC", "x");
    spec.backup = dbs_archiver::scheduler::model::BackupSelection::LatestFull;
    spec.targets = Targets::list(&[
        InstanceKey::new("cn-hangzhou", "rm-demo0001"),
        InstanceKey::new("cn-hangzhou", "rm-nobackup"),
    ]);
    spec.misfire = dbs_archiver::scheduler::model::MisfirePolicy::FireOnce;
    let sched = create(&db, spec, clock.now()).await;
    clock.set(utc("2026-01-01T00:01:01Z"));
    let s = scheduler(&db.store, &clock, "lf").with_backups(Arc::new(client));
    let r = s.run_once(clock.now()).await.unwrap();
    assert_eq!(r.errors, 0);
    assert_eq!(r.jobs_created, 1);

    let jobs = jobs_of(&db.store, sched.id).await;
    assert_eq!(jobs.len(), 1);
    let req = &jobs[0].request;
    assert_eq!(req.instance, "rm-demo0001");
    assert_eq!(req.bak_set_type, BakSetType::Full);
    assert_eq!(req.bak_set_id.as_deref(), Some(expected.id.as_str()));
    assert_eq!(req.bak_set_size, Some(expected.size_bytes));

    let runs = db.store.schedule_run_list(sched.id, 10).await.unwrap();
    let skip = runs
        .iter()
        .find(|r| r.outcome == RunOutcome::Skipped)
        .expect("no_backup recorded");
    assert_eq!(skip.reason, Some(SkipReason::NoBackup));
    assert_eq!(skip.instance.as_ref().unwrap().instance, "rm-nobackup");
    assert!(sim.stats().count("DescribeBackups", "Success") >= 2);
    sim.shutdown().await;
}

both_backends!(latest_full_against_the_simulator);

/// A DescribeBackups outage fails the fire (retryable): its schedule is released and the
/// pass ends there, for the next tick to retry, instead of claiming the released schedule
/// straight back and spinning against the outage while more schedules are due than a batch
/// holds (batch size 1, three due).
async fn failed_batch_ends_the_pass(db: TestDb) {
    let mut sim_config = SimConfig::demo();
    sim_config.faults.unavailable = dbs_archiver::sim::FaultRule {
        actions: vec!["DescribeBackups".into()],
        ..dbs_archiver::sim::FaultRule::probability(1.0)
    };
    let sim = Simulator::start(sim_config, "127.0.0.1:0").await.unwrap();
    let client = Arc::new(client_for(&sim, None));
    let clock = ManualClock::new(utc("2026-01-01T00:00:30Z"));
    for name in ["out-a", "out-b", "out-c"] {
        let mut spec = pitr_spec(name, "* * * * *", "UTC", "rm-demo0001");
        spec.backup = dbs_archiver::scheduler::model::BackupSelection::LatestFull;
        create(&db, spec, clock.now()).await;
    }
    clock.set(utc("2026-01-01T00:01:01Z"));
    let s = Scheduler::new(
        db.store.clone(),
        Arc::new(clock.clone()),
        Config {
            batch_size: 1,
            ..config("outage")
        },
    )
    .with_backups(client.clone());
    let r = tokio::time::timeout(Duration::from_secs(30), s.run_once(clock.now()))
        .await
        .expect("the pass ends after the failed batch (it used to claim it straight back)")
        .unwrap();
    // One batch on SQLite; on PostgreSQL the next batch may already be claimed (two in
    // flight), and it fails too. Never the third.
    assert!(r.schedules <= 2, "{r:?}");
    assert_eq!((r.errors, r.jobs_created), (r.schedules, 0));
    // Released and not advanced: another scheduler takes all three at once.
    let all = db.store.schedule_list().await.unwrap();
    assert!(all.iter().all(|s| s.last_fire_time.is_none()));
    let other = Scheduler::new(
        db.store.clone(),
        Arc::new(clock.clone()),
        Config {
            batch_size: 3,
            ..config("outage-2")
        },
    )
    .with_backups(client);
    let r = other.run_once(clock.now()).await.unwrap();
    assert_eq!((r.schedules, r.errors), (3, 3));
    sim.shutdown().await;
}

both_backends!(failed_batch_ends_the_pass);

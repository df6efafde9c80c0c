//! The real `DbsClient` against the simulator over TCP: every business code of §3.4, each
//! error class, signatures, timestamps, paging, both signature versions, lenient parsing.

use dbs_archiver::clock::ManualClock;
use dbs_archiver::dbs::credentials::{Credentials, StaticCredentials};
use dbs_archiver::dbs::signing::SignatureVersion;
use dbs_archiver::dbs::types::{DescribeTasksQuery, RemoteTaskStatus};
use dbs_archiver::dbs::{DbsClient, DbsClientConfig, DbsError, DbsErrorKind};
use dbs_archiver::model::{DownloadRequest, TargetType};
use dbs_archiver::sim::{
    Durations, ErrorFault, FaultRule, Faults, Quirks, SimConfig, SimHandle, SimKey, Simulator,
    BUSINESS_CODES,
};
use std::sync::Arc;
use std::time::Duration;

const REGION: &str = "cn-hangzhou";

async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config, "127.0.0.1:0")
        .await
        .expect("simulator starts")
}

fn config_for(sim: &SimHandle, signature: SignatureVersion) -> DbsClientConfig {
    DbsClientConfig {
        endpoint_override: Some(sim.endpoint()),
        rds_endpoint_override: Some(sim.endpoint()),
        signature,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        calls_per_second_per_region: 1000.0,
        burst: 1000,
        ..DbsClientConfig::default()
    }
}

pub(super) fn client(sim: &SimHandle) -> DbsClient {
    DbsClient::new(
        config_for(sim, SignatureVersion::V3),
        sim.credentials_provider(),
    )
    .unwrap()
}

fn client_with(sim: &SimHandle, creds: Credentials) -> DbsClient {
    DbsClient::new(
        config_for(sim, SignatureVersion::V3),
        Arc::new(StaticCredentials(creds)),
    )
    .unwrap()
}

pub(super) fn set_of(config: &SimConfig, instance: &str, n: usize) -> String {
    config
        .fleet
        .instances
        .iter()
        .find(|i| i.id == instance)
        .expect("instance in fleet")
        .backup_sets[n]
        .id
        .clone()
}

fn request(config: &SimConfig, instance: &str) -> DownloadRequest {
    DownloadRequest::example_full(REGION, instance, &set_of(config, instance, 0))
}

fn query(instance: &str) -> DescribeTasksQuery {
    DescribeTasksQuery {
        region: REGION.into(),
        instance: instance.into(),
        page_size: 20,
        page: 1,
        ..DescribeTasksQuery::default()
    }
}

fn inject(sim: &SimHandle, code: &str, action: &str) {
    sim.set_faults(Faults {
        error: Some(ErrorFault {
            code: code.into(),
            rule: FaultRule::next(1).for_actions(&[action]),
        }),
        ..Faults::default()
    })
    .unwrap();
}

fn assert_kind(e: &DbsError, kind: DbsErrorKind, code: &str) {
    assert_eq!((e.kind, e.code.as_str()), (kind, code), "{e:?}");
}

#[tokio::test]
async fn a_download_is_created_and_followed_to_its_url_with_both_signatures() {
    for signature in [SignatureVersion::V3, SignatureVersion::V2] {
        let config = SimConfig::demo();
        let sim = start(config.clone()).await;
        let client =
            DbsClient::new(config_for(&sim, signature), sim.credentials_provider()).unwrap();

        let created = client
            .create_download(&request(&config, "rm-demo0001"))
            .await
            .unwrap();
        assert!(created.request_id.is_some());
        let task = created.data;
        assert_eq!(task.status, RemoteTaskStatus::Initializing);
        assert_eq!(task.progress.as_deref(), Some("0/0"));

        sim.advance(Duration::from_secs(30 * 60));
        let page = client
            .describe_download_tasks(&query("rm-demo0001"))
            .await
            .unwrap()
            .data;
        assert_eq!(page.total_elements, 1);
        let running = &page.tasks[0];
        assert_eq!(running.task_id, task.task_id);
        assert_eq!(running.status, RemoteTaskStatus::Running);
        assert!(running.export_data_size.unwrap() > 0);

        sim.advance(Duration::from_secs(3600));
        let info = client
            .describe_download_backup_set_storage_info(
                REGION,
                "rm-demo0001",
                None,
                &task.task_id,
                3600,
            )
            .await
            .unwrap()
            .data;
        assert!(info.public_url.unwrap().contains(&task.task_id));
        assert!(info.expiration_time_ms.unwrap() > chrono::Utc::now().timestamp_millis());

        let log = sim.request_log();
        let scheme = if signature == SignatureVersion::V3 {
            "v3"
        } else {
            "v2"
        };
        assert!(log.iter().all(|e| e.signature == scheme), "{log:?}");
        assert_eq!(sim.stats().count("CreateDownload", "Success"), 1);
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn every_business_code_keeps_code_message_request_id_and_class() {
    let config = SimConfig::demo();
    let sim = start(config.clone()).await;
    let client = client(&sim);
    for code in BUSINESS_CODES {
        inject(&sim, code.code, "CreateDownload");
        let e = client
            .create_download(&request(&config, "rm-demo0002"))
            .await
            .unwrap_err();
        let kind = match code.code {
            "DBS.DownloadTask.JobAlreadyExist" => DbsErrorKind::AlreadySubmitted,
            "DBS.DownloadTask.OnlyOneRunningOrFailedTask" => DbsErrorKind::InstanceBusy,
            "DBS.DownloadTask.CannotFind" => DbsErrorKind::NotFound,
            _ => DbsErrorKind::Permanent,
        };
        assert_kind(&e, kind, code.code);
        assert_eq!(e.message, code.message);
        assert_eq!(e.http_status, Some(code.http_status));
        assert!(e.request_id.is_some(), "{e:?}");
    }
    assert!(sim.tasks().is_empty(), "injected errors create nothing");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_rules_themselves_produce_their_codes() {
    let mut config = SimConfig::demo();
    config.fleet.instances[7].engine = "SQLServer".into();
    config.fleet.forbidden_buckets.push("locked-bucket".into());
    config
        .fleet
        .non_standard_buckets
        .push("archive-bucket".into());
    let sim = start(config.clone()).await;
    let client = client(&sim);

    // Same request twice: adopt. Another backup set while the first runs: busy.
    client
        .create_download(&request(&config, "rm-demo0001"))
        .await
        .unwrap();
    let e = client
        .create_download(&request(&config, "rm-demo0001"))
        .await
        .unwrap_err();
    assert_kind(
        &e,
        DbsErrorKind::AlreadySubmitted,
        "DBS.DownloadTask.JobAlreadyExist",
    );
    let mut other = request(&config, "rm-demo0001");
    other.bak_set_id = Some(set_of(&config, "rm-demo0001", 1));
    let e = client.create_download(&other).await.unwrap_err();
    assert_kind(
        &e,
        DbsErrorKind::InstanceBusy,
        "DBS.DownloadTask.OnlyOneRunningOrFailedTask",
    );

    let e = client
        .create_download(&DownloadRequest::example_full(REGION, "rm-ghost", "1"))
        .await
        .unwrap_err();
    assert_kind(&e, DbsErrorKind::Permanent, "Forbidden.InstanceNotFound");
    let e = client
        .create_download(&DownloadRequest::example_full(REGION, "rm-demo0003", "404"))
        .await
        .unwrap_err();
    assert_kind(&e, DbsErrorKind::Permanent, "DBS.DownloadTask.BakSetError");
    let e = client
        .create_download(&request(&config, "rm-demo0008"))
        .await
        .unwrap_err();
    assert_kind(
        &e,
        DbsErrorKind::Permanent,
        "DBS.DownloadTask.DbTypeNotSupport",
    );
    assert!(
        !client
            .describe_download_support(REGION, "rm-demo0008", None)
            .await
            .unwrap()
            .data
    );
    assert!(
        client
            .describe_download_support(REGION, "rm-demo0004", None)
            .await
            .unwrap()
            .data
    );

    for (bucket, code) in [
        ("locked-bucket", "DBS.DownloadTask.OssForbid"),
        ("archive-bucket", "DBS.DownloadTask.OssStorageTypeInvalid"),
    ] {
        let mut oss = request(&config, "rm-demo0004");
        oss.target_type = TargetType::Oss;
        oss.target_bucket = Some(bucket.into());
        oss.target_oss_region = Some(REGION.into());
        oss.target_path = Some("archive/x".into());
        let e = client.create_download(&oss).await.unwrap_err();
        assert_kind(&e, DbsErrorKind::Permanent, code);
    }

    let e = client
        .describe_download_backup_set_storage_info(
            REGION,
            "rm-demo0001",
            None,
            "dt-nonexistent00",
            3600,
        )
        .await
        .unwrap_err();
    assert_kind(&e, DbsErrorKind::NotFound, "DBS.DownloadTask.CannotFind");
    let e = client
        .retry_download_task(REGION, "rm-demo0001", None, "dt-nonexistent00")
        .await
        .unwrap_err();
    assert_kind(&e, DbsErrorKind::NotFound, "DBS.DownloadTask.CannotFind");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_failed_task_blocks_until_retried() {
    let config = SimConfig::demo();
    let sim = start(config.clone()).await;
    let client = client(&sim);
    let task = client
        .create_download(&request(&config, "rm-demo0005"))
        .await
        .unwrap()
        .data;
    sim.fail_task(&task.task_id).unwrap();
    let failed = client
        .describe_download_tasks(&DescribeTasksQuery {
            state: Some("failed".into()),
            ..query("rm-demo0005")
        })
        .await
        .unwrap()
        .data;
    assert_eq!(failed.tasks[0].status, RemoteTaskStatus::Failed);
    let mut other = request(&config, "rm-demo0005");
    other.bak_set_id = Some(set_of(&config, "rm-demo0005", 1));
    let e = client.create_download(&other).await.unwrap_err();
    assert_eq!(e.kind, DbsErrorKind::InstanceBusy);
    client
        .retry_download_task(REGION, "rm-demo0005", None, &task.task_id)
        .await
        .unwrap();
    assert_eq!(sim.task(&task.task_id).unwrap().status, "initializing");
    sim.advance(Duration::from_secs(2 * 3600));
    client.create_download(&other).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn throttling_hands_back_the_wait_from_the_headers() {
    let config = SimConfig::demo();
    let sim = start(config.clone()).await;
    sim.set_faults(Faults {
        throttle: FaultRule::next(1),
        throttle_time_left_ms: 7000,
        ..Faults::default()
    })
    .unwrap();
    let e = client(&sim)
        .create_download(&request(&config, "rm-demo0001"))
        .await
        .unwrap_err();
    assert_kind(&e, DbsErrorKind::Throttled, "Throttling.User");
    assert_eq!(e.retry_after, Some(Duration::from_millis(7000)));
    assert_eq!(e.http_status, Some(400));

    // A read throttled briefly is retried in-process and succeeds.
    sim.set_faults(Faults {
        throttle: FaultRule::next(1),
        throttle_time_left_ms: 50,
        ..Faults::default()
    })
    .unwrap();
    client(&sim)
        .describe_download_tasks(&query("rm-demo0001"))
        .await
        .unwrap();
    let s = sim.stats();
    assert_eq!(s.count("DescribeDownloadTask", "Throttling.User"), 1);
    assert_eq!(s.count("DescribeDownloadTask", "Success"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn server_errors_and_nonce_reuse_are_transient() {
    let config = SimConfig::demo();
    let sim = start(config.clone()).await;
    let client = client(&sim);
    for (faults, code, status) in [
        (
            Faults {
                unavailable: FaultRule::next(1),
                ..Faults::default()
            },
            "ServiceUnavailable",
            503,
        ),
        (
            Faults {
                internal_error: FaultRule::next(1),
                ..Faults::default()
            },
            "InternalError",
            500,
        ),
    ] {
        sim.set_faults(faults).unwrap();
        let e = client
            .create_download(&request(&config, "rm-demo0001"))
            .await
            .unwrap_err();
        assert_kind(&e, DbsErrorKind::Transient, code);
        assert_eq!(e.http_status, Some(status));
    }
    inject(&sim, "SignatureNonceUsed", "CreateDownload");
    let e = client
        .create_download(&request(&config, "rm-demo0001"))
        .await
        .unwrap_err();
    assert_kind(&e, DbsErrorKind::Transient, "SignatureNonceUsed");
    // Reads ride out a 503 by themselves.
    sim.set_faults(Faults {
        unavailable: FaultRule::next(1),
        ..Faults::default()
    })
    .unwrap();
    client
        .describe_download_tasks(&query("rm-demo0001"))
        .await
        .unwrap();
    assert!(sim.tasks().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_lost_create_reply_is_ambiguous_and_the_task_can_be_found() {
    let config = SimConfig::demo().stall(Duration::from_secs(10));
    let sim = start(config.clone()).await;
    let mut cfg = config_for(&sim, SignatureVersion::V3);
    cfg.request_timeout = Duration::from_millis(500);
    let client = DbsClient::new(cfg, sim.credentials_provider()).unwrap();

    sim.set_faults(Faults {
        timeout_after_create: FaultRule::next(1),
        ..Faults::default()
    })
    .unwrap();
    let e = client
        .create_download(&request(&config, "rm-demo0006"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, DbsErrorKind::Ambiguous, "{e:?}");
    let found = client
        .list_download_tasks(&query("rm-demo0006"))
        .await
        .unwrap();
    assert_eq!(
        found.len(),
        1,
        "the task was created although no reply came"
    );
    assert_eq!(found[0].task_id, sim.tasks()[0].task_id);

    sim.set_faults(Faults {
        drop_connection: FaultRule::next(1).for_actions(&["CreateDownload"]),
        ..Faults::default()
    })
    .unwrap();
    let e = client
        .create_download(&request(&config, "rm-demo0007"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, DbsErrorKind::Ambiguous, "{e:?}");
    // A dropped read is retried and succeeds.
    sim.set_faults(Faults {
        drop_connection: FaultRule::next(1),
        ..Faults::default()
    })
    .unwrap();
    client
        .describe_download_tasks(&query("rm-demo0007"))
        .await
        .unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn signature_key_and_clock_failures_are_permanent() {
    let config = SimConfig::demo();
    let sim = start(config.clone()).await;
    let req = request(&config, "rm-demo0001");
    let wrong = client_with(
        &sim,
        Credentials::access_key(dbs_archiver::sim::DEMO_ACCESS_KEY_ID, "not-the-secret"),
    );
    let e = wrong.create_download(&req).await.unwrap_err();
    assert_kind(&e, DbsErrorKind::Permanent, "SignatureDoesNotMatch");
    assert_eq!(e.http_status, Some(403));
    assert!(!format!("{e} {e:?}").contains("not-the-secret"));

    let unknown = client_with(&sim, Credentials::access_key("LTAIunknown", "x"));
    let e = unknown.create_download(&req).await.unwrap_err();
    assert_kind(&e, DbsErrorKind::Permanent, "InvalidAccessKeyId.NotFound");
    assert_eq!(e.http_status, Some(404));

    for signature in [SignatureVersion::V3, SignatureVersion::V2] {
        let skewed = ManualClock::new(chrono::Utc::now() - chrono::Duration::minutes(20));
        let late = DbsClient::with_clock(
            config_for(&sim, signature),
            sim.credentials_provider(),
            Arc::new(skewed),
        )
        .unwrap();
        let e = late.create_download(&req).await.unwrap_err();
        assert_kind(&e, DbsErrorKind::Permanent, "InvalidTimeStamp.Expired");
    }
    assert!(sim.tasks().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn sts_credentials_carry_their_token() {
    let config = SimConfig::demo().keys(vec![
        SimKey::access_key("STS.sim", "sts-secret").with_security_token("sts-token")
    ]);
    let sim = start(config.clone()).await;
    for signature in [SignatureVersion::V3, SignatureVersion::V2] {
        let c = DbsClient::new(config_for(&sim, signature), sim.credentials_provider()).unwrap();
        c.describe_download_tasks(&query("rm-demo0001"))
            .await
            .unwrap();
    }
    let no_token = client_with(&sim, Credentials::access_key("STS.sim", "sts-secret"));
    let e = no_token
        .describe_download_tasks(&query("rm-demo0001"))
        .await
        .unwrap_err();
    assert_kind(&e, DbsErrorKind::Permanent, "MissingSecurityToken");
    sim.shutdown().await;
}

#[tokio::test]
async fn paging_collects_every_task_even_when_the_server_clamps_page_size() {
    let config = SimConfig::demo()
        .instant()
        .enforce_one_active(false)
        .job_exist_window(Duration::ZERO)
        .max_page_size(2);
    let sim = start(config.clone()).await;
    let client = client(&sim);
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(
            client
                .create_download(&request(&config, "rm-demo0009"))
                .await
                .unwrap()
                .data
                .task_id,
        );
    }
    let page = client
        .describe_download_tasks(&DescribeTasksQuery {
            page_size: 3,
            page: 2,
            ..query("rm-demo0009")
        })
        .await
        .unwrap()
        .data;
    assert_eq!(
        (page.page_size, page.total_elements, page.total_pages),
        (2, 7, 4)
    );
    let mut all: Vec<String> = client
        .list_download_tasks(&DescribeTasksQuery {
            page_size: 3,
            ..query("rm-demo0009")
        })
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.task_id)
        .collect();
    all.sort();
    ids.sort();
    assert_eq!(all, ids);
    assert!(sim.stats().count("DescribeDownloadTask", "Success") >= 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn lenient_parsing_copes_with_the_documented_variants() {
    let quirks = Quirks {
        queuing_spelling: true,
        capitalized_states: true,
        xml_style_paging: true,
        task_numbers_as_numbers: true,
        create_numbers_as_strings: true,
        expiration_in_seconds: true,
        success_capitalized: true,
        lowercase_format: true,
        ..Quirks::default()
    };
    let durations = Durations {
        initializing: Duration::ZERO,
        queueing: Duration::from_secs(600),
        running: Duration::from_secs(600),
        ..Durations::default()
    };
    let config = SimConfig::demo().quirks(quirks).durations(durations);
    let sim = start(config.clone()).await;
    let client = client(&sim);
    let created = client
        .create_download(&request(&config, "rm-demo0010"))
        .await
        .unwrap()
        .data;
    assert_eq!(
        created.status,
        RemoteTaskStatus::Queueing,
        "`Queuing` parsed"
    );
    assert!(created.gmt_create.unwrap() > 0, "string numbers parsed");
    assert_eq!(created.format.as_deref(), Some("csv"));
    let page = client
        .describe_download_tasks(&query("rm-demo0010"))
        .await
        .unwrap()
        .data;
    assert_eq!(
        (page.page_number, page.page_size, page.total_elements),
        (1, 20, 1)
    );
    assert_eq!(page.tasks[0].status, RemoteTaskStatus::Queueing);
    sim.advance(Duration::from_secs(1200));
    let info = client
        .describe_download_backup_set_storage_info(
            REGION,
            "rm-demo0010",
            None,
            &created.task_id,
            600,
        )
        .await
        .unwrap()
        .data;
    let exp = info.expiration_time_ms.unwrap();
    let expected = chrono::Utc::now().timestamp_millis() + 600_000;
    assert!(
        (exp - expected).abs() < 5_000,
        "seconds normalised to ms: {exp}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn latest_full_backup_comes_from_rds_describe_backups() {
    let config = SimConfig::demo();
    let sim = start(config.clone()).await;
    let newest = config.fleet.instances[2]
        .backup_sets
        .iter()
        .max_by_key(|b| b.end_time)
        .unwrap()
        .clone();
    let b = client(&sim)
        .latest_full_backup(REGION, "rm-demo0003", chrono::Duration::days(7))
        .await
        .unwrap()
        .expect("a backup");
    assert_eq!(b.backup_id, newest.id);
    assert_eq!(b.backup_size, Some(newest.size_bytes));
    assert!(b.is_avail);
    assert!(sim.stats().count("DescribeBackups", "Success") >= 1);
    sim.shutdown().await;
}

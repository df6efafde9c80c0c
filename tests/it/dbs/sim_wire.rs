//! The simulator's wire behaviour, checked with hand-signed requests (dbs-api.md §3–8).

use super::raw::RawCall;
use dbs_archiver::sim::{FaultRule, Faults, SimConfig, SimHandle, SimKey, Simulator};
use std::time::Duration;

async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config, "127.0.0.1:0")
        .await
        .expect("simulator starts")
}

fn first_set(sim_config: &SimConfig, instance: &str) -> String {
    sim_config
        .fleet
        .instances
        .iter()
        .find(|i| i.id == instance)
        .expect("instance in fleet")
        .backup_sets[0]
        .id
        .clone()
}

fn create_params<'a>(instance: &'a str, set: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("RegionCode", "cn-hangzhou"),
        ("InstanceName", instance),
        ("BakSetType", "full"),
        ("BakSetId", set),
        ("FormatType", "CSV"),
        ("TargetType", "URL"),
    ]
}

#[tokio::test]
async fn v3_and_v2_signed_creates_are_both_accepted() {
    let config = SimConfig::demo();
    let sim = start(config.clone()).await;
    let set1 = first_set(&config, "rm-demo0001");
    let r = RawCall::new(
        &sim.endpoint(),
        "CreateDownload",
        &create_params("rm-demo0001", &set1),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["Success"], "true");
    assert!(r.body["Data"]["TaskId"]
        .as_str()
        .unwrap()
        .starts_with("dt-"));
    assert_eq!(r.body["Data"]["DownloadStatus"], "initializing");
    assert_eq!(r.body["Data"]["Progress"], "0/0");
    assert!(r.body["Data"]["GmtCreate"].is_i64());

    let set2 = first_set(&config, "rm-demo0002");
    let r = RawCall::new(
        &sim.endpoint(),
        "CreateDownload",
        &create_params("rm-demo0002", &set2),
    )
    .v2()
    .send()
    .await
    .unwrap();
    assert_eq!(r.body["Success"], "true", "{:?}", r.body);

    let log = sim.request_log();
    assert_eq!(
        log.iter().map(|e| e.signature.as_str()).collect::<Vec<_>>(),
        ["v3", "v2"]
    );
    assert_eq!(sim.stats().count("CreateDownload", "Success"), 2);
    assert_eq!(sim.stats().tasks_created["rm-demo0002"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn signature_and_key_failures_use_the_gateway_codes() {
    let sim = start(SimConfig::demo()).await;
    let params = [
        ("RegionCode", "cn-hangzhou"),
        ("InstanceName", "rm-demo0001"),
    ];
    for v2 in [false, true] {
        let mut call = RawCall::new(&sim.endpoint(), "DescribeDownloadTask", &params)
            .key(dbs_archiver::sim::DEMO_ACCESS_KEY_ID, "wrong-secret");
        call.v2 = v2;
        let r = call.send().await.unwrap();
        assert_eq!(
            (r.status, r.code()),
            (403, "SignatureDoesNotMatch"),
            "v2={v2}"
        );
        for field in ["RequestId", "HostId", "Code", "Message", "Recommend"] {
            assert!(r.body[field].is_string(), "{field} missing in {:?}", r.body);
        }

        let mut call =
            RawCall::new(&sim.endpoint(), "DescribeDownloadTask", &params).key("LTAInobody", "x");
        call.v2 = v2;
        let r = call.send().await.unwrap();
        assert_eq!((r.status, r.code()), (404, "InvalidAccessKeyId.NotFound"));

        let mut call = RawCall::new(&sim.endpoint(), "DescribeDownloadTask", &params)
            .date(chrono::Utc::now() - chrono::Duration::minutes(16));
        call.v2 = v2;
        let r = call.send().await.unwrap();
        assert_eq!((r.status, r.code()), (400, "InvalidTimeStamp.Expired"));

        // 14 minutes of skew is still inside the window.
        let mut call = RawCall::new(&sim.endpoint(), "DescribeDownloadTask", &params)
            .date(chrono::Utc::now() + chrono::Duration::minutes(14));
        call.v2 = v2;
        assert_eq!(call.send().await.unwrap().status, 200);
    }
    assert_eq!(
        sim.stats()
            .count("DescribeDownloadTask", "SignatureDoesNotMatch"),
        2
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn reused_nonce_is_rejected_but_a_rejected_call_does_not_burn_it() {
    let sim = start(SimConfig::demo()).await;
    let params = [
        ("RegionCode", "cn-hangzhou"),
        ("InstanceName", "rm-demo0001"),
    ];
    let call = RawCall::new(&sim.endpoint(), "DescribeDownloadTask", &params).nonce("n-1");
    // A badly signed call with the nonce first: rejected for the signature only.
    let bad = call
        .clone()
        .key(dbs_archiver::sim::DEMO_ACCESS_KEY_ID, "nope");
    assert_eq!(bad.send().await.unwrap().code(), "SignatureDoesNotMatch");
    assert_eq!(call.send().await.unwrap().status, 200);
    let r = call.send().await.unwrap();
    assert_eq!((r.status, r.code()), (400, "SignatureNonceUsed"));
    sim.shutdown().await;
}

#[tokio::test]
async fn sts_keys_need_their_token() {
    let sim = start(
        SimConfig::demo()
            .with_key(SimKey::access_key("STS.sim", "sts-secret").with_security_token("tok")),
    )
    .await;
    let params = [
        ("RegionCode", "cn-hangzhou"),
        ("InstanceName", "rm-demo0001"),
    ];
    for v2 in [false, true] {
        let mut ok = RawCall::new(&sim.endpoint(), "DescribeDownloadTask", &params)
            .key("STS.sim", "sts-secret")
            .token("tok");
        ok.v2 = v2;
        assert_eq!(ok.send().await.unwrap().status, 200, "v2={v2}");
        let mut missing = RawCall::new(&sim.endpoint(), "DescribeDownloadTask", &params)
            .key("STS.sim", "sts-secret");
        missing.v2 = v2;
        assert_eq!(missing.send().await.unwrap().code(), "MissingSecurityToken");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn business_rules_answer_http_200_with_success_false() {
    let config = SimConfig::demo();
    let sim = start(config.clone()).await;
    let sets: Vec<String> = config.fleet.instances[0]
        .backup_sets
        .iter()
        .map(|b| b.id.clone())
        .collect();
    let ep = sim.endpoint();
    let create = |set: String| {
        let ep = ep.clone();
        async move {
            RawCall::new(&ep, "CreateDownload", &create_params("rm-demo0001", &set))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(create(sets[0].clone()).await.body["Success"], "true");
    let dup = create(sets[0].clone()).await;
    assert_eq!(dup.status, 200);
    assert_eq!(dup.body["Success"], "false");
    assert_eq!(dup.body["Code"], "DBS.DownloadTask.JobAlreadyExist");
    assert_eq!(dup.body["ErrCode"], "DBS.DownloadTask.JobAlreadyExist");
    assert_eq!(
        dup.body["Message"],
        "Job already submit in recent days, please check it."
    );
    let busy = create(sets[1].clone()).await;
    assert_eq!(
        busy.body["Code"],
        "DBS.DownloadTask.OnlyOneRunningOrFailedTask"
    );
    assert_eq!(
        busy.body["Message"],
        "There can be only one running or failed task for the instance."
    );
    let r = RawCall::new(&ep, "CreateDownload", &create_params("rm-ghost", "1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body["Code"].as_str()),
        (200, Some("Forbidden.InstanceNotFound"))
    );
    let mut p = create_params("rm-demo0002", "1");
    p.retain(|(k, _)| *k != "FormatType");
    let r = RawCall::new(&ep, "CreateDownload", &p)
        .send()
        .await
        .unwrap();
    assert_eq!(r.body["Code"], "DBS.ParamIsInValid");
    assert_eq!(r.body["Message"], "formatType can not be empty");
    sim.shutdown().await;
}

#[tokio::test]
async fn lifecycle_runs_on_the_time_scale_and_urls_come_from_storage_info() {
    let config = SimConfig::demo();
    let sim = start(config.clone()).await;
    let set = first_set(&config, "rm-demo0003");
    let ep = sim.endpoint();
    let r = RawCall::new(&ep, "CreateDownload", &create_params("rm-demo0003", &set))
        .send()
        .await
        .unwrap();
    let id = r.body["Data"]["TaskId"].as_str().unwrap().to_string();
    let info = [
        ("RegionCode", "cn-hangzhou"),
        ("TaskId", id.as_str()),
        ("Duration", "3600"),
    ];
    let early = RawCall::new(&ep, "DescribeDownloadBackupSetStorageInfo", &info)
        .send()
        .await
        .unwrap();
    assert_eq!(early.body["Code"], "DBS.DownloadTask.CannotFind");

    sim.advance(Duration::from_secs(10 * 60));
    let list = [
        ("RegionCode", "cn-hangzhou"),
        ("InstanceName", "rm-demo0003"),
    ];
    let page = RawCall::new(&ep, "DescribeDownloadTask", &list)
        .send()
        .await
        .unwrap();
    let task = &page.body["Data"]["Content"]["List"][0];
    assert_eq!(task["DownloadStatus"], "running");
    assert!(
        task["ExportDataSize"].is_string(),
        "numbers are strings in §4.2: {task}"
    );
    assert!(task["Progress"].as_str().unwrap().ends_with(&format!(
        "/{}",
        config.fleet.instances[2].backup_sets[0].tables
    )));

    sim.advance(Duration::from_secs(2 * 3600));
    let got = RawCall::new(&ep, "DescribeDownloadBackupSetStorageInfo", &info)
        .send()
        .await
        .unwrap();
    assert_eq!(got.body["Success"], "true", "{:?}", got.body);
    assert!(got.body["Data"]["PublicUrl"]
        .as_str()
        .unwrap()
        .contains(&id));
    assert!(
        got.body["Data"]["ExpirationTime"].as_i64().unwrap()
            > chrono::Utc::now().timestamp_millis()
    );

    sim.advance(Duration::from_secs(3 * 24 * 3600));
    assert_eq!(sim.task(&id).unwrap().status, "expired");
    sim.shutdown().await;
}

#[tokio::test]
async fn paging_walks_every_task_once() {
    let config = SimConfig::demo()
        .instant()
        .enforce_one_active(false)
        .job_exist_window(Duration::ZERO);
    let sim = start(config.clone()).await;
    let set = first_set(&config, "rm-demo0004");
    for _ in 0..7 {
        let r = RawCall::new(
            &sim.endpoint(),
            "CreateDownload",
            &create_params("rm-demo0004", &set),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.body["Success"], "true");
    }
    let mut seen = Vec::new();
    for page in 1..=3 {
        let page = page.to_string();
        let p = [
            ("RegionCode", "cn-hangzhou"),
            ("InstanceName", "rm-demo0004"),
            ("PageSize", "3"),
            ("CurrentPage", page.as_str()),
        ];
        let r = RawCall::new(&sim.endpoint(), "DescribeDownloadTask", &p)
            .send()
            .await
            .unwrap();
        let data = &r.body["Data"];
        assert_eq!(
            (data["TotalElements"].as_i64(), data["TotalPages"].as_i64()),
            (Some(7), Some(3))
        );
        for t in data["Content"]["List"].as_array().unwrap() {
            seen.push(t["TaskId"].as_str().unwrap().to_string());
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7);
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_throttle_fail_and_drop() {
    let sim = start(SimConfig::demo()).await;
    let ep = sim.endpoint();
    let list = [
        ("RegionCode", "cn-hangzhou"),
        ("InstanceName", "rm-demo0001"),
    ];
    sim.set_faults(Faults {
        throttle: FaultRule::next(1),
        throttle_time_left_ms: 2500,
        unavailable: FaultRule::next(1),
        internal_error: FaultRule::next(1),
        drop_connection: FaultRule::next(1).for_actions(&["DescribeDownloadSupport"]),
        ..Faults::default()
    })
    .unwrap();
    let r = RawCall::new(&ep, "DescribeDownloadTask", &list)
        .send()
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (400, "Throttling.User"));
    let hint = r.headers["x-ratelimit-user-api"].to_str().unwrap();
    assert!(
        hint.starts_with("Limit:100,Remain:0,TimeLeft:2500,Reset:"),
        "{hint}"
    );
    let r = RawCall::new(&ep, "DescribeDownloadTask", &list)
        .send()
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (503, "ServiceUnavailable"));
    let r = RawCall::new(&ep, "DescribeDownloadTask", &list)
        .send()
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (500, "InternalError"));
    let r = RawCall::new(&ep, "DescribeDownloadTask", &list)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let dropped = RawCall::new(&ep, "DescribeDownloadSupport", &list)
        .send()
        .await;
    assert!(
        dropped.is_err(),
        "connection should close without a response: {dropped:?}"
    );
    let s = sim.stats();
    assert_eq!(s.count("DescribeDownloadSupport", "Dropped"), 1);
    assert_eq!(s.count("DescribeDownloadTask", "Throttling.User"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn timeout_after_create_still_creates_the_task() {
    let config = SimConfig::demo().stall(Duration::from_millis(300));
    let sim = start(config.clone()).await;
    sim.set_faults(Faults {
        timeout_after_create: FaultRule::next(1),
        ..Faults::default()
    })
    .unwrap();
    let set = first_set(&config, "rm-demo0005");
    let r = RawCall::new(
        &sim.endpoint(),
        "CreateDownload",
        &create_params("rm-demo0005", &set),
    )
    .send()
    .await;
    assert!(r.is_err(), "no answer expected: {r:?}");
    let tasks = sim.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].instance, "rm-demo0005");
    assert_eq!(sim.stats().count("CreateDownload", "Stalled"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints_steer_the_simulator() {
    let config = SimConfig::demo();
    let sim = start(config.clone()).await;
    let http = reqwest::Client::new();
    let ep = sim.endpoint();
    let set = first_set(&config, "rm-demo0006");
    let r = RawCall::new(&ep, "CreateDownload", &create_params("rm-demo0006", &set))
        .send()
        .await
        .unwrap();
    let id = r.body["Data"]["TaskId"].as_str().unwrap().to_string();

    let failed: serde_json::Value = http
        .post(format!("{ep}/__sim/tasks/{id}/fail"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(failed["status"], "failed");
    let cleared: serde_json::Value = http
        .post(format!("{ep}/__sim/instances/rm-demo0006/clear"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["cleared"], 1);

    let resp = http
        .post(format!("{ep}/__sim/faults"))
        .json(&serde_json::json!({"unavailable": {"next": 1, "actions": ["DescribeDownloadSupport"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bad = http
        .post(format!("{ep}/__sim/faults"))
        .json(&serde_json::json!({"throttle": {"probability": 3.0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let list = [
        ("RegionCode", "cn-hangzhou"),
        ("InstanceName", "rm-demo0006"),
    ];
    assert_eq!(
        RawCall::new(&ep, "DescribeDownloadSupport", &list)
            .send()
            .await
            .unwrap()
            .status,
        503
    );
    let ok = RawCall::new(&ep, "DescribeDownloadSupport", &list)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.body["Data"], "true");

    let stats: serde_json::Value = http
        .get(format!("{ep}/__sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["tasks_created"]["rm-demo0006"], 1);
    assert_eq!(stats["max_active"]["rm-demo0006"], 1);
    assert_eq!(
        stats["calls"]["DescribeDownloadSupport"]["ServiceUnavailable"],
        1
    );
    let tasks: serde_json::Value = http
        .get(format!("{ep}/__sim/tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tasks[0]["status"], "expired");
    sim.shutdown().await;
}

#[tokio::test]
async fn rds_describe_backups_on_the_same_server() {
    let sim = start(SimConfig::demo()).await;
    let r = RawCall::new(
        &sim.endpoint(),
        "DescribeBackups",
        &[
            ("DBInstanceId", "rm-demo0007"),
            ("BackupType", "FullBackup"),
            ("BackupStatus", "Success"),
        ],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["TotalRecordCount"], "3");
    let items = r.body["Items"]["Backup"].as_array().unwrap();
    assert!(
        items[0]["BackupEndTime"].as_str().unwrap() > items[1]["BackupEndTime"].as_str().unwrap()
    );
    assert!(items[0]["BackupSize"].is_i64());
    let r = RawCall::new(
        &sim.endpoint(),
        "DescribeBackups",
        &[("DBInstanceId", "rm-nope")],
    )
    .send()
    .await
    .unwrap();
    assert_eq!((r.status, r.code()), (404, "InvalidDBInstanceId.NotFound"));
    // The wrong version for the action is an unknown API.
    let mut call = RawCall::new(
        &sim.endpoint(),
        "DescribeBackups",
        &[("DBInstanceId", "rm-demo0007")],
    );
    call.version = "2021-01-01".into();
    let r = call.send().await.unwrap();
    assert_eq!((r.status, r.code()), (404, "InvalidApi.NotFound"));
    sim.shutdown().await;
}

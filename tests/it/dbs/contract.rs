//! Where the simulator is exactly as strict as the documented gateway and API (dbs-api.md
//! §1, §3.1, §3.4 notes, §4.1, §5, §6, §7.2): the date form, the headers that must be
//! signed, the MongoDB-only parameters and `ClusterName` on every operation that takes it.

use super::client::client;
use super::raw::RawCall;
use dbs_archiver::dbs::types::DescribeTasksQuery;
use dbs_archiver::dbs::DbsErrorKind;
use dbs_archiver::model::DownloadRequest;
use dbs_archiver::sim::{
    SimConfig, SimHandle, Simulator, DEMO_MONGO_CLUSTER_NAME as CLUSTER,
    DEMO_MONGO_REPLICA_SET as REPLICA_SET, DEMO_MONGO_SHARDED as SHARDED, DEMO_REGION as REGION,
};
use std::time::Duration;

async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config, "127.0.0.1:0")
        .await
        .expect("simulator starts")
}

fn mongo_config() -> SimConfig {
    SimConfig::demo().with_mongodb(REGION)
}

fn set_of(config: &SimConfig, instance: &str) -> String {
    super::client::set_of(config, instance, 0)
}

#[tokio::test]
async fn only_the_documented_date_form_is_accepted() {
    let sim = start(SimConfig::demo()).await;
    let params = [("RegionCode", REGION), ("InstanceName", "rm-demo0001")];
    let now = chrono::Utc::now();
    for v2 in [false, true] {
        for text in [
            now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            now.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
            now.format("%Y-%m-%d %H:%M:%SZ").to_string(),
            now.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        ] {
            let mut call =
                RawCall::new(&sim.endpoint(), "DescribeDownloadTask", &params).date_text(&text);
            call.v2 = v2;
            let r = call.send().await.unwrap();
            assert_eq!(
                (r.status, r.code()),
                (400, "InvalidTimeStamp.Format"),
                "v2={v2} {text}: {:?}",
                r.body
            );
        }
        let mut call = RawCall::new(&sim.endpoint(), "DescribeDownloadTask", &params)
            .date_text(&now.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        call.v2 = v2;
        let r = call.send().await.unwrap();
        assert_eq!(r.status, 200, "v2={v2}: {:?}", r.body);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn date_and_nonce_must_be_signed_headers() {
    let sim = start(SimConfig::demo()).await;
    let params = [("RegionCode", REGION), ("InstanceName", "rm-demo0001")];
    for header in ["x-acs-date", "x-acs-signature-nonce"] {
        let r = RawCall::new(&sim.endpoint(), "DescribeDownloadTask", &params)
            .unsigned(header)
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.code()),
            (400, "IncompleteSignature"),
            "{header}"
        );
        let message = r.body["Message"].as_str().unwrap_or_default();
        assert!(message.contains(header), "{message}");
    }
    // Leaving out a header the gateway does not insist on is fine.
    let r = RawCall::new(&sim.endpoint(), "DescribeDownloadTask", &params)
        .unsigned("x-acs-content-sha256")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    sim.shutdown().await;
}

/// Extra CreateDownload parameters.
type Extra<'a> = &'a [(&'a str, &'a str)];

/// CreateDownload with `extra` parameters on `instance`: (Code, Message).
async fn create_with(
    sim: &SimHandle,
    config: &SimConfig,
    instance: &str,
    extra: &[(&str, &str)],
) -> (String, String) {
    let set = set_of(config, instance);
    let mut params = vec![
        ("RegionCode", REGION),
        ("InstanceName", instance),
        ("BakSetType", "full"),
        ("BakSetId", set.as_str()),
        ("FormatType", "CSV"),
        ("TargetType", "URL"),
    ];
    params.extend_from_slice(extra);
    let r = RawCall::new(&sim.endpoint(), "CreateDownload", &params)
        .send()
        .await
        .unwrap();
    (
        r.body["Code"].as_str().unwrap_or_default().to_string(),
        r.body["Message"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn mongodb_parameters_follow_the_documented_rules() {
    let config = mongo_config().enforce_one_active(false);
    let sim = start(config.clone()).await;
    let rejected: &[(&str, Extra, &str)] = &[
        (
            "rm-demo0001",
            &[("PrimaryKeyTypeOnly", "true")],
            "primaryKeyTypeOnly is only supported for MongoDB",
        ),
        (
            "rm-demo0001",
            &[("IsCluster", "false")],
            "isCluster is only supported for MongoDB",
        ),
        (
            "rm-demo0001",
            &[("AdminDatabase", "admin")],
            "adminDatabase is only supported for MongoDB",
        ),
        (
            "rm-demo0001",
            &[("ClusterName", CLUSTER)],
            "clusterName is only supported for MongoDB sharded clusters",
        ),
        (
            REPLICA_SET,
            &[("ClusterName", CLUSTER)],
            "clusterName is only supported for MongoDB sharded clusters",
        ),
        (
            REPLICA_SET,
            &[("IsCluster", "true")],
            "isCluster is invalid",
        ),
        (REPLICA_SET, &[("UseZstd", "yes")], "useZstd is invalid"),
        (REPLICA_SET, &[("IsPhysical", "1")], "isPhysical is invalid"),
        (
            REPLICA_SET,
            &[("PrimaryKeyTypeOnly", "maybe")],
            "primaryKeyTypeOnly is invalid",
        ),
        (
            REPLICA_SET,
            &[("AdminDatabase", "ad/min")],
            "adminDatabase is invalid",
        ),
        (SHARDED, &[], "clusterName can not be empty"),
        (
            SHARDED,
            &[("ClusterName", "dds-other")],
            "clusterName is invalid",
        ),
        (
            SHARDED,
            &[("ClusterName", CLUSTER), ("IsCluster", "false")],
            "isCluster is invalid",
        ),
    ];
    for (instance, extra, rule) in rejected {
        let (code, message) = create_with(&sim, &config, instance, extra).await;
        assert_eq!(
            code, "DBS.ParamIsInValid",
            "{instance} {extra:?}: {message}"
        );
        assert!(message.contains(rule), "{instance} {extra:?}: {message}");
    }
    assert_eq!(sim.stats().total_tasks_created(), 0, "nothing created");

    let accepted: &[(&str, Extra)] = &[
        (
            SHARDED,
            &[
                ("ClusterName", CLUSTER),
                ("IsCluster", "true"),
                ("AdminDatabase", "admin"),
                ("PrimaryKeyTypeOnly", "false"),
                ("UseZstd", "true"),
                ("IsPhysical", "false"),
            ],
        ),
        (
            REPLICA_SET,
            &[
                ("IsCluster", "False"),
                ("AdminDatabase", "admin"),
                ("PrimaryKeyTypeOnly", "TRUE"),
            ],
        ),
        (
            "rm-demo0001",
            &[("UseZstd", "true"), ("IsPhysical", "false")],
        ),
    ];
    for (instance, extra) in accepted {
        let (code, message) = create_with(&sim, &config, instance, extra).await;
        assert_eq!(code, "Success", "{instance} {extra:?}: {message}");
    }
    sim.shutdown().await;
}

/// The real client sends `ClusterName` on every operation that takes it, and the simulator
/// sees it on each (its request log), for a sharded cluster's whole task lifecycle.
#[tokio::test]
async fn cluster_name_is_sent_on_every_operation() {
    let config = mongo_config();
    let sim = start(config.clone()).await;
    let c = client(&sim);
    let mut req = DownloadRequest::example_full(REGION, SHARDED, &set_of(&config, SHARDED));
    req.cluster_name = Some(CLUSTER.into());
    req.is_cluster = Some("true".into());
    req.admin_database = Some("admin".into());

    assert!(
        c.describe_download_support(REGION, SHARDED, Some(CLUSTER))
            .await
            .unwrap()
            .data
    );
    let task = c.create_download(&req).await.unwrap().data;
    let q = DescribeTasksQuery {
        region: REGION.into(),
        instance: SHARDED.into(),
        cluster_name: Some(CLUSTER.into()),
        page_size: 10,
        page: 1,
        ..Default::default()
    };
    let listed = c.describe_download_tasks(&q).await.unwrap().data;
    assert_eq!(listed.tasks[0].task_id, task.task_id);
    sim.fail_task(&task.task_id).unwrap();
    c.retry_download_task(REGION, SHARDED, Some(CLUSTER), &task.task_id)
        .await
        .unwrap();
    sim.advance(Duration::from_secs(3 * 3600));
    let info = c
        .describe_download_backup_set_storage_info(
            REGION,
            SHARDED,
            Some(CLUSTER),
            &task.task_id,
            3600,
        )
        .await
        .unwrap()
        .data;
    assert!(info.public_url.is_some());

    // Another cluster name is refused everywhere it is checked.
    let wrong = DescribeTasksQuery {
        cluster_name: Some("dds-other".into()),
        ..q.clone()
    };
    let e = c.describe_download_tasks(&wrong).await.unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_str()),
        (DbsErrorKind::Permanent, "DBS.ParamIsInValid")
    );
    let e = c
        .retry_download_task(REGION, SHARDED, Some("dds-other"), &task.task_id)
        .await
        .unwrap_err();
    assert_eq!(e.code, "DBS.ParamIsInValid");

    let log = sim.request_log();
    for action in [
        "DescribeDownloadSupport",
        "CreateDownload",
        "DescribeDownloadTask",
        "RetryDownloadTask",
        "DescribeDownloadBackupSetStorageInfo",
    ] {
        let calls: Vec<_> = log
            .iter()
            .filter(|e| e.action == action && e.code == "Success")
            .collect();
        assert!(!calls.is_empty(), "{action} was not called");
        assert!(
            calls
                .iter()
                .all(|e| e.cluster_name.as_deref() == Some(CLUSTER)),
            "{action} without ClusterName: {calls:?}"
        );
    }
    sim.shutdown().await;
}

//! The client against a tiny recording HTTP server on 127.0.0.1:0: what goes on the
//! wire (parameters, headers, signatures verified with the same `signing` functions the
//! simulator uses), retries, and transport-failure classification. The full behavioural
//! suite against the simulator lives in `tests/it` (sim branch).

use super::*;
use crate::dbs::credentials::StaticCredentials;
use crate::model::{BakSetType, FormatType, TargetType};
use axum::body::Bytes;
use axum::http::{HeaderMap as AxHeaders, StatusCode, Uri};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::Mutex;

const AK: &str = "testid";
const SECRET: &str = "testsecret";

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    query: Vec<(String, String)>,
    raw_query: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Scripted = (u16, Vec<(&'static str, &'static str)>, String);

#[derive(Clone, Default)]
struct Server {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Scripted>>>,
}

impl Server {
    async fn start() -> (Self, String) {
        let server = Server::default();
        let s = server.clone();
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method, uri: Uri, headers: AxHeaders, _body: Bytes| {
                let s = s.clone();
                async move {
                    let raw = uri.query().unwrap_or_default().to_string();
                    s.seen.lock().unwrap().push(Seen {
                        method: method.to_string(),
                        query: signing::parse_query(&raw).unwrap(),
                        raw_query: raw,
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                            .collect(),
                    });
                    let (status, hdrs, body) = s.script.lock().unwrap().pop_front().unwrap_or((
                        200,
                        vec![],
                        json!({"RequestId": "ok", "Success": "true", "Data": {}}).to_string(),
                    ));
                    let mut resp = axum::response::Response::new(axum::body::Body::from(body));
                    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                    for (k, v) in hdrs {
                        resp.headers_mut().insert(k, v.parse().unwrap());
                    }
                    resp
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (server, format!("http://{addr}"))
    }

    fn reply(&self, status: u16, headers: Vec<(&'static str, &'static str)>, body: Value) {
        self.script
            .lock()
            .unwrap()
            .push_back((status, headers, body.to_string()));
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn client_with(base: &str, signature: SignatureVersion, creds: Credentials) -> DbsClient {
    let config = DbsClientConfig {
        endpoint_kind: Default::default(),
        endpoint_override: Some(base.to_string()),
        rds_endpoint_override: Some(base.to_string()),
        signature,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_millis(800),
        calls_per_second_per_region: 1000.0,
        burst: 100,
        allow_insecure_http: false,
    };
    DbsClient::new(config, Arc::new(StaticCredentials(creds))).unwrap()
}

fn client(base: &str) -> DbsClient {
    client_with(
        base,
        SignatureVersion::V3,
        Credentials::access_key(AK, SECRET),
    )
}

/// Verify a V3 request the way the gateway does (dbs-api.md §7.2).
fn verify_v3(seen: &Seen, secret: &str) -> signing::V3Authorization {
    let auth = signing::parse_v3_authorization(seen.header("authorization").unwrap()).unwrap();
    let only: Vec<&str> = auth.signed_headers.iter().map(String::as_str).collect();
    let input = signing::V3Input {
        method: &seen.method,
        path: "/",
        query: &seen.query,
        headers: &seen.headers,
        payload_hash: seen.header("x-acs-content-sha256").unwrap(),
    };
    let (canonical, _) = signing::v3_canonical_request(&input, Some(&only));
    assert_eq!(
        auth.signature,
        signing::v3_signature(secret, &canonical),
        "V3 signature does not verify"
    );
    auth
}

fn full_request() -> DownloadRequest {
    DownloadRequest::example_full("cn-hangzhou", "rm-test123", "1460050000")
}

#[tokio::test]
async fn create_download_v3_on_the_wire() {
    let (server, base) = Server::start().await;
    server.reply(
        200,
        vec![],
        json!({"RequestId": "req-create", "Success": "true", "Code": "Success",
               "Data": {"TaskId": "dt-qxnsfq5s0001", "DownloadStatus": "initializing",
                        "Progress": "0/0", "GmtCreate": 1661331864000i64}}),
    );
    let mut req = full_request();
    req.bak_set_size = Some(1024);
    req.use_zstd = Some("true".into());
    req.is_physical = Some(false);
    let reply = client(&base).create_download(&req).await.unwrap();
    assert_eq!(reply.request_id.as_deref(), Some("req-create"));
    assert_eq!(reply.data.task_id, "dt-qxnsfq5s0001");
    assert_eq!(reply.data.status, RemoteTaskStatus::Initializing);

    let seen = &server.seen()[0];
    assert_eq!(seen.method, "POST");
    for (name, value) in [
        ("RegionCode", "cn-hangzhou"),
        ("InstanceName", "rm-test123"),
        ("BakSetType", "full"),
        ("BakSetId", "1460050000"),
        ("BakSetSize", "1024"),
        ("FormatType", req.format.as_str()),
        ("TargetType", req.target_type.as_str()),
        ("UseZstd", "true"),
        ("IsPhysical", "false"),
    ] {
        assert_eq!(seen.param(name), Some(value), "{name}");
    }
    // V3 keeps Action/Version/Signature out of the query.
    for absent in ["Action", "Signature", "DownloadPointInTime", "TargetBucket"] {
        assert_eq!(seen.param(absent), None, "{absent}");
    }
    assert_eq!(seen.header("x-acs-action"), Some("CreateDownload"));
    assert_eq!(seen.header("x-acs-version"), Some("2021-01-01"));
    assert_eq!(seen.header("x-acs-content-sha256"), Some(EMPTY_SHA256));
    assert_eq!(seen.header("accept"), Some("application/json"));
    assert_eq!(seen.header("x-acs-signature-nonce").unwrap().len(), 32);
    let date = seen.header("x-acs-date").unwrap();
    assert!(chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%dT%H:%M:%SZ").is_ok());
    let auth = verify_v3(seen, SECRET);
    assert_eq!(auth.access_key_id, AK);
    assert_eq!(
        auth.signed_headers.join(";"),
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
    );
    // The signed host is what the server saw.
    assert_eq!(
        seen.header("host"),
        Some(base.trim_start_matches("http://"))
    );
}

#[tokio::test]
async fn sts_token_is_a_signed_header_in_v3_and_a_parameter_in_v2() {
    let (server, base) = Server::start().await;
    let creds = Credentials::access_key("STS.testid", SECRET).with_security_token("sts-token");
    client_with(&base, SignatureVersion::V3, creds.clone())
        .describe_download_support("cn-hangzhou", "rm-1", None)
        .await
        .ok();
    client_with(&base, SignatureVersion::V2, creds)
        .describe_download_support("cn-hangzhou", "rm-1", None)
        .await
        .ok();
    let seen = server.seen();
    assert_eq!(seen[0].header("x-acs-security-token"), Some("sts-token"));
    let auth = verify_v3(&seen[0], SECRET);
    assert!(auth
        .signed_headers
        .contains(&"x-acs-security-token".to_string()));
    assert_eq!(seen[1].param("SecurityToken"), Some("sts-token"));
    assert_eq!(seen[1].header("x-acs-security-token"), None);
}

#[tokio::test]
async fn describe_tasks_v2_on_the_wire() {
    let (server, base) = Server::start().await;
    server.reply(
        200,
        vec![],
        json!({"RequestId": "r", "Success": "true",
               "Data": {"PageNumber": 1, "PageSize": 50, "TotalElements": 1, "TotalPages": 1,
                        "Content": {"List": [{"TaskId": "dt-1", "DownloadStatus": "running"}]}}}),
    );
    let c = client_with(
        &base,
        SignatureVersion::V2,
        Credentials::access_key(AK, SECRET),
    );
    let q = DescribeTasksQuery {
        region: "cn-hangzhou".into(),
        instance: "rm-1".into(),
        state: Some("running".into()),
        start_time_ms: Some(1_700_000_000_000),
        ..Default::default()
    };
    let page = c.describe_download_tasks(&q).await.unwrap();
    assert_eq!(page.data.tasks[0].status, RemoteTaskStatus::Running);

    let seen = &server.seen()[0];
    assert_eq!(seen.method, "POST");
    for (name, value) in [
        ("Action", "DescribeDownloadTask"),
        ("Version", "2021-01-01"),
        ("Format", "JSON"),
        ("AccessKeyId", AK),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("RegionCode", "cn-hangzhou"),
        ("InstanceName", "rm-1"),
        ("State", "running"),
        ("StartTime", "1700000000000"),
        ("PageSize", "50"),
        ("CurrentPage", "1"),
    ] {
        assert_eq!(seen.param(name), Some(value), "{name}");
    }
    assert!(seen.param("SignatureNonce").is_some());
    assert!(seen.param("Timestamp").unwrap().ends_with('Z'));
    // The gateway's check: recompute over everything but Signature.
    let expected = signing::v2_signature(SECRET, "POST", &seen.query);
    assert!(signing::signatures_equal(
        seen.param("Signature").unwrap(),
        &expected
    ));
    assert!(seen.header("authorization").is_none());
    // Percent-encoded on the wire (the timestamp's ':' travels as %3A).
    assert!(seen.raw_query.contains("Timestamp=20"));
    assert!(seen.raw_query.contains("%3A"));
}

#[tokio::test]
async fn list_pages_through_everything() {
    let (server, base) = Server::start().await;
    for page in 1..=3 {
        let tasks: Vec<Value> = (0..2)
            .filter(|i| page < 3 || *i == 0)
            .map(|i| json!({"TaskId": format!("dt-{page}-{i}"), "DownloadStatus": "finished"}))
            .collect();
        server.reply(
            200,
            vec![],
            json!({"Success": "true", "Data": {"Number": page.to_string(), "Size": "2",
                   "TotalElements": "5", "Content": {"List": tasks}}}),
        );
    }
    let q = DescribeTasksQuery {
        region: "cn-hangzhou".into(),
        instance: "rm-1".into(),
        page_size: 2,
        ..Default::default()
    };
    let tasks = client(&base).list_download_tasks(&q).await.unwrap();
    assert_eq!(tasks.len(), 5);
    let pages: Vec<String> = server
        .seen()
        .iter()
        .map(|s| s.param("CurrentPage").unwrap().to_string())
        .collect();
    assert_eq!(pages, ["1", "2", "3"]);
}

#[tokio::test]
async fn reads_retry_transient_errors_writes_do_not() {
    let (server, base) = Server::start().await;
    let unavailable = json!({"RequestId": "u", "Code": "ServiceUnavailable", "Message": "busy"});
    server.reply(503, vec![], unavailable.clone());
    server.reply(200, vec![], json!({"Success": "true", "Data": "true"}));
    let c = client(&base);
    assert!(
        c.describe_download_support("cn-hangzhou", "rm-1", None)
            .await
            .unwrap()
            .data
    );
    assert_eq!(server.seen().len(), 2);

    server.reply(503, vec![], unavailable);
    let err = c.create_download(&full_request()).await.unwrap_err();
    assert_eq!(err.kind, DbsErrorKind::Transient);
    assert_eq!(err.request_id.as_deref(), Some("u"));
    assert_eq!(err.http_status, Some(503));
    assert_eq!(server.seen().len(), 3, "CreateDownload must not be retried");

    // Permanent errors are not retried even for reads.
    server.reply(
        403,
        vec![],
        json!({"RequestId": "p", "Code": "Forbidden.RAM", "Message": "no"}),
    );
    let err = c
        .describe_download_support("cn-hangzhou", "rm-1", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, DbsErrorKind::Permanent);
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn business_errors_and_throttling_reach_the_caller_classified() {
    let (server, base) = Server::start().await;
    let c = client(&base);
    server.reply(
        200,
        vec![],
        json!({"RequestId": "b", "Success": "false",
               "Code": "DBS.DownloadTask.OnlyOneRunningOrFailedTask",
               "Message": "There can be only one running or failed task for the instance."}),
    );
    let err = c.create_download(&full_request()).await.unwrap_err();
    assert_eq!(err.kind, DbsErrorKind::InstanceBusy);
    assert_eq!(err.http_status, Some(200));

    // Throttled write: classified, the region slowed, no second call.
    server.reply(
        400,
        vec![(
            "x-ratelimit-user-api",
            "Limit:1,Remain:0,TimeLeft:300,Reset:1",
        )],
        json!({"RequestId": "t", "Code": "Throttling.User", "Message": "flow"}),
    );
    let err = c.create_download(&full_request()).await.unwrap_err();
    assert_eq!(err.kind, DbsErrorKind::Throttled);
    assert_eq!(err.retry_after, Some(Duration::from_millis(300)));
    let rate = *c.rate_limits().values().next().expect("one bucket");
    assert!(rate.rate < rate.base_rate);
    assert!(rate.paused_for > Duration::ZERO);
    assert_eq!(server.seen().len(), 2);

    // Throttled read with a short hint: waited out, then retried.
    server.reply(
        400,
        vec![("x-ratelimit-user", "Limit:1,Remain:0,TimeLeft:200,Reset:1")],
        json!({"RequestId": "t2", "Code": "Throttling.Api", "Message": "flow"}),
    );
    server.reply(200, vec![], json!({"Success": "true", "Data": "false"}));
    let started = std::time::Instant::now();
    assert!(
        !c.describe_download_support("cn-hangzhou", "rm-1", None)
            .await
            .unwrap()
            .data
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn invalid_requests_never_leave_the_process() {
    let (server, base) = Server::start().await;
    let c = client(&base);
    let mut req = full_request();
    req.bak_set_id = None;
    let err = c.create_download(&req).await.unwrap_err();
    assert_eq!(err.code, "Request.Invalid");
    assert!(err.message.contains("bak_set_id"), "{err}");
    let mut req = full_request();
    req.bak_set_type = BakSetType::Pitr;
    req.format = FormatType::Parquet;
    req.target_type = TargetType::Oss;
    let err = c.create_download(&req).await.unwrap_err();
    assert!(err.message.contains("download_point_in_time"), "{err}");
    let err = c
        .describe_download_backup_set_storage_info("cn-hangzhou", "rm-1", None, "dt-1", 10)
        .await
        .unwrap_err();
    assert!(err.message.contains("duration_seconds"), "{err}");
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn unknown_region_without_override_names_the_region() {
    let c = DbsClient::new(
        DbsClientConfig::default(),
        Arc::new(StaticCredentials(Credentials::access_key(AK, SECRET))),
    )
    .unwrap();
    let err = c
        .describe_download_support("xx-nowhere-1", "rm-1", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, DbsErrorKind::Permanent);
    assert_eq!(err.code, "Endpoint.UnknownRegion");
    assert!(err.message.contains("xx-nowhere-1"));
    // Plain http to a non-loopback host is refused at construction.
    let config = DbsClientConfig {
        endpoint_override: Some("http://10.0.0.1:8089".into()),
        ..Default::default()
    };
    let err = DbsClient::new(
        config,
        Arc::new(StaticCredentials(Credentials::access_key(AK, SECRET))),
    )
    .unwrap_err();
    assert!(err.message.contains("dbs.endpoint"), "{err}");
}

#[tokio::test]
async fn connect_refused_is_transient_for_everyone() {
    // Bind then drop: nothing listens on the port any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client(&format!("http://127.0.0.1:{port}"));
    let err = c.create_download(&full_request()).await.unwrap_err();
    assert_eq!(err.kind, DbsErrorKind::Transient);
    assert_eq!(err.code, "Network.Connect");
}

/// A server that reads the request and never answers: the request was sent, so a
/// write is ambiguous and a read is transient.
#[tokio::test]
async fn timeout_after_send_is_ambiguous_for_writes_only() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    let config = DbsClientConfig {
        endpoint_override: Some(format!("http://{addr}")),
        request_timeout: Duration::from_millis(250),
        ..Default::default()
    };
    let c = DbsClient::new(
        config,
        Arc::new(StaticCredentials(Credentials::access_key(AK, SECRET))),
    )
    .unwrap();
    let err = c.create_download(&full_request()).await.unwrap_err();
    assert_eq!(err.kind, DbsErrorKind::Ambiguous);
    assert_eq!(err.code, "Network.Timeout");
    assert!(
        !err.message.contains("127.0.0.1"),
        "no URL in errors: {err}"
    );
    let err = c
        .retry_download_task("cn-hangzhou", "rm-1", None, "dt-1")
        .await
        .unwrap_err();
    assert_eq!(err.kind, DbsErrorKind::Ambiguous);
    let before = requests.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(before, 2);
    let err = c
        .describe_download_support("cn-hangzhou", "rm-1", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind, DbsErrorKind::Transient);
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst) - before,
        READ_ATTEMPTS,
        "reads retry a bounded number of times"
    );
}

#[tokio::test]
async fn rds_latest_full_backup_pages_and_picks() {
    let (server, base) = Server::start().await;
    server.reply(
        200,
        vec![],
        json!({"RequestId": "r1", "PageNumber": "1", "PageRecordCount": "1", "TotalRecordCount": "2",
               "Items": {"Backup": [{"BackupId": "111", "BackupSize": 10, "IsAvail": 1,
                  "BackupStatus": "Success", "BackupType": "FullBackup",
                  "BackupEndTime": "2024-01-01T01:00:00Z"}]}}),
    );
    server.reply(
        200,
        vec![],
        json!({"RequestId": "r2", "PageNumber": "2", "PageRecordCount": "1", "TotalRecordCount": "2",
               "Items": {"Backup": [{"BackupId": "222", "BackupSize": "20", "IsAvail": "1",
                  "BackupStatus": "Success", "BackupType": "FullBackup",
                  "BackupEndTime": "2024-01-02T01:00Z"}]}}),
    );
    let best = client(&base)
        .latest_full_backup("cn-hangzhou", "rm-1", chrono::Duration::days(7))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(best.backup_id, "222");
    assert_eq!(best.backup_size, Some(20));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("x-acs-action"), Some("DescribeBackups"));
    assert_eq!(seen[0].header("x-acs-version"), Some("2014-08-15"));
    assert_eq!(seen[0].param("DBInstanceId"), Some("rm-1"));
    assert_eq!(seen[0].param("BackupType"), Some("FullBackup"));
    assert_eq!(seen[0].param("BackupStatus"), Some("Success"));
    assert_eq!(seen[1].param("PageNumber"), Some("2"));
    let start = seen[0].param("StartTime").unwrap();
    assert!(wire::parse_rds_time(start).is_some(), "{start}");
    verify_v3(&seen[0], SECRET);
}

#[tokio::test]
async fn storage_info_and_retry() {
    let (server, base) = Server::start().await;
    server.reply(
        200,
        vec![],
        json!({"RequestId": "s", "Success": "true",
               "Data": {"PublicUrl": "https://x/dt-1/f", "ExpirationTime": 1661329050}}),
    );
    server.reply(
        200,
        vec![],
        json!({"RequestId": "rt", "Success": "True", "Data": "none"}),
    );
    let c = client(&base);
    let info = c
        .describe_download_backup_set_storage_info("cn-hangzhou", "rm-1", None, "dt-1", 7200)
        .await
        .unwrap();
    assert_eq!(info.data.expiration_time_ms, Some(1_661_329_050_000));
    let retried = c
        .retry_download_task("cn-hangzhou", "rm-1", None, "dt-1")
        .await
        .unwrap();
    assert_eq!(retried.request_id.as_deref(), Some("rt"));
    let seen = server.seen();
    assert_eq!(seen[0].param("Duration"), Some("7200"));
    assert_eq!(seen[0].param("TaskId"), Some("dt-1"));
    assert_eq!(seen[1].header("x-acs-action"), Some("RetryDownloadTask"));
    assert_eq!(seen[1].param("TaskId"), Some("dt-1"));
    assert_eq!(seen[1].param("InstanceName"), Some("rm-1"));
}

#[test]
fn config_from_settings_maps_every_key() {
    let mut s = crate::config::Settings::load_from(None, Vec::new())
        .unwrap()
        .dbs;
    let c = DbsClientConfig::from_settings(&s);
    assert_eq!(c.endpoint_override, None);
    assert_eq!(c.rds_endpoint_override, None);
    assert_eq!(c.signature, SignatureVersion::V3);
    assert_eq!(
        c.connect_timeout,
        Duration::from_millis(s.connect_timeout_ms)
    );
    assert_eq!(
        c.request_timeout,
        Duration::from_millis(s.request_timeout_ms)
    );
    s.endpoint = "http://127.0.0.1:8089".into();
    s.signature = SignatureVersion::V2;
    s.burst = 3;
    let c = DbsClientConfig::from_settings(&s);
    assert_eq!(
        c.endpoint_override.as_deref(),
        Some("http://127.0.0.1:8089")
    );
    assert_eq!(c.signature, SignatureVersion::V2);
    assert_eq!(c.burst, 3);
}

/// The endpoint table decides the host when nothing overrides it: the latest public list
/// (cn-zhangjiakou and cn-wulanchabu have their own hosts), or their VPC addresses.
#[test]
fn endpoint_kind_picks_public_or_vpc_hosts() {
    let make = |kind: endpoints::EndpointKind| {
        DbsClient::new(
            DbsClientConfig {
                endpoint_kind: kind,
                ..Default::default()
            },
            Arc::new(StaticCredentials(Credentials::access_key(AK, SECRET))),
        )
        .unwrap()
    };
    let host = |c: &DbsClient, region: &str| {
        let call = Call::new(
            Product::Dbs,
            "DescribeDownloadTask",
            region,
            Idempotency::Read,
        );
        c.base_url(&call).unwrap().to_string()
    };
    let public = make(endpoints::EndpointKind::Public);
    let vpc = make(endpoints::EndpointKind::Vpc);
    assert_eq!(
        host(&public, "cn-zhangjiakou"),
        "https://dbs-api.cn-zhangjiakou.aliyuncs.com/"
    );
    assert_eq!(
        host(&public, "cn-wulanchabu"),
        "https://dbs-api.cn-wulanchabu.aliyuncs.com/"
    );
    assert_eq!(
        host(&vpc, "cn-wulanchabu"),
        "https://dbs-api-vpc.cn-wulanchabu.aliyuncs.com/"
    );
    assert_eq!(
        host(&vpc, "cn-shanghai"),
        "https://dbs-api-vpc.cn-hangzhou.aliyuncs.com/"
    );
}

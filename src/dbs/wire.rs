//! Lenient reading of the cloud's JSON replies (dbs-api.md §3.2, §4.2, §5).
//!
//! The SDK models, the XML demos and the JSON examples disagree on types and names:
//! numbers arrive as JSON numbers or strings, `Success` as `"true"`, `"True"` or `true`,
//! page fields as `PageNumber` or `Number`, codes as `Code` or `ErrCode`. Everything here
//! accepts every spelling seen in the sources so one odd reply never fails a job.

use super::types::{DownloadTask, RdsBackup, RemoteTaskStatus, StorageInfo, TaskPage};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

/// The first present, non-null field among `names`.
pub(crate) fn field<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    let obj = v.as_object()?;
    names
        .iter()
        .find_map(|n| obj.get(*n).filter(|x| !x.is_null()))
}

/// A string, or a number/bool rendered as text. Empty strings count as absent.
pub(crate) fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An integer from a JSON number (integral) or a numeric string.
pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && f.fract() == 0.0)
                    .map(|f| f as i64)
            })
        }
        _ => None,
    }
}

/// `true`, `"true"`, `"True"`, `1`, `"1"` and their negatives.
pub(crate) fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

pub(crate) fn str_field(v: &Value, names: &[&str]) -> Option<String> {
    field(v, names).and_then(as_string)
}

pub(crate) fn i64_field(v: &Value, names: &[&str]) -> Option<i64> {
    field(v, names).and_then(as_i64)
}

/// The common envelope of every reply: RequestId, Success, Code, Message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub request_id: Option<String>,
    /// `None` when the reply has no `Success` field (gateway errors, RDS).
    pub success: Option<bool>,
    /// The error code: `Code` or `ErrCode`, preferring one that is not `Success`.
    pub code: Option<String>,
    pub message: Option<String>,
}

pub(crate) fn envelope(body: &Value) -> Envelope {
    let not_success = |c: &String| !c.eq_ignore_ascii_case("success");
    let codes: Vec<String> = ["Code", "ErrCode", "code", "errCode"]
        .iter()
        .filter_map(|n| str_field(body, &[n]))
        .collect();
    let code = codes
        .iter()
        .find(|c| not_success(c))
        .or_else(|| codes.first())
        .cloned();
    Envelope {
        request_id: str_field(body, &["RequestId", "requestId", "RequestID"]),
        success: field(body, &["Success", "success"]).and_then(as_bool),
        code,
        message: str_field(body, &["Message", "ErrMessage", "message", "errMessage"]),
    }
}

/// Epoch values below 1e12 are seconds (dbs-api.md §5.2 example); normalise to ms.
pub(crate) fn normalise_epoch_ms(v: i64) -> i64 {
    if v.abs() < 1_000_000_000_000 {
        v.saturating_mul(1000)
    } else {
        v
    }
}

/// One task object (CreateDownload `Data` or a DescribeDownloadTask list entry).
/// `None` when it has no `TaskId`.
pub(crate) fn parse_task(v: &Value, default_status: RemoteTaskStatus) -> Option<DownloadTask> {
    Some(DownloadTask {
        task_id: str_field(v, &["TaskId", "taskId"])?,
        region_code: str_field(v, &["RegionCode", "regionCode"]),
        format: str_field(v, &["Format", "FormatType", "format"]),
        db_list: str_field(v, &["DbList", "dbList"]),
        bak_set_id: str_field(v, &["BakSetId", "BackupSetId", "bakSetId"]),
        status: str_field(v, &["DownloadStatus", "Status", "State", "downloadStatus"])
            .map(|s| RemoteTaskStatus::parse(&s))
            .unwrap_or(default_status),
        export_data_size: i64_field(v, &["ExportDataSize", "exportDataSize"]),
        import_data_size: i64_field(v, &["ImportDataSize", "importDataSize"]),
        backup_set_time: i64_field(v, &["BackupSetTime", "backupSetTime"]),
        target_type: str_field(v, &["TargetType", "targetType"]),
        target_path: str_field(v, &["TargetPath", "targetPath"]),
        progress: str_field(v, &["Progress", "progress"]),
        gmt_create: i64_field(v, &["GmtCreate", "gmtCreate"]),
        task_type: None,
    })
}

/// The list inside `Content`: `{ "List": [...] }` (documented), a bare array, or a
/// single object (what some XML→JSON conversions produce).
fn content_list(data: &Value) -> Vec<&Value> {
    let Some(content) = field(data, &["Content", "content"]) else {
        return Vec::new();
    };
    let list = match content {
        Value::Array(_) => content,
        Value::Object(_) => match field(content, &["List", "list"]) {
            Some(l) => l,
            None => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    match list {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![list],
        _ => Vec::new(),
    }
}

/// DescribeDownloadTask `Data`.
pub(crate) fn parse_task_page(data: &Value) -> TaskPage {
    let tasks: Vec<DownloadTask> = content_list(data)
        .into_iter()
        .filter_map(|t| parse_task(t, RemoteTaskStatus::Other(String::new())))
        .collect();
    let page_number = i64_field(data, &["PageNumber", "Number", "CurrentPage"]).unwrap_or(1);
    let page_size = i64_field(data, &["PageSize", "Size"]).unwrap_or(tasks.len() as i64);
    let total_elements =
        i64_field(data, &["TotalElements", "TotalCount"]).unwrap_or(tasks.len() as i64);
    let total_pages = i64_field(data, &["TotalPages"]).unwrap_or_else(|| {
        if page_size > 0 {
            (total_elements + page_size - 1) / page_size
        } else {
            1
        }
    });
    TaskPage {
        page_number,
        page_size,
        total_elements,
        total_pages,
        tasks,
    }
}

/// DescribeDownloadBackupSetStorageInfo `Data`.
pub(crate) fn parse_storage_info(data: &Value) -> StorageInfo {
    StorageInfo {
        public_url: str_field(data, &["PublicUrl", "publicUrl"]),
        private_url: str_field(data, &["PrivateUrl", "privateUrl"]),
        expiration_time_ms: i64_field(data, &["ExpirationTime", "expirationTime"])
            .map(normalise_epoch_ms),
    }
}

/// RDS times: `yyyy-MM-ddTHH:mmZ` per the text, with seconds in the examples.
pub(crate) fn parse_rds_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ", "%Y-%m-%d %H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|n| n.and_utc())
}

/// RDS time filter format (`StartTime`/`EndTime` of DescribeBackups).
pub(crate) fn format_rds_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%MZ").to_string()
}

/// One page of RDS DescribeBackups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RdsPage {
    pub backups: Vec<RdsBackup>,
    pub total_record_count: Option<i64>,
}

fn parse_rds_backup(v: &Value) -> Option<RdsBackup> {
    Some(RdsBackup {
        backup_id: str_field(v, &["BackupId"])?,
        backup_size: i64_field(v, &["BackupSize"]),
        backup_start_time: str_field(v, &["BackupStartTime"]).and_then(|s| parse_rds_time(&s)),
        backup_end_time: str_field(v, &["BackupEndTime"]).and_then(|s| parse_rds_time(&s)),
        backup_status: str_field(v, &["BackupStatus"]),
        backup_type: str_field(v, &["BackupType"]),
        backup_method: str_field(v, &["BackupMethod"]),
        is_avail: field(v, &["IsAvail"]).and_then(as_bool).unwrap_or(false),
    })
}

/// RDS DescribeBackups body: `Items.Backup[]` (or `Items` as a bare array).
pub(crate) fn parse_rds_page(body: &Value) -> RdsPage {
    let items = field(body, &["Items"]);
    let list = match items {
        Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
        Some(obj @ Value::Object(_)) => match field(obj, &["Backup"]) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    RdsPage {
        backups: list.into_iter().filter_map(parse_rds_backup).collect(),
        total_record_count: i64_field(body, &["TotalRecordCount"]),
    }
}

/// Among successful, available full backups, the one that ended last.
pub(crate) fn pick_latest_full(backups: Vec<RdsBackup>) -> Option<RdsBackup> {
    let is =
        |v: &Option<String>, want: &str| v.as_deref().is_none_or(|s| s.eq_ignore_ascii_case(want));
    backups
        .into_iter()
        .filter(|b| b.is_avail)
        .filter(|b| is(&b.backup_status, "Success") && is(&b.backup_type, "FullBackup"))
        .filter(|b| b.backup_end_time.is_some())
        .max_by_key(|b| b.backup_end_time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// CreateDownload reply from dbs-api.md §3.2 / the CreateDownload response demo.
    #[test]
    fn create_download_reply() {
        let body = json!({
            "RequestId": "F1F4B2B0-0A0F-4D41-9D2C-3A1F1F1F1F1F",
            "Success": "true",
            "Code": "Success",
            "ErrCode": "DBS.ParamIsInValid",
            "Message": "",
            "Data": {
                "TaskId": "dt-qxnsfq5s****",
                "DownloadStatus": "initializing",
                "BakSetId": "1460050000",
                "BackupSetTime": 1661331864000i64,
                "Progress": "0/0",
                "ExportDataSize": 0,
                "ImportDataSize": 0,
                "GmtCreate": 1661331864000i64,
                "Format": "csv",
                "TargetType": "URL",
                "RegionCode": "cn-hangzhou",
                "DbList": "testdb"
            }
        });
        let env = envelope(&body);
        assert_eq!(env.success, Some(true));
        assert_eq!(
            env.request_id.as_deref(),
            Some("F1F4B2B0-0A0F-4D41-9D2C-3A1F1F1F1F1F")
        );
        let task = parse_task(&body["Data"], RemoteTaskStatus::Initializing).unwrap();
        assert_eq!(task.task_id, "dt-qxnsfq5s****");
        assert_eq!(task.status, RemoteTaskStatus::Initializing);
        assert_eq!(task.progress.as_deref(), Some("0/0"));
        assert_eq!(task.gmt_create, Some(1661331864000));
        assert_eq!(task.format.as_deref(), Some("csv"));
        assert_eq!(task.db_list.as_deref(), Some("testdb"));
    }

    #[test]
    fn success_spellings() {
        for (v, want) in [
            (json!("true"), Some(true)),
            (json!("True"), Some(true)),
            (json!(true), Some(true)),
            (json!("false"), Some(false)),
            (json!("FALSE"), Some(false)),
            (json!(false), Some(false)),
        ] {
            assert_eq!(envelope(&json!({ "Success": v })).success, want);
        }
        assert_eq!(envelope(&json!({})).success, None);
    }

    #[test]
    fn error_envelope_prefers_real_code_and_either_message() {
        let e = envelope(&json!({
            "requestId": "r-1", "Success": "false", "Code": "Success",
            "ErrCode": "DBS.ParamIsInValid", "ErrMessage": "formatType can not be empty"
        }));
        assert_eq!(e.code.as_deref(), Some("DBS.ParamIsInValid"));
        assert_eq!(e.message.as_deref(), Some("formatType can not be empty"));
        assert_eq!(e.request_id.as_deref(), Some("r-1"));
        let e = envelope(&json!({ "Code": "Throttling.User", "Message": "m" }));
        assert_eq!(e.code.as_deref(), Some("Throttling.User"));
        assert_eq!(e.message.as_deref(), Some("m"));
    }

    /// DescribeDownloadTask reply per dbs-api.md §4.2: every task field a string.
    #[test]
    fn describe_task_page_documented_shape() {
        let body = json!({
            "RequestId": "r", "Success": "true", "Code": "Success",
            "Data": {
                "PageNumber": 1, "PageSize": 50, "TotalElements": 2, "TotalPages": 1,
                "Extra": "",
                "Content": { "List": [
                    { "TaskId": "dt-a", "RegionCode": "cn-hangzhou", "Format": "csv",
                      "DbList": "[dbtest]", "BakSetId": "1460050000",
                      "DownloadStatus": "queueing", "ExportDataSize": "1024",
                      "ImportDataSize": "2048", "BackupSetTime": "1661331864000",
                      "TargetType": "URL", "Progress": "1/3", "GmtCreate": "1661331864000" },
                    { "TaskId": "dt-b", "DownloadStatus": "Finished", "TargetType": "OSS",
                      "TargetPath": "test_db/path", "ExportDataSize": 5 }
                ] }
            }
        });
        let page = parse_task_page(&body["Data"]);
        assert_eq!(page.page_number, 1);
        assert_eq!(page.page_size, 50);
        assert_eq!(page.total_elements, 2);
        assert_eq!(page.total_pages, 1);
        assert_eq!(page.tasks.len(), 2);
        let a = &page.tasks[0];
        assert_eq!(a.status, RemoteTaskStatus::Queueing);
        assert_eq!(a.export_data_size, Some(1024));
        assert_eq!(a.import_data_size, Some(2048));
        assert_eq!(a.backup_set_time, Some(1661331864000));
        assert_eq!(a.gmt_create, Some(1661331864000));
        let b = &page.tasks[1];
        assert_eq!(b.status, RemoteTaskStatus::Finished);
        assert_eq!(b.target_path.as_deref(), Some("test_db/path"));
        assert_eq!(b.export_data_size, Some(5));
    }

    /// The XML demo's `Number`/`Size`, `queuing`, upper case, missing totals.
    #[test]
    fn describe_task_page_xml_demo_names() {
        let data = json!({
            "Number": "2", "Size": "10", "TotalElements": "25",
            "Content": { "List": { "TaskId": "dt-c", "DownloadStatus": "QUEUING" } }
        });
        let page = parse_task_page(&data);
        assert_eq!(page.page_number, 2);
        assert_eq!(page.page_size, 10);
        assert_eq!(page.total_pages, 3);
        assert_eq!(page.tasks[0].status, RemoteTaskStatus::Queueing);
        // Bare array Content and a missing Content both parse.
        let page = parse_task_page(&json!({ "Content": [ { "TaskId": "dt-d" } ] }));
        assert_eq!(page.tasks.len(), 1);
        assert!(parse_task_page(&json!({})).tasks.is_empty());
    }

    #[test]
    fn storage_info_seconds_and_ms() {
        let s = parse_storage_info(&json!({
            "PublicUrl": "http://dbs-1-cn-hangzhou-x.oss-cn-hangzhou.aliyuncs.com/dt-s0ugzak9/f",
            "PrivateUrl": "http://dbs-1-cn-hangzhou-x.oss-cn-hangzhou-internal.aliyuncs.com/dt-s0ugzak9/f",
            "ExpirationTime": 1661329050
        }));
        assert_eq!(s.expiration_time_ms, Some(1_661_329_050_000));
        assert!(s.public_url.unwrap().starts_with("http://dbs-"));
        let s = parse_storage_info(&json!({ "ExpirationTime": "1661329050123" }));
        assert_eq!(s.expiration_time_ms, Some(1_661_329_050_123));
    }

    #[test]
    fn numbers_as_numbers_or_strings() {
        assert_eq!(as_i64(&json!(5)), Some(5));
        assert_eq!(as_i64(&json!("5")), Some(5));
        assert_eq!(as_i64(&json!(" 7 ")), Some(7));
        assert_eq!(as_i64(&json!(5.0)), Some(5));
        assert_eq!(as_i64(&json!("x")), None);
        assert_eq!(as_i64(&json!(null)), None);
    }

    #[test]
    fn rds_times_with_and_without_seconds() {
        let a = parse_rds_time("2019-02-13T12:20:00Z").unwrap();
        let b = parse_rds_time("2019-02-13T12:20Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(format_rds_time(a), "2019-02-13T12:20Z");
        assert!(parse_rds_time("yesterday").is_none());
    }

    /// RDS DescribeBackups reply (dbs-api.md §5.4); the newest available one wins
    /// regardless of the order the server lists them in.
    #[test]
    fn rds_latest_full_backup() {
        let body = json!({
            "RequestId": "r", "PageNumber": "1", "PageRecordCount": "4",
            "TotalRecordCount": "4", "TotalEcsSnapshotSize": 0,
            "Items": { "Backup": [
                { "BackupId": "100", "BackupSize": 1000, "BackupStatus": "Success",
                  "BackupType": "FullBackup", "IsAvail": 1,
                  "BackupStartTime": "2019-02-13T12:00:00Z", "BackupEndTime": "2019-02-13T12:20:00Z" },
                { "BackupId": "102", "BackupSize": "3000", "BackupStatus": "Success",
                  "BackupType": "FullBackup", "IsAvail": 0,
                  "BackupEndTime": "2019-02-15T12:20Z" },
                { "BackupId": "101", "BackupSize": 2000, "BackupStatus": "Success",
                  "BackupType": "FullBackup", "IsAvail": "1",
                  "BackupEndTime": "2019-02-14T12:20Z" },
                { "BackupId": "103", "BackupStatus": "Failed", "BackupType": "FullBackup",
                  "IsAvail": 1, "BackupEndTime": "2019-02-16T12:20Z" }
            ] }
        });
        let page = parse_rds_page(&body);
        assert_eq!(page.backups.len(), 4);
        assert_eq!(page.total_record_count, Some(4));
        let best = pick_latest_full(page.backups).unwrap();
        assert_eq!(best.backup_id, "101");
        assert_eq!(best.backup_size, Some(2000));
        assert!(pick_latest_full(Vec::new()).is_none());
    }
}

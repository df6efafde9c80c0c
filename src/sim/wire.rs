//! JSON bodies exactly as dbs-api.md shows them: the DBS envelope (§3.2), the task page
//! (§4.2, numbers as strings), the gateway error body (§8.1) and RDS DescribeBackups (§5.4).
//! [`Quirks`] switch on the variants the docs' own examples show.

use super::config::Quirks;
use super::errors::{is_business, Rejection};
use super::state::{BackupPage, StorageInfo, TaskPage, TaskView};
use crate::dbs::types::RemoteTaskStatus;
use serde_json::{json, Value};

fn status_text(status: &str, q: &Quirks) -> String {
    let s = RemoteTaskStatus::parse(status);
    let base = if q.queuing_spelling && s == RemoteTaskStatus::Queueing {
        "queuing".to_string()
    } else {
        s.as_str().to_string()
    };
    if q.capitalized_states {
        let mut c = base.chars();
        match c.next() {
            Some(f) => f.to_uppercase().chain(c).collect(),
            None => base,
        }
    } else {
        base
    }
}

fn format_text(format: &str, q: &Quirks) -> String {
    if q.lowercase_format {
        format.to_ascii_lowercase()
    } else {
        format.to_string()
    }
}

/// A number the way this field travels: string or JSON number.
fn num(v: i64, as_string: bool) -> Value {
    if as_string {
        Value::String(v.to_string())
    } else {
        json!(v)
    }
}

/// The DBS success envelope around `data`.
pub fn envelope(request_id: &str, data: Value, q: &Quirks) -> Value {
    json!({
        "RequestId": request_id,
        "Success": if q.success_capitalized { "True" } else { "true" },
        "Code": "Success",
        "ErrCode": "Success",
        "Message": "",
        "ErrMessage": "",
        "Data": data,
    })
}

/// CreateDownload `Data` (numbers are int64 here, unlike DescribeDownloadTask).
pub fn created_task(t: &TaskView, q: &Quirks) -> Value {
    let s = q.create_numbers_as_strings;
    json!({
        "TaskId": t.task_id,
        "DownloadStatus": status_text(&t.status, q),
        "BakSetId": t.bak_set_id.clone().unwrap_or_default(),
        "BackupSetTime": num(t.backup_set_time_ms, s),
        "Progress": t.progress,
        "ExportDataSize": num(t.export_data_size, s),
        "ImportDataSize": num(t.import_data_size, s),
        "GmtCreate": num(t.gmt_create_ms, s),
        "Format": format_text(&t.format, q),
        "TargetType": t.target_type,
        "TargetPath": t.target_path.clone().unwrap_or_default(),
        "RegionCode": t.region,
        "DbList": "",
    })
}

/// One task of DescribeDownloadTask (all strings, §4.2).
pub fn listed_task(t: &TaskView, q: &Quirks) -> Value {
    let s = !q.task_numbers_as_numbers;
    json!({
        "TaskId": t.task_id,
        "RegionCode": t.region,
        "Format": format_text(&t.format, q),
        "DbList": "",
        "BakSetId": t.bak_set_id.clone().unwrap_or_default(),
        "DownloadStatus": status_text(&t.status, q),
        "ExportDataSize": num(t.export_data_size, s),
        "ImportDataSize": num(t.import_data_size, s),
        "BackupSetTime": num(t.backup_set_time_ms, s),
        "TargetType": t.target_type,
        "TargetPath": t.target_path.clone().unwrap_or_default(),
        "Progress": t.progress,
        "GmtCreate": num(t.gmt_create_ms, s),
    })
}

/// DescribeDownloadTask `Data`.
pub fn task_page(p: &TaskPage, q: &Quirks) -> Value {
    let list: Vec<Value> = p.tasks.iter().map(|t| listed_task(t, q)).collect();
    let mut data = serde_json::Map::new();
    let (num_key, size_key) = if q.xml_style_paging {
        ("Number", "Size")
    } else {
        ("PageNumber", "PageSize")
    };
    let s = q.xml_style_paging;
    data.insert(num_key.into(), num(p.page_number as i64, s));
    data.insert(size_key.into(), num(p.page_size as i64, s));
    data.insert("TotalElements".into(), num(p.total_elements as i64, s));
    data.insert("TotalPages".into(), num(p.total_pages as i64, s));
    data.insert("Extra".into(), json!(""));
    data.insert("Content".into(), json!({ "List": list }));
    Value::Object(data)
}

/// DescribeDownloadBackupSetStorageInfo `Data`.
pub fn storage_info(s: &StorageInfo, q: &Quirks) -> Value {
    let exp = if q.expiration_in_seconds {
        s.expiration_ms / 1000
    } else {
        s.expiration_ms
    };
    json!({
        "PublicUrl": s.public_url,
        "PrivateUrl": s.private_url,
        "ExpirationTime": exp,
    })
}

fn rds_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// RDS DescribeBackups body (no DBS envelope).
pub fn backups(request_id: &str, p: &BackupPage) -> Value {
    let items: Vec<Value> = p
        .backups
        .iter()
        .map(|b| {
            json!({
                "BackupId": b.id,
                "DBInstanceId": p.instance.id,
                "BackupSize": b.size_bytes,
                "BackupStartTime": rds_time(b.start_time),
                "BackupEndTime": rds_time(b.end_time),
                "BackupStatus": b.status,
                "BackupType": b.backup_type,
                "BackupMethod": "Physical",
                "BackupMode": "Automated",
                "IsAvail": if b.is_downloadable() { 1 } else { 0 },
                "Engine": p.instance.engine,
                "EngineVersion": "8.0",
                "StorageClass": "0",
                "StoreStatus": "Disabled",
                "ConsistentTime": b.end_time.timestamp(),
                "HostInstanceID": "1",
                "MetaStatus": "OK",
            })
        })
        .collect();
    json!({
        "RequestId": request_id,
        "PageNumber": p.page_number.to_string(),
        "PageRecordCount": p.backups.len().to_string(),
        "TotalRecordCount": p.total.to_string(),
        "TotalBackupSize": p.backups.iter().map(|b| b.size_bytes).sum::<i64>(),
        "TotalEcsSnapshotSize": 0,
        "Items": { "Backup": items },
    })
}

/// The error body: the DBS envelope for HTTP-200 business codes, otherwise the gateway
/// body of §8.1 (plus the DBS fields for §3.4's 403/404 codes).
pub fn error(request_id: &str, host: &str, product: &str, e: &Rejection) -> Value {
    if e.http_status == 200 {
        return json!({
            "RequestId": request_id,
            "Success": "false",
            "Code": e.code,
            "ErrCode": e.code,
            "Message": e.message,
            "ErrMessage": e.message,
        });
    }
    let mut body = json!({
        "RequestId": request_id,
        "HostId": host,
        "Code": e.code,
        "Message": e.message,
        "Recommend": format!(
            "https://api.alibabacloud.com/troubleshoot?q={}&product={product}&requestId={request_id}",
            e.code
        ),
    });
    if is_business(&e.code) {
        body["Success"] = json!("false");
        body["ErrCode"] = json!(e.code);
        body["ErrMessage"] = json!(e.message);
    }
    body
}

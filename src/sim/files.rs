//! The files behind finished URL tasks: `GET /__sim/files/{task_id}/{file}?Expires=…`.
//!
//! What an archiver must cope with, and nothing more: deterministic content of exactly the
//! task's reported `ExportDataSize` (so a test can check every byte and the SHA-256),
//! `Range: bytes=a-` / `bytes=a-b` answered with 206, `403 AccessDenied` once the link's
//! `Expires` has passed or the task has expired, and, on request, a connection dropped
//! part-way through the body.

use super::server::Shared;
use crate::dbs::types::RemoteTaskStatus;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// Bytes generated per body chunk.
const CHUNK: usize = 64 * 1024;

/// Fault injection for file downloads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFaults {
    /// The next this-many file responses drop the connection…
    pub drop_next: u32,
    /// …after sending this many body bytes.
    pub drop_after_bytes: u64,
}

/// One file request, for tests to see what the client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRequest {
    pub task_id: String,
    /// First byte asked for (0 without a `Range` header).
    pub range_start: u64,
    pub status: u16,
}

/// File-serving state of one simulator.
#[derive(Debug, Default)]
pub(crate) struct Files {
    faults: Mutex<FileFaults>,
    log: Mutex<Vec<FileRequest>>,
}

impl Files {
    pub fn set_faults(&self, f: FileFaults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = f;
    }

    pub fn requests(&self) -> Vec<FileRequest> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, r: FileRequest) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).push(r);
    }

    /// Whether this response drops, and after how many bytes (uses up one `drop_next`).
    fn take_drop(&self) -> Option<u64> {
        let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        (f.drop_next > 0).then(|| {
            f.drop_next -= 1;
            f.drop_after_bytes
        })
    }
}

/// The content of a task's file: byte `i` of task `task_id`, for any size. A SplitMix64
/// stream seeded by the task id, so every task's file differs and any range can be
/// produced without the bytes before it.
pub fn file_bytes(task_id: &str, start: u64, len: usize) -> Vec<u8> {
    let seed = task_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut out = Vec::with_capacity(len);
    let mut i = start;
    while out.len() < len {
        let word = splitmix(seed ^ (i / 8)).to_le_bytes();
        let from = (i % 8) as usize;
        let take = (8 - from).min(len - out.len());
        out.extend_from_slice(&word[from..from + take]);
        i += take as u64;
    }
    out
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Debug, Deserialize)]
pub(crate) struct FileQuery {
    #[serde(rename = "Expires")]
    expires: Option<i64>,
}

fn denied(message: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/xml")],
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
             <Message>{message}</Message></Error>"
        ),
    )
        .into_response()
}

/// `bytes=a-` or `bytes=a-b` → (a, b exclusive end); anything else is ignored (200).
fn parse_range(headers: &HeaderMap, size: u64) -> Option<Result<(u64, u64), ()>> {
    let v = headers.get(header::RANGE)?.to_str().ok()?;
    let spec = v.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => size,
        b => b.parse::<u64>().ok()?.saturating_add(1).min(size),
    };
    Some(if start >= size || start >= end {
        Err(())
    } else {
        Ok((start, end))
    })
}

pub(crate) async fn serve_file(
    State(shared): State<Arc<Shared>>,
    Path((task_id, _file)): Path<(String, String)>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
) -> Response {
    let (view, now_s) = {
        let s = shared.lock();
        (s.task_view(&task_id), s.wall_ms() / 1000)
    };
    let log = |range_start: u64, status: StatusCode| {
        shared.files.record(FileRequest {
            task_id: task_id.clone(),
            range_start,
            status: status.as_u16(),
        })
    };
    let Some(view) = view else {
        log(0, StatusCode::NOT_FOUND);
        return (StatusCode::NOT_FOUND, "NoSuchKey").into_response();
    };
    if q.expires.is_none_or(|e| e <= now_s) || view.status() == RemoteTaskStatus::Expired {
        log(0, StatusCode::FORBIDDEN);
        return denied("Request has expired.");
    }
    if view.status() != RemoteTaskStatus::Finished || view.target_type != "URL" {
        log(0, StatusCode::NOT_FOUND);
        return (StatusCode::NOT_FOUND, "NoSuchKey").into_response();
    }
    let size = view.export_data_size.max(0) as u64;
    let (start, end, status) = match parse_range(&headers, size) {
        None => (0, size, StatusCode::OK),
        Some(Ok((a, b))) => (a, b, StatusCode::PARTIAL_CONTENT),
        Some(Err(())) => {
            log(0, StatusCode::RANGE_NOT_SATISFIABLE);
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{size}"))],
            )
                .into_response();
        }
    };
    log(start, status);
    let drop_after = shared.files.take_drop();
    let body = futures::stream::unfold(start, move |at| {
        let task_id = task_id.clone();
        async move {
            let stop = drop_after.map(|d| start + d);
            if at >= end {
                return None;
            }
            if stop.is_some_and(|s| at >= s) {
                // Let the bytes sent so far reach the client before the connection dies.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let e = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected drop");
                return Some((Err(e), end));
            }
            let limit = stop.map_or(end, |s| s.min(end));
            let n = ((limit - at) as usize).min(CHUNK);
            let chunk = file_bytes(&task_id, at, n);
            Some((Ok::<_, std::io::Error>(chunk), at + n as u64))
        }
    });
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        resp = resp.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    resp.body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_range_matches_the_whole() {
        let whole = file_bytes("dbstask1", 0, 1000);
        assert_eq!(file_bytes("dbstask1", 13, 500), whole[13..513].to_vec());
        assert_ne!(file_bytes("dbstask2", 0, 1000), whole);
    }

    #[test]
    fn ranges_parse_or_are_unsatisfiable() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_range(&h, 10), None);
        h.insert(header::RANGE, "bytes=4-".parse().unwrap());
        assert_eq!(parse_range(&h, 10), Some(Ok((4, 10))));
        h.insert(header::RANGE, "bytes=2-5".parse().unwrap());
        assert_eq!(parse_range(&h, 10), Some(Ok((2, 6))));
        h.insert(header::RANGE, "bytes=10-".parse().unwrap());
        assert_eq!(parse_range(&h, 10), Some(Err(())));
    }
}

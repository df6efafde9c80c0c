//! One resumable, verified download: the URL's bytes appended to a partial file, never the
//! whole file in memory.
//!
//! Resuming trusts only the partial file on disk: its bytes are hashed again (SHA-256
//! cannot be saved midway), then `Range: bytes=<len>-` asks for the rest. A server that
//! ignores the range (200) restarts the file from zero. The result is accepted only when
//! the file has exactly the size the task reported.

use super::error::ArchiveError;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// A shared pacer: at most `bytes_per_second` across every fetch of this process.
#[derive(Debug)]
pub struct Bandwidth {
    bytes_per_second: u64,
    next_free: Mutex<Option<Instant>>,
}

impl Bandwidth {
    /// `0` = unlimited.
    pub fn new(bytes_per_second: u64) -> Self {
        Self {
            bytes_per_second,
            next_free: Mutex::new(None),
        }
    }

    pub fn limit(&self) -> Option<u64> {
        (self.bytes_per_second > 0).then_some(self.bytes_per_second)
    }

    /// Wait until `n` more bytes fit in the budget.
    pub async fn take(&self, n: usize) {
        let Some(rate) = self.limit() else { return };
        let slot = Duration::from_secs_f64(n as f64 / rate as f64);
        let start = {
            let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let start = next.map_or(now, |t| t.max(now));
            *next = Some(start + slot);
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

/// A finished, verified download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub size: i64,
    /// Lowercase hex.
    pub sha256: String,
    /// Where this attempt started (0 = from scratch, >0 = resumed with a range request).
    pub resumed_from: i64,
}

/// Hash what is already in the partial file; returns its length.
async fn rehash(file: &mut tokio::fs::File, hasher: &mut Sha256) -> std::io::Result<u64> {
    let mut buf = vec![0_u8; 256 * 1024];
    let mut len = 0;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(len);
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

/// Fetch `url` into `partial`, resuming from what it already holds; `progress` follows
/// the bytes on disk. `expected` is the reported size (checked when known).
pub async fn fetch(
    http: &reqwest::Client,
    url: &str,
    expected: Option<i64>,
    partial: &Path,
    bandwidth: &Bandwidth,
    progress: &AtomicU64,
) -> Result<Fetched, ArchiveError> {
    let io = |e: std::io::Error| ArchiveError::sink("partial file", e);
    if let Some(dir) = partial.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(partial)
        .await
        .map_err(io)?;
    let mut hasher = Sha256::new();
    let mut len = rehash(&mut file, &mut hasher).await.map_err(io)?;
    if expected.is_some_and(|e| len > e.max(0) as u64) {
        // Longer than the file can be: not ours to trust; start over.
        file.set_len(0).await.map_err(io)?;
        hasher = Sha256::new();
        len = 0;
    }
    progress.store(len, Ordering::Relaxed);
    let resumed_from = len as i64;
    if expected.is_some_and(|e| e > 0 && len == e as u64) {
        return Ok(Fetched {
            size: len as i64,
            sha256: hex::encode(hasher.finalize()),
            resumed_from,
        });
    }
    let mut req = http.get(url);
    if len > 0 {
        req = req.header(RANGE, format!("bytes={len}-"));
    }
    let mut resp = req.send().await.map_err(ArchiveError::transfer)?;
    match resp.status() {
        StatusCode::PARTIAL_CONTENT if len > 0 => {
            let starts_at_len = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok())
                == Some(len);
            if !starts_at_len {
                return Err(ArchiveError::Transfer(
                    "the server answered the range request with another range".into(),
                ));
            }
        }
        StatusCode::OK => {
            if len > 0 {
                // The range was ignored: the body is the whole file again.
                file.set_len(0).await.map_err(io)?;
                hasher = Sha256::new();
                len = 0;
                progress.store(0, Ordering::Relaxed);
            }
        }
        StatusCode::FORBIDDEN => return Err(ArchiveError::UrlExpired { at: None }),
        StatusCode::RANGE_NOT_SATISFIABLE => {
            // Our partial file is not a prefix of this file: start over next attempt.
            file.set_len(0).await.map_err(io)?;
            return Err(ArchiveError::Transfer(
                "range not satisfiable; restarting from the first byte".into(),
            ));
        }
        s => return Err(ArchiveError::Http { status: s.as_u16() }),
    }
    let outcome: Result<(), ArchiveError> = async {
        while let Some(chunk) = resp.chunk().await.map_err(ArchiveError::transfer)? {
            let new_len = len + chunk.len() as u64;
            if let Some(e) = expected {
                if new_len > e.max(0) as u64 {
                    return Err(ArchiveError::TooLarge {
                        expected: e,
                        got: new_len as i64,
                    });
                }
            }
            bandwidth.take(chunk.len()).await;
            file.write_all(&chunk).await.map_err(io)?;
            hasher.update(&chunk);
            len = new_len;
            progress.store(len, Ordering::Relaxed);
        }
        Ok(())
    }
    .await;
    // What was written stays on disk for the next attempt, whatever happened.
    file.flush().await.map_err(io)?;
    file.sync_all().await.map_err(io)?;
    if let Err(e) = outcome {
        if matches!(e, ArchiveError::TooLarge { .. }) {
            let _ = tokio::fs::remove_file(partial).await;
        }
        return Err(e);
    }
    if let Some(e) = expected {
        if (len as i64) < e {
            return Err(ArchiveError::Truncated {
                expected: e,
                got: len as i64,
            });
        }
    }
    Ok(Fetched {
        size: len as i64,
        sha256: hex::encode(hasher.finalize()),
        resumed_from,
    })
}

//! Retention: per sink, keep the newest `keep_last` archives of each instance and/or those
//! younger than `keep_days`; delete the rest.
//!
//! Only archives this service stored are candidates (rows in `stored` state, by their
//! recorded location, which must lie inside the sink), so an object someone else put in
//! the same bucket or directory is never touched. Every deletion is an archive event; a
//! dry run logs and counts what it would delete and changes nothing.

use super::metrics as m;
use super::model::{Archive, ArchiveState};
use super::settings::SinkSettings;
use super::sink::Sinks;
use crate::clock::DynClock;
use crate::store::archives::{ArchiveFence, ArchivePatch};
use crate::store::{DynStore, StoreError};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The archives `rule` would delete out of `stored` (one sink's `stored` archives, per
/// instance newest first, as `archive_list_stored` returns them). Pure, so the rule is
/// tested without a database.
pub fn select_expired<'a>(
    rule: &SinkSettings,
    stored: &'a [Archive],
    now: DateTime<Utc>,
) -> Vec<&'a Archive> {
    if rule.keep_last.is_none() && rule.keep_days.is_none() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut rank = 0_u32;
    let mut current: Option<(&str, &str)> = None;
    for a in stored {
        let key = (a.region.as_str(), a.instance.as_str());
        if current != Some(key) {
            current = Some(key);
            rank = 0;
        }
        rank += 1;
        let kept_by_count = rule.keep_last.is_some_and(|n| rank <= n);
        let kept_by_age = rule.keep_days.is_some_and(|d| {
            a.stored_at
                .is_none_or(|t| now - t < chrono::Duration::days(i64::from(d)))
        });
        if !(kept_by_count || kept_by_age) {
            out.push(a);
        }
    }
    out
}

/// What one retention round did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Archive ids deleted (or that would be).
    pub deleted: Vec<i64>,
    /// Deletions that failed (kept for the next round).
    pub errors: usize,
    pub dry_run: bool,
}

/// The retention service.
#[derive(Clone)]
pub struct Retention {
    store: DynStore,
    sinks: Arc<Sinks>,
    clock: DynClock,
    interval: Duration,
    dry_run: bool,
}

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retention")
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

impl Retention {
    pub fn new(
        store: DynStore,
        sinks: Arc<Sinks>,
        clock: DynClock,
        interval: Duration,
        dry_run: bool,
    ) -> Self {
        Self {
            store,
            sinks,
            clock,
            interval,
            dry_run,
        }
    }

    /// Apply every sink's rule once; `dry_run` overrides the configured mode when `Some`.
    pub async fn run_once(&self, dry_run: Option<bool>) -> Result<RetentionReport, StoreError> {
        let dry_run = dry_run.unwrap_or(self.dry_run);
        let mut report = RetentionReport {
            dry_run,
            ..RetentionReport::default()
        };
        let now = self.clock.now();
        for sink in self.sinks.all() {
            let stored = self.store.archive_list_stored(sink.name()).await?;
            for a in select_expired(&sink.settings, &stored, now) {
                let location = a.location.as_deref().unwrap_or_default();
                if !sink.owns(location) {
                    tracing::warn!(archive.id = a.id, %location, "retention skips an archive outside its sink");
                    continue;
                }
                if dry_run {
                    tracing::info!(archive.id = a.id, %location, "retention (dry run) would delete");
                    metrics::counter!(m::RETENTION_DELETED, "mode" => "dry_run").increment(1);
                    report.deleted.push(a.id);
                    continue;
                }
                // Record first, delete second: a crash in between leaves an object the
                // table calls deleted (logged with its location), never a row pointing at
                // nothing that retention would try again forever.
                let mut patch =
                    ArchivePatch::to(ArchiveState::Deleted, format!("retention: {location}"), now);
                patch.error = Some(None);
                let fence = ArchiveFence {
                    id: a.id,
                    state: ArchiveState::Stored,
                    owner: None,
                };
                if !self.store.archive_update(&fence, &patch).await? {
                    continue;
                }
                match sink.delete(location).await {
                    Ok(()) => {
                        tracing::info!(archive.id = a.id, %location, "retention deleted archive");
                        metrics::counter!(m::RETENTION_DELETED, "mode" => "delete").increment(1);
                        report.deleted.push(a.id);
                    }
                    Err(e) => {
                        tracing::error!(archive.id = a.id, %location, error = %e, "retention could not delete the object; delete it by hand");
                        report.errors += 1;
                    }
                }
            }
        }
        Ok(report)
    }

    pub async fn run(self, stop: CancellationToken) {
        loop {
            if let Err(e) = self.run_once(None).await {
                tracing::warn!(error = %e, "archive retention round failed");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}

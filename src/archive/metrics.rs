//! Archive metrics (docs/archives.md and docs/metrics.md). Labels are small fixed sets.

/// Fetch attempts that ended, by `outcome`: stored, retry, failed.
pub const FETCHES: &str = "dbs_archiver_archive_fetches_total";
/// Bytes written into sinks.
pub const FETCHED_BYTES: &str = "dbs_archiver_archive_fetched_bytes_total";
/// Alert: a fetch failed because its download link expired (the archive is lost unless
/// the download is re-run).
pub const LINK_EXPIRED: &str = "dbs_archiver_archive_link_expired_total";
/// Alert: a fetch was scheduled with less than `archive.expiry_margin_seconds` of link
/// life left, or is not expected to finish before the link expires.
pub const EXPIRY_AT_RISK: &str = "dbs_archiver_archive_expiry_at_risk_total";
/// Archives deleted by retention, by `mode`: delete, dry_run.
pub const RETENTION_DELETED: &str = "dbs_archiver_archive_retention_deleted_total";
/// Fetch duration (claim → stored or failed), by `outcome`.
pub const FETCH_DURATION: &str = "dbs_archiver_archive_fetch_duration_seconds";

pub(crate) fn fetch_ended(outcome: &'static str, seconds: f64) {
    metrics::counter!(FETCHES, "outcome" => outcome).increment(1);
    metrics::histogram!(FETCH_DURATION, "outcome" => outcome).record(seconds);
}

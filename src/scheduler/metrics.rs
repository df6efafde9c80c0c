//! The scheduler's metrics (docs/schedules.md lists them). Labels come from fixed sets.

use super::model::SkipReason;

/// Due time → job enqueued, per created job.
pub const FIRE_LAG: &str = "dbs_archiver_schedule_fire_lag_seconds";
/// Fire times fired (one per schedule and fire time, whatever the number of instances).
pub const FIRES: &str = "dbs_archiver_schedule_fires_total";
/// Skipped fires (per instance, or per dropped fire time), by `reason`.
pub const SKIPS: &str = "dbs_archiver_schedule_skips_total";
/// Fire times found older than the grace period (whatever the policy then did).
pub const MISFIRES: &str = "dbs_archiver_schedule_misfires_total";

pub(crate) fn fire_lag(seconds: f64) {
    metrics::histogram!(FIRE_LAG).record(seconds);
}

pub(crate) fn fired(n: u64) {
    metrics::counter!(FIRES).increment(n);
}

pub(crate) fn skipped(reason: SkipReason, n: u64) {
    metrics::counter!(SKIPS, "reason" => reason.as_str()).increment(n);
}

pub(crate) fn misfired(n: u64) {
    metrics::counter!(MISFIRES).increment(n);
}

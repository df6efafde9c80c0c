//! Declarative schedules: `[[scheduler.schedules]]` entries in the config file are synced
//! at start-up, so schedules can be reviewed in git.
//!
//! Rules: a declared schedule is created (origin `config`) or, when it exists with origin
//! `config` and a different spec, updated; one created through the API or CLI with the
//! same name is never clobbered (a warning is logged and the entry is reported as a
//! conflict); a schedule with origin `config` that is no longer declared is deleted. Pause
//! state is the operator's and is not touched.

use super::error::SchedulerError;
use super::model::{ScheduleOrigin, ScheduleSpec};
use super::ops;
pub use crate::model::schedule::validate_declared;
use crate::store::Store;
use chrono::{DateTime, Utc};

/// What a sync did, by schedule name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    pub deleted: Vec<String>,
    /// Declared, but a schedule of that name was created through the API/CLI: left alone.
    pub conflicts: Vec<String>,
}

/// Validate every declared schedule first (nothing is written if one is wrong; the error
/// names `scheduler.schedules[i].field`), then apply.
pub async fn sync_declared(
    store: &dyn Store,
    declared: &[ScheduleSpec],
    now: DateTime<Utc>,
) -> Result<SyncReport, SchedulerError> {
    validate_declared(declared)?;
    let mut report = SyncReport::default();
    for spec in declared {
        match store.schedule_get_by_name(&spec.name).await? {
            None => {
                ops::create(store, spec.clone(), ScheduleOrigin::Config, now).await?;
                report.created.push(spec.name.clone());
            }
            Some(existing) if existing.origin != ScheduleOrigin::Config => {
                tracing::warn!(schedule = %spec.name, origin = %existing.origin,
                    "declared schedule not applied: a schedule of that name was created through the {}", existing.origin);
                report.conflicts.push(spec.name.clone());
            }
            Some(existing) if &existing.spec == spec => report.unchanged.push(spec.name.clone()),
            Some(existing) => {
                ops::update(store, &existing.id.to_string(), spec.clone(), now).await?;
                report.updated.push(spec.name.clone());
            }
        }
    }
    for s in store.schedule_list().await? {
        if s.origin == ScheduleOrigin::Config && !declared.iter().any(|d| d.name == s.spec.name) {
            store.schedule_delete(s.id).await?;
            report.deleted.push(s.spec.name);
        }
    }
    Ok(report)
}

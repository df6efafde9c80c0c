//! Schedules on this backend (issue #5).

use super::SqliteStore;
use crate::store::schedules::ScheduleStore;

impl ScheduleStore for SqliteStore {}

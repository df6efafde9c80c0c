//! Schedules on this backend (issue #5).

use super::PgStore;
use crate::store::schedules::ScheduleStore;

impl ScheduleStore for PgStore {}

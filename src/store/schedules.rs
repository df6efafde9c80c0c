//! Schedule persistence: a separate trait so the scheduler work (issue #5) can grow it
//! without touching the job queue's code. Every [`super::Store`] also implements it.
//!
//! STUB: methods are added by the scheduler work.

use async_trait::async_trait;

#[async_trait]
pub trait ScheduleStore: Send + Sync {}

//! Domain types shared by every layer. No I/O here.

pub mod bounds;
pub mod cron;
mod job;
pub mod path_template;
mod request;
pub mod schedule;
pub mod transitions;
mod wire_enum;

pub(crate) use request::identifier;
pub(crate) use wire_enum::wire_enum;

pub use job::{
    normalize_tags, Instance, InstanceKey, Job, JobError, JobEvent, JobId, JobSource, JobState,
    RemoteStatus, TaskId, MAX_TAGS,
};
pub use request::{BakSetType, DownloadRequest, FormatType, TargetType, ValidationError};

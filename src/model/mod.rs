//! Domain types shared by every layer. No I/O here.

mod job;
mod request;

pub use job::{
    Instance, InstanceKey, Job, JobError, JobEvent, JobId, JobSource, JobState, RemoteStatus,
    TaskId,
};
pub use request::{BakSetType, DownloadRequest, FormatType, TargetType, ValidationError};

//! The Alibaba Cloud client: credentials, signing, endpoints, typed operations and
//! error classification (dbs-api.md is the source of truth).

mod classify;
mod client;
pub mod credentials;
pub mod endpoints;
mod error;
pub mod ratelimit;
pub mod signing;
pub mod types;
mod wire;

pub use client::{DbsClient, DbsClientConfig, DBS_VERSION, DEFAULT_PAGE_SIZE, RDS_VERSION};
pub use error::{DbsError, DbsErrorKind};

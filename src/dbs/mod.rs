//! The Alibaba Cloud client: credentials, signing, endpoints, typed operations and
//! error classification (dbs-api.md is the source of truth).

mod client;
pub mod credentials;
pub mod endpoints;
mod error;
pub mod signing;
pub mod types;

pub use client::{DbsClient, DbsClientConfig};
pub use error::{DbsError, DbsErrorKind};

//! The store conformance suite: every test runs against SQLite and PostgreSQL.

mod claim;
mod concurrency;
mod constraints;
mod instances;
mod jobs;
mod lease;
mod notify;
mod process_lock;
mod sql_interface;

//! The store conformance suite: every test runs against SQLite and PostgreSQL.

mod batch;
mod bounds;
mod claim;
mod clock;
mod concurrency;
mod constraints;
mod hostile;
mod instances;
mod jobs;
mod lease;
mod migration;
mod notify;
mod process_lock;
mod sql_interface;
mod transitions;

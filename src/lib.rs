//! dbs-archiver: a persistent, schedulable work queue whose only kind of work is
//! "create one Alibaba Cloud DBS advanced download task and follow it to the end".
//!
//! The modules follow docs/architecture (design.md): `config`, `model`, `store`, `dbs`,
//! `sim`, `worker`, `scheduler`, `api`, `telemetry`; `app` wires them for `serve`.

pub mod api;
pub mod app;
pub mod archive;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod dbs;
pub mod model;
pub mod retry;
pub mod scheduler;
pub mod sim;
pub mod store;
pub mod supervisor;
pub mod telemetry;
pub mod worker;

#[cfg(test)]
mod module_edges;

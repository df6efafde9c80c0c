//! Observability evidence (issue 7): one end-to-end run of `serve` as a child process
//! (SQLite, an in-test simulator with instant tasks, the admin API, a schedule, an SQL
//! INSERT and a CLI enqueue), shared by the tests of this module:
//!
//! - [`evidence`]: every metric in docs/metrics.md is scraped with values matching the run;
//! - [`deploy`]: compose/Dockerfile/Prometheus/Grafana files are consistent, and every
//!   metric their PromQL names is really exposed;
//! - [`secrets`]: the AccessKey secret and the API token appear in no log line, error,
//!   metric, trace or database row;
//! - [`collector`]: the collector's database read on both backends;
//! - [`traces`]: spans arrive at an OTLP/HTTP receiver with the expected names and
//!   attributes.

mod collector;
mod deploy;
mod evidence;
mod harness;
mod secrets;
mod traces;

//! Shared test harness (fresh databases per test, simulator on port 0, …).

pub mod db;

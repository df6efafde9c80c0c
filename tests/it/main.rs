//! The one integration-test binary. Each area is a module; helpers are shared.

mod api;
mod archive;
mod cli;
mod console;
mod credentials;
mod dbs;
mod helpers;
mod observability;
mod scheduler;
mod store;
mod worker;

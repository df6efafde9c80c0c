//! The one integration-test binary. Each area is a module; helpers are shared.

mod api;
mod credentials;
mod dbs;
mod helpers;
mod scheduler;
mod store;
mod worker;

//! The one integration-test binary. Each area is a module; helpers are shared.

mod helpers;
mod store;

//! DBS client ↔ simulator evidence over real TCP (issue #3). `raw` signs requests by hand
//! (for what the real client never sends); `sim_wire` checks the simulator's wire
//! behaviour with it; `client` drives the real `DbsClient` against the simulator.

mod cli;
mod client;
mod contract;
mod raw;
mod sim_restart;
mod sim_wire;

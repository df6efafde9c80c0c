//! A faithful DBS simulator: a real HTTP server with the same operations, signature
//! verification, the per-instance rules, a task lifecycle and fault injection.
//!
//! STUB: filled in by the simulator work (issue #3).

//! The schedule types live in [`crate::model::schedule`] (the store reads and writes them
//! without importing the scheduler); re-exported here so scheduler code keeps its paths.

pub use crate::model::schedule::*;

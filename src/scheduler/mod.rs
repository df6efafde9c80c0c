//! Cron schedules → jobs, exactly once per fire time across any number of processes.

pub mod cron;
pub mod model;
pub mod plan;
pub mod template;

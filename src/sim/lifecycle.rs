//! The life of one download task, as a pure function of elapsed (simulated) time.
//!
//! Computing the state lazily from the elapsed time means no background ticking: a task is
//! exactly as far along as the clock says whenever somebody looks.

use super::config::Durations;
use crate::dbs::types::RemoteTaskStatus;

/// Where a task stands at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub status: RemoteTaskStatus,
    /// Share of the data processed, 0..=1 (frozen at the failure point when failed).
    pub done: f64,
}

/// Inputs that fix a task's fate when it (re)starts.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fate {
    /// `Some(f)`: fails after `f` of the running phase (0 ≤ f < 1).
    pub fail_at: Option<f64>,
    /// URL targets expire `url_expiry` after finishing.
    pub is_url: bool,
}

/// The phase `elapsed_ms` (simulated) after the task (re)started.
pub fn phase_at(d: &Durations, fate: Fate, elapsed_ms: i64) -> Phase {
    let init = d.initializing.as_millis() as i64;
    let queue = d.queueing.as_millis() as i64;
    let run = d.running.as_millis() as i64;
    let e = elapsed_ms.max(0);
    if e < init {
        return Phase {
            status: RemoteTaskStatus::Initializing,
            done: 0.0,
        };
    }
    if e < init + queue {
        return Phase {
            status: RemoteTaskStatus::Queueing,
            done: 0.0,
        };
    }
    let in_run = e - init - queue;
    if let Some(f) = fate.fail_at {
        let fail_ms = (run as f64 * f) as i64;
        if in_run >= fail_ms {
            return Phase {
                status: RemoteTaskStatus::Failed,
                done: f,
            };
        }
    }
    if in_run < run {
        return Phase {
            status: RemoteTaskStatus::Running,
            done: in_run as f64 / run as f64,
        };
    }
    let since_finish = in_run - run;
    if fate.is_url && since_finish >= d.url_expiry.as_millis() as i64 {
        return Phase {
            status: RemoteTaskStatus::Expired,
            done: 1.0,
        };
    }
    Phase {
        status: RemoteTaskStatus::Finished,
        done: 1.0,
    }
}

/// `Progress` as the service prints it: `0/0` while preparing, then `k/n` tables.
pub fn progress(phase: &Phase, tables: u32) -> String {
    match phase.status {
        RemoteTaskStatus::Initializing | RemoteTaskStatus::Queueing => "0/0".to_string(),
        _ => {
            let k = ((tables as f64) * phase.done).floor() as u32;
            format!("{}/{}", k.min(tables), tables)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn d() -> Durations {
        Durations {
            initializing: Duration::from_secs(10),
            queueing: Duration::from_secs(20),
            running: Duration::from_secs(100),
            url_expiry: Duration::from_secs(1000),
        }
    }

    const OK_URL: Fate = Fate {
        fail_at: None,
        is_url: true,
    };

    #[test]
    fn walks_through_every_state_in_order() {
        let at = |s: i64| phase_at(&d(), OK_URL, s * 1000).status;
        assert_eq!(at(0), RemoteTaskStatus::Initializing);
        assert_eq!(at(9), RemoteTaskStatus::Initializing);
        assert_eq!(at(10), RemoteTaskStatus::Queueing);
        assert_eq!(at(30), RemoteTaskStatus::Running);
        assert_eq!(at(129), RemoteTaskStatus::Running);
        assert_eq!(at(130), RemoteTaskStatus::Finished);
        assert_eq!(at(1129), RemoteTaskStatus::Finished);
        assert_eq!(at(1130), RemoteTaskStatus::Expired);
    }

    #[test]
    fn oss_targets_never_expire() {
        let f = Fate {
            fail_at: None,
            is_url: false,
        };
        assert_eq!(
            phase_at(&d(), f, 10_000_000).status,
            RemoteTaskStatus::Finished
        );
    }

    #[test]
    fn progress_advances_while_running() {
        let p = |s: i64| progress(&phase_at(&d(), OK_URL, s * 1000), 10);
        assert_eq!(p(5), "0/0");
        assert_eq!(p(30), "0/10");
        assert_eq!(p(80), "5/10");
        assert_eq!(p(200), "10/10");
    }

    #[test]
    fn failure_freezes_progress_and_sticks() {
        let f = Fate {
            fail_at: Some(0.5),
            is_url: true,
        };
        assert_eq!(phase_at(&d(), f, 60_000).status, RemoteTaskStatus::Running);
        let failed = phase_at(&d(), f, 80_000);
        assert_eq!(failed.status, RemoteTaskStatus::Failed);
        assert_eq!(progress(&failed, 10), "5/10");
        assert_eq!(
            phase_at(&d(), f, 100_000_000).status,
            RemoteTaskStatus::Failed
        );
    }

    #[test]
    fn instant_durations_finish_at_once() {
        let p = phase_at(&Durations::instant(), OK_URL, 0);
        assert_eq!(p.status, RemoteTaskStatus::Finished);
    }
}

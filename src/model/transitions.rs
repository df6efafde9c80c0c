//! The job state machine as one table: every state change the service may make.
//!
//! `job_update` checks every requested change against [`TRANSITIONS`] (a forbidden one is
//! a [`ForbiddenTransition`] error, never written); the store's fixed transitions (claim,
//! cancel, retry, rescue, quarantine) are checked against it at compile time. The test
//! `transitions_match_the_doc` holds the table against docs/state-machine.md.

use super::JobState;
use JobState::*;

/// `(from, to, why)`: `from = None` is the enqueue.
pub const TRANSITIONS: &[(Option<JobState>, JobState, &str)] = &[
    (None, Queued, "enqueue (api, cli, sql, schedule)"),
    (
        Some(Queued),
        Submitting,
        "claim: instance free, not blocked, run_at due",
    ),
    (Some(Queued), Cancelled, "cancel (operator)"),
    (
        Some(Queued),
        Failed,
        "quarantine: a value the service cannot read",
    ),
    (
        Some(Submitting),
        Running,
        "CreateDownload ok, or an existing task adopted",
    ),
    (
        Some(Submitting),
        Queued,
        "retry later, instance busy, throttled, lease expired or shutdown",
    ),
    (
        Some(Submitting),
        Failed,
        "attempts exhausted, a permanent error, or quarantine",
    ),
    (Some(Running), Succeeded, "the remote task finished"),
    (
        Some(Running),
        Failed,
        "the remote task failed or vanished, or quarantine",
    ),
    (Some(Failed), Queued, "retry (operator)"),
    (Some(Cancelled), Queued, "retry (operator)"),
    (
        Some(Succeeded),
        Failed,
        "quarantine: a value the service cannot read",
    ),
    (
        Some(Cancelled),
        Failed,
        "quarantine: a value the service cannot read",
    ),
];

/// Whether `from → to` is in [`TRANSITIONS`]. Usable in `const` assertions.
pub const fn allowed(from: Option<JobState>, to: JobState) -> bool {
    let mut i = 0;
    while i < TRANSITIONS.len() {
        let (f, t, _) = TRANSITIONS[i];
        let from_matches = match (f, from) {
            (None, None) => true,
            (Some(a), Some(b)) => a as u8 == b as u8,
            _ => false,
        };
        if from_matches && t as u8 == to as u8 {
            return true;
        }
        i += 1;
    }
    false
}

/// A state change the state machine does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("job state {from} → {to} is not an allowed transition (docs/state-machine.md)")]
pub struct ForbiddenTransition {
    pub from: JobState,
    pub to: JobState,
}

/// `Ok` when `from → to` is allowed, or no change at all (`from == to`: an update that
/// keeps the state, such as a poll's progress).
pub fn check(from: JobState, to: JobState) -> Result<(), ForbiddenTransition> {
    if from == to || allowed(Some(from), to) {
        Ok(())
    } else {
        Err(ForbiddenTransition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn forbidden_changes_are_refused_and_staying_is_not_a_change() {
        assert!(check(Queued, Submitting).is_ok());
        assert!(check(Running, Running).is_ok());
        let e = check(Succeeded, Running).unwrap_err();
        assert_eq!(
            e.to_string(),
            "job state succeeded → running is not an allowed transition (docs/state-machine.md)"
        );
        assert!(
            check(Queued, Running).is_err(),
            "a job is claimed before it runs"
        );
        assert!(check(Failed, Running).is_err());
        assert!(!allowed(None, Running));
    }

    /// docs/state-machine.md's "Allowed transitions" table lists exactly these pairs.
    #[test]
    fn transitions_match_the_doc() {
        let doc = include_str!("../../docs/state-machine.md");
        let section = doc
            .split("## Allowed transitions")
            .nth(1)
            .expect("docs/state-machine.md has an 'Allowed transitions' section");
        let in_doc: BTreeSet<(String, String)> = section
            .lines()
            .take_while(|l| !l.starts_with("## "))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let (from, to) = (cells.get(1)?, cells.get(2)?);
                if !to.starts_with('`') {
                    return None;
                }
                Some((
                    from.trim_matches('`').to_string(),
                    to.trim_matches('`').to_string(),
                ))
            })
            .collect();
        let in_code: BTreeSet<(String, String)> = TRANSITIONS
            .iter()
            .map(|(f, t, _)| {
                (
                    f.map_or("(new)".to_string(), |s| s.as_str().to_string()),
                    t.as_str().to_string(),
                )
            })
            .collect();
        assert_eq!(in_doc, in_code);
    }
}

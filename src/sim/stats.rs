//! What the simulator saw: counters and a bounded request log, for tests and benchmarks.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Counters since start (or the last reset). Keys are action names, result codes
/// (`Success`, an error code, `Dropped`, `Stalled`) and instance ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// action → result code → calls.
    pub calls: BTreeMap<String, BTreeMap<String, u64>>,
    /// instance → tasks created (CreateDownload successes).
    pub tasks_created: BTreeMap<String, u64>,
    /// instance → the most tasks that were active (initializing, queueing, running or
    /// failed) at the same time, checked at every create. More than 1 means the caller
    /// broke the cloud's one-task rule (possible only with `enforce_one_active = false`).
    pub max_active: BTreeMap<String, u64>,
    /// instance → CreateDownload calls rejected with `OnlyOneRunningOrFailedTask`.
    pub busy_rejections: BTreeMap<String, u64>,
}

impl SimStats {
    /// Calls of `action` with any result.
    pub fn calls_of(&self, action: &str) -> u64 {
        self.calls
            .get(action)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    /// Calls of `action` that ended with `code`.
    pub fn count(&self, action: &str, code: &str) -> u64 {
        self.calls
            .get(action)
            .and_then(|m| m.get(code))
            .copied()
            .unwrap_or(0)
    }

    /// Every call to the RPC endpoint.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().flat_map(|m| m.values()).sum()
    }

    /// Tasks created across all instances.
    pub fn total_tasks_created(&self) -> u64 {
        self.tasks_created.values().sum()
    }

    /// The largest `max_active` over all instances (0 when nothing was created).
    pub fn max_active_any(&self) -> u64 {
        self.max_active.values().copied().max().unwrap_or(0)
    }
}

/// One RPC call as the simulator answered it. Never holds a secret or a signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    /// Wall-clock UNIX ms when the call arrived.
    pub at_ms: i64,
    pub action: String,
    pub version: String,
    /// `v3`, `v2` or `none`.
    pub signature: String,
    /// `InstanceName` / `DBInstanceId` when given.
    pub instance: Option<String>,
    /// `ClusterName` when given (MongoDB sharded clusters).
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// `TaskId` returned (CreateDownload) or asked about.
    pub task_id: Option<String>,
    pub code: String,
    pub http_status: u16,
    pub request_id: String,
}

/// A ring buffer of [`LogEntry`].
#[derive(Debug, Clone)]
pub(crate) struct RequestLog {
    entries: VecDeque<LogEntry>,
    capacity: usize,
    next_seq: u64,
}

impl RequestLog {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 1,
        }
    }

    pub fn push(&mut self, mut entry: LogEntry) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    pub fn snapshot(&self) -> Vec<LogEntry> {
        self.entries.iter().cloned().collect()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keeps_the_newest_entries() {
        let mut log = RequestLog::new(2);
        for action in ["a", "b", "c"] {
            log.push(LogEntry {
                seq: 0,
                at_ms: 0,
                action: action.into(),
                version: String::new(),
                signature: "v3".into(),
                instance: None,
                cluster_name: None,
                task_id: None,
                code: "Success".into(),
                http_status: 200,
                request_id: String::new(),
            });
        }
        let s = log.snapshot();
        assert_eq!(
            s.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert_eq!(s[1].seq, 3);
    }
}

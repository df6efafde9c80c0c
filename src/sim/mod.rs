//! A faithful DBS simulator: a real HTTP server with the same operations, signature
//! verification, the per-instance rules, a task lifecycle and fault injection.
//!
//! Embedding (tests, benchmarks, the demo):
//! ```no_run
//! # async fn demo() -> Result<(), dbs_archiver::sim::StartError> {
//! use dbs_archiver::sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::demo().time_scale(3600.0), "127.0.0.1:0").await?;
//! let endpoint = sim.endpoint(); // http://127.0.0.1:PORT — set as `dbs.endpoint`
//! // … drive a DbsClient with `sim.credentials()` …
//! let created = sim.stats().total_tasks_created();
//! # let _ = (endpoint, created);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//! docs/simulator.md describes the wire behaviour, the guesses and the admin endpoints.

mod auth;
mod config;
mod errors;
mod faults;
mod files;
mod lifecycle;
mod server;
mod state;
mod stats;
mod wire;

pub use config::{
    BackupSetSpec, Durations, Fleet, InstanceSpec, Quirks, SimConfig, SimKey, DEMO_ACCESS_KEY_ID,
    DEMO_ACCESS_KEY_SECRET, DEMO_MONGO_CLUSTER_NAME, DEMO_MONGO_REPLICA_SET, DEMO_MONGO_SHARDED,
    DEMO_REGION,
};
pub use errors::{ErrorCode, BUSINESS_CODES, GATEWAY_CODES};
pub use faults::{ErrorFault, FaultRule, Faults};
pub use files::{file_bytes, FileFaults, FileRequest};
pub use state::TaskView;
pub use stats::{LogEntry, SimStats};

use crate::dbs::credentials::{Credentials, StaticCredentials};
use secrecy::ExposeSecret;
use server::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Why the simulator did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("simulator config: {0}")]
    Config(String),
    #[error("simulator cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Validate `config`, bind `listen` (use port 0 for a free port) and serve in the
    /// background until [`SimHandle::shutdown`].
    pub async fn start(config: SimConfig, listen: &str) -> Result<SimHandle, StartError> {
        config.validate().map_err(StartError::Config)?;
        let mut state = state::SimState::open(config).map_err(StartError::Config)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: listen.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: listen.to_string(),
            source,
        })?;
        // Download links of URL tasks point back at this server (files.rs).
        state.files_base = Some(format!("http://{addr}/__sim/files"));
        let shared = Arc::new(Shared::new(state));
        let router = server::router(shared.clone());
        let task = tokio::spawn(server::serve(listener, router, shared.shutdown.clone()));
        tracing::info!(%addr, "DBS simulator listening");
        Ok(SimHandle {
            shared,
            addr,
            task: Arc::new(std::sync::Mutex::new(Some(task))),
        })
    }
}

/// A running simulator. Cheap to clone; every clone controls the same server.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`: the value for `dbs.endpoint` (and `dbs.rds_endpoint`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Credentials for the first configured key (the demo pair by default).
    pub fn credentials(&self) -> Credentials {
        let key = &self.shared.lock().config.keys[0];
        Credentials {
            access_key_id: key.access_key_id.clone(),
            access_key_secret: key.access_key_secret.expose_secret().to_string().into(),
            security_token: key
                .security_token
                .as_ref()
                .map(|t| t.expose_secret().to_string().into()),
        }
    }

    /// Reject this key's STS token as expired from now on (credential-refresh tests).
    pub fn expire_security_token(&self, access_key_id: &str) {
        self.shared.expire_security_token(access_key_id);
    }

    /// [`Self::credentials`] as a provider for `DbsClient::new`.
    pub fn credentials_provider(&self) -> Arc<StaticCredentials> {
        Arc::new(StaticCredentials(self.credentials()))
    }

    /// Counters since start or the last [`Self::reset_stats`].
    pub fn stats(&self) -> SimStats {
        self.shared.lock().stats.clone()
    }

    /// The newest request-log entries (oldest first).
    pub fn request_log(&self) -> Vec<LogEntry> {
        self.shared.lock().log.snapshot()
    }

    /// Zero the counters and the request log; tasks stay.
    pub fn reset_stats(&self) {
        self.shared.lock().reset_stats();
    }

    /// Every task, newest first, with its state as of now.
    pub fn tasks(&self) -> Vec<TaskView> {
        self.shared.lock().task_views()
    }

    pub fn task(&self, id: &str) -> Option<TaskView> {
        self.shared.lock().task_view(id)
    }

    /// Replace the fault settings (validated; the error names the field).
    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        self.shared.lock().faults = faults;
        Ok(())
    }

    /// The current fault settings (with `next` counters as far as they have run down).
    pub fn faults(&self) -> Faults {
        self.shared.lock().faults.clone()
    }

    /// Make a task fail now; it then blocks its instance like any failed task.
    pub fn fail_task(&self, id: &str) -> Result<TaskView, String> {
        self.shared.lock().fail_task(id)
    }

    /// Operator action: clear the instance's failed tasks so they stop blocking it.
    pub fn clear_instance(&self, instance: &str) -> usize {
        self.shared.lock().clear_instance(instance)
    }

    /// Jump simulated time forward (on top of the time scale).
    pub fn advance(&self, by: Duration) {
        self.shared.lock().advance(by);
    }

    /// Fault injection for the files of URL tasks (a connection dropped mid-body).
    pub fn set_file_faults(&self, faults: FileFaults) {
        self.shared.files.set_faults(faults);
    }

    /// Every file request so far (task, first byte asked for, status), oldest first.
    pub fn file_requests(&self) -> Vec<FileRequest> {
        self.shared.files.requests()
    }

    /// Resolves when the simulator has been shut down (from any clone).
    pub async fn stopped(&self) {
        self.shared.shutdown.cancelled().await;
    }

    /// Stop accepting, drop every open connection and wait for the accept loop to end.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

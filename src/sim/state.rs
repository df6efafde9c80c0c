//! The simulated account: instances, download tasks and the cloud's rules about them.
//!
//! Pure, synchronous and clock-driven (every method takes "now"), so the rules can be
//! unit-tested without HTTP and the server can hold the lock for microseconds only.

use super::config::{BackupSetSpec, InstanceSpec, SimConfig};
use super::errors::Rejection;
use super::faults::Faults;
use super::lifecycle::{self, Fate, Phase};
use super::stats::{RequestLog, SimStats};
use crate::dbs::types::RemoteTaskStatus;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// Decoded request parameters (query string plus form body), looked up by exact name.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The value of `name` if present and not blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    /// Like `get`, but a missing value is `DBS.ParamIsInValid: <camelName> can not be empty`.
    pub fn require(&self, name: &str) -> Result<&str, Rejection> {
        self.get(name)
            .ok_or_else(|| Rejection::param(format!("{} can not be empty", camel(name))))
    }

    /// An optional `true`/`false` parameter (any case); anything else is
    /// `DBS.ParamIsInValid` naming it.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, Rejection> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(Rejection::param(format!(
                "{} is invalid: {v:?}, must be true or false",
                camel(name)
            ))),
        }
    }

    /// An optional integer parameter; garbage is `DBS.ParamIsInValid` naming it.
    pub fn int(&self, name: &str) -> Result<Option<i64>, Rejection> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                Rejection::param(format!(
                    "{} is invalid: {v:?} is not an integer",
                    camel(name)
                ))
            }),
        }
    }
}

/// `FormatType` → `formatType`, the spelling of the service's own messages.
fn camel(name: &str) -> String {
    let mut c = name.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A snapshot of one task, as the admin endpoint and [`super::SimHandle::tasks`] show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    pub task_id: String,
    pub region: String,
    pub instance: String,
    /// MongoDB sharded clusters: the cluster the task belongs to.
    #[serde(default)]
    pub cluster_name: Option<String>,
    /// `full` or `pitr`.
    pub bak_set_type: String,
    pub bak_set_id: Option<String>,
    pub backup_set_time_ms: i64,
    pub format: String,
    pub target_type: String,
    pub target_bucket: Option<String>,
    pub target_path: Option<String>,
    pub status: String,
    pub progress: String,
    pub export_data_size: i64,
    pub import_data_size: i64,
    /// Wall-clock UNIX ms of creation.
    pub gmt_create_ms: i64,
    /// RetryDownloadTask calls that restarted it.
    pub retries: u32,
    /// An operator cleared it (shown as `expired`; no longer blocks the instance).
    pub cleared: bool,
}

impl TaskView {
    pub fn status(&self) -> RemoteTaskStatus {
        RemoteTaskStatus::parse(&self.status)
    }

    /// Initializing, queueing, running or failed: holds the instance.
    pub fn is_active(&self) -> bool {
        let s = self.status();
        s.is_in_progress() || s == RemoteTaskStatus::Failed
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Task {
    id: String,
    region: String,
    instance: String,
    /// MongoDB sharded clusters: the `ClusterName` the task was created for.
    #[serde(default)]
    cluster_name: Option<String>,
    bak_set_type: String,
    bak_set_id: Option<String>,
    point_in_time_ms: Option<i64>,
    backup_set_time_ms: i64,
    format: String,
    target_type: String,
    target_bucket: Option<String>,
    target_oss_region: Option<String>,
    target_path: Option<String>,
    size_bytes: i64,
    tables: u32,
    gmt_create_ms: i64,
    created_virt: i64,
    started_virt: i64,
    fate: Fate,
    /// Forced failure (admin): from this virtual instant, frozen at `done`.
    forced_fail: Option<(i64, f64)>,
    retries: u32,
    cleared: bool,
}

impl Task {
    fn phase(&self, d: &super::config::Durations, virt_now: i64) -> Phase {
        if self.cleared {
            return Phase {
                status: RemoteTaskStatus::Expired,
                done: 1.0,
            };
        }
        if let Some((at, done)) = self.forced_fail {
            if virt_now >= at {
                return Phase {
                    status: RemoteTaskStatus::Failed,
                    done,
                };
            }
        }
        lifecycle::phase_at(d, self.fate, virt_now - self.started_virt)
    }

    fn view(&self, d: &super::config::Durations, virt_now: i64) -> TaskView {
        let p = self.phase(d, virt_now);
        let processed = (self.size_bytes as f64 * p.done) as i64;
        TaskView {
            task_id: self.id.clone(),
            region: self.region.clone(),
            instance: self.instance.clone(),
            cluster_name: self.cluster_name.clone(),
            bak_set_type: self.bak_set_type.clone(),
            bak_set_id: self.bak_set_id.clone(),
            backup_set_time_ms: self.backup_set_time_ms,
            format: self.format.clone(),
            target_type: self.target_type.clone(),
            target_bucket: self.target_bucket.clone(),
            target_path: self.target_path.clone(),
            status: p.status.as_str().to_string(),
            progress: lifecycle::progress(&p, self.tables),
            // Exported files are smaller than the raw data (compression).
            export_data_size: processed * 3 / 5,
            import_data_size: processed,
            gmt_create_ms: self.gmt_create_ms,
            retries: self.retries,
            cleared: self.cleared,
        }
    }

    /// The request identity for `JobAlreadyExist`.
    fn same_request(&self, other: &Task) -> bool {
        self.region == other.region
            && self.instance == other.instance
            && self.cluster_name == other.cluster_name
            && self.bak_set_type == other.bak_set_type
            && self.bak_set_id == other.bak_set_id
            && self.point_in_time_ms == other.point_in_time_ms
            && self.format.eq_ignore_ascii_case(&other.format)
            && self.target_type == other.target_type
            && self.target_bucket == other.target_bucket
            && self.target_oss_region == other.target_oss_region
            && self.target_path == other.target_path
    }
}

/// One page of DescribeDownloadTask.
#[derive(Debug, Clone)]
pub struct TaskPage {
    pub page_number: u32,
    pub page_size: u32,
    pub total_elements: usize,
    pub total_pages: usize,
    pub tasks: Vec<TaskView>,
}

/// One page of RDS DescribeBackups.
#[derive(Debug, Clone)]
pub struct BackupPage {
    pub instance: InstanceSpec,
    pub page_number: u32,
    pub total: usize,
    pub backups: Vec<BackupSetSpec>,
}

/// DescribeDownloadBackupSetStorageInfo data.
#[derive(Debug, Clone)]
pub struct StorageInfo {
    pub public_url: String,
    pub private_url: String,
    pub expiration_ms: i64,
}

/// What [`SimConfig::state_file`] holds: the tasks and what keeps ids and simulated time
/// continuous across a restart.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    /// Bumped when the layout changes incompatibly.
    version: u32,
    seed: u64,
    next_task: u64,
    saved_wall_ms: i64,
    saved_virt_ms: i64,
    tasks: Vec<Task>,
}

const SNAPSHOT_VERSION: u32 = 1;

/// The mutable heart of the simulator. Guarded by one mutex in the server.
#[derive(Debug)]
pub struct SimState {
    pub(crate) config: SimConfig,
    /// `http://ADDR/__sim/files` once serving: download links point here (files.rs)
    /// instead of at an OSS host the tests cannot reach.
    pub(crate) files_base: Option<String>,
    tasks: Vec<Task>,
    task_index: HashMap<String, usize>,
    /// instance id → indexes into `tasks`, in creation order (keeps creates O(tasks of
    /// the instance) for benchmarks with many tasks).
    by_instance: HashMap<String, Vec<usize>>,
    rng: StdRng,
    next_task: u64,
    pub(crate) faults: Faults,
    pub(crate) stats: SimStats,
    pub(crate) log: RequestLog,
    /// (AccessKeyId, nonce) → when it was first seen, and the same keys oldest first, so
    /// expired nonces are dropped from the front in O(1) per request.
    nonces: HashMap<(String, String), i64>,
    nonce_order: VecDeque<(i64, (String, String))>,
    /// (region, instance id) → index into `config.fleet.instances` (fixed at start), so a
    /// lookup does not scan a fleet of 100k instances.
    instance_index: HashMap<(String, String), usize>,
    /// Wall instant that virtual time counts from, and manual jumps (`advance`).
    origin_wall_ms: i64,
    offset_virt_ms: i64,
}

impl SimState {
    pub fn new(config: SimConfig) -> Self {
        let origin_wall_ms = config.clock.now().timestamp_millis();
        let instance_index = config
            .fleet
            .instances
            .iter()
            .enumerate()
            .rev() // the first of duplicates wins, as a linear search would
            .map(|(i, inst)| ((inst.region.clone(), inst.id.clone()), i))
            .collect();
        Self {
            rng: StdRng::seed_from_u64(config.seed),
            faults: config.faults.clone(),
            log: RequestLog::new(config.request_log_capacity),
            config,
            tasks: Vec::new(),
            task_index: HashMap::new(),
            by_instance: HashMap::new(),
            next_task: 0,
            stats: SimStats::default(),
            nonces: HashMap::new(),
            nonce_order: VecDeque::new(),
            instance_index,
            origin_wall_ms,
            offset_virt_ms: 0,
            files_base: None,
        }
    }

    /// [`SimState::new`], then the tasks of `config.state_file` if it exists. Simulated
    /// time picks up where it stopped plus the wall time since (the cloud keeps working
    /// while we are down); task ids continue the saved sequence.
    pub fn open(config: SimConfig) -> Result<Self, String> {
        let path = config.state_file.clone();
        let mut st = Self::new(config);
        let Some(path) = path else { return Ok(st) };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(st),
            Err(e) => return Err(format!("state_file {}: {e}", path.display())),
        };
        let snap: Snapshot = serde_json::from_str(&text)
            .map_err(|e| format!("state_file {}: not a simulator state: {e}", path.display()))?;
        if snap.version != SNAPSHOT_VERSION {
            return Err(format!(
                "state_file {}: version {} is not {SNAPSHOT_VERSION}; move it away to start afresh",
                path.display(),
                snap.version
            ));
        }
        st.config.seed = snap.seed;
        st.next_task = snap.next_task;
        let down_ms = (st.wall_ms() - snap.saved_wall_ms).max(0) as f64;
        st.offset_virt_ms = snap.saved_virt_ms + (down_ms * st.config.time_scale) as i64;
        for task in snap.tasks {
            st.task_index.insert(task.id.clone(), st.tasks.len());
            st.by_instance
                .entry(task.instance.clone())
                .or_default()
                .push(st.tasks.len());
            st.tasks.push(task);
        }
        Ok(st)
    }

    /// Write the tasks to `config.state_file` (if set): a temporary file renamed over
    /// the old one, so a crash leaves the previous state or the new one, never half.
    /// Failure is logged, not fatal: the simulator keeps serving from memory.
    pub fn persist(&self) {
        let Some(path) = &self.config.state_file else {
            return;
        };
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            seed: self.config.seed,
            next_task: self.next_task,
            saved_wall_ms: self.wall_ms(),
            saved_virt_ms: self.virt_ms(),
            tasks: self.tasks.clone(),
        };
        let write = || -> std::io::Result<()> {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_vec(&snap)?)?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            tracing::warn!(path = %path.display(), error = %e, "could not save the simulator state");
        }
    }

    /// Wall-clock UNIX ms from the configured clock.
    pub fn wall_ms(&self) -> i64 {
        self.config.clock.now().timestamp_millis()
    }

    /// Simulated milliseconds since start: scaled wall time plus manual jumps.
    pub fn virt_ms(&self) -> i64 {
        let wall = (self.wall_ms() - self.origin_wall_ms) as f64;
        (wall * self.config.time_scale) as i64 + self.offset_virt_ms
    }

    /// Jump simulated time forward (tests, `POST /__sim/advance`).
    pub fn advance(&mut self, by: std::time::Duration) {
        self.offset_virt_ms += by.as_millis() as i64;
        self.persist();
    }

    /// The fault settings and the seeded RNG they draw from, borrowed together.
    pub(crate) fn faults_and_rng(&mut self) -> (&mut Faults, &mut StdRng) {
        (&mut self.faults, &mut self.rng)
    }

    /// Record a nonce; `false` if it was seen within the timestamp window.
    pub fn use_nonce(&mut self, access_key_id: &str, nonce: &str, now_ms: i64) -> bool {
        let window = self.config.timestamp_tolerance.as_millis() as i64 * 2;
        while let Some((seen, _)) = self.nonce_order.front() {
            if now_ms - *seen < window {
                break;
            }
            if let Some((seen, key)) = self.nonce_order.pop_front() {
                // Only if it was not seen again later (then a newer entry is queued).
                if self.nonces.get(&key) == Some(&seen) {
                    self.nonces.remove(&key);
                }
            }
        }
        let key = (access_key_id.to_string(), nonce.to_string());
        match self.nonces.get(&key) {
            Some(seen) if now_ms - *seen < window => false,
            _ => {
                self.nonces.insert(key.clone(), now_ms);
                self.nonce_order.push_back((now_ms, key));
                true
            }
        }
    }

    fn instance(&self, region: &str, id: &str) -> Option<&InstanceSpec> {
        let i = self
            .instance_index
            .get(&(region.to_string(), id.to_string()))?;
        self.config.fleet.instances.get(*i)
    }

    fn new_task_id(&mut self) -> String {
        self.next_task += 1;
        // splitmix64 of (seed, counter): stable per seed, looks random.
        let mut z = self
            .config
            .seed
            .wrapping_add(self.next_task.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut id = String::from("dt-");
        for _ in 0..12 {
            id.push(ALPHABET[(z % 36) as usize] as char);
            z /= 36;
        }
        id
    }

    fn roll_fate(&mut self, is_url: bool) -> Fate {
        let p = self.config.failure_probability;
        let fail_at = if p > 0.0 && self.rng.random::<f64>() < p {
            Some(self.rng.random::<f64>() * 0.95)
        } else {
            None
        };
        Fate { fail_at, is_url }
    }

    /// Every task, newest first.
    pub fn task_views(&self) -> Vec<TaskView> {
        let now = self.virt_ms();
        let mut v: Vec<TaskView> = self
            .tasks
            .iter()
            .map(|t| t.view(&self.config.durations, now))
            .collect();
        v.reverse();
        v
    }

    pub fn task_view(&self, id: &str) -> Option<TaskView> {
        let now = self.virt_ms();
        self.task_index
            .get(id)
            .map(|i| self.tasks[*i].view(&self.config.durations, now))
    }

    /// The instance's tasks in creation order.
    fn instance_tasks<'a>(&'a self, instance: &str) -> impl Iterator<Item = &'a Task> + 'a {
        self.by_instance
            .get(instance)
            .into_iter()
            .flatten()
            .map(|i| &self.tasks[*i])
    }

    fn active_count(&self, instance: &str, now: i64) -> u64 {
        let d = &self.config.durations;
        self.instance_tasks(instance)
            .filter(|t| {
                let s = t.phase(d, now).status;
                s.is_in_progress() || s == RemoteTaskStatus::Failed
            })
            .count() as u64
    }

    /// CreateDownload: the §3.1 parameter rules, the fleet, then the per-instance rules.
    pub fn create_download(&mut self, p: &Params) -> Result<TaskView, Rejection> {
        let region = p.require("RegionCode")?.to_string();
        let instance_id = p.require("InstanceName")?.to_string();
        let format = canonical_format(p.require("FormatType")?)?;
        let bak_set_type = match p.get("BakSetType").unwrap_or("full") {
            t if t.eq_ignore_ascii_case("full") => "full",
            t if t.eq_ignore_ascii_case("pitr") => "pitr",
            other => {
                return Err(Rejection::param(format!(
                    "bakSetType is invalid: {other:?}, must be full or pitr"
                )))
            }
        };
        let bak_set_id = match bak_set_type {
            "full" => Some(
                p.get("BakSetId")
                    .ok_or_else(|| {
                        Rejection::param("bakSetId can not be empty when bakSetType is full")
                    })?
                    .to_string(),
            ),
            _ => None,
        };
        let point_in_time_ms = match bak_set_type {
            "pitr" => Some(p.int("DownloadPointInTime")?.ok_or_else(|| {
                Rejection::param("downloadPointInTime can not be empty when bakSetType is pitr")
            })?),
            _ => None,
        };
        let target_type = match p.require("TargetType")? {
            t if t.eq_ignore_ascii_case("oss") => "OSS",
            t if t.eq_ignore_ascii_case("url") => "URL",
            other => {
                return Err(Rejection::param(format!(
                    "targetType is invalid: {other:?}, must be OSS or URL"
                )))
            }
        };
        let (bucket, oss_region, path) = if target_type == "OSS" {
            let need = |name: &str| {
                p.get(name).map(str::to_string).ok_or_else(|| {
                    Rejection::param(format!(
                        "{} can not be empty when targetType is OSS",
                        camel(name)
                    ))
                })
            };
            (
                Some(need("TargetBucket")?),
                Some(need("TargetOssRegion")?),
                Some(need("TargetPath")?),
            )
        } else {
            (None, None, None)
        };
        if let Some(size) = p.int("BakSetSize")? {
            if size < 0 {
                return Err(Rejection::param(
                    "bakSetSize is invalid: must not be negative",
                ));
            }
        }

        let inst = self
            .instance(&region, &instance_id)
            .cloned()
            .ok_or_else(|| Rejection::of("Forbidden.InstanceNotFound"))?;
        if let Some(code) = &inst.reject_with {
            return Err(Rejection::of(code));
        }
        if !inst.engine_supported() {
            return Err(Rejection::of("DBS.DownloadTask.DbTypeNotSupport"));
        }
        check_mongodb_params(p, &inst)?;
        let cluster_name = check_cluster(p, &inst, true)?;
        if let Some(b) = &bucket {
            if self.config.fleet.forbidden_buckets.contains(b) {
                return Err(Rejection::of("DBS.DownloadTask.OssForbid"));
            }
            if self.config.fleet.non_standard_buckets.contains(b) {
                return Err(Rejection::of("DBS.DownloadTask.OssStorageTypeInvalid"));
            }
        }
        let wall = self.wall_ms();
        let (size_bytes, tables, backup_set_time_ms) = match (&bak_set_id, point_in_time_ms) {
            (Some(id), _) => {
                let set = inst
                    .backup_sets
                    .iter()
                    .find(|b| &b.id == id && b.is_downloadable())
                    .ok_or_else(|| Rejection::of("DBS.DownloadTask.BakSetError"))?;
                (set.size_bytes, set.tables, set.end_time.timestamp_millis())
            }
            (None, Some(pit)) => {
                // PITR needs a full backup taken before the point, and the point in the past.
                let base = inst
                    .backup_sets
                    .iter()
                    .filter(|b| b.is_downloadable() && b.end_time.timestamp_millis() <= pit)
                    .max_by_key(|b| b.end_time)
                    .ok_or_else(|| Rejection::of("DBS.DownloadTask.BakSetError"))?;
                if pit > wall {
                    return Err(Rejection::of("DBS.DownloadTask.BakSetError"));
                }
                let reported = if self.config.quirks.pitr_reports_base_backup_time {
                    base.end_time.timestamp_millis()
                } else {
                    pit
                };
                (base.size_bytes, base.tables, reported)
            }
            (None, None) => unreachable!("full or pitr checked above"),
        };

        let now = self.virt_ms();
        let fate = self.roll_fate(target_type == "URL");
        let mut task = Task {
            id: String::new(),
            region,
            instance: instance_id.clone(),
            cluster_name,
            bak_set_type: bak_set_type.to_string(),
            bak_set_id,
            point_in_time_ms,
            backup_set_time_ms,
            format,
            target_type: target_type.to_string(),
            target_bucket: bucket,
            target_oss_region: oss_region,
            target_path: path,
            size_bytes,
            tables,
            gmt_create_ms: wall,
            created_virt: now,
            started_virt: now,
            fate,
            forced_fail: None,
            retries: 0,
            cleared: false,
        };
        let window = self.config.job_exist_window.as_millis() as i64;
        if self
            .instance_tasks(&instance_id)
            .any(|t| !t.cleared && t.created_virt > now - window && t.same_request(&task))
        {
            return Err(Rejection::of("DBS.DownloadTask.JobAlreadyExist"));
        }
        if self.config.enforce_one_active && self.active_count(&instance_id, now) > 0 {
            *self
                .stats
                .busy_rejections
                .entry(instance_id.clone())
                .or_default() += 1;
            return Err(Rejection::of("DBS.DownloadTask.OnlyOneRunningOrFailedTask"));
        }
        task.id = self.new_task_id();
        let view = task.view(&self.config.durations, now);
        self.task_index.insert(task.id.clone(), self.tasks.len());
        self.by_instance
            .entry(instance_id.clone())
            .or_default()
            .push(self.tasks.len());
        self.tasks.push(task);
        *self
            .stats
            .tasks_created
            .entry(instance_id.clone())
            .or_default() += 1;
        let active = self.active_count(&instance_id, now);
        let max = self.stats.max_active.entry(instance_id).or_default();
        *max = (*max).max(active);
        self.persist();
        Ok(view)
    }

    /// DescribeDownloadTask: filters of dbs-api.md §4.1, paging, `gmt_create` ordering.
    pub fn describe_tasks(&self, p: &Params) -> Result<TaskPage, Rejection> {
        let region = p.require("RegionCode")?;
        let instance = p.require("InstanceName")?;
        if let Some(ds) = p.get("DatasourceId") {
            if ds != format!("ds-{instance}_{region}") {
                return Ok(self.page(Vec::new(), 1, self.config.default_page_size));
            }
        }
        let cluster = match self.instance(region, instance) {
            Some(inst) => check_cluster(p, inst, false)?,
            None => None,
        };
        let state = p.get("State").map(RemoteTaskStatus::parse);
        let task_type = p.get("TaskType").map(str::to_ascii_lowercase);
        if let Some(t) = &task_type {
            if t != "full" && t != "pitr" {
                return Err(Rejection::param(format!(
                    "taskType is invalid: {t:?}, must be full or pitr"
                )));
            }
        }
        let start = p.int("StartTime")?;
        let end = p.int("EndTime")?;
        let asc = match p.get("OrderDirect") {
            None => false,
            Some(d) if d.eq_ignore_ascii_case("desc") => false,
            Some(d) if d.eq_ignore_ascii_case("asc") => true,
            Some(d) => {
                return Err(Rejection::param(format!(
                    "orderDirect is invalid: {d:?}, must be asc or desc"
                )))
            }
        };
        if let Some(c) = p.get("OrderColumn") {
            if !c.eq_ignore_ascii_case("gmt_create") {
                return Err(Rejection::param(format!(
                    "orderColumn is invalid: {c:?}, only gmt_create is supported"
                )));
            }
        }
        let page_size = match p.int("PageSize")? {
            None => self.config.default_page_size,
            Some(n) if n < 1 => {
                return Err(Rejection::param("pageSize is invalid: must be at least 1"))
            }
            Some(n) => (n.min(self.config.max_page_size as i64)) as u32,
        };
        let page_number = match p.int("CurrentPage")? {
            None => 1,
            Some(n) if n < 1 => {
                return Err(Rejection::param(
                    "currentPage is invalid: must be at least 1",
                ))
            }
            Some(n) => n.min(u32::MAX as i64) as u32,
        };
        let now = self.virt_ms();
        let mut matching: Vec<TaskView> = self
            .instance_tasks(instance)
            .filter(|t| t.region == region)
            .filter(|t| cluster.is_none() || t.cluster_name == cluster)
            .filter(|t| {
                p.get("BackupSetId")
                    .is_none_or(|b| t.bak_set_id.as_deref() == Some(b))
            })
            .filter(|t| task_type.as_deref().is_none_or(|k| t.bak_set_type == k))
            .filter(|t| start.is_none_or(|s| t.gmt_create_ms >= s))
            .filter(|t| end.is_none_or(|e| t.gmt_create_ms <= e))
            .map(|t| t.view(&self.config.durations, now))
            .filter(|v| state.as_ref().is_none_or(|s| &v.status() == s))
            .collect();
        // Stable by creation order; `tasks` is already in creation order.
        if !asc {
            matching.reverse();
        }
        Ok(self.page(matching, page_number, page_size))
    }

    fn page(&self, all: Vec<TaskView>, page_number: u32, page_size: u32) -> TaskPage {
        let total = all.len();
        let size = page_size.max(1) as usize;
        let skip = (page_number.saturating_sub(1) as usize).saturating_mul(size);
        TaskPage {
            page_number,
            page_size,
            total_elements: total,
            total_pages: total.div_ceil(size),
            tasks: all.into_iter().skip(skip).take(size).collect(),
        }
    }

    fn find_task(&self, p: &Params) -> Result<usize, Rejection> {
        let cannot_find = || Rejection::of("DBS.DownloadTask.CannotFind");
        if let Some(id) = p.get("TaskId") {
            return self.task_index.get(id).copied().ok_or_else(cannot_find);
        }
        let instance = p.get("InstanceName");
        let set = p.get("BackupSetId");
        match (instance, set) {
            (Some(i), Some(s)) => self
                .by_instance
                .get(i)
                .into_iter()
                .flatten()
                .rev()
                .copied()
                .find(|idx| self.tasks[*idx].bak_set_id.as_deref() == Some(s))
                .ok_or_else(cannot_find),
            _ => Err(Rejection::param(
                "taskId can not be empty (or give both backupSetId and instanceName)",
            )),
        }
    }

    /// DescribeDownloadBackupSetStorageInfo: a fresh URL for a finished URL-target task.
    pub fn storage_info(&self, p: &Params) -> Result<StorageInfo, Rejection> {
        let region = p.require("RegionCode")?;
        let duration = p
            .int("Duration")?
            .ok_or_else(|| Rejection::param("duration can not be empty"))?;
        if !(300..=86_400).contains(&duration) {
            return Err(Rejection::param(
                "duration is invalid: must be within 300-86400 seconds",
            ));
        }
        let idx = self.find_task(p)?;
        let task = &self.tasks[idx];
        if task.region != region {
            return Err(Rejection::of("DBS.DownloadTask.CannotFind"));
        }
        check_task_cluster(p, task)?;
        if task.target_type != "URL" {
            return Err(Rejection::of("DBS.DownloadTask.NotSupport"));
        }
        let view = task.view(&self.config.durations, self.virt_ms());
        if view.status() != RemoteTaskStatus::Finished {
            return Err(Rejection::of("DBS.DownloadTask.CannotFind"));
        }
        let expiration_ms = self.wall_ms() + duration * 1000;
        let file = format!(
            "{}/dbs_target_file_path/{}_{}.tar.gz?Expires={}&OSSAccessKeyId=STS.sim&Signature=sim",
            task.id,
            task.instance,
            task.bak_set_id.as_deref().unwrap_or("pitr"),
            expiration_ms / 1000
        );
        if let Some(base) = &self.files_base {
            return Ok(StorageInfo {
                public_url: format!("{base}/{file}"),
                private_url: format!("{base}/{file}"),
                expiration_ms,
            });
        }
        let bucket = format!("dbs-1000000000000000-{}-{}", task.region, &task.id[3..]);
        Ok(StorageInfo {
            public_url: format!("http://{bucket}.oss-{}.aliyuncs.com/{file}", task.region),
            private_url: format!(
                "http://{bucket}.oss-{}-internal.aliyuncs.com/{file}",
                task.region
            ),
            expiration_ms,
        })
    }

    /// RetryDownloadTask: restart a failed task (a fresh fate is rolled).
    pub fn retry_task(&mut self, p: &Params) -> Result<TaskView, Rejection> {
        let region = p.require("RegionCode")?.to_string();
        p.require("TaskId")?;
        let idx = self.find_task(p)?;
        if self.tasks[idx].region != region {
            return Err(Rejection::of("DBS.DownloadTask.CannotFind"));
        }
        if let Some(i) = p.get("InstanceName") {
            if self.tasks[idx].instance != i {
                return Err(Rejection::of("DBS.DownloadTask.CannotFind"));
            }
        }
        check_task_cluster(p, &self.tasks[idx])?;
        let now = self.virt_ms();
        let view = self.tasks[idx].view(&self.config.durations, now);
        if view.status() != RemoteTaskStatus::Failed {
            return Err(Rejection::param(format!(
                "taskId is invalid: task {} is {}, only failed tasks can be retried",
                view.task_id, view.status
            )));
        }
        let is_url = self.tasks[idx].fate.is_url;
        let fate = self.roll_fate(is_url);
        let t = &mut self.tasks[idx];
        t.fate = fate;
        t.started_virt = now;
        t.forced_fail = None;
        t.retries += 1;
        let view = t.view(&self.config.durations, now);
        self.persist();
        Ok(view)
    }

    /// DescribeDownloadSupport: whether the instance's engine supports advanced download.
    pub fn download_support(&self, p: &Params) -> Result<bool, Rejection> {
        let region = p.require("RegionCode")?;
        let id = p.require("InstanceName")?;
        let inst = self
            .instance(region, id)
            .ok_or_else(|| Rejection::of("Forbidden.InstanceNotFound"))?;
        check_cluster(p, inst, false)?;
        Ok(inst.engine_supported() && inst.reject_with.is_none())
    }

    /// RDS DescribeBackups (2014-08-15), newest first.
    pub fn describe_backups(&self, p: &Params) -> Result<BackupPage, Rejection> {
        let id = p
            .get("DBInstanceId")
            .ok_or_else(|| Rejection::missing("DBInstanceId"))?;
        let inst = self
            .config
            .fleet
            .instances
            .iter()
            .find(|i| i.id == id)
            .cloned()
            .ok_or_else(|| Rejection::of("InvalidDBInstanceId.NotFound"))?;
        let time = |name: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, Rejection> {
            match p.get(name) {
                None => Ok(None),
                Some(v) => parse_rds_time(v).map(Some).ok_or_else(|| {
                    Rejection::with_message(
                        "InvalidParameter",
                        format!("{name} is not in the format yyyy-MM-ddTHH:mmZ: {v:?}"),
                    )
                }),
            }
        };
        let start = time("StartTime")?;
        let end = time("EndTime")?;
        let page_size = p
            .get("PageSize")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(30)
            .clamp(30, 100);
        let page_number = p
            .get("PageNumber")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(1)
            .max(1);
        let eq =
            |name: &str, value: &str| p.get(name).is_none_or(|w| w.eq_ignore_ascii_case(value));
        let mut all: Vec<BackupSetSpec> = inst
            .backup_sets
            .iter()
            .filter(|b| eq("BackupStatus", &b.status))
            .filter(|b| eq("BackupType", &b.backup_type))
            .filter(|b| eq("BackupId", &b.id))
            .filter(|b| start.is_none_or(|s| b.start_time >= s))
            .filter(|b| end.is_none_or(|e| b.start_time <= e))
            .cloned()
            .collect();
        all.sort_by_key(|b| std::cmp::Reverse(b.start_time));
        let total = all.len();
        let skip = (page_number as usize - 1).saturating_mul(page_size as usize);
        Ok(BackupPage {
            instance: inst,
            page_number,
            total,
            backups: all
                .into_iter()
                .skip(skip)
                .take(page_size as usize)
                .collect(),
        })
    }

    /// Admin: make a task fail now (unless it already finished).
    pub fn fail_task(&mut self, id: &str) -> Result<TaskView, String> {
        let idx = *self
            .task_index
            .get(id)
            .ok_or_else(|| format!("no task {id}"))?;
        let now = self.virt_ms();
        let phase = self.tasks[idx].phase(&self.config.durations, now);
        if !phase.status.is_in_progress() && phase.status != RemoteTaskStatus::Failed {
            return Err(format!(
                "task {id} is {}, it can no longer fail",
                phase.status
            ));
        }
        if phase.status != RemoteTaskStatus::Failed {
            self.tasks[idx].forced_fail = Some((now, phase.done));
            self.persist();
        }
        Ok(self.tasks[idx].view(&self.config.durations, now))
    }

    /// Admin: an operator clears the instance's failed tasks (they show as `expired` and
    /// stop blocking). Returns how many were cleared.
    pub fn clear_instance(&mut self, instance: &str) -> usize {
        let now = self.virt_ms();
        let d = self.config.durations;
        let mut n = 0;
        let idxs = self.by_instance.get(instance).cloned().unwrap_or_default();
        for i in idxs {
            let t = &mut self.tasks[i];
            if t.phase(&d, now).status == RemoteTaskStatus::Failed {
                t.cleared = true;
                n += 1;
            }
        }
        if n > 0 {
            self.persist();
        }
        n
    }

    /// Zero the counters and the request log (tasks stay).
    pub fn reset_stats(&mut self) {
        self.stats = SimStats::default();
        self.log.clear();
    }
}

/// The MongoDB-only parameters of CreateDownload (dbs-api.md §3.1, §3.4 notes):
/// `PrimaryKeyTypeOnly`, `IsCluster` and `AdminDatabase` only on MongoDB instances; the
/// flags `true`/`false`; `IsCluster` must describe the instance (sharded cluster or
/// replica set); `AdminDatabase` a database name (1–64 characters without `/\. "$`,
/// MongoDB's own rule). `UseZstd` and `IsPhysical` apply to every engine the docs name,
/// so only their values are checked (which format `IsPhysical` is for is undocumented).
fn check_mongodb_params(p: &Params, inst: &InstanceSpec) -> Result<(), Rejection> {
    for name in ["PrimaryKeyTypeOnly", "IsCluster", "AdminDatabase"] {
        if p.get(name).is_some() && !inst.is_mongodb() {
            return Err(Rejection::param(format!(
                "{} is only supported for MongoDB instances, {} is {}",
                camel(name),
                inst.id,
                inst.engine
            )));
        }
    }
    for name in ["PrimaryKeyTypeOnly", "UseZstd", "IsPhysical"] {
        p.bool(name)?;
    }
    if let Some(is_cluster) = p.bool("IsCluster")? {
        if is_cluster != inst.is_sharded_cluster() {
            return Err(Rejection::param(format!(
                "isCluster is invalid: {is_cluster}, {} is {}",
                inst.id,
                if inst.is_sharded_cluster() {
                    "a sharded cluster"
                } else {
                    "a replica set"
                }
            )));
        }
    }
    if let Some(db) = p.get("AdminDatabase") {
        if db.len() > 64 || db.chars().any(|c| "/\\. \"$".contains(c) || c.is_control()) {
            return Err(Rejection::param(format!(
                "adminDatabase is invalid: {db:?}, must be a MongoDB database name"
            )));
        }
    }
    Ok(())
}

/// `ClusterName` against the instance: only MongoDB sharded clusters take it, and it
/// must be theirs. `required` (CreateDownload): a sharded cluster's task must name its
/// cluster; elsewhere it is an optional filter, checked when sent.
fn check_cluster(
    p: &Params,
    inst: &InstanceSpec,
    required: bool,
) -> Result<Option<String>, Rejection> {
    match (p.get("ClusterName"), &inst.cluster_name) {
        (Some(_), _) if !inst.is_sharded_cluster() => Err(Rejection::param(format!(
            "clusterName is only supported for MongoDB sharded clusters, {} is not one",
            inst.id
        ))),
        (Some(got), Some(want)) if got != want => Err(Rejection::param(format!(
            "clusterName is invalid: {got:?} is not the cluster name of {}",
            inst.id
        ))),
        (Some(got), _) => Ok(Some(got.to_string())),
        (None, Some(_)) if required => Err(Rejection::param(format!(
            "clusterName can not be empty for the sharded cluster {}",
            inst.id
        ))),
        (None, _) => Ok(None),
    }
}

/// A `ClusterName` sent with a task id must be the task's cluster.
fn check_task_cluster(p: &Params, task: &Task) -> Result<(), Rejection> {
    match p.get("ClusterName") {
        Some(got) if task.cluster_name.as_deref() != Some(got) => Err(Rejection::param(format!(
            "clusterName is invalid: {got:?} is not the cluster of task {}",
            task.id
        ))),
        _ => Ok(()),
    }
}

fn canonical_format(v: &str) -> Result<String, Rejection> {
    for f in ["CSV", "SQL", "Parquet"] {
        if v.eq_ignore_ascii_case(f) {
            return Ok(f.to_string());
        }
    }
    Err(Rejection::param(format!(
        "formatType is invalid: {v:?}, must be one of CSV, SQL, Parquet"
    )))
}

/// RDS times: `yyyy-MM-ddTHH:mmZ` (documented) or with seconds.
fn parse_rds_time(v: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%MZ")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%SZ"))
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::sim::config::Durations;
    use std::sync::Arc;
    use std::time::Duration;

    fn params(v: &[(&str, &str)]) -> Params {
        Params(
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    fn state(config: SimConfig) -> (SimState, ManualClock) {
        let clock = ManualClock::new(chrono::Utc::now());
        let s = SimState::new(config.clock(Arc::new(clock.clone())));
        (s, clock)
    }

    fn first_set(s: &SimState, instance: &str) -> String {
        s.config
            .fleet
            .instances
            .iter()
            .find(|i| i.id == instance)
            .unwrap()
            .backup_sets[0]
            .id
            .clone()
    }

    fn create(s: &mut SimState, instance: &str, set: &str) -> Result<TaskView, Rejection> {
        s.create_download(&params(&[
            ("RegionCode", "cn-hangzhou"),
            ("InstanceName", instance),
            ("BakSetType", "full"),
            ("BakSetId", set),
            ("FormatType", "CSV"),
            ("TargetType", "URL"),
        ]))
    }

    #[test]
    fn lifecycle_follows_the_clock_and_time_scale() {
        let (mut s, clock) = state(SimConfig::demo().time_scale(60.0));
        let set = first_set(&s, "rm-demo0001");
        let t = create(&mut s, "rm-demo0001", &set).unwrap();
        assert_eq!(t.status, "initializing");
        assert_eq!(t.progress, "0/0");
        // 2 min initializing + 5 min queueing = 7 simulated minutes = 7 real seconds.
        clock.advance(chrono::Duration::seconds(8));
        assert_eq!(s.task_view(&t.task_id).unwrap().status, "running");
        clock.advance(chrono::Duration::seconds(30));
        let mid = s.task_view(&t.task_id).unwrap();
        assert_eq!(mid.status, "running");
        assert!(mid.export_data_size > 0 && mid.import_data_size > mid.export_data_size);
        clock.advance(chrono::Duration::seconds(60));
        let done = s.task_view(&t.task_id).unwrap();
        assert_eq!(done.status, "finished");
        s.advance(Duration::from_secs(3 * 24 * 3600));
        assert_eq!(s.task_view(&t.task_id).unwrap().status, "expired");
    }

    #[test]
    fn one_active_task_per_instance_and_duplicates_are_rejected() {
        let (mut s, clock) = state(SimConfig::demo());
        let sets: Vec<String> = s.config.fleet.instances[0]
            .backup_sets
            .iter()
            .map(|b| b.id.clone())
            .collect();
        create(&mut s, "rm-demo0001", &sets[0]).unwrap();
        assert_eq!(
            create(&mut s, "rm-demo0001", &sets[0]).unwrap_err().code,
            "DBS.DownloadTask.JobAlreadyExist"
        );
        assert_eq!(
            create(&mut s, "rm-demo0001", &sets[1]).unwrap_err().code,
            "DBS.DownloadTask.OnlyOneRunningOrFailedTask"
        );
        // Another instance is unaffected.
        let other = first_set(&s, "rm-demo0002");
        create(&mut s, "rm-demo0002", &other).unwrap();
        clock.advance(chrono::Duration::hours(2));
        create(&mut s, "rm-demo0001", &sets[1]).unwrap();
        // Identical request after the window is accepted again.
        clock.advance(chrono::Duration::hours(25));
        create(&mut s, "rm-demo0001", &sets[0]).unwrap();
        assert_eq!(s.stats.tasks_created["rm-demo0001"], 3);
        assert_eq!(s.stats.max_active["rm-demo0001"], 1);
        assert_eq!(s.stats.busy_rejections["rm-demo0001"], 1);
    }

    #[test]
    fn failed_task_blocks_until_retried_or_cleared() {
        let (mut s, clock) = state(SimConfig::demo());
        let sets: Vec<String> = s.config.fleet.instances[0]
            .backup_sets
            .iter()
            .map(|b| b.id.clone())
            .collect();
        let t = create(&mut s, "rm-demo0001", &sets[0]).unwrap();
        s.fail_task(&t.task_id).unwrap();
        clock.advance(chrono::Duration::days(2));
        assert_eq!(s.task_view(&t.task_id).unwrap().status, "failed");
        assert_eq!(
            create(&mut s, "rm-demo0001", &sets[1]).unwrap_err().code,
            "DBS.DownloadTask.OnlyOneRunningOrFailedTask"
        );
        let retry = params(&[
            ("RegionCode", "cn-hangzhou"),
            ("InstanceName", "rm-demo0001"),
            ("TaskId", &t.task_id),
        ]);
        let r = s.retry_task(&retry).unwrap();
        assert_eq!(r.status, "initializing");
        assert_eq!(r.retries, 1);
        // Retrying a task that is not failed is a parameter error.
        assert_eq!(s.retry_task(&retry).unwrap_err().code, "DBS.ParamIsInValid");
        s.fail_task(&t.task_id).unwrap();
        assert_eq!(s.clear_instance("rm-demo0001"), 1);
        assert_eq!(s.task_view(&t.task_id).unwrap().status, "expired");
        create(&mut s, "rm-demo0001", &sets[1]).unwrap();
    }

    #[test]
    fn parameter_rules_name_the_field() {
        let (mut s, _) = state(SimConfig::demo());
        let base = [
            ("RegionCode", "cn-hangzhou"),
            ("InstanceName", "rm-demo0001"),
            ("FormatType", "CSV"),
            ("TargetType", "URL"),
        ];
        let run = |s: &mut SimState, extra: &[(&str, &str)], drop: &str| {
            let mut v: Vec<(&str, &str)> =
                base.iter().copied().filter(|(k, _)| *k != drop).collect();
            v.extend_from_slice(extra);
            s.create_download(&params(&v)).unwrap_err()
        };
        let e = run(&mut s, &[("BakSetType", "full")], "");
        assert_eq!(e.code, "DBS.ParamIsInValid");
        assert!(e.message.contains("bakSetId"), "{}", e.message);
        let e = run(&mut s, &[("BakSetType", "pitr")], "");
        assert!(e.message.contains("downloadPointInTime"), "{}", e.message);
        let e = run(&mut s, &[("BakSetId", "1")], "FormatType");
        assert_eq!(e.message, "formatType can not be empty");
        let e = run(
            &mut s,
            &[("BakSetId", "1"), ("FormatType", "XML")],
            "FormatType",
        );
        assert!(e.message.starts_with("formatType is invalid"));
        let mut oss: Vec<(&str, &str)> = vec![("BakSetId", "1"), ("TargetType", "OSS")];
        let e = run(&mut s, &oss, "TargetType");
        assert!(e.message.contains("targetBucket"), "{}", e.message);
        oss.push(("TargetBucket", "b"));
        oss.push(("TargetOssRegion", "cn-hangzhou"));
        let e = run(&mut s, &oss, "TargetType");
        assert!(e.message.contains("targetPath"), "{}", e.message);
        let e = run(&mut s, &[("BakSetId", "1")], "RegionCode");
        assert_eq!(e.message, "regionCode can not be empty");
    }

    #[test]
    fn fleet_rules_produce_their_codes() {
        let (mut s, _) = state(SimConfig::demo());
        let code = |s: &mut SimState, inst: &str, set: &str| create(s, inst, set).unwrap_err().code;
        assert_eq!(code(&mut s, "rm-nope", "1"), "Forbidden.InstanceNotFound");
        assert_eq!(
            code(&mut s, "rm-demo0001", "999"),
            "DBS.DownloadTask.BakSetError"
        );
        let mut c = SimConfig::demo();
        c.fleet.instances[0].engine = "SQLServer".into();
        c.fleet.instances[1].reject_with = Some("DBS.DownloadTask.RegionNotSupport".into());
        c.fleet.forbidden_buckets.push("locked".into());
        let (mut s, _) = state(c);
        let set = first_set(&s, "rm-demo0001");
        assert_eq!(
            code(&mut s, "rm-demo0001", &set),
            "DBS.DownloadTask.DbTypeNotSupport"
        );
        let set = first_set(&s, "rm-demo0002");
        assert_eq!(
            code(&mut s, "rm-demo0002", &set),
            "DBS.DownloadTask.RegionNotSupport"
        );
        let set = first_set(&s, "rm-demo0003");
        let e = s
            .create_download(&params(&[
                ("RegionCode", "cn-hangzhou"),
                ("InstanceName", "rm-demo0003"),
                ("BakSetId", &set),
                ("FormatType", "SQL"),
                ("TargetType", "OSS"),
                ("TargetBucket", "locked"),
                ("TargetOssRegion", "cn-hangzhou"),
                ("TargetPath", "x/y"),
            ]))
            .unwrap_err();
        assert_eq!(e.code, "DBS.DownloadTask.OssForbid");
    }

    #[test]
    fn failure_probability_is_seeded() {
        let outcomes = |seed| {
            let (mut s, clock) = state(
                SimConfig::demo()
                    .durations(Durations::instant())
                    .failure_probability(0.5)
                    .seed(seed)
                    .enforce_one_active(false)
                    .job_exist_window(Duration::ZERO),
            );
            let set = first_set(&s, "rm-demo0001");
            (0..40)
                .map(|_| {
                    clock.advance(chrono::Duration::milliseconds(1));
                    create(&mut s, "rm-demo0001", &set).unwrap().status
                })
                .collect::<Vec<_>>()
        };
        let a = outcomes(3);
        assert_eq!(a, outcomes(3));
        let failed = a.iter().filter(|s| *s == "failed").count();
        assert!((8..=32).contains(&failed), "{failed}");
    }

    #[test]
    fn paging_and_filters() {
        let (mut s, clock) = state(
            SimConfig::demo()
                .durations(Durations::instant())
                .job_exist_window(Duration::ZERO),
        );
        let set = first_set(&s, "rm-demo0001");
        for _ in 0..7 {
            clock.advance(chrono::Duration::seconds(1));
            create(&mut s, "rm-demo0001", &set).unwrap();
        }
        let q = |extra: &[(&str, &str)]| {
            let mut v = vec![
                ("RegionCode", "cn-hangzhou"),
                ("InstanceName", "rm-demo0001"),
            ];
            v.extend_from_slice(extra);
            s.describe_tasks(&params(&v)).unwrap()
        };
        let p = q(&[("PageSize", "3"), ("CurrentPage", "3")]);
        assert_eq!((p.total_elements, p.total_pages, p.tasks.len()), (7, 3, 1));
        let first = q(&[("PageSize", "3")]);
        let asc = q(&[("PageSize", "3"), ("OrderDirect", "asc")]);
        assert!(first.tasks[0].gmt_create_ms > first.tasks[1].gmt_create_ms);
        assert!(asc.tasks[0].gmt_create_ms < asc.tasks[1].gmt_create_ms);
        assert_eq!(q(&[("State", "Finished")]).total_elements, 7);
        assert_eq!(q(&[("State", "running")]).total_elements, 0);
        assert_eq!(q(&[("TaskType", "pitr")]).total_elements, 0);
        assert_eq!(q(&[("PageSize", "1000")]).page_size, 100);
    }

    /// A nonce is refused while it is within twice the timestamp tolerance of its first
    /// use, and forgotten after that (the memory stays bounded by the window).
    #[test]
    fn nonces_are_refused_within_the_window_and_forgotten_after_it() {
        let (mut s, _clock) = state(SimConfig::demo());
        let window = 2 * 15 * 60 * 1000;
        assert!(s.use_nonce("ak", "n1", 0));
        assert!(!s.use_nonce("ak", "n1", 1_000));
        assert!(s.use_nonce("other-ak", "n1", 1_000), "nonces are per key");
        for i in 0..1_000 {
            assert!(s.use_nonce("ak", &format!("bulk-{i}"), 2_000 + i));
        }
        assert!(!s.use_nonce("ak", "n1", window - 1));
        assert!(
            s.use_nonce("ak", "n1", window),
            "expired nonce is accepted again"
        );
        // A window later, everything earlier has been dropped.
        assert!(s.use_nonce("ak", "late", 2 * window + 5_000));
        assert_eq!(s.nonces.len(), 1, "{:?}", s.nonces.keys());
        assert_eq!(s.nonce_order.len(), 1);
        assert!(!s.use_nonce("ak", "late", 2 * window + 6_000));
    }
}

//! A private PostgreSQL cluster for the tests that restart their database server: the
//! shared server on 127.0.0.1:5432 runs other tests concurrently and must never be
//! restarted. `initdb` into a temp dir with the binaries in `/usr/lib/postgresql/*/bin`,
//! run as the `postgres` OS user (tests run as root), on a free port with its unix socket
//! in the temp dir; stopped and removed on drop.
//!
//! Off CI a machine without the server binaries skips the caller with a loud message; with
//! `CI=true` a failure to start is a test failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct PrivatePg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Run a server binary as the `postgres` OS user.
fn as_postgres(bin: &Path, tool: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{tool} {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl PrivatePg {
    /// Start a fresh cluster, or `None` (off CI only) when it cannot be started here.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        match Self::start() {
            Ok(pg) => Some(pg),
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("SKIPPED {test}: no private PostgreSQL cluster ({e})");
                None
            }
            Err(e) => panic!("{test}: cannot start a private PostgreSQL cluster: {e}"),
        }
    }

    pub fn start() -> Result<Self, String> {
        let bin = server_bin().ok_or("no /usr/lib/postgresql/*/bin/initdb")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let root = dir.path();
        chown_postgres(root)?;
        let data = root.join("data");
        let data_s = data.display().to_string();
        as_postgres(
            &bin,
            "initdb",
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let pg = Self {
            port: free_port(),
            dir,
            bin,
        };
        pg.start_server()?;
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn start_server(&self) -> Result<(), String> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &opts,
                "-l",
                &log,
                "-w",
                "-t",
                "30",
                "start",
            ],
        )
    }

    /// Stop like a crash (`immediate`: no checkpoint, sessions cut), stay down for
    /// `down`, start again.
    pub async fn crash_restart(&self, down: std::time::Duration) {
        self.stop("immediate").expect("stop the private cluster");
        tokio::time::sleep(down).await;
        self.start_server().expect("restart the private cluster");
    }

    fn stop(&self, mode: &str) -> Result<(), String> {
        as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-m", mode, "-w", "-t", "30", "stop"],
        )
    }
}

fn chown_postgres(path: &Path) -> Result<(), String> {
    let ok = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(path)
        .status()
        .map_err(|e| e.to_string())?
        .success();
    ok.then_some(()).ok_or_else(|| "chown postgres".to_string())
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self.stop("immediate");
    }
}

//! `dbs-archiver sim` runs standalone and `dbs-archiver dbs …` makes a signed call to it
//! (the flow docs/simulator.md shows).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_dbs-archiver");

/// Kills the simulator process even when an assertion fails.
struct SimProcess(Child);

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dbs(endpoint: &str, args: &[&str]) -> (bool, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("dbs")
        .args(args)
        .current_dir(dir.path())
        .env("DBS_ARCHIVER__DBS__ENDPOINT", endpoint)
        .env("DBS_ARCHIVER__DBS__ACCESS_KEY_ID", "LTAIcli")
        .env("DBS_ARCHIVER__DBS__ACCESS_KEY_SECRET", "cli-secret")
        .env("DBS_ARCHIVER__TELEMETRY__LOG_LEVEL", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout} / {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), json)
}

#[test]
fn standalone_sim_answers_the_dbs_debug_command() {
    let mut child = Command::new(BIN)
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--access-key-id",
            "LTAIcli",
            "--access-key-secret",
            "cli-secret",
            "--time-scale",
            "60",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = SimProcess(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let endpoint = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no endpoint in {line:?}"))
        .to_string();

    let (ok, backup) = dbs(
        &endpoint,
        &[
            "latest-backup",
            "--region",
            "cn-hangzhou",
            "--instance",
            "rm-demo0001",
        ],
    );
    assert!(ok, "{backup}");
    let set = backup["Backup"]["BackupId"].as_str().unwrap().to_string();
    let (ok, created) = dbs(
        &endpoint,
        &[
            "create-download",
            "--region",
            "cn-hangzhou",
            "--instance",
            "rm-demo0001",
            "--bak-set-id",
            &set,
            "--format",
            "CSV",
            "--target-type",
            "URL",
        ],
    );
    assert!(ok, "{created}");
    let task_id = created["Task"]["task_id"].as_str().unwrap().to_string();
    let (ok, listed) = dbs(
        &endpoint,
        &[
            "describe-tasks",
            "--region",
            "cn-hangzhou",
            "--instance",
            "rm-demo0001",
        ],
    );
    assert!(ok, "{listed}");
    assert_eq!(listed["Tasks"][0]["task_id"], task_id.as_str());
    // A second identical request is refused with the cloud's code, printed as JSON.
    let (ok, dup) = dbs(
        &endpoint,
        &[
            "create-download",
            "--region",
            "cn-hangzhou",
            "--instance",
            "rm-demo0001",
            "--bak-set-id",
            &set,
            "--format",
            "CSV",
            "--target-type",
            "URL",
        ],
    );
    assert!(!ok);
    assert_eq!(dup["error"]["code"], "DBS.DownloadTask.JobAlreadyExist");
    assert_eq!(dup["error"]["kind"], "already_submitted");
}

//! The command line as an operator meets it: the real binary (or the real clap parser),
//! over a real database where one is involved (both backends).

use crate::api::{spawn_app, ADMIN_TOKEN};
use crate::helpers::db::{both_backends, Backend, TestDb};
use clap::Parser;
use dbs_archiver::cli::Cli;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_dbs-archiver");

/// Run the binary in an empty directory; `env` adds settings (the database, tokens).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir.path())
        .env("DBS_ARCHIVER__TELEMETRY__LOG_LEVEL", "warn")
        .env_remove("DBS_ARCHIVER__API__TOKENS")
        .env_remove("DBS_ARCHIVER__DATABASE__URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Split a shell command line: quotes, backslash escapes; no expansion.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    in_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Every `dbs-archiver …` command of a markdown file: inline code spans and lines of code
/// blocks (with `\` continuations joined; a trailing `# comment` dropped).
fn documented_commands(rel: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            let l = line.trim();
            if pending.is_empty() && !l.starts_with("dbs-archiver ") {
                continue;
            }
            if let Some(head) = l.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            pending.push_str(l.split(" # ").next().unwrap_or(l));
            out.push(std::mem::take(&mut pending));
        } else {
            for (i, span) in line.split('`').enumerate() {
                if i % 2 == 1 && span.starts_with("dbs-archiver ") {
                    out.push(span.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn runbook_commands_parse() {
    let commands = documented_commands("docs/operations.md");
    assert!(commands.len() >= 6, "{commands:?}");
    for c in &commands {
        if let Err(e) = Cli::try_parse_from(shell_words(c)) {
            panic!("docs/operations.md: `{c}` does not parse:\n{e}");
        }
    }
    // The check can fail: the runbook's old spelling of unblock did not parse.
    assert!(Cli::try_parse_from(shell_words(
        "dbs-archiver instances unblock REGION INSTANCE"
    ))
    .is_err());
}

/// The flags of a valid full-backup request, without its format.
const REQUEST: [&str; 6] = [
    "--region",
    "cn-hangzhou",
    "--instance",
    "rm-1",
    "--bak-set-id",
    "1",
];

/// `command` with [`REQUEST`] and `extra` flags.
fn with_request<'a>(command: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    [command, &REQUEST[..], extra].concat()
}

#[test]
fn the_cli_refuses_what_the_api_refuses_in_the_same_words() {
    let base = with_request(&["enqueue"], &["--format", "CSV"]);
    let key = "k".repeat(300);
    let cases: [(&[&str], &str); 5] = [
        (
            &["--priority", "5000"],
            "--priority: must be between -1000 and 1000",
        ),
        (
            &["--max-attempts", "1000"],
            "--max-attempts: must be between 1 and 100",
        ),
        (
            &["--max-attempts", "-1"],
            "--max-attempts: must be between 1 and 100",
        ),
        (
            &["--idempotency-key", &key],
            "--idempotency-key: must be 1-255 visible ASCII characters",
        ),
        (
            &["--cluster-name", "dds\u{7}x"],
            "--cluster-name: must be 1-128 characters of letters, digits",
        ),
    ];
    for (extra, message) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let o = run(&args, &[]);
        assert!(!o.status.success(), "{extra:?} was accepted");
        assert!(stderr(&o).contains(message), "{extra:?}: {}", stderr(&o));
    }
    // `dbs create-download` validates the same way, before looking for credentials.
    let o = run(
        &with_request(
            &["dbs", "create-download"],
            &[
                "--format",
                "csv",
                "--target-type",
                "oss",
                "--target-bucket",
                "Bad_Bucket",
                "--target-oss-region",
                "cn-hangzhou",
                "--target-path",
                "a/",
            ],
        ),
        &[],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--target-bucket: must be an OSS bucket name"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_config_reports_a_token_listed_twice_without_printing_it() {
    let token = "the-same-token-0123456789";
    let json =
        format!(r#"[{{"token":"{token}","role":"admin"}},{{"token":"{token}","role":"read"}}]"#);
    let o = run(&["check-config"], &[("DBS_ARCHIVER__API__TOKENS", &json)]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("api.tokens[1].token"), "{err}");
    assert!(!err.contains(token), "{err}");
    let json = format!(r#"[{{"token":"{token}","role":"admin"}}]"#);
    let o = run(&["check-config"], &[("DBS_ARCHIVER__API__TOKENS", &json)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("[REDACTED]") && !out.contains(token), "{out}");
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    let mut child = Command::new(BIN)
        .arg("check-config")
        .env("DBS_ARCHIVER__TELEMETRY__LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -0`: the reader is gone before the command writes.
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

/// The `--json` of list and show commands is the API's JSON for the same data.
async fn json_output_is_the_api_shape(db: TestDb) {
    let url = db.url.clone();
    let app = spawn_app(db).await;
    let cli = |args: &[&str]| {
        let url = url.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let o = run(&args, &[("DBS_ARCHIVER__DATABASE__URL", &url)]);
                assert!(o.status.success(), "{args:?}: {}", stderr(&o));
                serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
            })
            .await
            .unwrap()
        }
    };
    // Enqueued by the CLI: flags in any case, normalized; printed as the API prints a job.
    let job = cli(&with_request(
        &["enqueue"],
        &[
            "--format",
            "parquet",
            "--use-zstd",
            "TRUE",
            "--priority",
            "-5",
            "--json",
        ],
    ))
    .await;
    let id = job["id"].as_i64().unwrap();
    let api_job = app
        .get(&format!("/v1/downloads/{id}"), Some(ADMIN_TOKEN))
        .await
        .json();
    assert_eq!(job["request"]["use_zstd"], "true");
    assert_eq!(job["request"]["format"], "Parquet");
    assert_eq!(job["priority"], -5);
    assert_eq!(job["source"], "cli");
    let show = cli(&["jobs", "show", &id.to_string(), "--json"]).await;
    assert_eq!(show, api_job);
    let list = cli(&["jobs", "list", "--json"]).await;
    assert_eq!(
        list,
        app.get("/v1/downloads", Some(ADMIN_TOKEN)).await.json()
    );
    let instances = cli(&["instances", "list", "--json"]).await;
    assert_eq!(
        instances,
        app.get("/v1/instances", Some(ADMIN_TOKEN)).await.json()
    );
    let schedules = cli(&["schedules", "list", "--json"]).await;
    assert_eq!(
        schedules,
        app.get("/v1/schedules", Some(ADMIN_TOKEN)).await.json()
    );
}

both_backends!(json_output_is_the_api_shape);

/// A quarantined row (here: smuggled past the rules, then read) can be shown and deleted
/// from the CLI; a job still in the queue cannot be deleted.
async fn jobs_delete_removes_a_finished_job_only(db: TestDb) {
    let url = db.url.clone();
    let queued = db.enqueue("rm-live").await.id;
    let smuggle = match db.backend {
        Backend::Sqlite => {
            "PRAGMA ignore_check_constraints = ON; INSERT INTO jobs (region, \
            instance, bak_set_type, bak_set_id, format, target_type, priority) VALUES \
            ('cn-hangzhou', 'rm-q', 'full', '1', 'CSV', 'URL', 'high');"
        }
        Backend::Postgres => {
            "ALTER TABLE jobs DROP CONSTRAINT jobs_run_at_time; INSERT INTO \
            jobs (region, instance, bak_set_type, bak_set_id, format, target_type, run_at) \
            VALUES ('cn-hangzhou', 'rm-q', 'full', '1', 'CSV', 'URL', '-infinity');"
        }
    };
    db.exec(smuggle).await.unwrap();
    let bad = db.query_i64("SELECT max(id) FROM jobs").await.to_string();
    let queued = queued.to_string();
    let cli = move |args: Vec<String>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&args, &[("DBS_ARCHIVER__DATABASE__URL", &url)])
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let show = cli(args(&["jobs", "show", &bad, "--json"])).await.unwrap();
    assert!(show.status.success(), "{}", stderr(&show));
    let job: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(job["last_error"]["code"], "Store.Quarantined");
    let refused = cli(args(&["jobs", "delete", &queued])).await.unwrap();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("cannot be deleted"),
        "{}",
        stderr(&refused)
    );
    let deleted = cli(args(&["jobs", "delete", &bad])).await.unwrap();
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert_eq!(
        db.query_i64(&format!("SELECT count(*) FROM jobs WHERE id = {bad}"))
            .await,
        0
    );
}

both_backends!(jobs_delete_removes_a_finished_job_only);

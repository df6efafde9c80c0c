//! No Docker engine runs here, so the deployment files are validated instead: the compose
//! file parses and every file it mounts exists, every `DBS_ARCHIVER__*` variable is a real
//! setting, the Dockerfile copies paths that exist, Prometheus and Grafana find their
//! files where compose mounts them, and every PromQL expression of the dashboard and the
//! alert rules names only metrics that a real scrape exposes.

use super::harness::{self, repo_path};
use crate::api::spawn_app_with;
use crate::helpers::db::{both_backends, TestDb};
use dbs_archiver::config::{Role, Settings};
use secrecy::ExposeSecret;
use serde_norway::Value;
use std::collections::BTreeSet;

fn yaml(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{rel} does not parse: {e}"))
}

fn compose_services() -> serde_norway::Mapping {
    yaml("docker-compose.yml")["services"]
        .as_mapping()
        .expect("services")
        .clone()
}

/// `(host path, container path)` of every bind mount in compose.
fn bind_mounts() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, svc) in compose_services() {
        for v in svc["volumes"].as_sequence().cloned().unwrap_or_default() {
            let spec = v.as_str().expect("short volume syntax").to_string();
            let mut parts = spec.split(':');
            let host = parts.next().unwrap().to_string();
            let container = parts.next().unwrap_or_default().to_string();
            if host.starts_with("./") || host.starts_with('/') {
                out.push((host, container));
            }
        }
    }
    out
}

#[test]
fn compose_parses_and_every_mounted_file_exists() {
    let services = compose_services();
    for name in [
        "postgres",
        "dbs-archiver",
        "sim",
        "prometheus",
        "grafana",
        "jaeger",
    ] {
        assert!(services.contains_key(name), "compose has no {name} service");
    }
    assert_eq!(services["sim"]["command"][0].as_str(), Some("sim"));
    assert!(services["sim"]["build"].is_string() || services["sim"]["build"].is_mapping());
    let mounts = bind_mounts();
    assert!(mounts.len() >= 4, "{mounts:?}");
    for (host, _) in &mounts {
        let path = repo_path(host.trim_start_matches("./"));
        assert!(path.exists(), "compose mounts {host}, which does not exist");
    }
    // Prometheus loads the rules where compose puts them; Grafana finds the dashboards.
    let prom = yaml("deploy/prometheus.yml");
    let targets: BTreeSet<String> = mounts.iter().map(|(_, c)| c.clone()).collect();
    for rule in prom["rule_files"].as_sequence().unwrap() {
        assert!(
            targets.contains(rule.as_str().unwrap()),
            "rule file {rule:?} is not mounted"
        );
    }
    let target = prom["scrape_configs"][0]["static_configs"][0]["targets"][0]
        .as_str()
        .unwrap();
    let listen = services["dbs-archiver"]["environment"]["DBS_ARCHIVER__API__LISTEN"]
        .as_str()
        .unwrap();
    assert_eq!(
        target.rsplit(':').next(),
        listen.rsplit(':').next(),
        "Prometheus scrapes the port the API listens on"
    );
    let provider = yaml("deploy/grafana/provisioning/dashboards/dashboards.yml");
    let dash_path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert!(
        targets.contains(dash_path),
        "Grafana's dashboard path {dash_path} is not mounted"
    );
    let ds = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    let uid = ds["datasources"][0]["uid"].as_str().unwrap().to_string();
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("deploy/grafana/dashboards/dbs-archiver.json")).unwrap(),
    )
    .unwrap();
    for p in dash["panels"].as_array().unwrap() {
        assert_eq!(
            p["datasource"]["uid"].as_str(),
            Some(uid.as_str()),
            "{}",
            p["title"]
        );
    }
}

/// The `DBS_ARCHIVER*` variables compose gives a service.
fn compose_env(name: &str, svc: &Value) -> Vec<(String, String)> {
    let Some(env) = svc["environment"].as_mapping() else {
        return Vec::new();
    };
    env.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => panic!("{name}: unexpected env value {other:?}"),
            };
            (k.as_str().unwrap().to_string(), v)
        })
        .filter(|(k, _)| k.starts_with("DBS_ARCHIVER"))
        .collect()
}

#[test]
fn compose_environment_maps_to_real_settings() {
    let mut seen = 0;
    for (name, svc) in compose_services() {
        let name = name.as_str().unwrap_or_default().to_string();
        let vars = compose_env(&name, &svc);
        if vars.is_empty() {
            continue;
        }
        seen += vars.len();
        let settings = Settings::load_from(None, vars.clone()).unwrap_or_else(|e| {
            panic!("{name}: the compose environment is not valid settings: {e}")
        });
        // Each variable really landed somewhere (spot-check the ones we rely on).
        for (k, v) in &vars {
            match k.as_str() {
                "DBS_ARCHIVER__DATABASE__URL" => assert_eq!(&settings.database.url, v),
                "DBS_ARCHIVER__API__LISTEN" => assert_eq!(&settings.api.listen, v),
                "DBS_ARCHIVER__TELEMETRY__OTLP_ENDPOINT" => {
                    assert_eq!(&settings.telemetry.otlp_endpoint, v)
                }
                _ => {}
            }
        }
    }
    assert!(seen >= 5, "compose sets too few DBS_ARCHIVER__ variables");
    // The check can fail: a misspelt key is rejected.
    let bogus = vec![(
        "DBS_ARCHIVER__TELEMETRY__OTLP_ENDPIONT".to_string(),
        "x".to_string(),
    )];
    assert!(Settings::load_from(None, bogus).is_err());
}

/// The `curl` of docs/operations.md, with the token compose sets, enqueues a job (and the
/// compose read token may not).
async fn the_documented_compose_curl_enqueues(db: TestDb) {
    let doc = std::fs::read_to_string(repo_path("docs/operations.md")).unwrap();
    let start = doc
        .find("curl -X POST localhost:8080/v1/downloads")
        .expect("the curl");
    let block = &doc[start..start + doc[start..].find("```").unwrap()];
    let token = block
        .split("Bearer ")
        .nth(1)
        .and_then(|t| t.split('\'').next())
        .expect("a bearer token");
    let body = block.split("-d '").nth(1).expect("a body").trim_end();
    let body = body.strip_suffix('\'').expect("quoted body");
    let now_ms = chrono::Utc::now().timestamp_millis().to_string();
    let body = body.replace(r#"'"$(date +%s)000"'"#, &now_ms);
    let services = compose_services();
    let vars = compose_env("dbs-archiver", &services["dbs-archiver"]);
    let compose = Settings::load_from(None, vars).expect("compose settings");
    assert!(
        compose.api.tokens.len() >= 2,
        "compose sets an admin and a read token"
    );
    let app = spawn_app_with(db, |s| s.api.tokens = compose.api.tokens.clone()).await;
    let post = |token: &str| {
        app.http
            .post(app.url("/v1/downloads"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(body.clone())
    };
    let r = app.send(post(token)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["request"]["instance"], "rm-demo0001");
    let read = compose
        .api
        .tokens
        .iter()
        .find(|t| t.role == Role::Read)
        .expect("a read token");
    let r = app.send(post(read.token.expose_secret())).await;
    assert_eq!(r.status, 403, "{}", r.text);
}

both_backends!(the_documented_compose_curl_enqueues);

#[test]
fn dockerfile_copies_paths_that_exist_and_builds_the_binary() {
    let text = std::fs::read_to_string(repo_path("Dockerfile")).unwrap();
    let stages = text
        .lines()
        .filter(|l| l.trim_start().starts_with("FROM "))
        .count();
    assert!(stages >= 2, "the Dockerfile is multi-stage");
    let mut copies = 0;
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        for src in &parts[..parts.len() - 1] {
            assert!(
                repo_path(src).exists(),
                "Dockerfile copies {src}, which does not exist"
            );
            copies += 1;
        }
    }
    assert!(copies >= 4);
    // Everything the crate includes at compile time is copied.
    for needed in ["Cargo.toml", "Cargo.lock", "src", "migrations", "config"] {
        assert!(
            text.lines().any(|l| l.trim().starts_with("COPY ")
                && l.split_whitespace()
                    .any(|w| w == needed || w == format!("{needed}/"))),
            "Dockerfile does not copy {needed}"
        );
    }
}

/// `dbs_archiver_*` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("dbs_archiver_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn dashboard_exprs() -> Vec<String> {
    dashboard()["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect()
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo_path("deploy/grafana/dashboards/dbs-archiver.json")).unwrap(),
    )
    .unwrap()
}

/// `(name, query)` of the dashboard's template variables.
fn dashboard_variables() -> Vec<(String, String)> {
    dashboard()["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["query"]["query"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The dashboard has process (`instance`), region and schedule variables, and every
/// selector honours them: all filter by `$instance`, the series that carry a region or a
/// schedule label by `$region` / `$schedule` too.
#[test]
fn dashboard_filters_by_instance_region_and_schedule() {
    let vars = dashboard_variables();
    let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["instance", "region", "schedule"]);
    for (name, query) in &vars {
        assert!(
            query.starts_with("label_values(dbs_archiver_")
                && query.ends_with(&format!(", {name})")),
            "{name}: {query}"
        );
    }
    for expr in dashboard_exprs() {
        let mut rest = expr.as_str();
        while let Some(i) = rest.find("dbs_archiver_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let (name, after) = tail.split_at(end);
            let selector = after
                .strip_prefix('{')
                .and_then(|s| s.split('}').next())
                .unwrap_or_else(|| panic!("{name} has no selector in `{expr}`"));
            assert!(selector.contains(r#"instance=~"$instance""#), "{expr}");
            if name.starts_with("dbs_archiver_cloud_calls_total")
                || name.starts_with("dbs_archiver_cloud_throttled_total")
            {
                assert!(selector.contains(r#"region=~"$region""#), "{expr}");
            }
            if name.starts_with("dbs_archiver_schedule_next_fire") {
                assert!(selector.contains(r#"schedule=~"$schedule""#), "{expr}");
            }
            rest = &after[1..];
        }
    }
}

/// The committed dashboard is what the generator writes (edit the generator, not the JSON).
#[test]
fn dashboard_json_is_what_the_generator_writes() {
    let committed =
        std::fs::read_to_string(repo_path("deploy/grafana/dashboards/dbs-archiver.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("deploy/grafana/dashboards")).unwrap();
    let out = std::process::Command::new("python3")
        .arg(repo_path("deploy/grafana/generate_dashboard.py"))
        .current_dir(dir.path())
        .output()
        .expect("python3 runs the generator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = std::fs::read_to_string(
        dir.path()
            .join("deploy/grafana/dashboards/dbs-archiver.json"),
    )
    .unwrap();
    assert!(
        generated == committed,
        "deploy/grafana/dashboards/dbs-archiver.json is stale: run python3 deploy/grafana/generate_dashboard.py"
    );
}

fn alert_exprs() -> Vec<(String, String, String)> {
    let rules = yaml("deploy/alerts.yml");
    rules["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["alert"].as_str().unwrap().to_string(),
                r["expr"].as_str().unwrap().to_string(),
                r["annotations"]["runbook"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_use_only_metrics_a_real_scrape_exposes() {
    let run = harness::run().await;
    let exposed = run.names();
    let mut exprs = dashboard_exprs();
    assert!(exprs.len() >= 15);
    exprs.extend(dashboard_variables().into_iter().map(|(_, q)| q));
    exprs.extend(alert_exprs().into_iter().map(|(_, e, _)| e));
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "expression names no metric: {expr}");
        for name in names {
            assert!(
                exposed.contains(&name),
                "{name} (in `{expr}`) is not exposed by /metrics"
            );
            used.insert(name);
        }
    }
    // The issue's panel list: each of these is on the dashboard.
    let dash = dashboard_exprs().join("\n");
    for metric in [
        "dbs_archiver_jobs_finished_total",
        "dbs_archiver_jobs_enqueued_total",
        "(dbs_archiver_jobs{",
        "dbs_archiver_oldest_queued_job_age_seconds",
        "dbs_archiver_instances_blocked",
        "dbs_archiver_instance_blocked_max_age_seconds",
        "dbs_archiver_cloud_calls_total",
        "dbs_archiver_cloud_throttled_total",
        "dbs_archiver_cloud_call_duration_seconds_bucket",
        "dbs_archiver_exported_bytes_total",
        "dbs_archiver_schedule_fire_lag_seconds_bucket",
    ] {
        assert!(dash.contains(metric), "dashboard has no panel on {metric}");
    }
}

#[test]
fn every_alert_has_a_runbook_section() {
    let ops = std::fs::read_to_string(repo_path("docs/operations.md")).unwrap();
    let anchors: BTreeSet<String> = ops
        .lines()
        .filter_map(|l| l.strip_prefix("## ").or_else(|| l.strip_prefix("### ")))
        .map(|h| {
            h.trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                .collect::<String>()
                .replace(' ', "-")
        })
        .collect();
    let alerts = alert_exprs();
    assert_eq!(alerts.len(), 5);
    for (alert, _, runbook) in alerts {
        let anchor = runbook
            .strip_prefix("docs/operations.md#")
            .unwrap_or_else(|| panic!("{alert}: runbook {runbook} is not in docs/operations.md"));
        assert!(
            anchors.contains(anchor),
            "{alert}: no section #{anchor} in docs/operations.md ({anchors:?})"
        );
        assert!(
            ops.contains(&alert),
            "docs/operations.md does not explain {alert}"
        );
    }
}

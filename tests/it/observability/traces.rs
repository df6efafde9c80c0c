//! Spans arrive at an OTLP/HTTP (JSON) receiver with the expected names and attributes.

use super::harness;
use serde_json::Value;
use std::collections::BTreeMap;

/// A received span: name and string-rendered attributes.
#[derive(Debug)]
struct Span {
    name: String,
    attrs: BTreeMap<String, String>,
    service: String,
}

fn spans(bodies: &[String]) -> Vec<Span> {
    let mut out = Vec::new();
    for body in bodies {
        let v: Value = serde_json::from_str(body).expect("OTLP body is JSON");
        for rs in v["resourceSpans"].as_array().cloned().unwrap_or_default() {
            let service = attrs(&rs["resource"]["attributes"])
                .remove("service.name")
                .unwrap_or_default();
            for ss in rs["scopeSpans"].as_array().cloned().unwrap_or_default() {
                for s in ss["spans"].as_array().cloned().unwrap_or_default() {
                    out.push(Span {
                        name: s["name"].as_str().unwrap_or_default().to_string(),
                        attrs: attrs(&s["attributes"]),
                        service: service.clone(),
                    });
                }
            }
        }
    }
    out
}

fn attrs(list: &Value) -> BTreeMap<String, String> {
    list.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|kv| {
            let v = &kv["value"];
            let text = v["stringValue"]
                .as_str()
                .map(str::to_string)
                .or_else(|| v["intValue"].as_str().map(str::to_string))
                .or_else(|| v["intValue"].as_i64().map(|i| i.to_string()))
                .or_else(|| v["boolValue"].as_bool().map(|b| b.to_string()))
                .or_else(|| v["doubleValue"].as_f64().map(|d| d.to_string()))
                .unwrap_or_default();
            (kv["key"].as_str().unwrap_or_default().to_string(), text)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_arrive_over_otlp_with_names_and_attributes() {
    let run = harness::run().await;
    let spans = spans(&run.otlp);
    assert!(!spans.is_empty(), "no spans received");
    assert!(spans.iter().all(|s| s.service == "dbs-archiver"));
    let named = |n: &'static str| spans.iter().filter(move |s| s.name == n);

    // Each cloud call: action, region, RequestId, result.
    let creates: Vec<&Span> = named("dbs.call")
        .filter(|s| s.attrs.get("action").map(String::as_str) == Some("CreateDownload"))
        .collect();
    assert!(!creates.is_empty(), "no CreateDownload span");
    let ok = creates
        .iter()
        .find(|s| s.attrs.get("result").map(String::as_str) == Some("ok"))
        .expect("a successful CreateDownload span");
    assert_eq!(
        ok.attrs.get("region").map(String::as_str),
        Some(harness::REGION)
    );
    assert!(ok.attrs.get("request_id").is_some_and(|id| !id.is_empty()));
    let throttled = creates
        .iter()
        .find(|s| s.attrs.get("result").map(String::as_str) == Some("throttled"))
        .expect("the injected throttling shows as a span");
    assert!(throttled
        .attrs
        .get("code")
        .is_some_and(|c| c.starts_with("Throttling")));
    assert!(named("dbs.call")
        .any(|s| s.attrs.get("action").map(String::as_str) == Some("DescribeDownloadTask")));

    // Claims and state transitions.
    assert!(named("job.claim").any(|s| s.attrs.get("claimed").is_some_and(|n| n != "0")));
    for to in ["running", "succeeded"] {
        let t = named("job.transition")
            .find(|s| s.attrs.get("to").map(String::as_str) == Some(to))
            .unwrap_or_else(|| panic!("no transition to {to}"));
        assert!(t.attrs.contains_key("job.id"));
        assert!(t.attrs.contains_key("from"));
        assert_eq!(t.attrs.get("applied").map(String::as_str), Some("true"));
    }
    // HTTP requests: route template and status.
    let post = named("http.request")
        .find(|s| {
            s.attrs.get("route").map(String::as_str) == Some("/v1/downloads")
                && s.attrs.get("method").map(String::as_str) == Some("POST")
                && s.attrs.get("status").map(String::as_str) == Some("201")
        })
        .or_else(|| {
            named("http.request")
                .find(|s| s.attrs.get("route").map(String::as_str) == Some("/v1/downloads"))
        })
        .expect("an http.request span for POST /v1/downloads");
    assert!(post.attrs.contains_key("status"));
}

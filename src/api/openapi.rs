//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` attributes and the
//! view types, served at `/v1/openapi.json`. A test walks the router's route table and
//! fails when a route is missing here (or documented but not served).

use super::error::{ErrorBody, ErrorDetail};
use super::schedules::{
    FireItemDoc, FireOutcomeDoc, InstanceKeyDoc, ScheduleDetailDoc, ScheduleDoc, ScheduleListDoc,
    ScheduleRunDoc, ScheduleSpecDoc, TargetsDoc, TemplateDoc,
};
use super::views::*;
use super::{downloads, health, instances, schedules};
use axum::Json;
use std::sync::OnceLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dbs-archiver admin API",
        description = "Enqueue and follow Alibaba Cloud DBS CreateDownload jobs, manage schedules and instances. \
Every error is `{\"error\":{\"code\",\"message\",\"field\"}}`. See docs/api.md.",
    ),
    paths(
        downloads::enqueue,
        downloads::list,
        downloads::get,
        downloads::cancel,
        downloads::delete,
        downloads::retry,
        instances::list,
        instances::get,
        instances::register,
        instances::unblock,
        schedules::create,
        schedules::list,
        schedules::get,
        schedules::update,
        schedules::delete,
        schedules::pause,
        schedules::resume,
        schedules::preview,
        schedules::run_now,
        health::healthz,
        health::readyz,
        health::metrics,
        openapi_json,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, EnqueueBody, JobView, JobDetail, JobPageView, EventView,
        RequestView, RemoteView, JobErrorView, InstanceView, InstanceList, UnblockResult,
        InstanceRegistration,
        HealthStatus, ScheduleSpecDoc, ScheduleDoc, ScheduleListDoc, ScheduleDetailDoc,
        ScheduleRunDoc, TargetsDoc, TemplateDoc, InstanceKeyDoc, FireOutcomeDoc, FireItemDoc,
    )),
    modifiers(&BearerAuth, &UniqueOperationIds),
    security(("bearer" = [])),
    tags(
        (name = "downloads", description = "Download jobs"),
        (name = "instances", description = "Per-instance state and blocks"),
        (name = "schedules", description = "Cron schedules that enqueue downloads"),
        (name = "health", description = "Liveness, readiness, metrics"),
        (name = "ui", description = "This document (the operator console lives under /ui/, outside the JSON API)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from api.tokens: role `read` for GETs, `admin` for everything",
                    ))
                    .build(),
            ),
        );
    }
}

/// utoipa names an operation after its handler function, and several modules have a
/// `list` or a `get`: prefix the first tag (`downloads_list`, `instances_list`), so every
/// `operationId` is unique, as OpenAPI requires and client generators rely on.
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                let tag = op.tags.as_ref().and_then(|t| t.first()).cloned();
                if let (Some(tag), Some(id)) = (tag, op.operation_id.as_mut()) {
                    if !id.starts_with(&format!("{tag}_")) {
                        *id = format!("{tag}_{id}");
                    }
                }
            }
        }
    }
}

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// This document.
#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "ui", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn operation_ids_are_unique_and_name_the_tag() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut seen = BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap().to_string();
                let tag = op["tags"][0].as_str().unwrap();
                assert!(id.starts_with(&format!("{tag}_")), "{id}");
                assert!(seen.insert(id.clone()), "duplicate operationId {id}");
            }
        }
        assert!(seen.contains("downloads_list") && seen.contains("instances_list"));
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc = serde_json::to_value(document()).unwrap();
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let served: BTreeSet<(String, String)> = crate::api::route_table()
            .into_iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        let documented = documented();
        let missing: Vec<_> = served.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes missing from OpenAPI: {missing:?}"
        );
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(extra.is_empty(), "documented but not served: {extra:?}");
        assert!(served.len() >= 12, "{served:?}");
    }

    #[test]
    fn enqueue_schema_lists_every_request_field() {
        // A request with every optional field set serialises every field name.
        let mut r = crate::model::DownloadRequest::example_full("cn-hangzhou", "rm-1", "1");
        r.bak_set_size = Some(1);
        r.download_point_in_time = Some(1);
        r.target_bucket = Some("b".into());
        r.target_oss_region = Some("r".into());
        r.target_path = Some("p".into());
        r.cluster_name = Some("c".into());
        r.is_cluster = Some("x".into());
        r.admin_database = Some("a".into());
        r.primary_key_type_only = Some("x".into());
        r.use_zstd = Some("x".into());
        r.is_physical = Some(false);
        let model_fields: BTreeSet<String> = serde_json::to_value(&r)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let doc = serde_json::to_value(document()).unwrap();
        let props: BTreeSet<String> = doc["components"]["schemas"]["EnqueueBody"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        for f in &model_fields {
            assert!(props.contains(f), "EnqueueBody schema lacks {f}");
        }
        let required = &doc["components"]["schemas"]["EnqueueBody"]["required"];
        assert_eq!(
            required,
            &serde_json::json!([
                "region",
                "instance",
                "bak_set_type",
                "format",
                "target_type"
            ])
        );
    }
}

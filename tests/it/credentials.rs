//! The ECS RAM-role step of the credentials chain against a real HTTP server on
//! 127.0.0.1:0 playing the metadata service (IMDSv2 token, role discovery, refresh).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use chrono::{DateTime, TimeZone, Utc};
use dbs_archiver::clock::ManualClock;
use dbs_archiver::dbs::credentials::{
    resolve_chain, CredentialSource, CredentialsProvider, EcsRamRoleProvider,
};
use dbs_archiver::dbs::DbsErrorKind;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "imds-session-token";
const ROLE: &str = "ArchiverRole";

#[derive(Debug)]
struct Meta {
    code: String,
    expiration: DateTime<Utc>,
    tokens_supported: bool,
    token_puts: usize,
    role_lists: usize,
    credential_gets: usize,
    ttl_header_seen: Option<String>,
}

type Shared = Arc<Mutex<Meta>>;

fn has_token(headers: &HeaderMap) -> bool {
    headers
        .get("x-aliyun-ecs-metadata-token")
        .and_then(|v| v.to_str().ok())
        == Some(TOKEN)
}

async fn token(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut m = s.lock().unwrap();
    if !m.tokens_supported {
        return StatusCode::NOT_FOUND.into_response();
    }
    m.token_puts += 1;
    m.ttl_header_seen = headers
        .get("X-aliyun-ecs-metadata-token-ttl-seconds")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    TOKEN.into_response()
}

async fn list_roles(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut m = s.lock().unwrap();
    if m.tokens_supported && !has_token(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    m.role_lists += 1;
    format!("{ROLE}\n").into_response()
}

async fn role_credentials(
    State(s): State<Shared>,
    Path(role): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut m = s.lock().unwrap();
    if m.tokens_supported && !has_token(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if role != ROLE {
        return StatusCode::NOT_FOUND.into_response();
    }
    m.credential_gets += 1;
    let n = m.credential_gets;
    axum::Json(serde_json::json!({
        "AccessKeyId": format!("STS.key{n}"),
        "AccessKeySecret": format!("role-secret-{n}"),
        "Expiration": m.expiration.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "SecurityToken": format!("role-token-{n}"),
        "LastUpdated": "2024-01-01T00:00:00Z",
        "Code": m.code,
    }))
    .into_response()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

async fn metadata_server() -> (Shared, String) {
    let state: Shared = Arc::new(Mutex::new(Meta {
        code: "Success".into(),
        expiration: t0() + chrono::Duration::hours(1),
        tokens_supported: true,
        token_puts: 0,
        role_lists: 0,
        credential_gets: 0,
        ttl_header_seen: None,
    }));
    let app = axum::Router::new()
        .route("/latest/api/token", put(token))
        .route(
            "/latest/meta-data/ram/security-credentials/",
            get(list_roles),
        )
        .route(
            "/latest/meta-data/ram/security-credentials/{role}",
            get(role_credentials),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, format!("http://{addr}"))
}

#[tokio::test]
async fn imdsv2_token_then_role_discovery_then_credentials() {
    let (state, base) = metadata_server().await;
    let clock = ManualClock::new(t0());
    let provider = EcsRamRoleProvider::new(&base, None, Arc::new(clock)).unwrap();
    let creds = provider.credentials().await.unwrap();
    assert_eq!(creds.access_key_id, "STS.key1");
    assert_eq!(creds.access_key_secret.expose_secret(), "role-secret-1");
    assert_eq!(
        creds.security_token.as_ref().unwrap().expose_secret(),
        "role-token-1"
    );
    let m = state.lock().unwrap();
    assert_eq!(m.token_puts, 1);
    assert_eq!(m.ttl_header_seen.as_deref(), Some("21600"));
    assert_eq!(m.role_lists, 1);
    assert_eq!(m.credential_gets, 1);
    // Nothing secret in Debug output.
    let shown = format!("{creds:?} {provider:?}");
    assert!(!shown.contains("role-secret-1"), "{shown}");
    assert!(!shown.contains("role-token-1"), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[tokio::test]
async fn cached_until_180_seconds_before_expiry_then_refreshed() {
    let (state, base) = metadata_server().await;
    let clock = ManualClock::new(t0());
    let provider = EcsRamRoleProvider::new(&base, None, Arc::new(clock.clone())).unwrap();
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.key1"
    );

    // 181 s before expiry: still cached.
    clock.set(t0() + chrono::Duration::hours(1) - chrono::Duration::seconds(181));
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.key1"
    );
    assert_eq!(state.lock().unwrap().credential_gets, 1);

    // 179 s before expiry: refreshed, with the role and the session token reused.
    state.lock().unwrap().expiration = t0() + chrono::Duration::hours(2);
    clock.set(t0() + chrono::Duration::hours(1) - chrono::Duration::seconds(179));
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.key2"
    );
    {
        let m = state.lock().unwrap();
        assert_eq!(m.credential_gets, 2);
        assert_eq!(m.role_lists, 1);
        assert_eq!(m.token_puts, 1);
    }
    // And cached again under the new expiry.
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.key2"
    );
    assert_eq!(state.lock().unwrap().credential_gets, 2);
}

#[tokio::test]
async fn a_code_other_than_success_is_an_error() {
    let (state, base) = metadata_server().await;
    state.lock().unwrap().code = "Failed".into();
    let provider =
        EcsRamRoleProvider::new(&base, Some(ROLE.into()), Arc::new(ManualClock::new(t0())))
            .unwrap();
    let err = provider.credentials().await.unwrap_err();
    assert_eq!(err.kind, DbsErrorKind::Permanent);
    assert_eq!(err.code, "Credentials.EcsRoleFailed");
    assert!(err.message.contains("\"Failed\""), "{err}");
    assert!(!err.to_string().contains("role-secret"), "{err}");
    // A configured role name skips discovery.
    assert_eq!(state.lock().unwrap().role_lists, 0);
}

#[tokio::test]
async fn unknown_role_and_unreachable_service() {
    let (_state, base) = metadata_server().await;
    let clock = Arc::new(ManualClock::new(t0()));
    let provider = EcsRamRoleProvider::new(&base, Some("OtherRole".into()), clock.clone()).unwrap();
    let err = provider.credentials().await.unwrap_err();
    assert_eq!(err.code, "Credentials.EcsRoleFailed");

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let provider =
        EcsRamRoleProvider::new(&format!("http://127.0.0.1:{port}"), None, clock).unwrap();
    let err = provider.credentials().await.unwrap_err();
    assert_eq!(err.kind, DbsErrorKind::Transient);
    assert_eq!(err.code, "Credentials.Unavailable");
}

#[tokio::test]
async fn falls_back_to_imdsv1_unless_disabled() {
    let (state, base) = metadata_server().await;
    state.lock().unwrap().tokens_supported = false;
    let clock = Arc::new(ManualClock::new(t0()));
    let provider = EcsRamRoleProvider::new(&base, None, clock.clone()).unwrap();
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.key1"
    );

    let strict = EcsRamRoleProvider::new(&base, None, clock)
        .unwrap()
        .imdsv1_disabled(true);
    let err = strict.credentials().await.unwrap_err();
    assert!(
        err.message.contains("ALIBABA_CLOUD_IMDSV1_DISABLED"),
        "{err}"
    );
}

#[tokio::test]
async fn the_chain_ends_at_the_metadata_service_from_settings() {
    let (state, base) = metadata_server().await;
    let mut settings = dbs_archiver::config::Settings::load_from(None, Vec::new())
        .expect("default settings")
        .dbs;
    settings.ecs_metadata_url = base.clone();
    settings.ecs_role_name = ROLE.into();
    let env: HashMap<String, String> =
        [("HOME".to_string(), "/nonexistent-home".to_string())].into();
    let chosen = resolve_chain(&settings, &env, Arc::new(ManualClock::new(t0()))).unwrap();
    assert_eq!(
        chosen.source,
        CredentialSource::EcsRamRole {
            base_url: base,
            role: Some(ROLE.into())
        }
    );
    let creds = chosen.provider.credentials().await.unwrap();
    assert_eq!(creds.access_key_id, "STS.key1");
    assert_eq!(state.lock().unwrap().role_lists, 0);
}

/// dbs-api.md §8: a refused STS token means "refresh credentials, then retry". The
/// metadata service hands out `STS.key1`, valid for an hour; the simulator (over TCP, as
/// the cloud) then revokes its token early. The next call is refused with
/// `InvalidSecurityToken.Expired`, the client drops its cached credentials, fetches
/// `STS.key2` and the call succeeds — one refusal, no error reaches the caller. Fixed
/// credentials cannot be refreshed: there the refusal is returned as permanent (retrying
/// the same refused token cannot help; an operator must change it).
#[tokio::test]
async fn a_refused_sts_token_is_refreshed_and_the_call_retried_once() {
    use dbs_archiver::dbs::credentials::{Credentials, StaticCredentials};
    use dbs_archiver::dbs::types::DescribeTasksQuery;
    use dbs_archiver::dbs::{DbsClient, DbsClientConfig};
    use dbs_archiver::sim::{SimConfig, Simulator};

    let (state, base) = metadata_server().await;
    // Signing uses the client's clock and the simulator checks timestamps against wall
    // time, so this test runs on wall time; the credentials stay valid for an hour.
    let now = Utc::now();
    state.lock().unwrap().expiration = now + chrono::Duration::hours(1);
    let key = |n: u32| {
        Credentials::access_key(format!("STS.key{n}"), format!("role-secret-{n}"))
            .with_security_token(format!("role-token-{n}"))
    };
    let sim = Simulator::start(SimConfig::demo().keys(vec![key(1), key(2)]), "127.0.0.1:0")
        .await
        .unwrap();
    let config = DbsClientConfig {
        endpoint_override: Some(sim.endpoint()),
        rds_endpoint_override: Some(sim.endpoint()),
        calls_per_second_per_region: 1000.0,
        burst: 1000,
        ..DbsClientConfig::default()
    };
    let provider =
        EcsRamRoleProvider::new(&base, Some(ROLE.into()), Arc::new(ManualClock::new(now))).unwrap();
    let client = DbsClient::new(config.clone(), Arc::new(provider)).unwrap();
    let q = DescribeTasksQuery {
        region: "cn-hangzhou".into(),
        instance: "rm-demo0001".into(),
        ..Default::default()
    };

    client.list_download_tasks(&q).await.unwrap();
    assert_eq!(state.lock().unwrap().credential_gets, 1);

    sim.expire_security_token("STS.key1");
    client
        .list_download_tasks(&q)
        .await
        .expect("refreshed and retried");
    assert_eq!(
        state.lock().unwrap().credential_gets,
        2,
        "fresh credentials fetched"
    );
    let log = sim.request_log();
    let codes: Vec<&str> = log.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == "InvalidSecurityToken.Expired")
            .count(),
        1,
        "{codes:?}"
    );
    // And the fresh key keeps working without further fetches.
    client.list_download_tasks(&q).await.unwrap();
    assert_eq!(state.lock().unwrap().credential_gets, 2);

    // Fixed credentials: nothing to refresh; the refusal comes back, permanent.
    sim.expire_security_token("STS.key2");
    let fixed = DbsClient::new(config, Arc::new(StaticCredentials(key(2)))).unwrap();
    let err = fixed.list_download_tasks(&q).await.unwrap_err();
    assert_eq!(err.code, "InvalidSecurityToken.Expired");
    assert_eq!(err.kind, DbsErrorKind::Permanent);
    sim.shutdown().await;
}

//! The ECS instance RAM role through the metadata service (dbs-api.md §9 step 5).
//!
//! IMDSv2: a session token from `PUT /latest/api/token`, sent on every GET; the role
//! from settings or discovered; STS credentials cached and refreshed 180 s before they
//! expire. The base URL is a setting so tests can serve the metadata API on loopback.

use super::{Credentials, CredentialsProvider};
use crate::clock::DynClock;
use crate::dbs::wire;
use crate::dbs::{DbsError, DbsErrorKind};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// Refresh credentials when they expire within this.
pub const REFRESH_BEFORE: chrono::Duration = chrono::Duration::seconds(180);
/// IMDSv2 session token lifetime we ask for.
pub const TOKEN_TTL_SECONDS: i64 = 21_600;
const TOKEN_TTL_HEADER: &str = "X-aliyun-ecs-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aliyun-ecs-metadata-token";
const CREDENTIALS_PATH: &str = "/latest/meta-data/ram/security-credentials/";

#[derive(Debug, Default)]
struct State {
    /// IMDSv2 session token and when to fetch a new one.
    token: Option<(SecretString, DateTime<Utc>)>,
    discovered_role: Option<String>,
    /// The current credentials and their `Expiration`.
    cached: Option<(Credentials, DateTime<Utc>)>,
}

/// Credentials of the ECS instance's RAM role, cached and refreshed.
#[derive(Debug)]
pub struct EcsRamRoleProvider {
    base_url: String,
    role: Option<String>,
    http: reqwest::Client,
    clock: DynClock,
    imdsv1_disabled: bool,
    state: tokio::sync::Mutex<State>,
}

fn unavailable(message: impl Into<String>) -> DbsError {
    DbsError::new(DbsErrorKind::Transient, "Credentials.Unavailable", message)
}

fn role_failed(message: impl Into<String>) -> DbsError {
    DbsError::new(
        DbsErrorKind::Permanent,
        "Credentials.EcsRoleFailed",
        message,
    )
}

fn check_role(role: &str) -> Result<(), DbsError> {
    if role.is_empty()
        || !role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(role_failed(format!(
            "RAM role name {role:?} must be letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

impl EcsRamRoleProvider {
    /// `base_url` like `http://100.100.100.200`; `role` `None` ⇒ discover it.
    pub fn new(base_url: &str, role: Option<String>, clock: DynClock) -> Result<Self, DbsError> {
        let parsed = url::Url::parse(base_url).map_err(|e| {
            DbsError::new(
                DbsErrorKind::Permanent,
                "Credentials.Invalid",
                format!("dbs.ecs_metadata_url: is not a URL: {e}"),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(DbsError::new(
                DbsErrorKind::Permanent,
                "Credentials.Invalid",
                "dbs.ecs_metadata_url: scheme must be http or https",
            ));
        }
        if let Some(r) = &role {
            check_role(r)?;
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| unavailable(format!("cannot build the metadata HTTP client: {e}")))?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            role,
            http,
            clock,
            imdsv1_disabled: false,
            state: Default::default(),
        })
    }

    /// With `true`, a failed IMDSv2 token step is an error instead of a fallback to v1
    /// (`ALIBABA_CLOUD_IMDSV1_DISABLED`).
    pub fn imdsv1_disabled(mut self, disabled: bool) -> Self {
        self.imdsv1_disabled = disabled;
        self
    }

    async fn session_token(
        &self,
        state: &mut State,
        now: DateTime<Utc>,
    ) -> Result<Option<SecretString>, DbsError> {
        if let Some((token, renew_at)) = &state.token {
            if now < *renew_at {
                return Ok(Some(token.clone()));
            }
        }
        let sent = self
            .http
            .put(format!("{}/latest/api/token", self.base_url))
            .header(TOKEN_TTL_HEADER, TOKEN_TTL_SECONDS.to_string())
            .send()
            .await;
        let token = match sent {
            Ok(resp) if resp.status().is_success() => resp
                .text()
                .await
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            _ => None,
        };
        match token {
            Some(t) => {
                let token = SecretString::from(t);
                // Renew well before the server forgets it.
                let renew_at = now + chrono::Duration::seconds(TOKEN_TTL_SECONDS - 300);
                state.token = Some((token.clone(), renew_at));
                Ok(Some(token))
            }
            None if self.imdsv1_disabled => Err(unavailable(
                "the IMDSv2 token request failed and ALIBABA_CLOUD_IMDSV1_DISABLED=true",
            )),
            None => {
                tracing::debug!("IMDSv2 token request failed; falling back to IMDSv1");
                Ok(None)
            }
        }
    }

    async fn get(&self, path: &str, token: Option<&SecretString>) -> Result<String, DbsError> {
        let mut req = self.http.get(format!("{}{path}", self.base_url));
        if let Some(t) = token {
            req = req.header(TOKEN_HEADER, t.expose_secret());
        }
        let resp = req.send().await.map_err(|e| {
            unavailable(format!(
                "metadata service {} unreachable: {}",
                self.base_url,
                e.without_url()
            ))
        })?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(role_failed(format!(
                "metadata service answered 404 for {path} (no RAM role attached?)"
            )));
        }
        if !status.is_success() {
            return Err(unavailable(format!(
                "metadata service answered HTTP {} for {path}",
                status.as_u16()
            )));
        }
        resp.text()
            .await
            .map_err(|e| unavailable(format!("metadata reply broken: {}", e.without_url())))
    }

    async fn fetch(
        &self,
        state: &mut State,
        now: DateTime<Utc>,
    ) -> Result<(Credentials, DateTime<Utc>), DbsError> {
        let token = self.session_token(state, now).await?;
        let role = match self.role.clone().or_else(|| state.discovered_role.clone()) {
            Some(r) => r,
            None => {
                let listing = self.get(CREDENTIALS_PATH, token.as_ref()).await?;
                let role = listing
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .ok_or_else(|| role_failed("no RAM role is attached to this ECS instance"))?
                    .to_string();
                check_role(&role)?;
                state.discovered_role = Some(role.clone());
                role
            }
        };
        let text = self
            .get(&format!("{CREDENTIALS_PATH}{role}"), token.as_ref())
            .await?;
        // Never echo the body: it holds the secret.
        let body: serde_json::Value = serde_json::from_str(&text)
            .map_err(|_| unavailable(format!("credentials of role {role} are not JSON")))?;
        let code = wire::str_field(&body, &["Code"]).unwrap_or_default();
        if code != "Success" {
            return Err(role_failed(format!(
                "metadata service answered Code {code:?} for role {role} (expected \"Success\")"
            )));
        }
        let field = |name: &str| {
            wire::str_field(&body, &[name]).ok_or_else(|| {
                role_failed(format!("credentials of role {role}: {name} is missing"))
            })
        };
        let expiration = field("Expiration")?;
        let expires_at = wire::parse_rds_time(&expiration).ok_or_else(|| {
            role_failed(format!(
                "credentials of role {role}: Expiration {expiration:?} is not yyyy-MM-ddTHH:mm:ssZ"
            ))
        })?;
        let creds = Credentials {
            access_key_id: field("AccessKeyId")?,
            access_key_secret: SecretString::from(field("AccessKeySecret")?),
            security_token: Some(SecretString::from(field("SecurityToken")?)),
        };
        Ok((creds, expires_at))
    }
}

#[async_trait]
impl CredentialsProvider for EcsRamRoleProvider {
    async fn credentials(&self) -> Result<Credentials, DbsError> {
        // One refresh at a time; callers queue behind it and then share the result.
        let mut state = self.state.lock().await;
        let now = self.clock.now();
        if let Some((creds, expires_at)) = &state.cached {
            if now < *expires_at - REFRESH_BEFORE {
                return Ok(creds.clone());
            }
        }
        match self.fetch(&mut state, now).await {
            Ok((creds, expires_at)) => {
                tracing::debug!(%expires_at, "ECS RAM role credentials refreshed");
                state.cached = Some((creds.clone(), expires_at));
                Ok(creds)
            }
            Err(e) => match &state.cached {
                // Still valid for a while: keep working, try again on the next call.
                // (Not after `invalidate`: the cache is empty then.)
                Some((creds, expires_at)) if now < *expires_at => {
                    tracing::warn!(error = %e, "refreshing ECS RAM role credentials failed; using cached ones");
                    Ok(creds.clone())
                }
                _ => Err(e),
            },
        }
    }

    async fn invalidate(&self, rejected_access_key_id: &str) -> bool {
        let mut state = self.state.lock().await;
        // Several calls can be refused at once; only the first drops the cache, the
        // others find fresh credentials there already (a different key id).
        if state
            .cached
            .as_ref()
            .is_some_and(|(c, _)| c.access_key_id == rejected_access_key_id)
        {
            tracing::info!(
                "the cloud refused the ECS RAM role's STS token; fetching new credentials"
            );
            state.cached = None;
        }
        true
    }
}

//! The credentials chain (dbs-api.md §9): explicit settings, environment, the
//! `~/.alibabacloud/credentials` file, the ECS RAM role. Secrets stay in `SecretString`.
//!
//! The chain reads the environment from a map the caller passes in, so tests exercise
//! every step without touching the process environment.

mod ecs;
mod ini;

pub use ecs::EcsRamRoleProvider;

use super::{DbsError, DbsErrorKind};
use crate::clock::DynClock;
use crate::config::DbsSettings;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub const ENV_ACCESS_KEY_ID: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
pub const ENV_ACCESS_KEY_SECRET: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";
pub const ENV_SECURITY_TOKEN: &str = "ALIBABA_CLOUD_SECURITY_TOKEN";
pub const ENV_CREDENTIALS_FILE: &str = "ALIBABA_CLOUD_CREDENTIALS_FILE";
pub const ENV_PROFILE: &str = "ALIBABA_CLOUD_PROFILE";
pub const ENV_ECS_METADATA_DISABLED: &str = "ALIBABA_CLOUD_ECS_METADATA_DISABLED";
/// Role name for the ECS step (the SDK's variable; `dbs.ecs_role_name` wins).
pub const ENV_ECS_ROLE: &str = "ALIBABA_CLOUD_ECS_METADATA";
pub const ENV_IMDSV1_DISABLED: &str = "ALIBABA_CLOUD_IMDSV1_DISABLED";

/// One set of credentials. `Debug` never shows the secret or the token.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: SecretString,
    /// STS token (`x-acs-security-token` in V3, `SecurityToken` in V2).
    pub security_token: Option<SecretString>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"[REDACTED]")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

impl Credentials {
    /// A long-lived AccessKey pair (no STS token).
    pub fn access_key(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            access_key_id: id.into(),
            access_key_secret: SecretString::from(secret.into()),
            security_token: None,
        }
    }

    /// The same credentials with an STS token (`x-acs-security-token` / `SecurityToken`).
    pub fn with_security_token(self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.with_token(Some(&token))
    }

    /// `token` empty ⇒ none.
    fn with_token(mut self, token: Option<&str>) -> Self {
        self.security_token = token
            .filter(|t| !t.trim().is_empty())
            .map(|t| SecretString::from(t.to_string()));
        self
    }
}

/// Where credentials come from; refreshing providers cache and renew internally.
#[async_trait]
pub trait CredentialsProvider: Send + Sync + std::fmt::Debug {
    async fn credentials(&self) -> Result<Credentials, DbsError>;

    /// The cloud refused the STS token of these credentials (expired or revoked before
    /// the expiry we were told). Drop them if they are still cached, so the next
    /// [`Self::credentials`] fetches fresh ones. Returns whether that next call can give
    /// different credentials: fixed ones cannot, so retrying with them is pointless.
    async fn invalidate(&self, _rejected_access_key_id: &str) -> bool {
        false
    }
}

/// Fixed credentials (settings, tests, the simulator demo pair).
#[derive(Debug, Clone)]
pub struct StaticCredentials(pub Credentials);

#[async_trait]
impl CredentialsProvider for StaticCredentials {
    async fn credentials(&self) -> Result<Credentials, DbsError> {
        Ok(self.0.clone())
    }
}

/// Which step of the chain supplied the credentials (logged at start-up; no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `dbs.access_key_id` / `dbs.access_key_secret` / `dbs.security_token`.
    Settings,
    /// `ALIBABA_CLOUD_ACCESS_KEY_ID` and friends.
    Environment,
    /// An `access_key` profile of the credentials file.
    File { path: PathBuf, profile: String },
    /// The ECS instance RAM role through the metadata service.
    EcsRamRole {
        base_url: String,
        role: Option<String>,
    },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Settings => f.write_str("settings (dbs.access_key_id)"),
            Self::Environment => f.write_str("environment (ALIBABA_CLOUD_ACCESS_KEY_ID)"),
            Self::File { path, profile } => {
                write!(f, "credentials file {} [{profile}]", path.display())
            }
            Self::EcsRamRole { base_url, role } => match role {
                Some(r) => write!(f, "ECS RAM role {r} via {base_url}"),
                None => write!(f, "ECS RAM role (discovered) via {base_url}"),
            },
        }
    }
}

/// The provider the chain chose and where it came from.
#[derive(Debug, Clone)]
pub struct ChosenCredentials {
    pub source: CredentialSource,
    pub provider: Arc<dyn CredentialsProvider>,
}

fn chain_error(message: impl Into<String>) -> DbsError {
    DbsError::new(DbsErrorKind::Permanent, "Credentials.Invalid", message)
}

fn env_value<'a>(env: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    env.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn env_true(env: &HashMap<String, String>, key: &str) -> bool {
    env_value(env, key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Walk the chain: settings → environment → credentials file → ECS RAM role (only when a
/// role is named, and not with `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`). The first step that is configured wins;
/// a step that is half-configured is an error naming what is missing, not a silent skip.
pub fn resolve_chain(
    settings: &DbsSettings,
    env: &HashMap<String, String>,
    clock: DynClock,
) -> Result<ChosenCredentials, DbsError> {
    let fixed = |source, creds| {
        Ok(ChosenCredentials {
            source,
            provider: Arc::new(StaticCredentials(creds)) as Arc<dyn CredentialsProvider>,
        })
    };

    // 1. Explicit settings.
    let id = settings.access_key_id.trim();
    let secret = settings.access_key_secret.expose_secret();
    match (id.is_empty(), secret.trim().is_empty()) {
        (false, false) => {
            let creds = Credentials::access_key(id, secret)
                .with_token(Some(settings.security_token.expose_secret()));
            return fixed(CredentialSource::Settings, creds);
        }
        (false, true) | (true, false) => {
            return Err(chain_error(
                "dbs.access_key_id and dbs.access_key_secret must be set together",
            ))
        }
        (true, true) => {}
    }

    // 2. Environment.
    match (
        env_value(env, ENV_ACCESS_KEY_ID),
        env_value(env, ENV_ACCESS_KEY_SECRET),
    ) {
        (Some(id), Some(secret)) => {
            let creds =
                Credentials::access_key(id, secret).with_token(env_value(env, ENV_SECURITY_TOKEN));
            return fixed(CredentialSource::Environment, creds);
        }
        (Some(_), None) => {
            return Err(chain_error(format!(
                "{ENV_ACCESS_KEY_ID} is set but {ENV_ACCESS_KEY_SECRET} is not"
            )))
        }
        (None, Some(_)) => {
            return Err(chain_error(format!(
                "{ENV_ACCESS_KEY_SECRET} is set but {ENV_ACCESS_KEY_ID} is not"
            )))
        }
        (None, None) => {}
    }

    let ecs_base = settings.ecs_metadata_url.trim().to_string();
    let ecs = |role: Option<String>| -> Result<ChosenCredentials, DbsError> {
        let provider = EcsRamRoleProvider::new(&ecs_base, role.clone(), clock.clone())?
            .imdsv1_disabled(env_true(env, ENV_IMDSV1_DISABLED));
        Ok(ChosenCredentials {
            source: CredentialSource::EcsRamRole {
                base_url: ecs_base.clone(),
                role,
            },
            provider: Arc::new(provider),
        })
    };

    // 3. Credentials file.
    if let Some(found) = from_file(env)? {
        return match found {
            FileProfile::AccessKey {
                path,
                profile,
                creds,
            } => fixed(CredentialSource::File { path, profile }, creds),
            FileProfile::EcsRamRole { role } => ecs(role),
        };
    }

    // 4. ECS RAM role, only when a role is named (settings or ALIBABA_CLOUD_ECS_METADATA).
    // Unlike the SDK we never probe the metadata service unprompted: off ECS a probe stalls
    // start-up and sends traffic to an address that is not ours.
    let role = [
        settings.ecs_role_name.trim(),
        env_value(env, ENV_ECS_ROLE).unwrap_or(""),
    ]
    .into_iter()
    .find(|r| !r.is_empty())
    .map(str::to_string);
    match role {
        Some(role) if !env_true(env, ENV_ECS_METADATA_DISABLED) => ecs(Some(role)),
        _ => Err(DbsError::new(
            DbsErrorKind::Permanent,
            "Credentials.NotFound",
            format!(
                "no credentials: set dbs.access_key_id/dbs.access_key_secret, \
                 {ENV_ACCESS_KEY_ID}/{ENV_ACCESS_KEY_SECRET}, a credentials file \
                 (~/.alibabacloud/credentials or {ENV_CREDENTIALS_FILE}), or name an ECS RAM \
                 role with dbs.ecs_role_name or {ENV_ECS_ROLE} (not disabled by \
                 {ENV_ECS_METADATA_DISABLED})"
            ),
        )),
    }
}

enum FileProfile {
    AccessKey {
        path: PathBuf,
        profile: String,
        creds: Credentials,
    },
    EcsRamRole {
        role: Option<String>,
    },
}

/// Step 3. `None` when there is no file at the default path (or no `default` profile
/// in it); an explicitly named file or profile that is missing is an error.
fn from_file(env: &HashMap<String, String>) -> Result<Option<FileProfile>, DbsError> {
    let explicit_path = env_value(env, ENV_CREDENTIALS_FILE).map(PathBuf::from);
    let path = match &explicit_path {
        Some(p) => p.clone(),
        None => match env_value(env, "HOME").or_else(|| env_value(env, "USERPROFILE")) {
            Some(home) => PathBuf::from(home)
                .join(".alibabacloud")
                .join("credentials"),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit_path.is_none() => {
            return Ok(None)
        }
        Err(e) => {
            return Err(chain_error(format!(
                "cannot read credentials file {} ({ENV_CREDENTIALS_FILE}): {e}",
                path.display()
            )))
        }
    };
    let explicit_profile = env_value(env, ENV_PROFILE);
    let profile = explicit_profile.unwrap_or("default").to_string();
    let sections = ini::parse(&text).map_err(|(line, rule)| {
        chain_error(format!(
            "credentials file {} line {line}: {rule}",
            path.display()
        ))
    })?;
    let Some(section) = sections.get(&profile) else {
        if explicit_profile.is_some() || explicit_path.is_some() {
            return Err(chain_error(format!(
                "credentials file {} has no profile [{profile}] ({ENV_PROFILE})",
                path.display()
            )));
        }
        return Ok(None);
    };
    let at = || format!("credentials file {} [{profile}]", path.display());
    let get = |key: &str| section.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    match get("type") {
        Some("access_key") => {
            let id = get("access_key_id")
                .ok_or_else(|| chain_error(format!("{}: access_key_id is missing", at())))?;
            let secret = get("access_key_secret")
                .ok_or_else(|| chain_error(format!("{}: access_key_secret is missing", at())))?;
            Ok(Some(FileProfile::AccessKey {
                creds: Credentials::access_key(id, secret),
                path,
                profile,
            }))
        }
        Some("ecs_ram_role") => Ok(Some(FileProfile::EcsRamRole {
            role: get("role_name").map(str::to_string),
        })),
        Some(other) => Err(chain_error(format!(
            "{}: type {other:?} is not supported (use access_key or ecs_ram_role)",
            at()
        ))),
        None => Err(chain_error(format!(
            "{}: type is missing (use type = access_key)",
            at()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn settings() -> DbsSettings {
        DbsSettings {
            endpoint: String::new(),
            endpoint_kind: Default::default(),
            rds_endpoint: String::new(),
            signature: Default::default(),
            access_key_id: String::new(),
            access_key_secret: SecretString::from(String::new()),
            security_token: SecretString::from(String::new()),
            ecs_metadata_url: "http://127.0.0.1:9".into(),
            ecs_role_name: String::new(),
            connect_timeout_ms: 1000,
            request_timeout_ms: 1000,
            calls_per_second_per_region: 10.0,
            burst: 1,
            recent_window_days: 7,
            allow_insecure_http: false,
        }
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    async fn resolve(
        s: &DbsSettings,
        e: &HashMap<String, String>,
    ) -> Result<(CredentialSource, Credentials), DbsError> {
        let chosen = resolve_chain(s, e, Arc::new(SystemClock))?;
        let creds = chosen.provider.credentials().await?;
        Ok((chosen.source, creds))
    }

    /// No file, no ECS: the environment is empty apart from what a test sets.
    fn isolated(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut e = env(&[
            ("HOME", "/nonexistent-home"),
            (ENV_ECS_METADATA_DISABLED, "true"),
        ]);
        e.extend(env(extra));
        e
    }

    #[tokio::test]
    async fn settings_win_over_environment() {
        let mut s = settings();
        s.access_key_id = "LTAIsettings".into();
        s.access_key_secret = SecretString::from("settings-secret".to_string());
        s.security_token = SecretString::from("settings-token".to_string());
        let e = isolated(&[
            (ENV_ACCESS_KEY_ID, "LTAIenv"),
            (ENV_ACCESS_KEY_SECRET, "env-secret"),
        ]);
        let (source, creds) = resolve(&s, &e).await.unwrap();
        assert_eq!(source, CredentialSource::Settings);
        assert_eq!(creds.access_key_id, "LTAIsettings");
        assert_eq!(creds.access_key_secret.expose_secret(), "settings-secret");
        assert_eq!(
            creds.security_token.unwrap().expose_secret(),
            "settings-token"
        );
    }

    #[tokio::test]
    async fn environment_with_and_without_token() {
        let e = isolated(&[
            (ENV_ACCESS_KEY_ID, "LTAIenv"),
            (ENV_ACCESS_KEY_SECRET, "env-secret"),
        ]);
        let (source, creds) = resolve(&settings(), &e).await.unwrap();
        assert_eq!(source, CredentialSource::Environment);
        assert_eq!(creds.access_key_secret.expose_secret(), "env-secret");
        assert!(creds.security_token.is_none());

        let e = isolated(&[
            (ENV_ACCESS_KEY_ID, "STS.env"),
            (ENV_ACCESS_KEY_SECRET, "env-secret"),
            (ENV_SECURITY_TOKEN, "env-token"),
        ]);
        let (_, creds) = resolve(&settings(), &e).await.unwrap();
        assert_eq!(creds.security_token.unwrap().expose_secret(), "env-token");

        let e = isolated(&[(ENV_ACCESS_KEY_ID, "LTAIenv")]);
        let err = resolve(&settings(), &e).await.unwrap_err();
        assert!(err.message.contains(ENV_ACCESS_KEY_SECRET), "{err}");
    }

    #[tokio::test]
    async fn half_configured_settings_are_an_error() {
        let mut s = settings();
        s.access_key_id = "LTAIonly".into();
        let err = resolve(&s, &isolated(&[])).await.unwrap_err();
        assert!(err.message.contains("dbs.access_key_secret"), "{err}");
    }

    fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const FILE: &str = "\
# comment
[default]
type = access_key
access_key_id = LTAIdefault
access_key_secret = default-secret

[prod]
type = access_key
access_key_id = \"LTAIprod\"
access_key_secret = prod-secret

[broken]
type = access_key
access_key_id = LTAIbroken

[role]
type = ecs_ram_role
role_name = MyRole

[arn]
type = ram_role_arn
";

    #[tokio::test]
    async fn credentials_file_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, "credentials", FILE);
        let p = path.to_str().unwrap();

        let (source, creds) = resolve(&settings(), &isolated(&[(ENV_CREDENTIALS_FILE, p)]))
            .await
            .unwrap();
        assert_eq!(
            source,
            CredentialSource::File {
                path: path.clone(),
                profile: "default".into()
            }
        );
        assert_eq!(creds.access_key_id, "LTAIdefault");
        assert_eq!(creds.access_key_secret.expose_secret(), "default-secret");

        let e = isolated(&[(ENV_CREDENTIALS_FILE, p), (ENV_PROFILE, "prod")]);
        let (_, creds) = resolve(&settings(), &e).await.unwrap();
        assert_eq!(creds.access_key_id, "LTAIprod");
        assert_eq!(creds.access_key_secret.expose_secret(), "prod-secret");

        let e = isolated(&[(ENV_CREDENTIALS_FILE, p), (ENV_PROFILE, "broken")]);
        let err = resolve(&settings(), &e).await.unwrap_err();
        assert!(
            err.message.contains("access_key_secret is missing"),
            "{err}"
        );

        let e = isolated(&[(ENV_CREDENTIALS_FILE, p), (ENV_PROFILE, "arn")]);
        let err = resolve(&settings(), &e).await.unwrap_err();
        assert!(err.message.contains("not supported"), "{err}");

        let e = isolated(&[(ENV_CREDENTIALS_FILE, p), (ENV_PROFILE, "nope")]);
        let err = resolve(&settings(), &e).await.unwrap_err();
        assert!(err.message.contains("no profile [nope]"), "{err}");

        // An ecs_ram_role profile hands over to the metadata step with its role name.
        let e = env(&[(ENV_CREDENTIALS_FILE, p), (ENV_PROFILE, "role")]);
        let chosen = resolve_chain(&settings(), &e, Arc::new(SystemClock)).unwrap();
        assert_eq!(
            chosen.source,
            CredentialSource::EcsRamRole {
                base_url: "http://127.0.0.1:9".into(),
                role: Some("MyRole".into())
            }
        );

        // The environment still wins over the file.
        let e = isolated(&[
            (ENV_CREDENTIALS_FILE, p),
            (ENV_ACCESS_KEY_ID, "LTAIenv"),
            (ENV_ACCESS_KEY_SECRET, "s"),
        ]);
        assert_eq!(
            resolve(&settings(), &e).await.unwrap().0,
            CredentialSource::Environment
        );
    }

    #[tokio::test]
    async fn default_file_under_home() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".alibabacloud")).unwrap();
        write_file(&dir, ".alibabacloud/credentials", FILE);
        let e = env(&[
            ("HOME", dir.path().to_str().unwrap()),
            (ENV_ECS_METADATA_DISABLED, "true"),
        ]);
        let (_, creds) = resolve(&settings(), &e).await.unwrap();
        assert_eq!(creds.access_key_id, "LTAIdefault");
        // A named file that does not exist is an error, a missing default file is not.
        let e = isolated(&[(ENV_CREDENTIALS_FILE, "/nonexistent/credentials")]);
        assert!(resolve(&settings(), &e)
            .await
            .unwrap_err()
            .message
            .contains("cannot read"));
    }

    #[tokio::test]
    async fn nothing_configured() {
        let err = resolve(&settings(), &isolated(&[])).await.unwrap_err();
        assert_eq!(err.code, "Credentials.NotFound");
        // Without a named role the chain never probes the metadata service.
        let e = env(&[("HOME", "/nonexistent-home")]);
        let err = resolve_chain(&settings(), &e, Arc::new(SystemClock)).unwrap_err();
        assert_eq!(err.code, "Credentials.NotFound");
        // A named role ends the chain at the ECS step.
        let e = env(&[("HOME", "/nonexistent-home"), (ENV_ECS_ROLE, "archiver")]);
        let chosen = resolve_chain(&settings(), &e, Arc::new(SystemClock)).unwrap();
        assert!(matches!(
            chosen.source,
            CredentialSource::EcsRamRole { role: Some(_), .. }
        ));
    }

    #[test]
    fn secrets_never_print() {
        let creds = Credentials::access_key("LTAIid", "super-secret-value")
            .with_token(Some("super-token-value"));
        let shown = format!("{creds:?}");
        assert!(shown.contains("LTAIid"));
        assert!(!shown.contains("super-secret-value"));
        assert!(!shown.contains("super-token-value"));
        let shown = format!("{:?}", StaticCredentials(creds));
        assert!(!shown.contains("super-secret-value"));
    }
}

//! The credentials chain (dbs-api.md §9): explicit settings, environment, the
//! `~/.alibabacloud/credentials` file, the ECS RAM role. Secrets stay in `SecretString`.

use super::DbsError;
use async_trait::async_trait;
use secrecy::SecretString;

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

/// Where credentials come from; refreshing providers cache and renew internally.
#[async_trait]
pub trait CredentialsProvider: Send + Sync + std::fmt::Debug {
    async fn credentials(&self) -> Result<Credentials, DbsError>;
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

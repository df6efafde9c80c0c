//! Bearer-token authentication with two roles.
//!
//! Tokens come from `api.tokens`. Each presented token is hashed and compared against the
//! hash of every configured token in constant time (`subtle`), always walking the whole
//! list, so neither the content nor the position of a token leaks through timing. Hashing
//! first also hides the configured tokens' lengths. `read` tokens may call safe methods
//! (GET/HEAD); everything else needs `admin`.

use super::error::{ApiError, AuthFailure};
use super::ApiState;
use crate::config::{ApiToken, Role};
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The configured tokens, kept only as SHA-256 digests.
#[derive(Clone)]
pub struct Auth {
    tokens: Vec<([u8; 32], Role)>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Auth {
    pub fn new(tokens: &[ApiToken]) -> Self {
        Self {
            tokens: tokens
                .iter()
                .map(|t| (digest(t.token.expose_secret().as_bytes()), t.role))
                .collect(),
        }
    }

    /// True when no token is configured: nobody can call the API or sign in.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The role of `presented`, or `None` when it matches no configured token.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        let d = digest(presented.as_bytes());
        let mut found: Option<Role> = None;
        for (candidate, role) in &self.tokens {
            // No early exit: every candidate is compared.
            if bool::from(candidate.ct_eq(&d)) && found.is_none() {
                found = Some(*role);
            }
        }
        found
    }

    /// Check the request's `Authorization` header for `method`.
    pub fn check(
        &self,
        headers: &axum::http::HeaderMap,
        method: &Method,
    ) -> Result<Role, ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then_some(token.trim())
            })
            .ok_or(ApiError::Unauthorized(AuthFailure::Missing))?;
        let role = self
            .role_of(presented)
            .ok_or(ApiError::Unauthorized(AuthFailure::Invalid))?;
        let write = !matches!(*method, Method::GET | Method::HEAD);
        if write && role != Role::Admin {
            return Err(ApiError::Forbidden);
        }
        Ok(role)
    }
}

/// Routes that may be open, depending on settings.
fn is_open(state: &ApiState, path: &str) -> bool {
    match path {
        "/healthz" | "/readyz" | "/metrics" => state.settings.open_health,
        // The console checks its own session cookie (a browser sends no bearer header).
        p if p == "/" || p == "/ui" || p.starts_with("/ui/") => true,
        // The API description holds no data; clients and fuzzers fetch it before they
        // have a token.
        "/v1/openapi.json" => true,
        _ => false,
    }
}

/// Middleware: reject the request unless it is open or carries a sufficient token.
pub async fn require_token(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if is_open(&state, req.uri().path()) {
        return next.run(req).await;
    }
    match state.auth.check(req.headers(), req.method()) {
        Ok(_) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};
    use secrecy::SecretString;

    fn auth() -> Auth {
        Auth::new(&[
            ApiToken {
                token: SecretString::from("admin-token-0123456789"),
                role: Role::Admin,
            },
            ApiToken {
                token: SecretString::from("read-token-0123456789"),
                role: Role::Read,
            },
        ])
    }

    fn bearer(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn roles_and_methods() {
        let a = auth();
        assert_eq!(
            a.check(&bearer("Bearer admin-token-0123456789"), &Method::POST)
                .unwrap(),
            Role::Admin
        );
        assert_eq!(
            a.check(&bearer("bearer read-token-0123456789"), &Method::GET)
                .unwrap(),
            Role::Read
        );
        assert!(matches!(
            a.check(&bearer("Bearer read-token-0123456789"), &Method::DELETE),
            Err(ApiError::Forbidden)
        ));
        assert!(matches!(
            a.check(&bearer("Bearer read-token-012345678"), &Method::GET),
            Err(ApiError::Unauthorized(AuthFailure::Invalid))
        ));
        assert!(matches!(
            a.check(&bearer("Basic read-token-0123456789"), &Method::GET),
            Err(ApiError::Unauthorized(AuthFailure::Missing))
        ));
        assert!(matches!(
            a.check(&HeaderMap::new(), &Method::GET),
            Err(ApiError::Unauthorized(AuthFailure::Missing))
        ));
    }

    #[test]
    fn debug_shows_no_token() {
        assert!(!format!("{:?}", auth()).contains("admin-token"));
    }
}

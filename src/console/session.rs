//! Console sign-in: an API token (from `api.tokens`) entered once on a form buys a session
//! cookie, because a browser cannot send a bearer header.
//!
//! The cookie holds a random 256-bit id (`HttpOnly`, `SameSite=Strict`, `Path=/ui`); the
//! server keeps only its SHA-256, the role and a random CSRF token, in memory, until the
//! session expires (`console.session_minutes`) or the user signs out. Every state-changing
//! request must carry the session's CSRF token in a form field, compared in constant
//! time, and a cross-site `Origin` is refused outright. The token itself is never stored,
//! logged or echoed back. Sessions live in the process: a restart signs everyone out.

use super::html::{self, esc, PageError};
use crate::api::ApiState;
use crate::config::Role;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

/// Allowed `console.session_minutes`: a minute to a week.
pub const SESSION_MINUTES: RangeInclusive<u32> = 1..=7 * 24 * 60;

/// Name of the session cookie.
pub const COOKIE: &str = "dbsa_session";

#[derive(Debug, Clone)]
struct Session {
    role: Role,
    csrf: String,
    expires: DateTime<Utc>,
}

/// The signed-in sessions of this process, keyed by the SHA-256 of the cookie value.
pub struct Sessions {
    ttl: chrono::Duration,
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("ttl", &self.ttl).finish()
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(ttl: chrono::Duration) -> Self {
        Self {
            ttl,
            by_hash: Mutex::new(HashMap::new()),
        }
    }

    /// Start a session; returns the cookie value. Expired sessions are dropped here.
    fn open(&self, role: Role, now: DateTime<Utc>) -> String {
        let id = random_hex();
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.expires > now);
        map.insert(
            hash(&id),
            Session {
                role,
                csrf: random_hex(),
                expires: now + self.ttl,
            },
        );
        id
    }

    fn get(&self, id: &str, now: DateTime<Utc>) -> Option<Session> {
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        let key = hash(id);
        match map.get(&key) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    fn close(&self, id: &str) {
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&hash(id));
    }
}

/// The signed-in user of a request. Extracting it redirects a browser to the sign-in page
/// (GET) or refuses (other methods) when there is no live session.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub role: Role,
    csrf: String,
    session_id: String,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The CSRF token to embed in this viewer's forms.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Permission to act: an admin session and the session's CSRF token.
    pub fn act(&self, presented_csrf: &str) -> Result<(), PageError> {
        let ok: bool = self.csrf.as_bytes().ct_eq(presented_csrf.as_bytes()).into();
        if !ok {
            return Err(PageError::Forbidden(
                "missing or wrong CSRF token: reload the page and try again".into(),
            ));
        }
        if !self.is_admin() {
            return Err(PageError::Forbidden(
                "this session may only read; sign in with an admin token to act".into(),
            ));
        }
        Ok(())
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// A state-changing request whose `Origin` names another site is refused (defence in
/// depth next to SameSite=Strict and the CSRF token).
fn cross_site(parts: &Parts) -> bool {
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return false;
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin = origin.to_str().unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
    origin_host != host
}

impl FromRequestParts<ApiState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        let now = state.clock.now();
        let session = cookie_value(&parts.headers)
            .and_then(|id| state.console.sessions.get(&id, now).map(|s| (id, s)));
        let safe = matches!(parts.method, Method::GET | Method::HEAD);
        if !safe && cross_site(parts) {
            return Err(PageError::Forbidden("cross-site request refused".into()).into_response());
        }
        match session {
            Some((session_id, s)) => Ok(Viewer {
                role: s.role,
                csrf: s.csrf,
                session_id,
            }),
            None if safe => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/ui/");
                let to = format!("/ui/login?next={}", html::url_encode(next));
                Err(Redirect::to(&to).into_response())
            }
            None => Err(PageError::Unauthorized.into_response()),
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    failed: Option<String>,
}

/// Only console paths are followed after sign-in (never another site).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.contains("//") && !n.contains('\\') => n,
        _ => "/ui/",
    }
}

/// `GET /ui/login`: the sign-in form.
pub async fn login_form(
    State(state): State<ApiState>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let mut body = String::new();
    if q.failed.is_some() {
        body.push_str(
            "<p class=\"flash error\" role=\"alert\">That token is not valid. \
             Use a token from <code>api.tokens</code>.</p>",
        );
    }
    if state.auth.is_empty() {
        body.push_str(
            "<p class=\"flash error\">No API token is configured (<code>api.tokens</code>), \
             so nobody can sign in.</p>",
        );
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/ui/login\" class=\"login\" id=\"login\">\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <label for=\"token\">API token</label>\
         <input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"current-password\" \
         required autofocus>\
         <button type=\"submit\">Sign in</button></form>\
         <p class=\"muted\">A <code>read</code> token can look; an <code>admin</code> token can \
         also retry, cancel, unblock and run schedules.</p>",
        next = esc(next),
    ));
    html::page(&state, None, "Sign in", "", &body, now_of(&state))
}

fn now_of(state: &ApiState) -> DateTime<Utc> {
    state.clock.now()
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /ui/login`: check the token, open a session, set the cookie.
pub async fn login(State(state): State<ApiState>, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref()).to_string();
    let Some(role) = state.auth.role_of(f.token.trim()) else {
        tracing::info!("console sign-in refused: unknown token");
        let to = format!("/ui/login?failed=1&next={}", html::url_encode(&next));
        return Redirect::to(&to).into_response();
    };
    let id = state.console.sessions.open(role, state.clock.now());
    tracing::info!(?role, "console sign-in");
    let max_age = state.console.sessions.ttl.num_seconds();
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}"),
        )],
        Redirect::to(&next),
    )
        .into_response()
}

/// A form that carries only the CSRF token (a missing field is an empty, wrong token).
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /ui/logout`: end the session and clear the cookie.
pub async fn logout(
    State(state): State<ApiState>,
    viewer: Viewer,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    // Signing out needs the CSRF token (so no other site can sign you out) but not admin.
    let ok: bool = viewer.csrf.as_bytes().ct_eq(f.csrf.as_bytes()).into();
    if !ok {
        return Err(PageError::Forbidden("missing or wrong CSRF token".into()));
    }
    state.console.sessions.close(&viewer.session_id);
    Ok((
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        Redirect::to("/ui/login"),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_close() {
        let s = Sessions::new(chrono::Duration::minutes(5));
        let t0 = Utc::now();
        let id = s.open(Role::Read, t0);
        assert_eq!(s.get(&id, t0).map(|x| x.role), Some(Role::Read));
        assert!(s.get("nope", t0).is_none());
        assert!(s.get(&id, t0 + chrono::Duration::minutes(6)).is_none());
        let id = s.open(Role::Admin, t0);
        s.close(&id);
        assert!(s.get(&id, t0).is_none());
    }

    #[test]
    fn only_console_paths_are_followed() {
        assert_eq!(
            safe_next(Some("/ui/jobs?state=failed")),
            "/ui/jobs?state=failed"
        );
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/");
        assert_eq!(safe_next(Some("/ui//evil.example")), "/ui/");
        assert_eq!(safe_next(Some("/v1/downloads")), "/ui/");
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn csrf_and_role_gate_actions() {
        let v = |role| Viewer {
            role,
            csrf: "abc".into(),
            session_id: "x".into(),
        };
        assert!(v(Role::Admin).act("abc").is_ok());
        assert!(v(Role::Admin).act("").is_err());
        assert!(v(Role::Admin).act("abd").is_err());
        assert!(v(Role::Read).act("abc").is_err());
    }
}

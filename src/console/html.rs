//! HTML building blocks shared by the pages: escaping, the page frame, formatting of times,
//! ages and sizes, and the one error page.
//!
//! Every value that comes from the database or the request goes through [`esc`]; the
//! Content-Security-Policy allows only our own stylesheet and script, so even a missed
//! escape could not run code.

use super::session::Viewer;
use crate::api::error::ApiError;
use crate::api::ApiState;
use crate::model::JobState;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// The console's Content-Security-Policy: our own CSS and script, same-origin fetches and
/// forms, nothing else.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// Escape text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a query value or path segment.
pub fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `2026-12-01 14:25:00` in a `<time>` element carrying the exact instant.
pub fn time(t: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        t.format("%Y-%m-%d %H:%M:%S")
    )
}

pub fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_else(|| "—".into())
}

/// A duration in the largest two units: `3 d 4 h`, `5 min 2 s`.
pub fn span(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, mins, secs) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, m) => format!("{m} min {secs} s"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// Bytes in binary units, one decimal.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n.max(0) as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn state_badge(s: JobState) -> String {
    format!("<span class=\"badge state-{0}\">{0}</span>", s.as_str())
}

/// `Some(text)` escaped, or an em dash.
pub fn opt(v: Option<impl ToString>) -> String {
    v.map(|v| esc(&v.to_string())).unwrap_or_else(|| "—".into())
}

/// A POST form with one button, carrying the CSRF token; only admins get it.
pub fn action_button(viewer: &Viewer, action: &str, label: &str, class: &str) -> String {
    if !viewer.is_admin() {
        return String::new();
    }
    format!(
        "<form method=\"post\" action=\"{action}\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" class=\"{class}\">{label}</button></form>",
        action = esc(action),
        csrf = esc(viewer.csrf()),
        label = esc(label),
        class = esc(class),
    )
}

const NAV: [(&str, &str); 4] = [
    ("/ui/", "Overview"),
    ("/ui/jobs", "Jobs"),
    ("/ui/instances", "Instances"),
    ("/ui/schedules", "Schedules"),
];

/// The page frame: head, navigation, who is signed in, the body, the live-update script.
pub fn page(
    _state: &ApiState,
    viewer: Option<&Viewer>,
    title: &str,
    active: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Response {
    let mut h = String::with_capacity(body.len() + 2048);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{title} · dbs-archiver</title>\
         <link rel=\"stylesheet\" href=\"/ui/assets/console.css\">\
         <script src=\"/ui/assets/console.js\" defer></script></head><body>\
         <header><a class=\"brand\" href=\"/ui/\">dbs-archiver</a><nav>",
        title = esc(title)
    );
    if viewer.is_some() {
        for (href, label) in NAV {
            let current = if label == active {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(h, "<a href=\"{href}\"{current}>{label}</a>");
        }
    }
    h.push_str("</nav><div class=\"who\">");
    if let Some(v) = viewer {
        let _ = write!(
            h,
            "<span class=\"role role-{role}\" id=\"role\">{role}</span>\
             <form method=\"post\" action=\"/ui/logout\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\" class=\"link\" id=\"logout\">Sign out</button></form>",
            role = if v.is_admin() { "admin" } else { "read" },
            csrf = esc(v.csrf()),
        );
    }
    let _ = writeln!(
        h,
        "</div></header><main><h1>{title}</h1>{body}</main>\
         <footer>Rendered <span id=\"updated\" data-live>{now}</span> UTC\
         <span id=\"live-status\"></span></footer></body></html>",
        title = esc(title),
        now = now.format("%Y-%m-%d %H:%M:%S"),
    );
    html_response(StatusCode::OK, h)
}

pub fn html_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        body,
    )
        .into_response()
}

/// A console request that went wrong, answered as a small HTML page with the right status.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("your session has ended; sign in again")]
    Unauthorized,
    /// Bad input: names the field and the rule.
    #[error("{field}: {rule}")]
    Invalid { field: String, rule: String },
    #[error("{0}")]
    Conflict(String),
    /// From the library (store, scheduler): classified like the API does.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl PageError {
    pub fn invalid(field: &str, rule: impl Into<String>) -> Self {
        PageError::Invalid {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        PageError::Api(e.into())
    }
}

impl From<crate::scheduler::SchedulerError> for PageError {
    fn from(e: crate::scheduler::SchedulerError) -> Self {
        PageError::Api(e.into())
    }
}

impl From<crate::model::ValidationError> for PageError {
    fn from(e: crate::model::ValidationError) -> Self {
        PageError::Invalid {
            field: e.field,
            rule: e.rule,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            PageError::NotFound(_) => (StatusCode::NOT_FOUND, self.to_string()),
            PageError::Forbidden(_) => (StatusCode::FORBIDDEN, self.to_string()),
            PageError::Unauthorized => (StatusCode::UNAUTHORIZED, self.to_string()),
            PageError::Invalid { .. } => (StatusCode::BAD_REQUEST, self.to_string()),
            PageError::Conflict(_) => (StatusCode::CONFLICT, self.to_string()),
            PageError::Api(ApiError::Internal(e)) => {
                tracing::error!(error = %crate::api::error::error_chain(e.as_ref()), "console request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the server log".to_string(),
                )
            }
            PageError::Api(e) => (e.status(), e.to_string()),
        };
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"color-scheme\" content=\"light dark\">\
             <title>{code} · dbs-archiver</title>\
             <link rel=\"stylesheet\" href=\"/ui/assets/console.css\"></head><body>\
             <main><h1>{code} {reason}</h1><p class=\"flash error\" id=\"error\">{message}</p>\
             <p><a href=\"/ui/\">Back to the console</a></p></main></body></html>\n",
            code = status.as_u16(),
            reason = status.canonical_reason().unwrap_or(""),
            message = esc(&message),
        );
        html_response(status, body)
    }
}

/// A query string from pairs, skipping empty values: `?a=1&b=x`.
pub fn query(pairs: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.push(if out.is_empty() { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&url_encode(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn formats() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(span(chrono::Duration::seconds(42)), "42 s");
        assert_eq!(span(chrono::Duration::seconds(3 * 3600 + 120)), "3 h 2 min");
        assert_eq!(span(chrono::Duration::hours(50)), "2 d 2 h");
        assert_eq!(
            query(&[("a", "1".into()), ("b", "".into()), ("c", "x y".into())]),
            "?a=1&c=x%20y"
        );
    }
}

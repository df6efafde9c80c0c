//! The operator console under `/ui/` (docs/console.md): server-rendered HTML pages over the
//! same library calls as the JSON API, with session sign-in and CSRF-protected actions.
//!
//! Every page has a stable URL whose query string holds its filters, so a view can be
//! shared. Pages are plain HTML with a strict Content-Security-Policy; one small script of
//! our own (`assets/console.js`, no build step) refreshes the parts marked `data-live`.
//! Charts are SVG drawn here. Reading needs a `read` session, acting an `admin` one plus
//! the session's CSRF token ([`session`]).

mod chart;
mod cron_words;
mod html;
mod instances;
mod jobs;
mod overview;
mod schedules;
pub mod session;

pub use session::{Sessions, SESSION_MINUTES};

use crate::api::ApiState;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::Router;
use html::PageError;

/// What the console keeps between requests: sessions and its settings.
#[derive(Debug)]
pub struct Console {
    pub sessions: Sessions,
    /// `console.freshness_hours` as a duration.
    pub freshness: chrono::Duration,
}

impl Console {
    pub fn new(settings: &crate::config::ConsoleSettings) -> Self {
        Self {
            sessions: Sessions::new(chrono::Duration::minutes(i64::from(
                settings.session_minutes,
            ))),
            freshness: chrono::Duration::hours(i64::from(settings.freshness_hours)),
        }
    }
}

/// The console's routes, merged into the API router (which leaves `/` and `/ui/…` to the
/// console's own session check).
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(overview::page))
        .route("/ui/login", get(session::login_form).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/assets/console.css", get(css))
        .route("/ui/assets/console.js", get(js))
        .route("/ui/jobs", get(jobs::list))
        .route("/ui/jobs/{id}", get(jobs::detail))
        .route("/ui/jobs/{id}/retry", post(jobs::retry))
        .route("/ui/jobs/{id}/cancel", post(jobs::cancel))
        .route("/ui/instances", get(instances::list))
        .route("/ui/instances/{region}/{instance}", get(instances::detail))
        .route(
            "/ui/instances/{region}/{instance}/unblock",
            post(instances::unblock),
        )
        .route(
            "/ui/instances/{region}/{instance}/tags",
            post(instances::set_tags),
        )
        .route("/ui/schedules", get(schedules::list))
        .route("/ui/schedules/{name}", get(schedules::detail))
        .route("/ui/schedules/{name}/preview", get(schedules::preview))
        .route("/ui/schedules/{name}/pause", post(schedules::pause))
        .route("/ui/schedules/{name}/resume", post(schedules::resume))
        .route("/ui/schedules/{name}/run-now", post(schedules::run_now))
        .route("/ui/{*rest}", any(not_found))
}

/// Unknown `/ui/…` paths are 404 whether or not one is signed in: the console's routes
/// are public knowledge, so hiding them behind a 401 would only confuse.
async fn not_found() -> PageError {
    PageError::NotFound("no such page".into())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
}

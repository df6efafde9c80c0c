//! `/ui/jobs` (filters in the query string, text search, sortable columns, keyset pages)
//! and `/ui/jobs/{id}` (request, remote task, timeline, errors, retry and cancel).

use super::html::{self, esc, opt, opt_time, state_badge, time, PageError};
use super::session::{CsrfForm, Viewer};
use crate::api::ApiState;
use crate::model::{Job, JobId, JobSource, JobState};
use crate::store::console::{JobCursor, JobQuery, JobSort, MAX_CONSOLE_PAGE};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use std::collections::HashMap;
use std::fmt::Write;

/// Query parameters `/ui/jobs` understands; anything else is refused by name.
const PARAMS: &[&str] = &[
    "state",
    "region",
    "instance",
    "schedule",
    "source",
    "error",
    "q",
    "created_from",
    "created_to",
    "finished_from",
    "finished_to",
    "sort",
    "dir",
    "after",
    "limit",
];

/// The raw query as a map; unknown or repeated keys are refused.
pub(super) fn parse_query(
    raw: Option<&str>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, PageError> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(PageError::invalid(
                &k,
                format!("unknown parameter; known: {}", allowed.join(", ")),
            ));
        }
        let v = v.trim().to_string();
        if out.insert(k.to_string(), v).is_some() {
            return Err(PageError::invalid(&k, "given more than once"));
        }
    }
    out.retain(|_, v| !v.is_empty());
    Ok(out)
}

/// `2026-12-01`, `2026-12-01T14:25` (what a datetime-local input sends, read as UTC) or
/// RFC 3339.
fn parse_time(field: &str, s: &str) -> Result<DateTime<Utc>, PageError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(PageError::invalid(
        field,
        "must be a date (2026-12-01), a UTC date and time (2026-12-01T14:25) or RFC 3339",
    ))
}

fn text_param(
    q: &HashMap<String, String>,
    field: &str,
    max: usize,
) -> Result<Option<String>, PageError> {
    match q.get(field) {
        Some(v) if v.chars().count() > max => Err(PageError::invalid(
            field,
            format!("must be at most {max} characters"),
        )),
        v => Ok(v.cloned()),
    }
}

/// Read `/ui/jobs`'s query into a [`JobQuery`]; every error names the parameter.
async fn job_query(state: &ApiState, q: &HashMap<String, String>) -> Result<JobQuery, PageError> {
    let id_max = *crate::model::bounds::IDENTIFIER_LEN.end();
    let mut f = JobQuery {
        region: text_param(q, "region", id_max)?,
        instance: text_param(q, "instance", id_max)?,
        error_code: text_param(q, "error", id_max)?,
        search: text_param(q, "q", id_max)?,
        ..JobQuery::default()
    };
    if let Some(s) = q.get("state") {
        f.state = Some(s.parse::<JobState>().map_err(|_| {
            PageError::invalid("state", format!("must be one of {}", state_names()))
        })?);
    }
    if let Some(s) = q.get("source") {
        f.source = Some(s.parse::<JobSource>()?);
    }
    if let Some(s) = q.get("schedule") {
        let schedule = crate::scheduler::ops::get(state.store.as_ref(), s)
            .await
            .map_err(|_| PageError::invalid("schedule", format!("no schedule named {s:?}")))?;
        f.schedule_id = Some(schedule.id);
    }
    for (field, slot) in [
        ("created_from", &mut f.created_from),
        ("created_to", &mut f.created_to),
        ("finished_from", &mut f.finished_from),
        ("finished_to", &mut f.finished_to),
    ] {
        if let Some(s) = q.get(field) {
            *slot = Some(parse_time(field, s)?);
        }
    }
    if let Some(s) = q.get("sort") {
        f.sort = JobSort::parse(s)
            .ok_or_else(|| PageError::invalid("sort", "must be one of id, instance, finished"))?;
    }
    f.ascending = match q.get("dir").map(String::as_str) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(PageError::invalid("dir", "must be asc or desc")),
    };
    if let Some(s) = q.get("after") {
        f.after = Some(JobCursor::decode(f.sort, s).ok_or_else(|| {
            PageError::invalid("after", "is not a page cursor of this sort order")
        })?);
    }
    if let Some(s) = q.get("limit") {
        f.limit = s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_CONSOLE_PAGE).contains(n))
            .ok_or_else(|| {
                PageError::invalid("limit", format!("must be 1 to {MAX_CONSOLE_PAGE}"))
            })?;
    }
    Ok(f)
}

fn state_names() -> String {
    JobState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The link to an instance's page.
pub(super) fn instance_link(region: &str, instance: &str) -> String {
    format!(
        "<a href=\"/ui/instances/{}/{}\">{}</a>",
        html::url_encode(region),
        html::url_encode(instance),
        esc(instance)
    )
}

/// The jobs table shared by the job list and the instance page.
pub(super) fn jobs_table(jobs: &[Job], header: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<div class=\"scroll\"><table id=\"jobs\" class=\"jobs\"><thead><tr>{header}</tr></thead><tbody>"
    );
    for j in jobs {
        let size = j
            .remote
            .export_data_size
            .map(html::bytes)
            .unwrap_or_else(|| "—".into());
        let error = match &j.last_error {
            Some(e) => format!(
                "<span class=\"err\" title=\"{full}\"><code>{code}</code> {msg}</span>",
                full = esc(&format!("{}: {}", e.code, e.message)),
                code = esc(&e.code),
                msg = esc(&e.message),
            ),
            None => "—".into(),
        };
        let _ = write!(
            h,
            "<tr data-job=\"{id}\" data-state=\"{state}\"><td><a href=\"/ui/jobs/{id}\">#{id}</a></td>\
             <td>{inst}<div class=\"muted\">{region}</div></td><td>{badge}</td><td>{source}</td>\
             <td>{created}</td><td>{finished}</td><td>{att}/{max}</td><td><code>{task}</code></td>\
             <td class=\"num\">{size}</td><td class=\"error-cell\">{error}</td></tr>",
            id = j.id,
            state = j.state.as_str(),
            inst = instance_link(&j.request.region, &j.request.instance),
            region = esc(&j.request.region),
            badge = state_badge(j.state),
            source = j.source.as_str(),
            created = time(j.created_at),
            finished = opt_time(j.finished_at),
            att = j.attempts,
            max = j.max_attempts,
            task = opt(j.remote.task_id.as_deref()),
        );
    }
    h.push_str("</tbody></table></div>");
    if jobs.is_empty() {
        h.push_str("<p class=\"empty\" id=\"jobs-empty\">No jobs match.</p>");
    }
    h
}

/// Plain column headers (no sorting), for embedded job tables.
pub(super) const PLAIN_HEADER: &str = "<th>id</th><th>instance</th><th>state</th><th>source</th>\
    <th>created</th><th>finished</th><th>attempts</th><th>task</th><th>size</th><th>last error</th>";

fn select(name: &str, current: Option<&String>, options: &[&str]) -> String {
    let mut s = format!("<select name=\"{name}\" id=\"f-{name}\"><option value=\"\">any</option>");
    for o in options {
        let sel = if current.map(String::as_str) == Some(*o) {
            " selected"
        } else {
            ""
        };
        let _ = write!(s, "<option value=\"{o}\"{sel}>{o}</option>");
    }
    s.push_str("</select>");
    s
}

fn input(name: &str, label: &str, kind: &str, q: &HashMap<String, String>) -> String {
    format!(
        "<label>{label}<input type=\"{kind}\" name=\"{name}\" id=\"f-{name}\" value=\"{v}\"></label>",
        v = esc(q.get(name).map(String::as_str).unwrap_or(""))
    )
}

/// `GET /ui/jobs`.
pub async fn list(
    State(state): State<ApiState>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let q = parse_query(raw.as_deref(), PARAMS)?;
    let f = job_query(&state, &q).await?;
    let page = state.store.console_jobs(&f).await?;

    let mut h = String::new();
    // Filters: a GET form, so the URL is the view.
    let states: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
    let _ = write!(
        h,
        "<form method=\"get\" action=\"/ui/jobs\" class=\"filters\" id=\"filters\">\
         <label>state{state}</label>{search}{region}{instance}{schedule}\
         <label>source{source}</label>{error}{cf}{ct}{ff}{ft}\
         <input type=\"hidden\" name=\"sort\" value=\"{sort}\">\
         <input type=\"hidden\" name=\"dir\" value=\"{dir}\">\
         <button type=\"submit\" id=\"apply\">Filter</button> <a href=\"/ui/jobs\">Clear</a></form>",
        state = select("state", q.get("state"), &states),
        search = input("q", "instance or task id", "search", &q),
        region = input("region", "region", "text", &q),
        instance = input("instance", "instance", "text", &q),
        schedule = input("schedule", "schedule", "text", &q),
        source = select("source", q.get("source"), &["api", "cli", "sql", "schedule"]),
        error = input("error", "error code", "text", &q),
        cf = input("created_from", "created from", "datetime-local", &q),
        ct = input("created_to", "created before", "datetime-local", &q),
        ff = input("finished_from", "finished from", "datetime-local", &q),
        ft = input("finished_to", "finished before", "datetime-local", &q),
        sort = f.sort.as_str(),
        dir = if f.ascending { "asc" } else { "desc" },
    );

    // Sortable headers keep every filter and start from the first page.
    let keep: Vec<(&str, String)> = PARAMS
        .iter()
        .filter(|k| !matches!(**k, "sort" | "dir" | "after"))
        .filter_map(|k| q.get(*k).map(|v| (*k, v.clone())))
        .collect();
    let sort_link = |sort: JobSort, label: &str| {
        let (dir, arrow) = match (f.sort == sort, f.ascending) {
            (true, false) => ("asc", " ▼"),
            (true, true) => ("desc", " ▲"),
            (false, _) => ("desc", ""),
        };
        let mut p = keep.clone();
        p.push(("sort", sort.as_str().to_string()));
        p.push(("dir", dir.to_string()));
        format!(
            "<th><a href=\"/ui/jobs{}\" class=\"sort\" id=\"sort-{}\">{label}{arrow}</a></th>",
            esc(&html::query(&p)),
            sort.as_str()
        )
    };
    let header = format!(
        "{}{}<th>state</th><th>source</th><th>created</th>{}<th>attempts</th><th>task</th>\
         <th>size</th><th>last error</th>",
        sort_link(JobSort::Id, "id"),
        sort_link(JobSort::Instance, "instance"),
        sort_link(JobSort::Finished, "finished"),
    );
    h.push_str("<section id=\"job-list\" data-live>");
    h.push_str(&jobs_table(&page.jobs, &header));
    h.push_str("<nav class=\"pager\">");
    if f.after.is_some() {
        let mut p = keep.clone();
        p.push(("sort", f.sort.as_str().to_string()));
        p.push(("dir", if f.ascending { "asc" } else { "desc" }.to_string()));
        let _ = write!(
            h,
            "<a href=\"/ui/jobs{}\" id=\"first-page\">« First page</a>",
            esc(&html::query(&p))
        );
    }
    if let Some(next) = &page.next {
        let mut p = keep.clone();
        p.push(("sort", f.sort.as_str().to_string()));
        p.push(("dir", if f.ascending { "asc" } else { "desc" }.to_string()));
        p.push(("after", next.encode()));
        let _ = write!(
            h,
            "<a href=\"/ui/jobs{}\" id=\"next-page\" rel=\"next\">Next page »</a>",
            esc(&html::query(&p))
        );
    }
    h.push_str("</nav></section>");
    Ok(html::page(
        &state,
        Some(&viewer),
        "Jobs",
        "Jobs",
        &h,
        state.clock.now(),
    ))
}

fn parse_id(s: &str) -> Result<JobId, PageError> {
    s.parse::<JobId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| PageError::NotFound(format!("no job {s:?}")))
}

async fn load(state: &ApiState, id: &str) -> Result<Job, PageError> {
    let id = parse_id(id)?;
    state
        .store
        .job_get(id)
        .await?
        .ok_or_else(|| PageError::NotFound(format!("no job {id}")))
}

fn row(h: &mut String, k: &str, v: String) {
    let _ = write!(h, "<tr><th>{}</th><td>{v}</td></tr>", esc(k));
}

/// `GET /ui/jobs/{id}`.
pub async fn detail(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let q = parse_query(raw.as_deref(), &["done"])?;
    let job = load(&state, &id).await?;
    let events = state.store.event_list(job.id).await?;
    let now = state.clock.now();
    let mut h = String::new();

    if let Some(done) = q.get("done") {
        let _ = write!(
            h,
            "<p class=\"flash ok\" role=\"status\" id=\"flash\">Job {}.</p>",
            esc(done)
        );
    }
    let _ = write!(
        h,
        "<section id=\"summary\" data-live><p class=\"summary\">{badge} on {inst} \
         <span class=\"muted\">({region})</span>, attempt {att} of {max}, from {source}",
        badge = state_badge(job.state),
        inst = super::jobs::instance_link(&job.request.region, &job.request.instance),
        region = esc(&job.request.region),
        att = job.attempts,
        max = job.max_attempts,
        source = job.source.as_str(),
    );
    if let Some(sid) = job.schedule_id {
        if let Ok(s) = crate::scheduler::ops::get(state.store.as_ref(), &sid.to_string()).await {
            let _ = write!(
                h,
                " (schedule <a href=\"/ui/schedules/{}\">{}</a>)",
                html::url_encode(&s.spec.name),
                esc(&s.spec.name)
            );
        }
    }
    h.push_str("</p><div class=\"actions\" id=\"actions\">");
    if matches!(job.state, JobState::Failed | JobState::Cancelled) {
        h.push_str(&html::action_button(
            &viewer,
            &format!("/ui/jobs/{}/retry", job.id),
            "Retry",
            "primary",
        ));
    }
    if job.state == JobState::Queued {
        h.push_str(&html::action_button(
            &viewer,
            &format!("/ui/jobs/{}/cancel", job.id),
            "Cancel",
            "danger",
        ));
    }
    h.push_str("</div>");

    // Errors first: they are why an operator opens a job.
    if let Some(e) = &job.last_error {
        let _ = write!(
            h,
            "<div class=\"errorbox\" id=\"last-error\"><strong><code>{}</code></strong>\
             <pre>{}</pre><div class=\"muted\">cloud request id: <code>{}</code></div></div>",
            esc(&e.code),
            esc(&e.message),
            opt(e.request_id.as_deref())
        );
    }
    h.push_str("</section><div class=\"grid2\">");

    // The request, every parameter.
    h.push_str("<section><h2>Request</h2><table class=\"kv\" id=\"request\">");
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&job.request) {
        for (k, v) in m {
            let text = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => esc(&s),
                other => esc(&other.to_string()),
            };
            row(&mut h, &k, format!("<code>{text}</code>"));
        }
    }
    row(&mut h, "priority", job.priority.to_string());
    row(&mut h, "run_at", time(job.run_at));
    row(
        &mut h,
        "idempotency_key",
        opt(job.idempotency_key.as_deref()),
    );
    row(&mut h, "fire_time", opt_time(job.fire_time));
    row(&mut h, "created", time(job.created_at));
    row(&mut h, "started", opt_time(job.started_at));
    row(&mut h, "finished", opt_time(job.finished_at));
    h.push_str("</table></section>");

    // The remote task.
    let r = &job.remote;
    h.push_str(
        "<section id=\"remote-section\" data-live><h2>Remote task</h2><table class=\"kv\" id=\"remote\">",
    );
    row(
        &mut h,
        "task id",
        format!("<code>{}</code>", opt(r.task_id.as_deref())),
    );
    row(&mut h, "status", opt(r.status.as_deref()));
    let progress = match r.progress.as_deref().and_then(parse_progress) {
        Some((done, total)) => {
            format!("<progress max=\"{total}\" value=\"{done}\"></progress> {done}/{total} tables")
        }
        None => opt(r.progress.as_deref()),
    };
    row(&mut h, "progress", progress);
    row(
        &mut h,
        "exported",
        r.export_data_size
            .map(html::bytes)
            .unwrap_or_else(|| "—".into()),
    );
    row(
        &mut h,
        "imported",
        r.import_data_size
            .map(html::bytes)
            .unwrap_or_else(|| "—".into()),
    );
    row(&mut h, "polls", job.polls.to_string());
    match &r.download_url {
        Some(url) => {
            let expiry = match r.download_url_expires_at {
                Some(t) if t <= now => format!("expired {} ago", html::span(now - t)),
                Some(t) => format!("expires in {} ({})", html::span(t - now), time(t)),
                None => "no expiry given".into(),
            };
            row(
                &mut h,
                "download",
                format!(
                    "<a href=\"{u}\" rel=\"noreferrer\" class=\"url\">{u}</a><div class=\"muted\">{expiry}</div>",
                    u = esc(url)
                ),
            );
        }
        None => row(&mut h, "download", "—".into()),
    }
    h.push_str("</table></section></div>");

    // The archive of a URL download with a sink (docs/archives.md): fetch progress, then
    // where it is kept, its size and checksum. The signed link itself is never shown.
    if let Some(a) = state.store.archive_get_by_job(job.id).await? {
        h.push_str(
            "<section id=\"archive-section\" data-live><h2>Archive</h2><table class=\"kv\" id=\"archive\">",
        );
        row(&mut h, "sink", format!("<code>{}</code>", esc(&a.sink)));
        row(&mut h, "state", esc(a.state.as_str()));
        let fetched = match a.expected_size.filter(|n| *n > 0) {
            Some(total) => format!(
                "<progress max=\"{total}\" value=\"{done}\"></progress> {} of {}",
                html::bytes(a.bytes_done),
                html::bytes(total),
                done = a.bytes_done.min(total),
            ),
            None => html::bytes(a.bytes_done),
        };
        row(&mut h, "fetched", fetched);
        row(
            &mut h,
            "object",
            format!("<code>{}</code>", esc(&a.object_name)),
        );
        row(&mut h, "location", opt(a.location.as_deref()));
        row(
            &mut h,
            "size",
            a.size.map(html::bytes).unwrap_or_else(|| "—".into()),
        );
        row(
            &mut h,
            "sha256",
            format!("<code>{}</code>", opt(a.sha256.as_deref())),
        );
        row(
            &mut h,
            "attempts",
            format!("{} of {}", a.attempts, a.max_attempts),
        );
        if let Some(code) = &a.last_error_code {
            row(
                &mut h,
                "last error",
                format!(
                    "<code>{}</code> {}",
                    esc(code),
                    esc(a.last_error.as_deref().unwrap_or(""))
                ),
            );
        }
        row(&mut h, "stored", opt_time(a.stored_at));
        h.push_str("</table></section>");
    }

    // History as a timeline, oldest first.
    h.push_str(
        "<section id=\"history\" data-live><h2>History</h2><ol class=\"timeline\" id=\"timeline\">",
    );
    for e in &events {
        let _ = write!(
            h,
            "<li data-to=\"{to}\"><div class=\"when\">{at}</div><div>{from}{badge} \
             <span class=\"why\">{why}</span>{req}</div></li>",
            to = e.to_state.as_str(),
            at = time(e.at),
            from = e
                .from_state
                .map(|s| format!("{} → ", s.as_str()))
                .unwrap_or_default(),
            badge = state_badge(e.to_state),
            why = esc(&e.reason),
            req = e
                .request_id
                .as_deref()
                .map(|r| format!(
                    " <span class=\"muted\">request id <code>{}</code></span>",
                    esc(r)
                ))
                .unwrap_or_default(),
        );
    }
    h.push_str("</ol></section>");
    Ok(html::page(
        &state,
        Some(&viewer),
        &format!("Job #{}", job.id),
        "Jobs",
        &h,
        now,
    ))
}

/// DBS `Progress` is "tables done/total"; `None` when it is absent or not of that form.
pub fn parse_progress(s: &str) -> Option<(u64, u64)> {
    let (done, total) = s.trim().split_once('/')?;
    let done = done.trim().parse::<u64>().ok()?;
    let total = total.trim().parse::<u64>().ok()?;
    (total > 0 && done <= total).then_some((done, total))
}

/// `POST /ui/jobs/{id}/retry`: failed or cancelled ⇒ queued (the API's `job_retry`).
pub async fn retry(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    viewer.act(&f.csrf)?;
    let before = load(&state, &id).await?;
    let conflict = |j: &Job| {
        PageError::Conflict(format!(
            "job {} is {}; only failed or cancelled jobs can be retried",
            j.id, j.state
        ))
    };
    if !matches!(before.state, JobState::Failed | JobState::Cancelled) {
        return Err(conflict(&before));
    }
    let job = state
        .store
        .job_retry(before.id, "retried through the console")
        .await?
        .ok_or_else(|| PageError::NotFound(format!("no job {}", before.id)))?;
    if job.state != JobState::Queued {
        return Err(conflict(&job));
    }
    tracing::info!(job.id = job.id, "job retried through the console");
    Ok(Redirect::to(&format!("/ui/jobs/{}?done=retried", job.id)).into_response())
}

/// `POST /ui/jobs/{id}/cancel`: queued ⇒ cancelled (the API's `job_cancel`).
pub async fn cancel(
    State(state): State<ApiState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    viewer.act(&f.csrf)?;
    let id = parse_id(&id)?;
    let job = state
        .store
        .job_cancel(id, "cancelled through the console")
        .await?
        .ok_or_else(|| PageError::NotFound(format!("no job {id}")))?;
    if job.state != JobState::Cancelled {
        return Err(PageError::Conflict(format!(
            "job {id} is {}; only queued jobs can be cancelled",
            job.state
        )));
    }
    tracing::info!(job.id = id, "job cancelled through the console");
    Ok(Redirect::to(&format!("/ui/jobs/{id}?done=cancelled")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_forms() {
        assert_eq!(parse_progress("3/10"), Some((3, 10)));
        assert_eq!(parse_progress(" 0 / 4 "), Some((0, 4)));
        assert_eq!(parse_progress("5/0"), None);
        assert_eq!(parse_progress("11/10"), None);
        assert_eq!(parse_progress("abc"), None);
    }

    #[test]
    fn times_in_three_forms() {
        let t = parse_time("x", "2026-12-01T14:25").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-01T14:25:00+00:00");
        assert_eq!(
            parse_time("x", "2026-12-01").unwrap().to_rfc3339(),
            "2026-12-01T00:00:00+00:00"
        );
        assert!(parse_time("x", "2026-12-01T14:25:00+08:00").is_ok());
        let e = parse_time("created_from", "yesterday").unwrap_err();
        assert!(e.to_string().starts_with("created_from:"), "{e}");
    }

    #[test]
    fn unknown_and_repeated_parameters_are_named() {
        let e = parse_query(Some("stat=failed"), PARAMS).unwrap_err();
        assert!(e.to_string().starts_with("stat:"), "{e}");
        let e = parse_query(Some("state=a&state=b"), PARAMS).unwrap_err();
        assert!(e.to_string().contains("more than once"), "{e}");
        let q = parse_query(Some("state=&q=rm-1"), PARAMS).unwrap();
        assert_eq!(q.len(), 1);
    }
}

//! The console over HTTP on both backends: redirects, sign-in, cookie flags, sessions that
//! end, CSRF and roles on every action, 404s, input errors that name the field, and no
//! secret in any response.

use super::store::fixture;
use super::{spawn_console, ConsoleApp};
use crate::api::{ADMIN_TOKEN, READ_TOKEN};
use crate::helpers::db::{both_backends, TestDb};
use dbs_archiver::model::{InstanceKey, JobState};
use dbs_archiver::store::BlockInstance;

async fn state_of(app: &ConsoleApp, id: i64) -> JobState {
    app.db.store.job_get(id).await.unwrap().unwrap().state
}

async fn console_sign_in_sessions_and_roles(db: TestDb) {
    let app = spawn_console(db, |s| s.console.session_minutes = 30).await;

    // `/` and `/ui` lead to the console; pages need a session; unknown pages are 404.
    assert_eq!(app.get("/", None).await.location(), "/ui/");
    assert_eq!(app.get("/ui", None).await.location(), "/ui/");
    let r = app.get("/ui/jobs?state=failed", None).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), "/ui/login?next=%2Fui%2Fjobs%3Fstate%3Dfailed");
    assert_eq!(app.get("/ui/no-such-page", None).await.status, 404);
    let login = app.get("/ui/login", None).await;
    assert_eq!(login.status, 200);
    assert!(login.text.contains("name=\"token\""));

    // A wrong token: back to the form, no cookie.
    let r = app
        .post(
            "/ui/login",
            None,
            &[("token", "not-a-token"), ("next", "/ui/")],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(r.location().starts_with("/ui/login?failed=1"));
    assert!(r.headers.get("set-cookie").is_none());

    // The session cookie: HttpOnly, SameSite=Strict, scoped to /ui, expiring; no token in it.
    let r = app
        .post(
            "/ui/login",
            None,
            &[("token", ADMIN_TOKEN), ("next", "https://evil.example/")],
        )
        .await;
    assert_eq!(
        r.location(),
        "/ui/",
        "only console paths are followed after sign-in"
    );
    let set = r.headers["set-cookie"].to_str().unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=1800"] {
        assert!(set.contains(flag), "{flag} missing in {set}");
    }
    assert!(!set.contains(ADMIN_TOKEN));
    let admin = set.split(';').next().unwrap().to_string();
    assert_eq!(app.get("/ui/no-such-page", Some(&admin)).await.status, 404);

    // The JSON API still wants its bearer token; a console cookie is not one.
    let r = app.get("/v1/downloads", Some(&admin)).await;
    assert_eq!(r.status, 401);

    // A read session sees pages but cannot act, even with its own CSRF token.
    let read = app.sign_in(READ_TOKEN).await;
    let job = app.db.enqueue("rm-read").await;
    let page = app.get(&format!("/ui/jobs/{}", job.id), Some(&read)).await;
    assert_eq!(page.status, 200);
    assert!(
        !page.text.contains("/cancel\""),
        "no cancel button for read:\n{}",
        page.text
    );
    let csrf = page.csrf(); // the sign-out form's
    let r = app
        .post(
            &format!("/ui/jobs/{}/cancel", job.id),
            Some(&read),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("may only read"));
    assert_eq!(state_of(&app, job.id).await, JobState::Queued);

    // An admin without the CSRF token, with a wrong one, or from another site: refused.
    let page = app.get(&format!("/ui/jobs/{}", job.id), Some(&admin)).await;
    assert!(page
        .text
        .contains(&format!("action=\"/ui/jobs/{}/cancel\"", job.id)));
    let csrf = page.csrf();
    let cancel = format!("/ui/jobs/{}/cancel", job.id);
    for form in [vec![], vec![("csrf", "0000")]] {
        let r = app.post(&cancel, Some(&admin), &form).await;
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(r.text.contains("CSRF"));
    }
    let r = app
        .http
        .post(app.url(&cancel))
        .header("cookie", &admin)
        .header("origin", "http://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(state_of(&app, job.id).await, JobState::Queued);
    // Without a session at all: 401, never a redirect that would lose the POST silently.
    assert_eq!(
        app.post(&cancel, None, &[("csrf", &csrf)]).await.status,
        401
    );

    // With it: done, and the page says so.
    let r = app.post(&cancel, Some(&admin), &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.location(), format!("/ui/jobs/{}?done=cancelled", job.id));
    assert_eq!(state_of(&app, job.id).await, JobState::Cancelled);
    // Retrying a queued job is a conflict that says why.
    let other = app.db.enqueue("rm-other").await;
    let r = app
        .post(
            &format!("/ui/jobs/{}/retry", other.id),
            Some(&admin),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 409);
    assert!(
        r.text
            .contains("only failed or cancelled jobs can be retried"),
        "{}",
        r.text
    );

    // Sign out ends the session on the server, not only in the browser.
    let r = app
        .post("/ui/logout", Some(&admin), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 303);
    assert!(r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(app.get("/ui/", Some(&admin)).await.status, 303);

    // Sessions expire.
    assert_eq!(app.get("/ui/", Some(&read)).await.status, 200);
    app.clock.advance(chrono::Duration::minutes(31));
    let r = app.get("/ui/", Some(&read)).await;
    assert_eq!(r.status, 303);
    assert!(r.location().starts_with("/ui/login"));
}

async fn console_pages_render_and_name_bad_input(db: TestDb) {
    let app = spawn_console(db, |_| {}).await;
    let ids = fixture(&app.db).await;
    app.db
        .store
        .instance_block(&BlockInstance {
            key: InstanceKey::new("cn-hangzhou", "rm-a"),
            task_id: Some("dt-a-1".into()),
            reason: "<b>disk</b> full & more".into(),
            until: None,
        })
        .await
        .unwrap();
    app.add_schedule("nightly", "rm-c").await;
    let admin = app.sign_in(ADMIN_TOKEN).await;

    let pages = [
        "/ui/".to_string(),
        "/ui/jobs".into(),
        "/ui/jobs?state=failed&instance=rm-a&sort=instance&dir=asc".into(),
        "/ui/jobs?sort=finished&limit=1".into(),
        format!("/ui/jobs/{}", ids["a1"]),
        "/ui/instances".into(),
        "/ui/instances?status=blocked".into(),
        "/ui/instances/cn-hangzhou/rm-a".into(),
        "/ui/schedules".into(),
        "/ui/schedules/nightly".into(),
        "/ui/schedules/nightly/preview".into(),
    ];
    for p in &pages {
        let r = app.get(p, Some(&admin)).await;
        assert_eq!(r.status, 200, "{p}: {}", r.text);
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{p}: {csp}"
        );
        assert!(
            !r.text.contains(ADMIN_TOKEN) && !r.text.contains(READ_TOKEN),
            "{p}"
        );
        assert!(!r.text.contains("<b>disk"), "{p}: unescaped text");
    }
    let overview = app.get("/ui/", Some(&admin)).await.text;
    for needle in [
        "data-state=\"failed\"><span class=\"n\">1</span>",
        "data-state=\"cancelled\"><span class=\"n\">2</span>",
        "id=\"chart-jobs\"",
        "id=\"chart-bytes\"",
        "id=\"oldest-queued\"",
        "id=\"failing\"",
        "id=\"blocked\"",
        "&lt;b&gt;disk&lt;/b&gt; full &amp; more",
    ] {
        assert!(
            overview.contains(needle),
            "overview lacks {needle}:\n{overview}"
        );
    }
    let job = app
        .get(&format!("/ui/jobs/{}", ids["a1"]), Some(&admin))
        .await
        .text;
    for needle in [
        "REQ-BOOM-1",
        "dt-a-1",
        "the export &lt;failed&gt; &amp; stopped",
        "/retry\"",
        "req-",
    ] {
        assert!(job.contains(needle), "job page lacks {needle}:\n{job}");
    }
    let failed = app
        .get("/ui/jobs?state=failed&instance=rm-a", Some(&admin))
        .await
        .text;
    assert_eq!(failed.matches("<tr data-job=").count(), 1, "{failed}");
    let sched = app.get("/ui/schedules/nightly", Some(&admin)).await.text;
    assert!(sched.contains("every day at 02:30"), "{sched}");
    assert_eq!(
        sched.matches("CST</time>").count(),
        5,
        "5 next fires in Asia/Shanghai:\n{sched}"
    );

    // Bad input: 400 naming the parameter and the rule.
    for (path, field) in [
        ("/ui/jobs?state=bogus", "state:"),
        ("/ui/jobs?stat=failed", "stat:"),
        ("/ui/jobs?created_from=yesterday", "created_from:"),
        ("/ui/jobs?sort=size", "sort:"),
        ("/ui/jobs?after=abc", "after:"),
        ("/ui/jobs?limit=100000", "limit:"),
        ("/ui/jobs?schedule=nope", "schedule:"),
        ("/ui/instances?status=weird", "status:"),
    ] {
        let r = app.get(path, Some(&admin)).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert!(r.text.contains(field), "{path}: {}", r.text);
    }
    for path in [
        "/ui/jobs/999999",
        "/ui/jobs/abc",
        "/ui/instances/cn-hangzhou/rm-zz",
        "/ui/schedules/nope",
    ] {
        assert_eq!(app.get(path, Some(&admin)).await.status, 404, "{path}");
    }
    // Tags follow the API's rules: a bad tag is refused by name, nothing is changed.
    let page = app
        .get("/ui/instances/cn-hangzhou/rm-b", Some(&admin))
        .await;
    let csrf = page.csrf();
    let tags = "/ui/instances/cn-hangzhou/rm-b/tags";
    let r = app
        .post(
            tags,
            Some(&admin),
            &[("csrf", &csrf), ("tags", "prod, env=eu")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let key = InstanceKey::new("cn-hangzhou", "rm-b");
    let i = app.db.store.instance_get(&key).await.unwrap().unwrap();
    assert_eq!(i.tags, vec!["prod".to_string(), "env=eu".to_string()]);
    let r = app
        .post(
            tags,
            Some(&admin),
            &[("csrf", &csrf), ("tags", "bad tag with spaces")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("tags"), "{}", r.text);
    let i = app.db.store.instance_get(&key).await.unwrap().unwrap();
    assert_eq!(i.tags.len(), 2);
}

both_backends!(
    console_sign_in_sessions_and_roles,
    console_pages_render_and_name_bad_input,
);

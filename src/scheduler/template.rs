//! The OSS path template of a schedule and the request each fire turns into.
//!
//! A template is checked when the schedule is stored (unknown placeholder, unbalanced
//! brace, a `..` segment ⇒ error naming the field) and rendered per fire and instance; the
//! rendered request then goes through [`DownloadRequest::validate`] like any other.

use super::model::{BackupSelection, ScheduleSpec};
use crate::dbs::types::RdsBackup;
pub use crate::model::path_template::{check_path, check_template, render_template, PLACEHOLDERS};
use crate::model::{BakSetType, DownloadRequest, InstanceKey, TargetType, ValidationError};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// What a placeholder expands to for one fire and instance.
#[derive(Debug, Clone)]
pub struct FireContext<'a> {
    pub schedule: &'a str,
    pub instance: &'a InstanceKey,
    pub fire_time: DateTime<Utc>,
    /// The schedule's zone: `{date}` is the fire's local date there.
    pub tz: Tz,
}

/// `{fire_time}` spelling: basic ISO-8601 in UTC, safe in object keys.
pub fn fire_time_token(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Render a checked template.
pub fn render_path(template: &str, ctx: &FireContext<'_>) -> Result<String, ValidationError> {
    render_template("template.path", template, PLACEHOLDERS, |name| match name {
        "instance" => ctx.instance.instance.clone(),
        "region" => ctx.instance.region.clone(),
        "date" => ctx
            .fire_time
            .with_timezone(&ctx.tz)
            .format("%Y-%m-%d")
            .to_string(),
        "fire_time" => fire_time_token(ctx.fire_time),
        "schedule" => ctx.schedule.to_string(),
        other => unreachable!("parse rejects {other}"),
    })
}

/// The CreateDownload request of one fire for one instance. `backup` is the resolved
/// latest full backup when the schedule asks for one.
pub fn build_request(
    spec: &ScheduleSpec,
    ctx: &FireContext<'_>,
    backup: Option<&RdsBackup>,
) -> Result<DownloadRequest, ValidationError> {
    let mut req = DownloadRequest::example_full(&ctx.instance.region, &ctx.instance.instance, "");
    match spec.backup {
        BackupSelection::PitrAtFireTime => {
            req.bak_set_type = BakSetType::Pitr;
            req.bak_set_id = None;
            req.download_point_in_time = Some(ctx.fire_time.timestamp_millis());
        }
        BackupSelection::LatestFull => {
            let b = backup.ok_or_else(|| {
                ValidationError::new("backup", "latest_full needs a resolved backup set")
            })?;
            req.bak_set_type = BakSetType::Full;
            req.bak_set_id = Some(b.backup_id.clone());
            req.bak_set_size = b.backup_size;
        }
    }
    req.format = spec.template.format;
    req.target_type = spec.template.target_type;
    req.sink = spec.template.sink.clone();
    if spec.template.target_type == TargetType::Oss {
        req.target_bucket = spec.template.bucket.clone();
        req.target_oss_region = spec.template.bucket_region.clone();
        req.target_path = spec
            .template
            .path
            .as_deref()
            .map(|p| render_path(p, ctx))
            .transpose()?;
    }
    req.validate()?;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(key: &InstanceKey) -> FireContext<'_> {
        FireContext {
            schedule: "nightly",
            instance: key,
            // 2026-11-30 02:00 in Shanghai is 2026-11-29T18:00Z.
            fire_time: DateTime::parse_from_rfc3339("2026-11-29T18:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            tz: "Asia/Shanghai".parse().unwrap(),
        }
    }

    #[test]
    fn renders_every_placeholder_with_local_date() {
        let key = InstanceKey::new("cn-hangzhou", "rm-abc");
        let p = render_path(
            "{schedule}/{region}/{instance}/{date}/{fire_time}/",
            &ctx(&key),
        )
        .unwrap();
        assert_eq!(p, "nightly/cn-hangzhou/rm-abc/2026-11-30/20261129T180000Z/");
    }

    #[test]
    fn rejects_unknown_unbalanced_and_escaping() {
        for (t, needle) in [
            ("{instance}/{host}", "unknown placeholder {host}"),
            ("{instance", "unmatched '{'"),
            ("a}b", "unmatched '}'"),
            ("a/../b", "'..'"),
            ("..", "'..'"),
            ("/abs/{instance}", "leading '/'"),
        ] {
            let e = check_path("template.path", t).unwrap_err();
            assert_eq!(e.field, "template.path");
            assert!(e.rule.contains(needle), "{t}: {e}");
        }
        check_path("template.path", "a/b..c/{date}").unwrap();
    }

    #[test]
    fn rendered_request_is_validated_like_any_other() {
        let mut spec = ScheduleSpec::example("n", "cn-hangzhou", "rm-1");
        spec.backup = BackupSelection::PitrAtFireTime;
        spec.template.target_type = TargetType::Oss;
        spec.template.bucket = Some("bkt".into());
        spec.template.bucket_region = Some("cn-hangzhou".into());
        spec.template.path = Some("{instance}/{date}".into());
        let key = InstanceKey::new("cn-hangzhou", "rm-1");
        let req = build_request(&spec, &ctx(&key), None).unwrap();
        assert_eq!(req.bak_set_type, BakSetType::Pitr);
        assert_eq!(req.download_point_in_time, Some(1_795_975_200_000));
        assert_eq!(req.target_path.as_deref(), Some("rm-1/2026-11-30"));
        // An instance id of ".." would escape the prefix once rendered.
        let evil = InstanceKey::new("cn-hangzhou", "..");
        let e = build_request(&spec, &ctx(&evil), None).unwrap_err();
        assert_eq!(e.field, "target_path");
    }
}

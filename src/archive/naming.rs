//! Object names: a sink's `object_template` rendered for one job, with the same
//! placeholder syntax and rules as a schedule's `target_path`.

use super::settings::OBJECT_PLACEHOLDERS;
use crate::model::path_template::render_template;
use crate::model::{Job, ValidationError};

/// A name segment safe in a file name and an object key.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

/// The object name of `job`'s archive under `template` (checked at start-up).
pub fn object_name(template: &str, job: &Job) -> Result<String, ValidationError> {
    let r = &job.request;
    let finished = job.finished_at.unwrap_or(job.updated_at);
    let name = render_template("object_template", template, OBJECT_PLACEHOLDERS, |p| {
        let v = match p {
            "region" => r.region.clone(),
            "instance" => r.instance.clone(),
            "backup_set" => r.bak_set_id.clone().unwrap_or_else(|| {
                format!("pitr-{}", r.download_point_in_time.unwrap_or_default())
            }),
            "task_id" => job.remote.task_id.clone().unwrap_or_default(),
            "job_id" => job.id.to_string(),
            "date" => finished.format("%Y-%m-%d").to_string(),
            "format" => r.format.as_str().to_ascii_lowercase(),
            _ => String::new(),
        };
        safe(&v)
    })?;
    if name.is_empty()
        || name
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(ValidationError::new(
            "object_template",
            "renders an empty path segment for this job",
        ));
    }
    Ok(name)
}

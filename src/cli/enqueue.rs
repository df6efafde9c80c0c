//! `dbs-archiver enqueue`: put one download request in the queue.
//!
//! The flags mirror the fields of [`DownloadRequest`] (and so the CreateDownload
//! parameters); a request that breaks a rule is rejected with the flag named. Like the
//! other inspection commands this talks to the database directly (`database.url`), so it
//! works whether or not a `serve` process is running; a running worker picks the job up
//! at once (in-process notification on the same store handle, `NOTIFY` on PostgreSQL,
//! otherwise its idle poll).

use super::request::{flag_error, rfc3339, RequestArgs};
use crate::config::Settings;
use crate::model::{bounds, JobSource};
use crate::store::NewJob;
use anyhow::Context;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, clap::Args)]
pub struct EnqueueArgs {
    #[command(flatten)]
    pub request: RequestArgs,
    /// URL targets only: the `[[sinks]]` entry to fetch the archive into.
    #[arg(long)]
    pub sink: Option<String>,
    /// Higher runs first; -1000..=1000.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// Not before this time (RFC 3339, e.g. 2024-05-01T02:00:00Z); default now.
    #[arg(long, value_parser = rfc3339)]
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts before the job fails, 1..=100 (default: worker.default_max_attempts).
    #[arg(long, allow_negative_numbers = true)]
    pub max_attempts: Option<i32>,
    /// Same key ⇒ same job: enqueueing twice returns the first job (1-255 visible ASCII).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Print the job as JSON (the API's job shape).
    #[arg(long)]
    pub json: bool,
}

impl EnqueueArgs {
    /// The job these flags describe, every rule checked; errors name the flag.
    pub fn to_job(&self, default_max_attempts: i32) -> anyhow::Result<NewJob> {
        let mut request = self.request.to_request()?;
        request.sink = self.sink.clone();
        request.validate().map_err(flag_error)?;
        let max_attempts = self.max_attempts.unwrap_or(default_max_attempts);
        bounds::job_options(
            self.priority,
            max_attempts,
            self.idempotency_key.as_deref(),
            self.run_at,
        )
        .map_err(flag_error)?;
        let mut job = NewJob::new(request, JobSource::Cli);
        job.priority = self.priority;
        job.run_at = self.run_at;
        job.max_attempts = max_attempts;
        job.idempotency_key = self.idempotency_key.clone();
        Ok(job)
    }
}

pub async fn run(args: EnqueueArgs, settings: Settings) -> anyhow::Result<()> {
    let job = args.to_job(settings.worker.default_max_attempts)?;
    crate::archive::settings::check_sink_name(&settings.sinks, job.request.sink.as_deref())
        .map_err(flag_error)?;
    let store = crate::app::open_store(&settings)
        .await
        .context("opening the database (database.url)")?;
    let done = store.job_enqueue(job).await.map_err(|e| match e {
        crate::store::StoreError::Invalid(v) => flag_error(v),
        other => anyhow::Error::new(other),
    })?;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&crate::api::views::JobView::from(done.job))?
        );
    } else if done.created {
        outln!(
            "enqueued job {} for {} ({})",
            done.job.id,
            done.job.instance_key(),
            done.job.state
        );
    } else {
        outln!(
            "job {} already exists for this idempotency key ({}); nothing enqueued",
            done.job.id,
            done.job.state
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        a: EnqueueArgs,
    }

    fn parse(args: &[&str]) -> Result<EnqueueArgs, clap::Error> {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).map(|t| t.a)
    }

    /// A valid request's flags followed by `extra`.
    fn valid_with(extra: &[&str]) -> Result<EnqueueArgs, clap::Error> {
        let mut v = vec![
            "--region",
            "cn-hangzhou",
            "--instance",
            "rm-1",
            "--format",
            "CSV",
            "--bak-set-id",
            "b1",
        ];
        v.extend_from_slice(extra);
        parse(&v)
    }

    fn job_error(extra: &[&str]) -> String {
        valid_with(extra)
            .unwrap()
            .to_job(5)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn queue_options_use_the_shared_bounds() {
        assert_eq!(
            job_error(&["--priority", "5000"]),
            "--priority: must be between -1000 and 1000"
        );
        assert_eq!(
            job_error(&["--max-attempts", "1000"]),
            "--max-attempts: must be between 1 and 100"
        );
        // A negative value reaches our check instead of clap's "unexpected argument".
        assert_eq!(
            job_error(&["--max-attempts", "-1"]),
            "--max-attempts: must be between 1 and 100"
        );
        let key = "k".repeat(300);
        assert_eq!(
            job_error(&["--idempotency-key", &key]),
            "--idempotency-key: must be 1-255 visible ASCII characters"
        );
        let ok = valid_with(&["--priority", "-1"])
            .unwrap()
            .to_job(5)
            .unwrap();
        assert_eq!(ok.priority, -1);
        let e = valid_with(&["--run-at", "tomorrow"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn validation_errors_name_the_flag() {
        let a = parse(&[
            "--region",
            "cn-hangzhou",
            "--instance",
            "rm-1",
            "--format",
            "CSV",
        ])
        .unwrap();
        let e = a.to_job(5).unwrap_err().to_string();
        assert!(e.starts_with("--bak-set-id:"), "{e}");
        let a = valid_with(&["--target-type", "OSS"]).unwrap();
        let e = a.to_job(5).unwrap_err().to_string();
        assert!(e.starts_with("--target-bucket:"), "{e}");
        let e = parse(&["--region", "r", "--instance", "i", "--format", "xml"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--format"), "{e}");
    }

    #[test]
    fn point_in_time_accepts_millis_and_rfc3339() {
        let a = parse(&[
            "--region",
            "cn-hangzhou",
            "--instance",
            "rm-1",
            "--format",
            "SQL",
            "--bak-set-type",
            "pitr",
            "--download-point-in-time",
            "2024-01-01T00:00:00Z",
        ])
        .unwrap();
        let r = a.to_job(5).unwrap().request;
        assert_eq!(r.download_point_in_time, Some(1_704_067_200_000));
        assert_eq!(r.target_type, crate::model::TargetType::Url);
    }
}

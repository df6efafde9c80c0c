//! The SQL interface: `sink` is a column of `jobs`, refused on OSS targets and when empty
//! (`jobs_sink_url_only`), and carried into the request the service reads.

use super::*;
use crate::helpers::db::both_backends;
use dbs_archiver::store::JobFilter;

const INSERT: &str = "INSERT INTO jobs (region, instance, bak_set_type, bak_set_id, format, \
                      target_type, target_bucket, target_oss_region, target_path, sink) VALUES ";

async fn sql_sink_is_url_only_and_reaches_the_request(db: TestDb) {
    let oss = db
        .exec(&format!(
            "{INSERT}('cn-hangzhou', 'rm-q1', 'full', '1', 'CSV', 'OSS', 'b-1', 'cn-hangzhou', 'p', 'local')"
        ))
        .await
        .unwrap_err();
    assert!(oss.to_string().contains("jobs_sink_url_only"), "{oss}");
    let empty = db
        .exec(&format!(
            "{INSERT}('cn-hangzhou', 'rm-q1', 'full', '1', 'CSV', 'URL', NULL, NULL, NULL, ' ')"
        ))
        .await
        .unwrap_err();
    assert!(empty.to_string().contains("jobs_sink_url_only"), "{empty}");

    db.exec(&format!(
        "{INSERT}('cn-hangzhou', 'rm-q1', 'full', '1', 'CSV', 'URL', NULL, NULL, NULL, 'local')"
    ))
    .await
    .unwrap();
    let page = db.store.job_list(&JobFilter::default()).await.unwrap();
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(page.jobs[0].request.sink.as_deref(), Some("local"));
}

both_backends!(sql_sink_is_url_only_and_reaches_the_request);

//! The client's rate limiter counts per account (access key id) and endpoint host: the
//! gateway's quota is the account's, and several regions are served by one host. Against
//! the simulator (one host for every region) at 1 call/s with a burst of 1, calls for two
//! regions share one bucket; a second account (another client with the simulator's second
//! key) has its own.

use super::*;
use dbs_archiver::dbs::credentials::{CredentialsProvider, StaticCredentials};
use dbs_archiver::dbs::{DbsClient, DbsClientConfig};
use dbs_archiver::sim::SimKey;

fn one_per_second(sim: &SimHandle, key: Option<&SimKey>) -> DbsClient {
    let config = DbsClientConfig {
        endpoint_override: Some(sim.endpoint()),
        calls_per_second_per_region: 1.0,
        burst: 1,
        ..DbsClientConfig::default()
    };
    let provider: Arc<dyn CredentialsProvider> = match key {
        Some(k) => Arc::new(StaticCredentials(k.clone())),
        None => sim.credentials_provider(),
    };
    DbsClient::new(config, provider).expect("client")
}

#[tokio::test]
async fn regions_on_one_host_share_a_bucket_accounts_do_not() {
    let other = SimKey::access_key("LTAI-second-account", "second-secret");
    let sim = Simulator::start(
        SimConfig::demo()
            .fleet(Default::default())
            .with_instances("cn-hangzhou", "rm-a", 1)
            .with_instances("cn-shanghai", "rm-b", 1)
            .with_key(other.clone()),
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let client = one_per_second(&sim, None);
    let started = std::time::Instant::now();
    client
        .describe_download_support("cn-hangzhou", "rm-a0001", None)
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "burst token"
    );
    // Another region, same host: the same (now empty) bucket.
    client
        .describe_download_support("cn-shanghai", "rm-b0001", None)
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    let buckets = client.rate_limits();
    assert_eq!(buckets.len(), 1, "{buckets:?}");
    let key = buckets.keys().next().unwrap();
    assert_eq!(key.host, sim.addr().to_string());
    assert_eq!(key.account, sim.credentials().access_key_id);

    // Another account on the same host has its own bucket: no wait.
    let second = one_per_second(&sim, Some(&other));
    let started = std::time::Instant::now();
    second
        .describe_download_support("cn-hangzhou", "rm-a0001", None)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    let key = second.rate_limits().into_keys().next().unwrap();
    assert_eq!(key.account, "LTAI-second-account");
    sim.shutdown().await;
}

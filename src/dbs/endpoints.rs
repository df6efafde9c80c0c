//! Endpoint tables (dbs-api.md §1, §5.4). Explicit, with no generic fallback: the SDK's
//! generic rule builds `dbs.<region>.aliyuncs.com`, which is the wrong host.
//!
//! The table follows the latest public endpoint list (Nov 2024), which gives
//! cn-zhangjiakou its own host and adds cn-wulanchabu, where the SDK map still sends
//! Zhangjiakou to Hangzhou and lacks Ulanqab (dbs-api.md §1, §11.6).

use serde::{Deserialize, Serialize};

/// Which address of the DBS API to call (`dbs.endpoint_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    /// `dbs-api.<region>.aliyuncs.com`, reachable from anywhere.
    #[default]
    Public,
    /// `dbs-api-vpc.<region>.aliyuncs.com`, reachable only from inside an Alibaba Cloud
    /// VPC of that region; keeps API traffic off the internet.
    Vpc,
}

/// The DBS 2021-01-01 host for an instance region and endpoint kind, or `None` when we do
/// not know the region. A VPC host is the VPC address of the region's public host (the
/// documented `dbs-api-vpc.<region>` pattern applied to the serving region; the docs do
/// not list VPC hosts region by region).
pub fn dbs_endpoint(region: &str, kind: EndpointKind) -> Option<String> {
    let public = dbs_host(region)?;
    Some(match kind {
        EndpointKind::Public => public.to_string(),
        EndpointKind::Vpc => public.replacen("dbs-api.", "dbs-api-vpc.", 1),
    })
}

/// Public DBS 2021-01-01 host for an instance region, or `None` when we do not know it.
pub fn dbs_host(region: &str) -> Option<&'static str> {
    Some(match region {
        "cn-qingdao"
        | "cn-beijing"
        | "cn-hangzhou"
        | "cn-shanghai"
        | "cn-shenzhen"
        | "cn-hongkong"
        | "us-west-1"
        | "us-east-1"
        | "cn-hangzhou-finance"
        | "cn-shanghai-finance-1"
        | "cn-shenzhen-finance-1" => "dbs-api.cn-hangzhou.aliyuncs.com",
        "cn-zhangjiakou" => "dbs-api.cn-zhangjiakou.aliyuncs.com",
        "cn-wulanchabu" => "dbs-api.cn-wulanchabu.aliyuncs.com",
        "cn-chengdu" => "dbs-api.cn-chengdu.aliyuncs.com",
        "cn-huhehaote" => "dbs-api.cn-huhehaote.aliyuncs.com",
        "ap-southeast-1" => "dbs-api.ap-southeast-1.aliyuncs.com",
        "ap-southeast-2" => "dbs-api.ap-southeast-2.aliyuncs.com",
        "ap-southeast-3" => "dbs-api.ap-southeast-3.aliyuncs.com",
        "ap-southeast-5" => "dbs-api.ap-southeast-5.aliyuncs.com",
        "ap-northeast-1" => "dbs-api.ap-northeast-1.aliyuncs.com",
        "ap-south-1" => "dbs-api.ap-south-1.aliyuncs.com",
        "eu-central-1" => "dbs-api.eu-central-1.aliyuncs.com",
        "eu-west-1" => "dbs-api.eu-west-1.aliyuncs.com",
        "me-east-1" => "dbs-api.me-east-1.aliyuncs.com",
        _ => return None,
    })
}

/// RDS 2014-08-15 host: the central `rds.aliyuncs.com` for the regions the SDK map sends
/// there, otherwise `rds.<region>.aliyuncs.com`.
pub fn rds_host(region: &str) -> String {
    match region {
        "cn-qingdao"
        | "cn-beijing"
        | "cn-hangzhou"
        | "cn-shanghai"
        | "cn-shenzhen"
        | "cn-hongkong"
        | "ap-southeast-1"
        | "us-west-1"
        | "us-east-1"
        | "cn-hangzhou-finance"
        | "cn-shanghai-finance-1"
        | "cn-shenzhen-finance-1" => "rds.aliyuncs.com".to_string(),
        other => format!("rds.{other}.aliyuncs.com"),
    }
}

/// An endpoint override must be https, or plain http on a loopback address only
/// (`allow_insecure_http` lifts that for a simulator on another host, e.g. in compose).
pub fn check_override(url: &str, allow_insecure_http: bool) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if loopback || allow_insecure_http {
                Ok(())
            } else {
                Err("plain http:// is allowed only for loopback addresses (or with dbs.allow_insecure_http = true); use https://".into())
            }
        }
        other => Err(format!(
            "scheme must be https (or http for loopback), got {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_goes_to_hangzhou_host() {
        assert_eq!(
            dbs_host("cn-beijing"),
            Some("dbs-api.cn-hangzhou.aliyuncs.com")
        );
        assert_eq!(
            dbs_host("cn-chengdu"),
            Some("dbs-api.cn-chengdu.aliyuncs.com")
        );
        assert_eq!(dbs_host("xx-nowhere-1"), None);
    }

    #[test]
    fn latest_endpoint_list_and_vpc_hosts() {
        assert_eq!(
            dbs_host("cn-zhangjiakou"),
            Some("dbs-api.cn-zhangjiakou.aliyuncs.com")
        );
        assert_eq!(
            dbs_host("cn-wulanchabu"),
            Some("dbs-api.cn-wulanchabu.aliyuncs.com")
        );
        assert_eq!(
            dbs_endpoint("cn-wulanchabu", EndpointKind::Vpc).as_deref(),
            Some("dbs-api-vpc.cn-wulanchabu.aliyuncs.com")
        );
        assert_eq!(
            dbs_endpoint("cn-beijing", EndpointKind::Vpc).as_deref(),
            Some("dbs-api-vpc.cn-hangzhou.aliyuncs.com")
        );
        assert_eq!(
            dbs_endpoint("cn-beijing", EndpointKind::Public).as_deref(),
            Some("dbs-api.cn-hangzhou.aliyuncs.com")
        );
        assert_eq!(dbs_endpoint("xx-nowhere-1", EndpointKind::Vpc), None);
    }

    #[test]
    fn overrides_are_https_or_loopback() {
        assert!(check_override("https://dbs.example", false).is_ok());
        assert!(check_override("http://127.0.0.1:8089", false).is_ok());
        assert!(check_override("http://10.0.0.1:8089", false).is_err());
        assert!(check_override("http://sim:8089", true).is_ok());
        assert!(check_override("ftp://x", true).is_err());
    }
}

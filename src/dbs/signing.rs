//! Request signing: V3 `ACS3-HMAC-SHA256` (default) and classic RPC `HMAC-SHA1` (dbs-api.md §7).
//!
//! Pure functions over strings so the client signs and the simulator verifies with the
//! same code, and the published vectors can be checked byte for byte.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The V3 algorithm name, as it appears in `Authorization`.
pub const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// Hex SHA-256 of the empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Which signature scheme to use (`dbs.signature`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureVersion {
    /// ACS3-HMAC-SHA256, headers carry the signature.
    #[default]
    V3,
    /// Classic RPC HMAC-SHA1, query carries the signature.
    V2,
}

/// RFC 3986 percent-encoding: unreserved `A–Z a–z 0–9 - _ . ~` stay, everything else
/// becomes `%XX` (upper-case hex) byte by byte; space is `%20`, `*` is `%2A`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decode `%XX` sequences (and nothing else: `+` stays `+`), as the gateway does.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parse a raw query string into decoded pairs (order kept).
pub fn parse_query(raw: &str) -> Option<Vec<(String, String)>> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// Encode names and values, sort by encoded name (then value), join `name=value` with `&`.
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut enc: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    enc.sort();
    enc.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The parts of a request that V3 signs.
#[derive(Debug, Clone)]
pub struct V3Input<'a> {
    pub method: &'a str,
    /// `/` for RPC style; empty is treated as `/`.
    pub path: &'a str,
    pub query: &'a [(String, String)],
    /// All request headers; only `host`, `content-type` and `x-acs-*` are signed.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body (`x-acs-content-sha256`).
    pub payload_hash: &'a str,
}

/// Whether V3 signs a header of this (lower-case) name.
pub fn v3_signs_header(lower_name: &str) -> bool {
    lower_name == "host" || lower_name == "content-type" || lower_name.starts_with("x-acs-")
}

/// Canonical headers block and the `SignedHeaders` list for the given header names.
/// `only` restricts to an explicit list (the verifier uses the client's `SignedHeaders`).
pub fn v3_canonical_headers(
    headers: &[(String, String)],
    only: Option<&[&str]>,
) -> (String, String) {
    let mut grouped: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        let wanted = match only {
            Some(list) => list.contains(&lower.as_str()),
            None => v3_signs_header(&lower),
        };
        if wanted {
            grouped
                .entry(lower)
                .or_default()
                .push(value.trim().to_string());
        }
    }
    let mut block = String::new();
    for (name, values) in grouped.iter_mut() {
        values.sort();
        block.push_str(name);
        block.push(':');
        block.push_str(&values.join(","));
        block.push('\n');
    }
    let signed = grouped.keys().cloned().collect::<Vec<_>>().join(";");
    (block, signed)
}

/// The V3 canonical request and its `SignedHeaders`.
pub fn v3_canonical_request(input: &V3Input<'_>, only: Option<&[&str]>) -> (String, String) {
    let path = if input.path.is_empty() {
        "/"
    } else {
        input.path
    };
    let (headers, signed) = v3_canonical_headers(input.headers, only);
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method,
        path,
        canonical_query(input.query),
        headers,
        signed,
        input.payload_hash
    );
    (canonical, signed)
}

/// `hex(HMAC-SHA256(secret, "ACS3-HMAC-SHA256\n" + hex(SHA256(canonical))))`.
pub fn v3_signature(secret: &str, canonical_request: &str) -> String {
    let string_to_sign = format!(
        "{V3_ALGORITHM}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    hex::encode(hmac_sha256(secret.as_bytes(), string_to_sign.as_bytes()))
}

/// The full `Authorization` header value for a V3 request.
pub fn v3_authorization(access_key_id: &str, secret: &str, input: &V3Input<'_>) -> String {
    let (canonical, signed) = v3_canonical_request(input, None);
    format!(
        "{V3_ALGORITHM} Credential={access_key_id},SignedHeaders={signed},Signature={}",
        v3_signature(secret, &canonical)
    )
}

/// A parsed V3 `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Authorization {
    pub access_key_id: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parse `ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…`.
pub fn parse_v3_authorization(value: &str) -> Option<V3Authorization> {
    let rest = value.strip_prefix(V3_ALGORITHM)?.trim_start();
    let mut ak = None;
    let mut signed = None;
    let mut sig = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => ak = Some(v.to_string()),
            "SignedHeaders" => signed = Some(v.split(';').map(str::to_string).collect()),
            "Signature" => sig = Some(v.to_string()),
            _ => {}
        }
    }
    Some(V3Authorization {
        access_key_id: ak?,
        signed_headers: signed?,
        signature: sig?,
    })
}

/// V2 string to sign: `METHOD&%2F&percentEncode(canonicalQuery)` (excluding `Signature`).
pub fn v2_string_to_sign(method: &str, params: &[(String, String)]) -> String {
    let filtered: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "Signature")
        .cloned()
        .collect();
    format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&canonical_query(&filtered))
    )
}

/// `Base64(HMAC-SHA1(secret + "&", StringToSign))`.
pub fn v2_signature(secret: &str, method: &str, params: &[(String, String)]) -> String {
    let sts = v2_string_to_sign(method, params);
    let key = format!("{secret}&");
    base64::engine::general_purpose::STANDARD.encode(hmac_sha1(key.as_bytes(), sts.as_bytes()))
}

/// Constant-time comparison of two signatures.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn encoding_follows_rfc3986() {
        assert_eq!(percent_encode("a b*c~d/e:f"), "a%20b%2Ac~d%2Fe%3Af");
        assert_eq!(percent_encode("中"), "%E4%B8%AD");
        assert_eq!(percent_decode("a%20b%2Ac").unwrap(), "a b*c");
    }

    #[test]
    fn sha256_helper_vector() {
        assert_eq!(
            sha256_hex(b"test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(sha256_hex(b""), EMPTY_SHA256);
    }

    #[test]
    fn v2_doc_vector_describe_regions() {
        let params = pairs(&[
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]);
        assert_eq!(
            v2_string_to_sign("GET", &params),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            v2_signature("testsecret", "GET", &params),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn v2_sdk_unit_vector() {
        let params = pairs(&[("query", "test"), ("body", "test")]);
        assert_eq!(
            v2_signature("secret", "GET", &params),
            "XlUyV4sXjOuX5FnjUz9IF9tm5rU="
        );
    }

    #[test]
    fn v3_doc_vector_run_instances() {
        let query = pairs(&[
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
            ("RegionId", "cn-shanghai"),
        ]);
        let headers = pairs(&[
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-version", "2014-05-26"),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-content-sha256", EMPTY_SHA256),
        ]);
        let input = V3Input {
            method: "POST",
            path: "/",
            query: &query,
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        let (canonical, _) = v3_canonical_request(&input, None);
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        assert_eq!(
            v3_signature("YourAccessKeySecret", &canonical),
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    #[test]
    fn v3_sdk_unit_vector() {
        let query = pairs(&[("test", "ok"), ("empty", "")]);
        let headers = pairs(&[("x-acs-test", "http"), ("x-acs-TEST", "https")]);
        let input = V3Input {
            method: "GET",
            path: "",
            query: &query,
            headers: &headers,
            payload_hash: "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23",
        };
        assert_eq!(
            v3_authorization("acesskey", "secret", &input),
            "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,Signature=d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
        );
    }

    fn dbs_query() -> Vec<(String, String)> {
        pairs(&[
            ("BakSetId", "1460050000"),
            ("BakSetType", "full"),
            ("FormatType", "CSV"),
            ("InstanceName", "rm-test123"),
            ("RegionCode", "cn-hangzhou"),
            ("TargetType", "URL"),
        ])
    }

    fn dbs_headers(token: Option<&str>) -> Vec<(String, String)> {
        let mut h = pairs(&[
            ("host", "dbs-api.cn-hangzhou.aliyuncs.com"),
            ("x-acs-action", "CreateDownload"),
            ("x-acs-version", "2021-01-01"),
            ("x-acs-date", "2024-01-01T00:00:00Z"),
            ("x-acs-signature-nonce", "0123456789abcdef0123456789abcdef"),
            ("x-acs-content-sha256", EMPTY_SHA256),
        ]);
        if let Some(t) = token {
            h.push(("x-acs-security-token".into(), t.into()));
        }
        h
    }

    #[test]
    fn v3_dbs_vector() {
        let query = dbs_query();
        let headers = dbs_headers(None);
        let input = V3Input {
            method: "POST",
            path: "/",
            query: &query,
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        let (canonical, signed) = v3_canonical_request(&input, None);
        assert_eq!(
            canonical_query(&query),
            "BakSetId=1460050000&BakSetType=full&FormatType=CSV&InstanceName=rm-test123&RegionCode=cn-hangzhou&TargetType=URL"
        );
        assert_eq!(
            signed,
            "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "c82fe8c675f9838f2fa8ae6b4a17188dd73c54f589ff9a92aee28c077044f63c"
        );
        assert_eq!(
            v3_signature("testsecret", &canonical),
            "1c29faa78a089621b20755d66da8c9be1a4504b5af23e522ca93e601a8880ac5"
        );
    }

    #[test]
    fn v3_dbs_sts_vector() {
        let query = dbs_query();
        let headers = dbs_headers(Some("sts-token-example"));
        let input = V3Input {
            method: "POST",
            path: "/",
            query: &query,
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        let auth = v3_authorization("STS.testid", "testsecret", &input);
        let parsed = parse_v3_authorization(&auth).unwrap();
        assert!(parsed
            .signed_headers
            .contains(&"x-acs-security-token".to_string()));
        assert_eq!(parsed.access_key_id, "STS.testid");
        assert_eq!(
            parsed.signature,
            "a7b751b1d3e60f51e6995ff0a0db22f2f7c2b29bf683e1fad7f6acc3ce5656b5"
        );
    }

    #[test]
    fn v2_dbs_vector() {
        let mut params = dbs_query();
        params.extend(pairs(&[
            ("Action", "CreateDownload"),
            ("Version", "2021-01-01"),
            ("Format", "JSON"),
            ("AccessKeyId", "testid"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", "0123456789abcdef0123456789abcdef"),
            ("Timestamp", "2024-01-01T00:00:00Z"),
        ]));
        assert_eq!(
            v2_signature("testsecret", "POST", &params),
            "042EwOgjmHmgz23dCHjKFf1c+Tg="
        );
    }
}

//! A hand-rolled signed caller built from `dbs::signing` and reqwest: it lets tests send
//! what the real client never would (old dates, reused nonces, wrong secrets, V2).

use dbs_archiver::dbs::signing::{self, V3Input};
use serde_json::Value;

/// How to sign one raw call.
#[derive(Debug, Clone)]
pub struct RawCall {
    pub endpoint: String,
    pub access_key_id: String,
    pub secret: String,
    pub token: Option<String>,
    pub action: String,
    pub version: String,
    pub params: Vec<(String, String)>,
    pub date: chrono::DateTime<chrono::Utc>,
    pub nonce: String,
    pub v2: bool,
    /// Send this text as `x-acs-date` / `Timestamp` instead of `date` formatted.
    pub date_text: Option<String>,
    /// V3 headers sent but left out of `SignedHeaders`.
    pub unsigned: Vec<String>,
}

/// What came back.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl RawReply {
    pub fn code(&self) -> &str {
        self.body["Code"].as_str().unwrap_or_default()
    }
}

impl RawCall {
    pub fn new(endpoint: &str, action: &str, params: &[(&str, &str)]) -> Self {
        Self {
            endpoint: endpoint.to_string(),
            access_key_id: dbs_archiver::sim::DEMO_ACCESS_KEY_ID.into(),
            secret: dbs_archiver::sim::DEMO_ACCESS_KEY_SECRET.into(),
            token: None,
            action: action.to_string(),
            version: if action == "DescribeBackups" {
                "2014-08-15".into()
            } else {
                "2021-01-01".into()
            },
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            date: chrono::Utc::now(),
            nonce: uuid::Uuid::new_v4().simple().to_string(),
            v2: false,
            date_text: None,
            unsigned: Vec::new(),
        }
    }

    pub fn v2(mut self) -> Self {
        self.v2 = true;
        self
    }

    pub fn key(mut self, id: &str, secret: &str) -> Self {
        self.access_key_id = id.into();
        self.secret = secret.into();
        self
    }

    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn nonce(mut self, nonce: &str) -> Self {
        self.nonce = nonce.into();
        self
    }

    pub fn date(mut self, date: chrono::DateTime<chrono::Utc>) -> Self {
        self.date = date;
        self
    }

    /// Send `text` verbatim as the request date.
    pub fn date_text(mut self, text: &str) -> Self {
        self.date_text = Some(text.into());
        self
    }

    /// Send the V3 header `name` without signing it.
    pub fn unsigned(mut self, name: &str) -> Self {
        self.unsigned.push(name.into());
        self
    }

    pub async fn send(&self) -> Result<RawReply, reqwest::Error> {
        let date = self
            .date_text
            .clone()
            .unwrap_or_else(|| self.date.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        let mut query = self.params.clone();
        let mut headers: Vec<(String, String)> = Vec::new();
        if self.v2 {
            for (k, v) in [
                ("Action", self.action.as_str()),
                ("Version", self.version.as_str()),
                ("Format", "JSON"),
                ("AccessKeyId", self.access_key_id.as_str()),
                ("SignatureMethod", "HMAC-SHA1"),
                ("SignatureVersion", "1.0"),
                ("SignatureNonce", self.nonce.as_str()),
                ("Timestamp", date.as_str()),
            ] {
                query.push((k.into(), v.into()));
            }
            if let Some(t) = &self.token {
                query.push(("SecurityToken".into(), t.clone()));
            }
            let sig = signing::v2_signature(&self.secret, "POST", &query);
            query.push(("Signature".into(), sig));
        } else {
            let host = self
                .endpoint
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            headers = vec![
                ("host".into(), host),
                ("x-acs-action".into(), self.action.clone()),
                ("x-acs-version".into(), self.version.clone()),
                ("x-acs-date".into(), date),
                ("x-acs-signature-nonce".into(), self.nonce.clone()),
                ("x-acs-content-sha256".into(), signing::EMPTY_SHA256.into()),
            ];
            if let Some(t) = &self.token {
                headers.push(("x-acs-security-token".into(), t.clone()));
            }
            let signed: Vec<(String, String)> = headers
                .iter()
                .filter(|(k, _)| !self.unsigned.contains(k))
                .cloned()
                .collect();
            let input = V3Input {
                method: "POST",
                path: "/",
                query: &query,
                headers: &signed,
                payload_hash: signing::EMPTY_SHA256,
            };
            let auth = signing::v3_authorization(&self.access_key_id, &self.secret, &input);
            headers.push(("authorization".into(), auth));
            headers.retain(|(k, _)| k != "host");
        }
        let url = format!(
            "{}/?{}",
            self.endpoint.trim_end_matches('/'),
            signing::canonical_query(&query)
        );
        let mut req = reqwest::Client::new().post(url);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.json::<Value>().await?;
        Ok(RawReply {
            status,
            headers,
            body,
        })
    }
}

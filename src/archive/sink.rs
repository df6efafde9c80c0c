//! Sinks: storage the operator owns. A local directory, or any S3-compatible object store
//! through the `object_store` crate (no hand-written S3 client).
//!
//! Both kinds take a finished, verified partial file and make it the object in one atomic
//! step: a `rename` within the sink's filesystem, or a multipart upload that only becomes
//! visible when it is completed. A reader never sees half an archive.

use super::error::ArchiveError;
use super::model::ArchiveId;
use super::settings::{ArchiveSettings, SinkKind, SinkSettings};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, WriteMultipart};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// Part size of multipart uploads (S3's minimum for every part but the last is 5 MiB).
const PART_BYTES: usize = 8 * 1024 * 1024;

/// One configured sink, ready to use.
pub struct Sink {
    pub settings: SinkSettings,
    backend: Backend,
}

enum Backend {
    Local {
        root: PathBuf,
    },
    S3 {
        store: Arc<AmazonS3>,
        bucket: String,
        prefix: String,
        spool: PathBuf,
    },
}

impl std::fmt::Debug for Sink {
    // Never the object store's own Debug: it would print the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.settings.name)
            .field("kind", &self.settings.kind)
            .finish()
    }
}

/// S3 keys from a TOML file (`access_key_id`, `secret_access_key`, `session_token`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    access_key_id: String,
    secret_access_key: SecretString,
    #[serde(default)]
    session_token: Option<SecretString>,
}

fn keys(s: &SinkSettings) -> Result<KeyFile, ArchiveError> {
    let key = |f: &str| format!("sinks.{}.{f}", s.name);
    if let Some(file) = &s.credentials_file {
        // The error names the file and the rule, never its content.
        let text = std::fs::read_to_string(file).map_err(|e| {
            ArchiveError::Config(format!(
                "{}: cannot read {}: {e}",
                key("credentials_file"),
                file.display()
            ))
        })?;
        return toml::from_str(&text).map_err(|_| {
            ArchiveError::Config(format!(
                "{}: {} must be TOML with access_key_id and secret_access_key",
                key("credentials_file"),
                file.display()
            ))
        });
    }
    let id_var = s
        .access_key_id_env
        .as_deref()
        .unwrap_or("AWS_ACCESS_KEY_ID");
    let secret_var = s
        .secret_access_key_env
        .as_deref()
        .unwrap_or("AWS_SECRET_ACCESS_KEY");
    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            ArchiveError::Config(format!(
                "sink {}: environment variable {name} is not set (or set credentials_file)",
                s.name
            ))
        })
    };
    Ok(KeyFile {
        access_key_id: var(id_var)?,
        secret_access_key: var(secret_var)?.into(),
        session_token: std::env::var("AWS_SESSION_TOKEN").ok().map(Into::into),
    })
}

impl Sink {
    /// Build a sink from its (validated) settings; S3 credentials are read now.
    pub fn new(s: &SinkSettings, archive: &ArchiveSettings) -> Result<Self, ArchiveError> {
        let backend = match s.kind {
            SinkKind::Local => Backend::Local {
                root: s.path.clone().unwrap_or_default(),
            },
            SinkKind::S3 => {
                let k = keys(s)?;
                let bucket = s.bucket.clone().unwrap_or_default();
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(&bucket)
                    .with_region(s.region.clone().unwrap_or_default())
                    .with_access_key_id(k.access_key_id)
                    .with_secret_access_key(k.secret_access_key.expose_secret())
                    .with_allow_http(s.allow_http);
                if let Some(t) = &k.session_token {
                    b = b.with_token(t.expose_secret());
                }
                if let Some(e) = s.endpoint.as_deref().filter(|e| !e.is_empty()) {
                    // Path-style requests: works with every S3-compatible server.
                    b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
                }
                let store = b
                    .build()
                    .map_err(|e| ArchiveError::Config(format!("sink {}: {e}", s.name)))?;
                Backend::S3 {
                    store: Arc::new(store),
                    bucket,
                    prefix: s
                        .prefix
                        .as_deref()
                        .unwrap_or("")
                        .trim_matches('/')
                        .to_string(),
                    spool: archive.spool_dir.join(&s.name),
                }
            }
        };
        Ok(Self {
            settings: s.clone(),
            backend,
        })
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Where the bytes of an archive accumulate until they are verified: inside a local
    /// sink (so the final rename stays on one filesystem), or in the spool directory.
    pub fn partial_path(&self, id: ArchiveId) -> PathBuf {
        let dir = match &self.backend {
            Backend::Local { root } => root.join(".partial"),
            Backend::S3 { spool, .. } => spool.clone(),
        };
        dir.join(format!("archive-{id}.part"))
    }

    fn key(prefix: &str, name: &str) -> String {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        }
    }

    /// Make the verified `partial` file the object `name`, atomically; returns its
    /// location (`file:///…` or `s3://bucket/key`). The partial file is gone afterwards.
    pub async fn commit(&self, partial: &Path, name: &str) -> Result<String, ArchiveError> {
        let err = |e: &dyn std::fmt::Display| ArchiveError::sink(self.name(), e);
        match &self.backend {
            Backend::Local { root } => {
                let target = root.join(name);
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|e| err(&e))?;
                }
                tokio::fs::rename(partial, &target)
                    .await
                    .map_err(|e| err(&e))?;
                let abs = std::path::absolute(&target).map_err(|e| err(&e))?;
                Ok(format!("file://{}", abs.display()))
            }
            Backend::S3 {
                store,
                bucket,
                prefix,
                ..
            } => {
                let key = Self::key(prefix, name);
                let upload = store
                    .put_multipart(&ObjectPath::from(key.as_str()))
                    .await
                    .map_err(|e| err(&e))?;
                let mut w = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
                let mut file = tokio::fs::File::open(partial).await.map_err(|e| err(&e))?;
                let mut buf = vec![0_u8; 1024 * 1024];
                let read: Result<(), ArchiveError> = async {
                    loop {
                        let n = file.read(&mut buf).await.map_err(|e| err(&e))?;
                        if n == 0 {
                            return Ok(());
                        }
                        w.wait_for_capacity(4).await.map_err(|e| err(&e))?;
                        w.write(&buf[..n]);
                    }
                }
                .await;
                if let Err(e) = read {
                    let _ = w.abort().await;
                    return Err(e);
                }
                // Completing the upload is what makes the object appear, whole.
                w.finish().await.map_err(|e| err(&e))?;
                let _ = tokio::fs::remove_file(partial).await;
                Ok(format!("s3://{bucket}/{key}"))
            }
        }
    }

    /// Whether `location` is inside this sink (retention deletes nothing else).
    pub fn owns(&self, location: &str) -> bool {
        self.locate(location).is_some()
    }

    fn locate(&self, location: &str) -> Option<Located> {
        match &self.backend {
            Backend::Local { root } => {
                let path = PathBuf::from(location.strip_prefix("file://")?);
                let root = std::path::absolute(root).ok()?;
                let inside = path.starts_with(&root)
                    && !path
                        .components()
                        .any(|c| c == std::path::Component::ParentDir)
                    && !path.starts_with(root.join(".partial"));
                inside.then_some(Located::File(path))
            }
            Backend::S3 { bucket, prefix, .. } => {
                let rest = location.strip_prefix("s3://")?;
                let (b, key) = rest.split_once('/')?;
                let inside = b == bucket
                    && (prefix.is_empty() || key.starts_with(&format!("{prefix}/")))
                    && !key.split('/').any(|s| s == "..");
                inside.then(|| Located::Key(key.to_string()))
            }
        }
    }

    /// Delete the object at `location`, which must be inside this sink. A missing object
    /// counts as deleted.
    pub async fn delete(&self, location: &str) -> Result<(), ArchiveError> {
        let err = |e: &dyn std::fmt::Display| ArchiveError::sink(self.name(), e);
        match (self.locate(location), &self.backend) {
            (None, _) => Err(ArchiveError::Sink {
                sink: self.name().to_string(),
                message: format!("refusing to delete {location}: not inside this sink"),
            }),
            (Some(Located::File(p)), _) => match tokio::fs::remove_file(&p).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(err(&e)),
            },
            (Some(Located::Key(k)), Backend::S3 { store, .. }) => {
                match store.delete(&ObjectPath::from(k.as_str())).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(err(&e)),
                }
            }
            (Some(Located::Key(_)), Backend::Local { .. }) => unreachable!("locate matches kind"),
        }
    }
}

enum Located {
    File(PathBuf),
    Key(String),
}

/// Every configured sink by name.
#[derive(Debug, Default)]
pub struct Sinks(HashMap<String, Arc<Sink>>);

impl Sinks {
    pub fn new(sinks: &[SinkSettings], archive: &ArchiveSettings) -> Result<Self, ArchiveError> {
        sinks
            .iter()
            .map(|s| Ok((s.name.clone(), Arc::new(Sink::new(s, archive)?))))
            .collect::<Result<HashMap<_, _>, ArchiveError>>()
            .map(Self)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Sink>> {
        self.0.get(name).cloned()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Sink>> {
        self.0.values()
    }
}

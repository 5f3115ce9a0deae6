//! Who may do what: the access keys, their secrets (for s3s's SigV4 checks) and their
//! limits. A key is an admin, or is limited to named buckets, read-only or read-write.

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::{CopyObjectInput, CopySource, UploadPartCopyInput};
use s3s::{S3Request, S3Result, s3_error};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessLevel {
    #[default]
    ReadOnly,
    ReadWrite,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub access_key: String,
    pub secret_key: String,
    #[serde(default)]
    pub admin: bool,
    /// For a non-admin key: the buckets it may use.
    #[serde(default)]
    pub buckets: Vec<String>,
    #[serde(default)]
    pub access: AccessLevel,
}

#[derive(Debug, Default)]
pub struct KeyStore {
    keys: HashMap<String, KeyConfig>,
}

impl KeyStore {
    pub fn new(keys: Vec<KeyConfig>) -> Result<KeyStore, String> {
        let mut store = KeyStore::default();
        for key in keys {
            if key.access_key.is_empty() || key.secret_key.len() < 8 {
                return Err(format!(
                    "key {:?}: the access key must not be empty and the secret must be at least 8 characters",
                    key.access_key
                ));
            }
            if let Some(previous) = store.keys.insert(key.access_key.clone(), key) {
                return Err(format!("access key {:?} is configured twice", previous.access_key));
            }
        }
        Ok(store)
    }

    pub fn key(&self, access_key: &str) -> Option<&KeyConfig> {
        self.keys.get(access_key)
    }

    /// May `access_key` use `bucket` (for writing if `write`)?
    pub fn allows(&self, access_key: &str, bucket: &str, write: bool) -> bool {
        match self.keys.get(access_key) {
            Some(key) if key.admin => true,
            Some(key) => key.buckets.iter().any(|b| b == bucket) && (!write || key.access == AccessLevel::ReadWrite),
            None => false,
        }
    }

    /// May `access_key` see `bucket` in ListBuckets?
    pub fn lists(&self, access_key: &str, bucket: &str) -> bool {
        self.allows(access_key, bucket, false)
    }
}

/// Operations that only read. Everything else needs write access.
fn is_read_only(operation: &str) -> bool {
    matches!(
        operation,
        "GetObject"
            | "HeadObject"
            | "ListObjects"
            | "ListObjectsV2"
            | "ListObjectVersions"
            | "HeadBucket"
            | "GetBucketLocation"
            | "ListParts"
            | "ListMultipartUploads"
            | "SelectObjectContent"
            | "GetObjectAttributes"
            | "GetBucketVersioning"
            | "GetObjectTagging"
            | "GetBucketTagging"
            | "GetObjectAcl"
            | "GetBucketAcl"
    )
}

/// s3s asks this for the secret of an access key when it verifies a signature.
pub struct Auth(pub Arc<KeyStore>);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.key(access_key) {
            Some(key) => Ok(SecretKey::from(key.secret_key.as_str())),
            None => {
                Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
            }
        }
    }
}

/// s3s asks this, after the signature checked out, whether the caller may do the operation.
pub struct Access(pub Arc<KeyStore>);

fn denied() -> s3s::S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

impl Access {
    fn check_source(&self, access_key: Option<&str>, source: &CopySource) -> S3Result<()> {
        let CopySource::Bucket { bucket, .. } = source else {
            return Ok(());
        };
        match access_key {
            Some(key) if self.0.allows(key, bucket, false) => Ok(()),
            _ => Err(denied()),
        }
    }
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Anonymous requests are not allowed"));
        };
        let Some(key) = self.0.key(&credentials.access_key) else {
            return Err(denied());
        };
        if key.admin {
            return Ok(());
        }
        let operation = cx.s3_op().name();
        let bucket = match cx.s3_path() {
            s3s::path::S3Path::Root => None,
            s3s::path::S3Path::Bucket { bucket } | s3s::path::S3Path::Object { bucket, .. } => Some(bucket),
        };
        match (operation, bucket) {
            ("CreateBucket" | "DeleteBucket", _) => Err(s3_error!(AccessDenied, "Only an admin key may {operation}")),
            ("ListBuckets", _) => Ok(()), // filtered to the key's buckets
            (_, Some(bucket)) if self.0.allows(&key.access_key, bucket, !is_read_only(operation)) => Ok(()),
            _ => Err(denied()),
        }
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let access_key = req.credentials.as_ref().map(|c| c.access_key.as_str());
        self.check_source(access_key, &req.input.copy_source)
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        let access_key = req.credentials.as_ref().map(|c| c.access_key.as_str());
        self.check_source(access_key, &req.input.copy_source)
    }
}

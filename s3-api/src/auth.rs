//! Who is asking: the access keys, their secrets (for s3s's SigV4 checks) and the users
//! they belong to. What a user may do is decided in `access.rs`.
//!
//! A user is one of three kinds, from the keys that name it:
//! * an admin: everything, every bucket;
//! * scoped: the named buckets only, read-only or read-write, and no bucket of its own
//!   (the keys Quarry had before users owned buckets);
//! * an owner: a user that creates buckets and owns them, like an AWS account.

use crate::policy::Caller;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};
use serde::Deserialize;
use sha2::Digest;
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
    /// The user the key belongs to (default: a user named as the access key). Keys of
    /// one user must agree on `admin`, `buckets` and `access`.
    #[serde(default)]
    pub user: Option<String>,
}

impl KeyConfig {
    pub fn user_name(&self) -> &str {
        self.user.as_deref().unwrap_or(&self.access_key)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserKind {
    Admin,
    Scoped { buckets: Vec<String>, access: AccessLevel },
    Owner,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// 64 hex digits, as S3's canonical user ids: stable for a name.
    pub canonical_id: String,
    pub kind: UserKind,
}

impl User {
    fn new(name: &str, kind: UserKind) -> User {
        let digest = sha2::Sha256::digest(format!("quarry-user:{name}").as_bytes());
        User { name: name.to_owned(), canonical_id: hex::encode(digest), kind }
    }

    pub fn is_admin(&self) -> bool {
        self.kind == UserKind::Admin
    }

    /// Whether a scoped user's grant covers `bucket` (for writing if `write`).
    pub fn scope_allows(&self, bucket: &str, write: bool) -> bool {
        match &self.kind {
            UserKind::Admin => true,
            UserKind::Scoped { buckets, access } => {
                buckets.iter().any(|b| b == bucket) && (!write || *access == AccessLevel::ReadWrite)
            }
            UserKind::Owner => false,
        }
    }

    /// How bucket policies name this user: `"<name>"`, `"arn:aws:iam::<name>:root"` and
    /// `"arn:aws:iam::<name>:user/<name>"` in `AWS`, the canonical id in `CanonicalUser`.
    pub fn as_policy_caller(&self) -> Caller {
        let aws_names = vec![
            self.name.clone(),
            format!("arn:aws:iam::{}:root", self.name),
            format!("arn:aws:iam::{0}:user/{0}", self.name),
        ];
        Caller::User { aws_names, canonical_id: self.canonical_id.clone() }
    }

    pub fn owner(&self) -> s3s::dto::Owner {
        s3s::dto::Owner { id: Some(self.canonical_id.clone()), display_name: Some(self.name.clone()) }
    }
}

/// The owner entry of the user `name` (whether or not the user still has keys).
pub fn owner_named(name: &str) -> s3s::dto::Owner {
    User::new(name, UserKind::Owner).owner()
}

#[derive(Debug, Default)]
pub struct KeyStore {
    keys: HashMap<String, KeyConfig>,
    users: HashMap<String, User>,
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
            let kind = match (key.admin, key.buckets.is_empty()) {
                (true, _) => UserKind::Admin,
                (false, false) => UserKind::Scoped { buckets: key.buckets.clone(), access: key.access },
                (false, true) => UserKind::Owner,
            };
            let user = User::new(key.user_name(), kind);
            if let Some(known) = store.users.get(&user.name)
                && *known != user
            {
                return Err(format!("the keys of user {:?} disagree on admin, buckets or access", user.name));
            }
            store.users.insert(user.name.clone(), user);
            if let Some(previous) = store.keys.insert(key.access_key.clone(), key) {
                return Err(format!("access key {:?} is configured twice", previous.access_key));
            }
        }
        Ok(store)
    }

    pub fn key(&self, access_key: &str) -> Option<&KeyConfig> {
        self.keys.get(access_key)
    }

    /// The user an access key belongs to.
    pub fn user(&self, access_key: &str) -> Option<&User> {
        self.users.get(self.keys.get(access_key)?.user_name())
    }

    /// A user by canonical id (an ACL grantee).
    pub fn user_by_canonical_id(&self, id: &str) -> Option<&User> {
        self.users.values().find(|u| u.canonical_id == id)
    }

    /// A user by name (a bucket's owner).
    pub fn user_named(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// May `access_key` see `bucket`, owned by `owner`, in ListBuckets? Admins see
    /// every bucket, scoped users those they may use, owners their own.
    pub fn lists(&self, access_key: &str, bucket: &str, owner: Option<&str>) -> bool {
        match self.user(access_key) {
            Some(user) if user.kind == UserKind::Owner => owner == Some(user.name.as_str()),
            Some(user) => user.scope_allows(bucket, false),
            None => false,
        }
    }
}

/// Operations that only read. Everything else needs write access.
pub(crate) fn is_read_only(operation: &str) -> bool {
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
            | "GetObjectRetention"
            | "GetObjectLegalHold"
            | "GetObjectLockConfiguration"
            | "GetBucketPolicy"
            | "GetBucketPolicyStatus"
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

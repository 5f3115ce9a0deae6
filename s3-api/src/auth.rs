//! Who is asking: the access keys, their secrets (for s3s's SigV4 checks) and the users
//! they belong to. What a user may do is decided in `access.rs`.
//!
//! Users and keys come from two places: the config file and environment (fixed while the
//! server runs), and the log (made at run time through the admin API, `admin_users.rs`;
//! their secrets sealed by the server key). Names and access keys are unique across both.
//!
//! A user is one of three kinds, from the keys that name it:
//! * an admin: everything, every bucket;
//! * scoped: the named buckets only, read-only or read-write, and no bucket of its own
//!   (the keys Quarry had before users owned buckets);
//! * an owner: a user that creates buckets and owns them, like an AWS account.

use crate::policy::Caller;
use crate::secrets::ServerKey;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};
use serde::Deserialize;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use storage_core::Engine;

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

/// Users and their usable keys, from one source.
#[derive(Debug, Default)]
struct Directory {
    /// access key -> (secret, user name); only keys that may sign requests.
    keys: HashMap<String, (String, String)>,
    /// Every user, a disabled one included (ACLs still name it).
    users: HashMap<String, User>,
}

impl Directory {
    fn from_config(keys: Vec<KeyConfig>) -> Result<Directory, String> {
        let mut directory = Directory::default();
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
            if let Some(known) = directory.users.get(&user.name)
                && *known != user
            {
                return Err(format!("the keys of user {:?} disagree on admin, buckets or access", user.name));
            }
            directory.users.insert(user.name.clone(), user);
            let entry = (key.secret_key.clone(), key.user_name().to_owned());
            if directory.keys.insert(key.access_key.clone(), entry).is_some() {
                return Err(format!("access key {:?} is configured twice", key.access_key));
            }
        }
        Ok(directory)
    }

    /// The users and keys in the log, secrets opened with `server_key`.
    fn from_engine(engine: &Engine, server_key: &ServerKey) -> Result<Directory, String> {
        let mut directory = Directory::default();
        let mut disabled_users = std::collections::HashSet::new();
        for (name, entry) in engine.users().map_err(|e| format!("cannot read the users: {e}"))? {
            let kind = if entry.admin { UserKind::Admin } else { UserKind::Owner };
            if entry.disabled {
                disabled_users.insert(name.clone());
            }
            directory.users.insert(name.clone(), User::new(&name, kind));
        }
        for (access_key, entry) in engine.access_keys().map_err(|e| format!("cannot read the access keys: {e}"))? {
            let secret = server_key.open(&access_key, &entry.sealed_secret)?;
            if !entry.disabled && !disabled_users.contains(&entry.user) {
                directory.keys.insert(access_key, (secret, entry.user));
            }
        }
        Ok(directory)
    }
}

/// Every user and key the server knows.
#[derive(Debug)]
pub struct KeyStore {
    configured: Directory,
    made_at_run_time: RwLock<Directory>,
    /// Seals the secrets of keys made at run time (none: they cannot be made).
    server_key: Option<ServerKey>,
}

impl KeyStore {
    /// The configured users only.
    pub fn new(keys: Vec<KeyConfig>) -> Result<KeyStore, String> {
        let configured = Directory::from_config(keys)?;
        Ok(KeyStore { configured, made_at_run_time: RwLock::default(), server_key: None })
    }

    /// The configured users and those in the log, which must not share a name or key.
    pub fn with_run_time_users(
        keys: Vec<KeyConfig>,
        server_key: ServerKey,
        engine: &Engine,
    ) -> Result<KeyStore, String> {
        let mut store = KeyStore::new(keys)?;
        store.server_key = Some(server_key);
        store.reload(engine)?;
        let made = store.made_at_run_time.read().expect("not poisoned");
        if let Some(name) = made.users.keys().find(|name| store.configured.users.contains_key(*name)) {
            return Err(format!("user {name:?} is both in the config and made at run time: rename one"));
        }
        let engine_keys = engine.access_keys().map_err(|e| format!("cannot read the access keys: {e}"))?;
        if let Some((key, _)) = engine_keys.iter().find(|(key, _)| store.configured.keys.contains_key(key)) {
            return Err(format!("access key {key:?} is both in the config and made at run time: remove one"));
        }
        drop(made);
        Ok(store)
    }

    /// Reads the users and keys made at run time again (after the admin API changed them).
    pub fn reload(&self, engine: &Engine) -> Result<(), String> {
        let Some(server_key) = &self.server_key else { return Ok(()) };
        let directory = Directory::from_engine(engine, server_key)?;
        *self.made_at_run_time.write().expect("not poisoned") = directory;
        Ok(())
    }

    pub fn server_key(&self) -> Option<&ServerKey> {
        self.server_key.as_ref()
    }

    /// Is `name` a user of the config file (not changed at run time)?
    pub fn is_configured_user(&self, name: &str) -> bool {
        self.configured.users.contains_key(name)
    }

    pub fn is_configured_key(&self, access_key: &str) -> bool {
        self.configured.keys.contains_key(access_key)
    }

    fn find<T>(&self, pick: impl Fn(&Directory) -> Option<T>) -> Option<T> {
        pick(&self.configured).or_else(|| pick(&self.made_at_run_time.read().expect("not poisoned")))
    }

    /// The secret of a key that may sign requests now.
    pub fn secret(&self, access_key: &str) -> Option<String> {
        self.find(|d| d.keys.get(access_key).map(|(secret, _)| secret.clone()))
    }

    /// The user a usable access key belongs to.
    pub fn user(&self, access_key: &str) -> Option<User> {
        self.find(|d| d.keys.get(access_key).and_then(|(_, user)| d.users.get(user)).cloned())
    }

    /// A user by canonical id (an ACL grantee).
    pub fn user_by_canonical_id(&self, id: &str) -> Option<User> {
        self.find(|d| d.users.values().find(|u| u.canonical_id == id).cloned())
    }

    /// A user by name (a bucket's owner).
    pub fn user_named(&self, name: &str) -> Option<User> {
        self.find(|d| d.users.get(name).cloned())
    }

    /// The configured users' names and kinds, and their access keys.
    pub fn configured_users(&self) -> Vec<(User, Vec<String>)> {
        let mut users: Vec<(User, Vec<String>)> = self
            .configured
            .users
            .values()
            .map(|user| {
                let mut keys: Vec<String> =
                    self.configured.keys.iter().filter(|(_, (_, u))| *u == user.name).map(|(k, _)| k.clone()).collect();
                keys.sort();
                (user.clone(), keys)
            })
            .collect();
        users.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        users
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
            | "GetBucketCors"
    )
}

/// s3s asks this for the secret of an access key when it verifies a signature.
pub struct Auth(pub Arc<KeyStore>);

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.secret(access_key) {
            Some(secret) => Ok(SecretKey::from(secret.as_str())),
            None => {
                Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
            }
        }
    }
}

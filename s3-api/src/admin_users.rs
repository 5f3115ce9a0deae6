//! The admin API's users and access keys (`quarry admin user|key ...`). Admin keys only,
//! like the rest of the admin API. Every change is a record in the log, committed before
//! the answer; the key store then reads the users again.
//!
//! ```text
//! GET    /quarry-admin/users                     every user, its kind and keys (never a secret)
//! PUT    /quarry-admin/users/<name>[?admin=true] a new user (an owner, or an admin)
//! POST   /quarry-admin/users/<name>/disable      its keys stop working (and /enable)
//! DELETE /quarry-admin/users/<name>              refused while it has keys or buckets
//! POST   /quarry-admin/users/<name>/keys         a new key; the only answer with its secret
//! POST   /quarry-admin/keys/<access key>/disable (and /enable)
//! DELETE /quarry-admin/keys/<access key>
//! ```
//! Users of the config file are listed but not changed here.

use crate::KeyStore;
use crate::error::custom;
use bytes::Bytes;
use http::StatusCode;
use s3s::{Body, S3Response, S3Result, s3_error};
use serde::Serialize;
use std::sync::Arc;
use storage_core::{Engine, Error, KeyChange, Rejection, UserChange};

pub const USERS_PATH: &str = "/quarry-admin/users";
pub const KEYS_PATH: &str = "/quarry-admin/keys";
/// As IAM user names, less `+ = , @` (which URL paths and signatures treat unevenly).
const MAX_USER_NAME_BYTES: usize = 64;

pub fn is_identity_path(path: &str) -> bool {
    [USERS_PATH, KEYS_PATH].iter().any(|base| path == *base || path.starts_with(&format!("{base}/")))
}

/// A user name made at run time: 1 to 64 of letters, digits and `_ . -` (access keys
/// are of these characters too).
pub fn valid_user_name(name: &str) -> bool {
    (1..=MAX_USER_NAME_BYTES).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

pub struct Identities {
    pub engine: Engine,
    pub keys: Arc<KeyStore>,
    /// One change at a time: each is committed and the key store reloaded before the next.
    pub changes: tokio::sync::Mutex<()>,
}

#[derive(Serialize)]
struct UserView {
    name: String,
    /// "admin", "owner" or "scoped"
    kind: &'static str,
    /// "config" (the config file or environment) or "run-time"
    source: &'static str,
    disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_ms: Option<i64>,
    access_keys: Vec<KeyView>,
}

#[derive(Serialize)]
struct KeyView {
    access_key: String,
    disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_ms: Option<i64>,
}

#[derive(Serialize)]
struct NewKey {
    user: String,
    access_key: String,
    /// Shown this once: only its sealed form is kept.
    secret_key: String,
}

fn json(status: StatusCode, value: &impl Serialize) -> S3Response<Body> {
    let body = serde_json::to_vec_pretty(value).expect("admin answers serialize");
    let mut response = S3Response::new(Body::from(Bytes::from(body)));
    response.status = Some(status);
    response.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

fn identity_error(error: Error, what: &str) -> s3s::S3Error {
    match error {
        Error::Rejected(Rejection::EntityAlreadyExists) => {
            custom("EntityAlreadyExists", StatusCode::CONFLICT, format!("{what} already exists"))
        }
        Error::Rejected(Rejection::NoSuchEntity) => {
            custom("NoSuchEntity", StatusCode::NOT_FOUND, format!("{what} does not exist"))
        }
        Error::Rejected(Rejection::DeleteConflict) => custom(
            "DeleteConflict",
            StatusCode::CONFLICT,
            format!("{what} still has access keys or owns buckets: delete those first"),
        ),
        Error::Rejected(Rejection::LimitExceeded) => custom(
            "LimitExceeded",
            StatusCode::CONFLICT,
            format!(
                "{what} has {} access keys already, the most a user may have",
                storage_core::index::MAX_ACCESS_KEYS_PER_USER
            ),
        ),
        other => crate::error::engine_error(other),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn random_text(alphabet: &[u8], n: usize) -> String {
    (0..n).map(|_| alphabet[rand::random_range(0..alphabet.len())] as char).collect()
}

impl Identities {
    pub async fn call(&self, method: &http::Method, path: &str, query: Option<&str>) -> S3Result<S3Response<Body>> {
        let segments: Vec<&str> = path.trim_start_matches("/quarry-admin/").split('/').collect();
        let decoded: Vec<String> =
            segments.iter().map(|s| urlencoding::decode(s).map(|d| d.into_owned()).unwrap_or_default()).collect();
        let names: Vec<&str> = decoded.iter().map(String::as_str).collect();
        use http::Method;
        match (method, names.as_slice()) {
            (&Method::GET, ["users"]) => self.list(),
            (&Method::PUT, ["users", name]) => {
                let admin = query.unwrap_or("").split('&').any(|pair| pair == "admin=true");
                self.create_user(name, admin).await
            }
            (&Method::POST, ["users", name, "disable"]) => self.user_change(name, UserChange::Disabled(true)).await,
            (&Method::POST, ["users", name, "enable"]) => self.user_change(name, UserChange::Disabled(false)).await,
            (&Method::DELETE, ["users", name]) => self.user_change(name, UserChange::Delete).await,
            (&Method::POST, ["users", name, "keys"]) => self.create_key(name).await,
            (&Method::POST, ["keys", key, "disable"]) => self.key_change(key, KeyChange::Disabled(true)).await,
            (&Method::POST, ["keys", key, "enable"]) => self.key_change(key, KeyChange::Disabled(false)).await,
            (&Method::DELETE, ["keys", key]) => self.key_change(key, KeyChange::Delete).await,
            _ => Err(s3_error!(MethodNotAllowed, "{method} is not allowed on {path}")),
        }
    }

    fn list(&self) -> S3Result<S3Response<Body>> {
        let mut users: Vec<UserView> = self
            .keys
            .configured_users()
            .into_iter()
            .map(|(user, keys)| UserView {
                kind: kind_name(&user.kind),
                name: user.name,
                source: "config",
                disabled: false,
                created_ms: None,
                access_keys: keys
                    .into_iter()
                    .map(|access_key| KeyView { access_key, disabled: false, created_ms: None })
                    .collect(),
            })
            .collect();
        let engine_keys = self.engine.access_keys().map_err(crate::error::engine_error)?;
        for (name, entry) in self.engine.users().map_err(crate::error::engine_error)? {
            let access_keys = engine_keys
                .iter()
                .filter(|(_, key)| key.user == name)
                .map(|(access_key, key)| KeyView {
                    access_key: access_key.clone(),
                    disabled: key.disabled,
                    created_ms: Some(key.created_ms),
                })
                .collect();
            users.push(UserView {
                name,
                kind: if entry.admin { "admin" } else { "owner" },
                source: "run-time",
                disabled: entry.disabled,
                created_ms: Some(entry.created_ms),
                access_keys,
            });
        }
        #[derive(Serialize)]
        struct Users {
            users: Vec<UserView>,
        }
        Ok(json(StatusCode::OK, &Users { users }))
    }

    fn refuse_configured_user(&self, name: &str) -> S3Result<()> {
        if self.keys.is_configured_user(name) {
            return Err(custom(
                "DeleteConflict",
                StatusCode::CONFLICT,
                format!("user {name} is defined in the config file; change it there"),
            ));
        }
        Ok(())
    }

    async fn create_user(&self, name: &str, admin: bool) -> S3Result<S3Response<Body>> {
        if !valid_user_name(name) {
            return Err(s3_error!(
                InvalidArgument,
                "A user name is 1 to {MAX_USER_NAME_BYTES} letters, digits and _ . -"
            ));
        }
        if self.keys.is_configured_user(name) {
            return Err(custom("EntityAlreadyExists", StatusCode::CONFLICT, format!("user {name} already exists")));
        }
        self.user_change(name, UserChange::Create { admin, created_ms: now_ms() }).await
    }

    async fn user_change(&self, name: &str, change: UserChange) -> S3Result<S3Response<Body>> {
        self.refuse_configured_user(name)?;
        let _one_at_a_time = self.changes.lock().await;
        let created = matches!(change, UserChange::Create { .. });
        let outcome = self.engine.change_user(name, change).await;
        self.reload()?;
        outcome.map_err(|e| match e {
            Error::Rejected(Rejection::LimitExceeded) => custom(
                "LimitExceeded",
                StatusCode::CONFLICT,
                format!("The server keeps at most {} users made at run time", storage_core::index::MAX_USERS),
            ),
            e => identity_error(e, &format!("user {name}")),
        })?;
        #[derive(Serialize)]
        struct Done<'a> {
            user: &'a str,
        }
        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
        Ok(json(status, &Done { user: name }))
    }

    async fn create_key(&self, user: &str) -> S3Result<S3Response<Body>> {
        self.refuse_configured_user(user)?;
        let Some(server_key) = self.keys.server_key() else {
            return Err(s3_error!(NotImplemented, "This server keeps no server key: keys cannot be made at run time"));
        };
        const ACCESS_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let access_key = format!("QK{}", random_text(ACCESS_ALPHABET, 18));
        let secret_key = random_text(SECRET_ALPHABET, 40);
        if self.keys.is_configured_key(&access_key) {
            return Err(s3_error!(InternalError, "A generated access key collided with a configured one; try again"));
        }
        let sealed_secret = server_key.seal(&access_key, &secret_key);
        let change = KeyChange::Create { user: user.to_owned(), sealed_secret, created_ms: now_ms() };
        let _one_at_a_time = self.changes.lock().await;
        let outcome = self.engine.change_access_key(&access_key, change).await;
        self.reload()?;
        outcome.map_err(|e| identity_error(e, &format!("user {user}")))?;
        Ok(json(StatusCode::CREATED, &NewKey { user: user.to_owned(), access_key, secret_key }))
    }

    async fn key_change(&self, access_key: &str, change: KeyChange) -> S3Result<S3Response<Body>> {
        if self.keys.is_configured_key(access_key) {
            return Err(custom(
                "DeleteConflict",
                StatusCode::CONFLICT,
                format!("access key {access_key} is defined in the config file; change it there"),
            ));
        }
        let _one_at_a_time = self.changes.lock().await;
        let outcome = self.engine.change_access_key(access_key, change).await;
        self.reload()?;
        outcome.map_err(|e| identity_error(e, &format!("access key {access_key}")))?;
        #[derive(Serialize)]
        struct Done<'a> {
            access_key: &'a str,
        }
        Ok(json(StatusCode::OK, &Done { access_key }))
    }

    fn reload(&self) -> S3Result<()> {
        self.keys.reload(&self.engine).map_err(|e| {
            tracing::error!("cannot read the users again: {e}");
            s3_error!(InternalError, "The change was made, but the server could not read the users again")
        })
    }
}

fn kind_name(kind: &crate::auth::UserKind) -> &'static str {
    match kind {
        crate::auth::UserKind::Admin => "admin",
        crate::auth::UserKind::Owner => "owner",
        crate::auth::UserKind::Scoped { .. } => "scoped",
    }
}

//! Settings: command-line flags and environment variables over an optional TOML file
//! over built-in defaults; and the access keys.

use s3_api::KeyConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_ADDRESS: &str = "127.0.0.1:9000";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_REGION: &str = "us-east-1";
/// S3's own limit for one PutObject.
pub const DEFAULT_MAX_OBJECT_SIZE_BYTES: u64 = 5 * 1024 * 1024 * 1024;
pub const DEFAULT_SCRUB_INTERVAL_SECS: u64 = 24 * 60 * 60;
pub const DEFAULT_COMPACTION_INTERVAL_SECS: u64 = 60;
pub const DEFAULT_LIFECYCLE_INTERVAL_SECS: u64 = 60 * 60;
pub const DEFAULT_LIFECYCLE_DAY_SECS: u64 = 24 * 60 * 60;
pub const DEFAULT_COMPACTION_DEAD_RATIO: f64 = 0.5;
pub const DEFAULT_ERASURE_DEADLINE_SECS: u64 = 24 * 60 * 60;
pub const DEFAULT_COMPACTION_RATE_BYTES_PER_SEC: u64 = 64 * 1024 * 1024;
pub const DEFAULT_SCRUB_RATE_BYTES_PER_SEC: u64 = 64 * 1024 * 1024;
/// Queries at once (their memory is bounded by `query_memory_total_bytes` together).
pub const DEFAULT_MAX_CONCURRENT_QUERIES: usize = 4;
/// Open client connections; more are refused once all are busy (the oldest idle one is
/// closed to make room). Also capped below the process's file-descriptor limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Time a client has to send a request's headers (and, on a fresh connection, the first request).
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 20_000;
/// Time a request body may stall without a byte before the request fails with RequestTimeout.
pub const DEFAULT_BODY_IDLE_TIMEOUT_MS: u64 = 30_000;
/// Time a connection with no request in progress is kept open.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT_MS: u64 = 15_000;
/// `<bucket>.localhost` always addresses a bucket: `*.localhost` is loopback (RFC 6761).
pub const BUILTIN_DOMAIN: &str = "localhost";
/// Where a generated key pair is kept, inside the data directory.
pub const GENERATED_CREDENTIALS_FILE: &str = "credentials.toml";
/// The server key (hex), when QUARRY_SERVER_KEY does not give it.
pub const SERVER_KEY_FILE: &str = "server.key";

/// How log lines are written to stderr.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// The TOML configuration file. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub address: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub region: Option<String>,
    pub max_object_size_bytes: Option<u64>,
    pub disk_reserve_bytes: Option<u64>,
    pub index_cache_bytes: Option<u64>,
    pub scrub_interval_secs: Option<u64>,
    pub scrub_rate_bytes_per_sec: Option<u64>,
    pub compaction_interval_secs: Option<u64>,
    pub lifecycle_interval_secs: Option<u64>,
    pub lifecycle_day_secs: Option<u64>,
    pub compaction_dead_ratio: Option<f64>,
    pub erasure_deadline_secs: Option<u64>,
    pub compaction_rate_bytes_per_sec: Option<u64>,
    pub catalog_flush_interval_ms: Option<u64>,
    pub catalog_flush_after_changes: Option<u64>,
    pub journal_retention_days: Option<u64>,
    pub query_memory_bytes: Option<usize>,
    pub query_timeout_ms: Option<u64>,
    pub query_memory_total_bytes: Option<usize>,
    pub select_max_decompressed_bytes: Option<u64>,
    pub allow_sigv2: Option<bool>,
    pub allow_sse_c_over_http: Option<bool>,
    pub block_public_access: Option<bool>,
    pub object_ownership: Option<String>,
    pub max_concurrent_queries: Option<usize>,
    pub max_connections: Option<usize>,
    pub header_read_timeout_ms: Option<u64>,
    pub body_idle_timeout_ms: Option<u64>,
    pub keep_alive_timeout_ms: Option<u64>,
    pub log_format: Option<LogFormat>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Domains for virtual-hosted-style requests (`<bucket>.<domain>`).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid configuration in {}: {e}", path.display()))
    }
}

#[derive(Debug, Deserialize)]
struct GeneratedCredentials {
    access_key: String,
    secret_key: String,
}

/// The admin key from QUARRY_ACCESS_KEY / QUARRY_SECRET_KEY, if both are set.
pub fn env_admin_key() -> Result<Option<KeyConfig>, String> {
    let access = std::env::var("QUARRY_ACCESS_KEY").ok().filter(|v| !v.is_empty());
    let secret = std::env::var("QUARRY_SECRET_KEY").ok().filter(|v| !v.is_empty());
    match (access, secret) {
        (Some(access_key), Some(secret_key)) => Ok(Some(admin(access_key, secret_key))),
        (None, None) => Ok(None),
        _ => Err("set both QUARRY_ACCESS_KEY and QUARRY_SECRET_KEY, or neither".into()),
    }
}

fn admin(access_key: String, secret_key: String) -> KeyConfig {
    KeyConfig { access_key, secret_key, admin: true, buckets: Vec::new(), access: Default::default(), user: None }
}

/// With no key configured at all: the key pair kept in the data directory, generated
/// (and printed once) on first start.
pub fn generated_admin_key(data_dir: &Path) -> Result<KeyConfig, String> {
    let path = data_dir.join(GENERATED_CREDENTIALS_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let saved: GeneratedCredentials =
            toml::from_str(&text).map_err(|e| format!("invalid credentials file {}: {e}", path.display()))?;
        return Ok(admin(saved.access_key, saved.secret_key));
    }
    const ACCESS_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let pick = |alphabet: &[u8], n: usize| -> String {
        (0..n).map(|_| alphabet[rand::random_range(0..alphabet.len())] as char).collect()
    };
    let access_key = format!("QRY{}", pick(ACCESS_ALPHABET, 17));
    let secret_key = pick(SECRET_ALPHABET, 40);
    std::fs::create_dir_all(data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    write_private(&path, &format!("access_key = \"{access_key}\"\nsecret_key = \"{secret_key}\"\n"))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("No credentials were configured; generated an admin key (kept in {}):", path.display());
    println!("  access key: {access_key}");
    println!("  secret key: {secret_key}");
    Ok(admin(access_key, secret_key))
}

/// The key that seals the secrets of access keys made at run time: QUARRY_SERVER_KEY
/// (64 hex digits) if set, else the data directory's `server.key`, made (mode 0600) on
/// first start. Losing it loses those keys, not the data; a wrong one stops the start.
pub fn server_key(data_dir: &Path) -> Result<s3_api::secrets::ServerKey, String> {
    use s3_api::secrets::ServerKey;
    if let Some(text) = std::env::var("QUARRY_SERVER_KEY").ok().filter(|v| !v.is_empty()) {
        return ServerKey::from_hex(&text).map_err(|e| format!("QUARRY_SERVER_KEY: {e}"));
    }
    let path = data_dir.join(SERVER_KEY_FILE);
    if path.exists() {
        use std::os::unix::fs::MetadataExt;
        let mode = std::fs::metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?.mode();
        if mode & 0o077 != 0 {
            return Err(format!("{} may be read by others (mode {:o}): chmod 600 it", path.display(), mode & 0o777));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return ServerKey::from_hex(&text).map_err(|e| format!("{}: {e}", path.display()));
    }
    let key = ServerKey::generate();
    std::fs::create_dir_all(data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    write_private(&path, &format!("{}\n", key.to_hex()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(key)
}

/// Writes a file only its owner can read (mode 0600 from the start, then fsynced).
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// `--object-ownership`: S3's names for Object Ownership.
pub fn object_ownership(name: Option<&str>) -> Result<storage_core::ObjectOwnership, String> {
    use storage_core::ObjectOwnership::*;
    match name {
        None | Some("BucketOwnerEnforced") => Ok(BucketOwnerEnforced),
        Some("BucketOwnerPreferred") => Ok(BucketOwnerPreferred),
        Some("ObjectWriter") => Ok(ObjectWriter),
        Some(other) => {
            Err(format!("object ownership {other:?}: BucketOwnerEnforced, BucketOwnerPreferred or ObjectWriter"))
        }
    }
}

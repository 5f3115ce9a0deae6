//! `quarry admin ...`: offline maintenance of a data directory (`rebuild-index`, `scrub`:
//! the server must be stopped, these take the data directory's lock like the server
//! does), and requests to a running server's admin API (`compact`, `status`, `user`,
//! `key`).

use clap::{Args, Subcommand};
use std::path::PathBuf;
use storage_core::{Engine, EngineConfig, EngineStats};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Throw the index away and rebuild it from the log (sidecars where valid). Offline.
    RebuildIndex(DataDirArgs),
    /// Re-read and verify every record; list damaged regions and objects. Offline.
    Scrub(ScrubArgs),
    /// Compact every segment holding dead data now, on a running server; wait for it.
    Compact(EndpointArgs),
    /// Segments, live and dead bytes, last compaction of a running server (JSON).
    Status(EndpointArgs),
    /// Users of a running server: list, create, disable, enable, delete.
    #[command(subcommand)]
    User(UserCommand),
    /// Access keys of a running server's users: create (its secret is shown once),
    /// disable, enable, delete.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Every user with its kind and access keys (JSON).
    List(EndpointArgs),
    /// A new user that owns the buckets it creates (or, with --admin, may do everything).
    Create {
        name: String,
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        endpoint: EndpointArgs,
    },
    /// Its keys stop working until it is enabled again.
    Disable(NamedUser),
    Enable(NamedUser),
    /// Refused while the user has access keys or owns buckets.
    Delete(NamedUser),
}

#[derive(Args)]
pub struct NamedUser {
    name: String,
    #[command(flatten)]
    endpoint: EndpointArgs,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// A new access key for a user; prints its secret, which is not shown again.
    Create(NamedUser),
    Disable(NamedKey),
    Enable(NamedKey),
    Delete(NamedKey),
}

#[derive(Args)]
pub struct NamedKey {
    access_key: String,
    #[command(flatten)]
    endpoint: EndpointArgs,
}

#[derive(Args)]
pub struct EndpointArgs {
    /// The server [credentials: QUARRY_ACCESS_KEY / QUARRY_SECRET_KEY of an admin key]
    #[arg(long, env = "QUARRY_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    endpoint: String,
}

#[derive(Args)]
pub struct DataDirArgs {
    /// Data directory [default: ./data]
    #[arg(long, env = "QUARRY_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

#[derive(Args)]
pub struct ScrubArgs {
    #[command(flatten)]
    data: DataDirArgs,
    /// Read at most this many bytes per second (default: as fast as the disk allows)
    #[arg(long)]
    rate_bytes_per_sec: Option<u64>,
}

pub fn run(command: AdminCommand) -> Result<bool, String> {
    match command {
        AdminCommand::Compact(args) => remote(args, "POST", "/quarry-admin/compact"),
        AdminCommand::Status(args) => remote(args, "GET", "/quarry-admin/status"),
        AdminCommand::User(command) => match command {
            UserCommand::List(args) => remote(args, "GET", "/quarry-admin/users"),
            UserCommand::Create { name, admin, endpoint } => {
                let query = if admin { "?admin=true" } else { "" };
                remote(endpoint, "PUT", &format!("/quarry-admin/users/{}{query}", path_segment(&name)?))
            }
            UserCommand::Disable(u) => {
                remote(u.endpoint, "POST", &format!("/quarry-admin/users/{}/disable", path_segment(&u.name)?))
            }
            UserCommand::Enable(u) => {
                remote(u.endpoint, "POST", &format!("/quarry-admin/users/{}/enable", path_segment(&u.name)?))
            }
            UserCommand::Delete(u) => {
                remote(u.endpoint, "DELETE", &format!("/quarry-admin/users/{}", path_segment(&u.name)?))
            }
        },
        AdminCommand::Key(command) => match command {
            KeyCommand::Create(u) => {
                remote(u.endpoint, "POST", &format!("/quarry-admin/users/{}/keys", path_segment(&u.name)?))
            }
            KeyCommand::Disable(k) => {
                remote(k.endpoint, "POST", &format!("/quarry-admin/keys/{}/disable", path_segment(&k.access_key)?))
            }
            KeyCommand::Enable(k) => {
                remote(k.endpoint, "POST", &format!("/quarry-admin/keys/{}/enable", path_segment(&k.access_key)?))
            }
            KeyCommand::Delete(k) => {
                remote(k.endpoint, "DELETE", &format!("/quarry-admin/keys/{}", path_segment(&k.access_key)?))
            }
        },
        AdminCommand::RebuildIndex(args) => {
            let mut config = EngineConfig::new(&args.data_dir);
            config.rebuild_index = true;
            let engine = open(config)?;
            let recovery = engine.recovery();
            let stats = engine.stats();
            println!(
                "index rebuilt from {} records in {} ms (sealed segments from sidecars: {}, scanned: {})",
                recovery.records_replayed,
                recovery.elapsed_ms,
                EngineStats::get(&stats.sidecar_hits),
                EngineStats::get(&stats.sidecar_misses)
            );
            for damage in &recovery.damaged {
                println!("damaged log region, skipped: {damage}");
            }
            Ok(recovery.damaged.is_empty())
        }
        AdminCommand::Scrub(args) => {
            let engine = open(EngineConfig::new(&args.data.data_dir))?;
            let report = engine.scrub(args.rate_bytes_per_sec).map_err(|e| format!("scrub failed: {e}"))?;
            print!("{report}");
            Ok(report.is_clean())
        }
    }
}

/// A user name or access key as one path segment: refused here if it has characters
/// a path would need escaped (no user or key has them), as the server would refuse it.
fn path_segment(name: &str) -> Result<&str, String> {
    if s3_api::valid_user_name(name) {
        Ok(name)
    } else {
        Err(format!("InvalidArgument: {name:?}: a user name or access key is 1 to 64 letters, digits and _ . -"))
    }
}

fn remote(args: EndpointArgs, method: &str, path: &str) -> Result<bool, String> {
    let endpoint = crate::client::Endpoint::from_env(args.endpoint)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let (status, body) = runtime.block_on(endpoint.call(method, path))?;
    if !(200..300).contains(&status) {
        return Err(format!("{method} {path}: HTTP {status}\n{body}"));
    }
    println!("{body}");
    Ok(true)
}

fn open(config: EngineConfig) -> Result<Engine, String> {
    let dir = config.data_dir.clone();
    if !dir.join("segments").exists() {
        return Err(format!("{} is not a quarry data directory (no segments/)", dir.display()));
    }
    Engine::open(config).map_err(|e| format!("cannot open {}: {e}", dir.display()))
}

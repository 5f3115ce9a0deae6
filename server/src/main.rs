//! `quarry`: the S3-compatible object store you can query with SQL.

mod access_log;
mod admin;
mod attributes_etag;
mod auth_guard;
mod body;
mod client;
mod config;
mod connections;
mod error_doc;
mod form;
mod forwarded;
mod http;
mod preflight;
mod sql_cli;
mod tls;

use clap::{Args, Parser, Subcommand};
use config::FileConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use storage_core::{Engine, EngineConfig};

#[derive(Parser)]
#[command(name = "quarry", version, about = "An S3-compatible object store you can query with SQL")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(Box<ServeArgs>),
    /// Maintenance: offline on a data directory (rebuild-index, scrub) or on a running server (status, compact).
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Run SQL on a running server: `quarry sql "SELECT bucket, count(*) FROM inventory GROUP BY bucket"`.
    Sql(sql_cli::SqlArgs),
}

#[derive(Args, Default)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:9000]
    #[arg(long, env = "QUARRY_ADDRESS")]
    address: Option<SocketAddr>,
    /// Data directory [default: ./data]
    #[arg(long, env = "QUARRY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (keys, limits)
    #[arg(long, env = "QUARRY_CONFIG")]
    config: Option<PathBuf>,
    /// Largest object one PutObject may upload [default: 5 GiB]
    #[arg(long, env = "QUARRY_MAX_OBJECT_SIZE_BYTES")]
    max_object_size_bytes: Option<u64>,
    /// Region reported to clients [default: us-east-1]
    #[arg(long, env = "QUARRY_REGION")]
    region: Option<String>,
    /// Disk space kept in reserve so deletes work when the disk is full [default: 32 MiB]
    #[arg(long, env = "QUARRY_DISK_RESERVE_BYTES")]
    disk_reserve_bytes: Option<u64>,
    /// Memory the index may use to cache its blocks [default: 64 MiB]
    #[arg(long, env = "QUARRY_INDEX_CACHE_BYTES")]
    index_cache_bytes: Option<u64>,
    /// Seconds between background scrubs; 0 turns them off [default: 86400]
    #[arg(long, env = "QUARRY_SCRUB_INTERVAL_SECS")]
    scrub_interval_secs: Option<u64>,
    /// Read rate of the background scrub [default: 64 MiB/s]
    #[arg(long, env = "QUARRY_SCRUB_RATE_BYTES_PER_SEC")]
    scrub_rate_bytes_per_sec: Option<u64>,
    /// Seconds between passes that carry out buckets' lifecycle rules; 0 turns them off
    /// [default: 3600]
    #[arg(long, env = "QUARRY_LIFECYCLE_INTERVAL_SECS")]
    lifecycle_interval_secs: Option<u64>,
    /// The length of a lifecycle day in seconds, for tests of lifecycle rules (S3's days
    /// are 86400 s, rounded up to midnight UTC; other lengths are not rounded)
    /// [default: 86400]
    #[arg(long, env = "QUARRY_LIFECYCLE_DAY_SECS")]
    lifecycle_day_secs: Option<u64>,
    /// Seconds between background compaction passes [default: 60]
    #[arg(long, env = "QUARRY_COMPACTION_INTERVAL_SECS")]
    compaction_interval_secs: Option<u64>,
    /// Compact a segment once this fraction of it is dead [default: 0.5]
    #[arg(long, env = "QUARRY_COMPACTION_DEAD_RATIO")]
    compaction_dead_ratio: Option<f64>,
    /// Bytes of deleted or overwritten objects leave the disk within this time [default: 86400]
    #[arg(long, env = "QUARRY_ERASURE_DEADLINE_SECS")]
    erasure_deadline_secs: Option<u64>,
    /// I/O rate of background compaction [default: 64 MiB/s]
    #[arg(long, env = "QUARRY_COMPACTION_RATE_BYTES_PER_SEC")]
    compaction_rate_bytes_per_sec: Option<u64>,
    /// Changes reach the Parquet catalog within this many milliseconds [default: 1000]
    #[arg(long, env = "QUARRY_CATALOG_FLUSH_INTERVAL_MS")]
    catalog_flush_interval_ms: Option<u64>,
    /// ...or as soon as this many changes wait [default: 100000]
    #[arg(long, env = "QUARRY_CATALOG_FLUSH_AFTER_CHANGES")]
    catalog_flush_after_changes: Option<u64>,
    /// Journal rows older than this are dropped when the catalog is compacted [default: 30]
    #[arg(long, env = "QUARRY_JOURNAL_RETENTION_DAYS")]
    journal_retention_days: Option<u64>,
    /// Memory one SQL query (or S3 Select) may use; past it the query fails [default: 1 GiB]
    #[arg(long, env = "QUARRY_QUERY_MEMORY_BYTES")]
    query_memory_bytes: Option<usize>,
    /// Memory all SQL queries and S3 Selects may use together; each also stays within
    /// --query-memory-bytes [default: 2 GiB]
    #[arg(long, env = "QUARRY_QUERY_MEMORY_TOTAL_BYTES")]
    query_memory_total_bytes: Option<usize>,
    /// Bytes a GZIP or BZIP2 object may inflate to in one S3 Select [default: 64 GiB]
    #[arg(long, env = "QUARRY_SELECT_MAX_DECOMPRESSED_BYTES")]
    select_max_decompressed_bytes: Option<u64>,
    /// Time one SQL query (or S3 Select) may run before it is cancelled [default: 300000]
    #[arg(long, env = "QUARRY_QUERY_TIMEOUT_MS")]
    query_timeout_ms: Option<u64>,
    /// SQL queries and S3 Selects that may run at once; more wait briefly, then get 503 SlowDown [default: 4]
    #[arg(long, env = "QUARRY_MAX_CONCURRENT_QUERIES")]
    max_concurrent_queries: Option<usize>,
    /// Accept legacy SigV2 signatures (they sign neither the body nor most of the query) [default: off]
    #[arg(long, env = "QUARRY_ALLOW_SIGV2")]
    allow_sigv2: bool,
    /// Accept SSE-C keys over plain HTTP (S3 refuses them without TLS; for TLS that ends in
    /// a proxy in front of Quarry) [default: off]
    #[arg(long, env = "QUARRY_ALLOW_SSE_C_OVER_HTTP")]
    allow_sse_c_over_http: bool,
    /// Block Public Access for new buckets (all four settings on; each bucket may change
    /// its own) [default: true]
    #[arg(long, env = "QUARRY_BLOCK_PUBLIC_ACCESS")]
    block_public_access: Option<bool>,
    /// Object Ownership of new buckets that name none: BucketOwnerEnforced (ACLs off),
    /// BucketOwnerPreferred or ObjectWriter [default: BucketOwnerEnforced]
    #[arg(long, env = "QUARRY_OBJECT_OWNERSHIP")]
    object_ownership: Option<String>,
    /// Open client connections at most (also kept below the open-files limit) [default: 4096]
    #[arg(long, env = "QUARRY_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Time a client has to send a request's headers [default: 20000]
    #[arg(long, env = "QUARRY_HEADER_READ_TIMEOUT_MS")]
    header_read_timeout_ms: Option<u64>,
    /// A request body that stalls this long fails with RequestTimeout [default: 30000]
    #[arg(long, env = "QUARRY_BODY_IDLE_TIMEOUT_MS")]
    body_idle_timeout_ms: Option<u64>,
    /// A connection with no request in progress is closed after this long [default: 15000]
    #[arg(long, env = "QUARRY_KEEP_ALIVE_TIMEOUT_MS")]
    keep_alive_timeout_ms: Option<u64>,
    /// Domain for virtual-hosted-style requests (<bucket>.<domain>); repeatable, comma-separated
    /// in the environment. `localhost` is always one.
    #[arg(long = "domain", env = "QUARRY_DOMAIN", value_delimiter = ',')]
    domains: Vec<String>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); re-read on SIGHUP
    #[arg(long, env = "QUARRY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, env = "QUARRY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A proxy (address or network) whose X-Forwarded-For and X-Forwarded-Proto are
    /// believed: the client's address and whether it used TLS; repeatable, comma-separated
    /// in the environment [default: none]
    #[arg(long = "trusted-proxy", env = "QUARRY_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<String>,
    /// Log lines as text or JSON objects [default: text]
    #[arg(long, env = "QUARRY_LOG_FORMAT", value_enum)]
    log_format: Option<config::LogFormat>,
}

/// Stack of each runtime thread (workers and blocking threads; tokio's default is 2 MiB).
const WORKER_STACK_BYTES: usize = 16 * 1024 * 1024;

/// The log filter unless QUARRY_LOG says otherwise. s3s logs every error response it
/// produces at ERROR (client errors included); our access log covers them.
const DEFAULT_LOG_FILTER: &str = "info,s3s=off";

/// glibc gives every thread that allocates an arena of its own (up to 8 a core) and keeps
/// what is freed in each. With the request workers, the writer, the catalog flusher, the
/// sidecar builder and the index's worker all allocating, RSS settled near 250 MB after
/// the benchmark's throughput workloads while the live heap was far smaller; two arenas
/// hold it near 135 MB at the same throughput (BENCHMARKS.md, "Fourth session").
const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas, unless MALLOC_ARENA_MAX says otherwise. Runs before any
/// thread is started.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no thread allocates yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    let log_format = match &cli.command {
        // The flag wins over the file; a file that does not load is reported by serve().
        Some(Command::Serve(args)) => {
            args.log_format.or_else(|| args.config.as_deref().and_then(|path| FileConfig::load(path).ok()?.log_format))
        }
        _ => None,
    };
    init_logging(log_format.unwrap_or_default());
    let result = match cli.command.unwrap_or_else(|| Command::Serve(Box::default())) {
        Command::Serve(args) => serve(*args).map(|()| true),
        Command::Admin { command } => admin::run(command),
        Command::Sql(args) => sql_cli::run(args),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        // The command ran but found a problem (e.g. scrub found damage).
        Ok(false) => std::process::ExitCode::from(2),
        Err(message) => {
            eprintln!("quarry: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: config::LogFormat) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("QUARRY_LOG").unwrap_or_else(|_| DEFAULT_LOG_FILTER.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        config::LogFormat::Json => builder.json().init(),
        // Colours only for a person watching a terminal, never into a file.
        config::LogFormat::Text => {
            builder.with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()).init()
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let address = args.address.or(file.address).unwrap_or_else(|| config::DEFAULT_ADDRESS.parse().unwrap());
    let data_dir = args.data_dir.or(file.data_dir).unwrap_or_else(|| config::DEFAULT_DATA_DIR.into());
    let erasure_deadline_secs =
        args.erasure_deadline_secs.or(file.erasure_deadline_secs).unwrap_or(config::DEFAULT_ERASURE_DEADLINE_SECS);
    let compaction = storage_core::CompactionOptions {
        dead_ratio_threshold: args
            .compaction_dead_ratio
            .or(file.compaction_dead_ratio)
            .unwrap_or(config::DEFAULT_COMPACTION_DEAD_RATIO),
        erasure_deadline_ms: erasure_deadline_secs.saturating_mul(1000),
        force: false,
        max_bytes_per_sec: Some(
            args.compaction_rate_bytes_per_sec
                .or(file.compaction_rate_bytes_per_sec)
                .unwrap_or(config::DEFAULT_COMPACTION_RATE_BYTES_PER_SEC),
        ),
        ..storage_core::CompactionOptions::default()
    };
    // Passes come often enough to meet the erasure deadline (it allows half of it).
    let lifecycle = http::LifecycleSchedule {
        interval_secs: args
            .lifecycle_interval_secs
            .or(file.lifecycle_interval_secs)
            .unwrap_or(config::DEFAULT_LIFECYCLE_INTERVAL_SECS),
        day_secs: args
            .lifecycle_day_secs
            .or(file.lifecycle_day_secs)
            .unwrap_or(config::DEFAULT_LIFECYCLE_DAY_SECS)
            .max(1),
    };
    let compaction_interval_secs = args
        .compaction_interval_secs
        .or(file.compaction_interval_secs)
        .unwrap_or(config::DEFAULT_COMPACTION_INTERVAL_SECS)
        .min((erasure_deadline_secs / 4).max(1));
    let domains = if args.domains.is_empty() { file.domains } else { args.domains };
    let domains = s3_api::DomainHost::new(std::iter::once(config::BUILTIN_DOMAIN.to_owned()).chain(domains))?;
    let limits = http::ConnectionLimits {
        max_connections: args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(config::DEFAULT_MAX_CONNECTIONS)
            .max(1),
        header_read_timeout_ms: args
            .header_read_timeout_ms
            .or(file.header_read_timeout_ms)
            .unwrap_or(config::DEFAULT_HEADER_READ_TIMEOUT_MS),
        body_idle_timeout_ms: args
            .body_idle_timeout_ms
            .or(file.body_idle_timeout_ms)
            .unwrap_or(config::DEFAULT_BODY_IDLE_TIMEOUT_MS),
        keep_alive_timeout_ms: args
            .keep_alive_timeout_ms
            .or(file.keep_alive_timeout_ms)
            .unwrap_or(config::DEFAULT_KEEP_ALIVE_TIMEOUT_MS),
    };
    let api = s3_api::ApiConfig {
        domains: domains.clone(),
        compaction,
        max_object_size_bytes: args
            .max_object_size_bytes
            .or(file.max_object_size_bytes)
            .unwrap_or(config::DEFAULT_MAX_OBJECT_SIZE_BYTES),
        region: args.region.or(file.region).unwrap_or_else(|| config::DEFAULT_REGION.into()),
        block_public_access: args.block_public_access.or(file.block_public_access).unwrap_or(true),
        object_ownership: config::object_ownership(args.object_ownership.or(file.object_ownership).as_deref())?,
        max_concurrent_queries: args
            .max_concurrent_queries
            .or(file.max_concurrent_queries)
            .unwrap_or(config::DEFAULT_MAX_CONCURRENT_QUERIES)
            .max(1),
        query_limits: quarry_sql::QueryLimits {
            memory_bytes: args
                .query_memory_bytes
                .or(file.query_memory_bytes)
                .unwrap_or(quarry_sql::QueryLimits::default().memory_bytes)
                .max(1),
            timeout_ms: args
                .query_timeout_ms
                .or(file.query_timeout_ms)
                .unwrap_or(quarry_sql::QueryLimits::default().timeout_ms)
                .max(1),
            budget: quarry_sql::MemoryBudget::new(
                args.query_memory_total_bytes
                    .or(file.query_memory_total_bytes)
                    .unwrap_or(quarry_sql::session::DEFAULT_TOTAL_MEMORY_BYTES)
                    .max(1),
            ),
            max_decompressed_bytes: args
                .select_max_decompressed_bytes
                .or(file.select_max_decompressed_bytes)
                .unwrap_or(quarry_sql::QueryLimits::default().max_decompressed_bytes)
                .max(1),
        },
    };
    let mut keys = file.keys;
    keys.extend(config::env_admin_key()?);
    if keys.is_empty() {
        keys.push(config::generated_admin_key(&data_dir)?);
    }
    let server_key = config::server_key(&data_dir)?;

    let mut engine_config = EngineConfig::new(&data_dir);
    if let Some(bytes) = args.disk_reserve_bytes.or(file.disk_reserve_bytes) {
        engine_config.disk_reserve_bytes = bytes;
    }
    if let Some(bytes) = args.index_cache_bytes.or(file.index_cache_bytes) {
        engine_config.index_cache_bytes = bytes;
    }
    let mut catalog = storage_core::catalog::CatalogConfig::default();
    if let Some(ms) = args.catalog_flush_interval_ms.or(file.catalog_flush_interval_ms) {
        catalog.flush_interval_ms = ms;
    }
    if let Some(n) = args.catalog_flush_after_changes.or(file.catalog_flush_after_changes) {
        catalog.flush_after_changes = n;
    }
    if let Some(days) = args.journal_retention_days.or(file.journal_retention_days) {
        catalog.journal_retention_ms = (days as i64).saturating_mul(24 * 60 * 60 * 1000);
    }
    engine_config.catalog = Some(catalog);
    let scrub = http::ScrubSchedule {
        interval_secs: args
            .scrub_interval_secs
            .or(file.scrub_interval_secs)
            .unwrap_or(config::DEFAULT_SCRUB_INTERVAL_SECS),
        rate_bytes_per_sec: args
            .scrub_rate_bytes_per_sec
            .or(file.scrub_rate_bytes_per_sec)
            .unwrap_or(config::DEFAULT_SCRUB_RATE_BYTES_PER_SEC),
    };
    let allow_sigv2 = args.allow_sigv2 || file.allow_sigv2.unwrap_or(false);
    if allow_sigv2 {
        tracing::warn!(
            "SigV2 signatures are accepted (--allow-sigv2): they sign neither the body nor most of the query"
        );
    }
    let engine = Engine::open(engine_config).map_err(|e| format!("cannot open {}: {e}", data_dir.display()))?;
    // SSE-S3 and SSE-KMS objects read as plaintext through every reader of the engine.
    engine.set_data_key_opener(Arc::new(s3_api::ServerDataKeys(server_key.clone())));
    let keys = Arc::new(s3_api::KeyStore::with_run_time_users(keys, server_key, &engine)?);
    let allow_sse_c_over_http = args.allow_sse_c_over_http || file.allow_sse_c_over_http.unwrap_or(false);
    let trusted_proxies = if args.trusted_proxies.is_empty() { file.trusted_proxies } else { args.trusted_proxies };
    if !trusted_proxies.is_empty() {
        tracing::info!(?trusted_proxies, "X-Forwarded-For and X-Forwarded-Proto are believed from these proxies");
    }
    let trusted_proxies = Arc::new(forwarded::TrustedProxies::parse(&trusted_proxies)?);
    let policy = http::RequestPolicy { allow_sigv2, allow_sse_c_over_http, trusted_proxies, keys: keys.clone() };
    let tls = match (args.tls_cert.or(file.tls_cert), args.tls_key.or(file.tls_key)) {
        (Some(cert_path), Some(key_path)) => Some(tls::CertificateSource::load(tls::TlsFiles { cert_path, key_path })?),
        (None, None) => None,
        _ => return Err("TLS needs both a certificate (tls_cert) and its key (tls_key)".into()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("quarry-worker")
        // SQL planning recurses once per level of expression nesting; with expressions
        // bounded to quarry_sql_text::shape::MAX_EXPRESSION_DEPTH this leaves a wide margin.
        .thread_stack_size(WORKER_STACK_BYTES)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let service = s3_api::service(engine.clone(), keys, api);
        let compactor = tokio::spawn(http::background_compaction(engine.clone(), compaction, compaction_interval_secs));
        let lifecycle_passes = tokio::spawn(http::background_lifecycle(engine.clone(), lifecycle));
        let served =
            http::serve(http::Listen { address, tls }, service, engine.clone(), scrub, limits, domains, policy).await;
        compactor.abort();
        lifecycle_passes.abort();
        tracing::info!("shutting down: syncing the log and the index");
        if let Err(e) = engine.close().await {
            tracing::error!("error while closing the engine: {e}");
        }
        served
    })
}

//! `quarry`: the S3-compatible object store you can query with SQL.

mod config;
mod http;

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
    Serve(ServeArgs),
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
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("QUARRY_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("quarry: {message}");
            std::process::ExitCode::FAILURE
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
    let api = s3_api::ApiConfig {
        max_object_size_bytes: args
            .max_object_size_bytes
            .or(file.max_object_size_bytes)
            .unwrap_or(config::DEFAULT_MAX_OBJECT_SIZE_BYTES),
        region: args.region.or(file.region).unwrap_or_else(|| config::DEFAULT_REGION.into()),
    };
    let mut keys = file.keys;
    keys.extend(config::env_admin_key()?);
    if keys.is_empty() {
        keys.push(config::generated_admin_key(&data_dir)?);
    }
    let keys = Arc::new(s3_api::KeyStore::new(keys)?);

    let engine =
        Engine::open(EngineConfig::new(&data_dir)).map_err(|e| format!("cannot open {}: {e}", data_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("quarry-worker")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let service = s3_api::service(engine.clone(), keys, api);
        let served = http::serve(address, service).await;
        tracing::info!("shutting down: syncing the log and the index");
        if let Err(e) = engine.close().await {
            tracing::error!("error while closing the engine: {e}");
        }
        served
    })
}

//! Admin operations on a running server, under the reserved bucket name `quarry-admin`
//! (so s3s verifies their SigV4 signature like any S3 request). Admin keys only.
//!
//! * `GET  /quarry-admin/status`  — JSON: segments with live/dead bytes, last compaction
//! * `POST /quarry-admin/compact` — compact every segment holding dead data, now; JSON report
//! * `/quarry-admin/users...`, `/quarry-admin/keys...` — users and access keys (`admin_users.rs`)

use crate::KeyStore;
use bytes::Bytes;
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use serde::Serialize;
use std::sync::Arc;
use storage_core::{CompactionOptions, Engine, EngineStats};

pub const ADMIN_BUCKET: &str = "quarry-admin";
const STATUS_PATH: &str = "/quarry-admin/status";
const COMPACT_PATH: &str = "/quarry-admin/compact";

pub struct AdminRoute {
    pub engine: Engine,
    pub keys: Arc<KeyStore>,
    /// The settings the background compactor uses; `compact` forces on top of them.
    pub compaction: CompactionOptions,
    pub identities: crate::admin_users::Identities,
}

#[derive(Serialize)]
struct Status {
    disk_full: bool,
    segments: Vec<storage_core::SegmentUsage>,
    total_bytes: u64,
    live_bytes: u64,
    /// The catalog's Parquet files and the LSN they cover.
    catalog_files: Vec<String>,
    catalog_covered_lsn: Option<u64>,
    last_compaction: Option<storage_core::CompactionReport>,
    counters: Counters,
}

#[derive(Serialize)]
struct Counters {
    corrupt_reads: u64,
    damaged_regions: u64,
    sidecar_hits: u64,
    sidecar_misses: u64,
    scrubbed_bytes: u64,
}

fn json(value: &impl Serialize) -> S3Response<Body> {
    let body = serde_json::to_vec_pretty(value).expect("status serializes");
    let mut response = S3Response::new(Body::from(Bytes::from(body)));
    response.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// Is this one of the admin API's paths?
pub fn is_admin_path(path: &str) -> bool {
    matches!(path, STATUS_PATH | COMPACT_PATH) || crate::admin_users::is_identity_path(path)
}

fn internal(e: storage_core::Error) -> s3s::S3Error {
    s3_error!(InternalError, "{e}")
}

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(
        &self,
        _method: &http::Method,
        uri: &http::Uri,
        _headers: &http::HeaderMap,
        _extensions: &mut http::Extensions,
    ) -> bool {
        is_admin_path(uri.path())
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        match &req.credentials {
            Some(c) if self.keys.user(&c.access_key).is_some_and(|u| u.is_admin()) => Ok(()),
            Some(_) => Err(s3_error!(AccessDenied, "Only an admin key may use the admin API")),
            None => Err(s3_error!(AccessDenied, "Signature is required")),
        }
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        match (req.method.clone(), req.uri.path()) {
            (http::Method::GET, STATUS_PATH) => {
                let engine = self.engine.clone();
                let segments = tokio::task::spawn_blocking(move || engine.segment_usage())
                    .await
                    .map_err(|e| s3_error!(InternalError, "{e}"))?
                    .map_err(internal)?;
                let stats = self.engine.stats();
                Ok(json(&Status {
                    disk_full: self.engine.disk_full(),
                    total_bytes: segments.iter().map(|s| s.bytes).sum(),
                    live_bytes: segments.iter().map(|s| s.live_bytes).sum(),
                    segments,
                    catalog_files: self.engine.catalog().map(|c| c.files()).unwrap_or_default(),
                    catalog_covered_lsn: self.engine.catalog().map(|c| c.covered_lsn()),
                    last_compaction: self.engine.last_compaction(),
                    counters: Counters {
                        corrupt_reads: EngineStats::get(&stats.corrupt_reads),
                        damaged_regions: EngineStats::get(&stats.damaged_regions),
                        sidecar_hits: EngineStats::get(&stats.sidecar_hits),
                        sidecar_misses: EngineStats::get(&stats.sidecar_misses),
                        scrubbed_bytes: EngineStats::get(&stats.scrubbed_bytes),
                    },
                }))
            }
            (http::Method::POST, COMPACT_PATH) => {
                let options = CompactionOptions { force: true, max_bytes_per_sec: None, ..self.compaction };
                let report = self.engine.compact(options).await.map_err(internal)?;
                let engine = self.engine.clone();
                tokio::task::spawn_blocking(move || engine.compact_catalog())
                    .await
                    .map_err(|e| s3_error!(InternalError, "{e}"))?
                    .map_err(internal)?;
                Ok(json(&report))
            }
            (method, path) if crate::admin_users::is_identity_path(path) => {
                self.identities.call(&method, path, req.uri.query()).await
            }
            (method, path) => Err(s3_error!(MethodNotAllowed, "{method} is not allowed on {path}")),
        }
    }
}

//! The catalog's Parquet files, read-only over S3 under the reserved bucket name
//! `quarry-catalog`, so external engines (DuckDB, pyarrow, Spark) can query them. Only
//! the files the catalog manifest names are visible, so a reader never sees a file
//! half written. Only admin keys may read it: the catalog describes every bucket.

use crate::QuarryS3;
use crate::meta::{etag, timestamp};
use bytes::Bytes;
use s3s::dto::*;
use s3s::{S3Response, S3Result, s3_error};
use std::ops::Range as ByteRange;
use std::path::PathBuf;
use std::sync::Arc;
use storage_core::catalog::Catalog;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

pub const CATALOG_BUCKET: &str = "quarry-catalog";
const READ_CHUNK_BYTES: usize = 1 << 20;

struct CatalogFile {
    path: PathBuf,
    size: u64,
    modified_ms: i64,
    etag: String,
}

fn catalog(s3: &QuarryS3) -> S3Result<&Arc<Catalog>> {
    s3.engine.catalog().ok_or_else(|| s3_error!(NoSuchBucket, "This server keeps no catalog"))
}

fn file(catalog: &Catalog, key: &str) -> S3Result<CatalogFile> {
    if !catalog.files().iter().any(|f| f == key) {
        return Err(s3_error!(NoSuchKey, "The specified key does not exist."));
    }
    let path = catalog.dir().join(key);
    let metadata = std::fs::metadata(&path).map_err(|_| s3_error!(NoSuchKey, "The specified key does not exist."))?;
    let modified_ms = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    // Catalog files are never modified (a change makes a new name): name and size
    // identify the content.
    let digest = blake3::hash(format!("{key}\0{}", metadata.len()).as_bytes());
    Ok(CatalogFile { path, size: metadata.len(), modified_ms, etag: digest.to_hex()[..32].to_owned() })
}

fn range(file: &CatalogFile, range: Option<&Range>) -> S3Result<Option<ByteRange<u64>>> {
    match range {
        None => Ok(None),
        Some(r) => r
            .check(file.size)
            .map(Some)
            .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable (object size {})", file.size)),
    }
}

fn stream(path: PathBuf, range: ByteRange<u64>) -> StreamingBlob {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let result = async {
            let mut file = tokio::fs::File::open(&path).await?;
            file.seek(std::io::SeekFrom::Start(range.start)).await?;
            let mut left = range.end - range.start;
            while left > 0 {
                let mut buf = vec![0u8; READ_CHUNK_BYTES.min(left as usize)];
                file.read_exact(&mut buf).await?;
                left -= buf.len() as u64;
                if sender.send(Ok(Bytes::from(buf))).await.is_err() {
                    return Ok(());
                }
            }
            Ok::<(), std::io::Error>(())
        }
        .await;
        if let Err(e) = result {
            let _ = sender.send(Err(e)).await;
        }
    });
    StreamingBlob::wrap(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)))
}

/// GET and HEAD of a catalog file answer with the same headers; their s3s types differ
/// only in name. Evaluates to (output without body, file, byte range).
macro_rules! serve_file {
    ($s3:expr, $input:expr, $Output:ident) => {{
        let file = file(catalog($s3)?, &$input.key)?;
        let partial = range(&file, $input.range.as_ref())?;
        let bytes = partial.clone().unwrap_or(0..file.size);
        let output = $Output {
            content_length: Some((bytes.end - bytes.start) as i64),
            content_range: partial.as_ref().map(|r| format!("bytes {}-{}/{}", r.start, r.end - 1, file.size)),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&file.etag)),
            last_modified: Some(timestamp(file.modified_ms)),
            content_type: Some("application/vnd.apache.parquet".into()),
            ..Default::default()
        };
        (output, file, bytes)
    }};
}

pub async fn get_object(s3: &QuarryS3, input: GetObjectInput) -> S3Result<S3Response<GetObjectOutput>> {
    let (mut output, file, bytes) = serve_file!(s3, input, GetObjectOutput);
    output.body = Some(stream(file.path, bytes));
    Ok(S3Response::new(output))
}

pub async fn head_object(s3: &QuarryS3, input: HeadObjectInput) -> S3Result<S3Response<HeadObjectOutput>> {
    let (output, _, _) = serve_file!(s3, input, HeadObjectOutput);
    Ok(S3Response::new(output))
}

/// The catalog's files as a listing: prefix, delimiter, start-after and max-keys.
pub fn list(
    s3: &QuarryS3,
    prefix: &str,
    delimiter: Option<&str>,
    start_after: Option<&str>,
    max_keys: usize,
) -> S3Result<crate::list::Listed> {
    let catalog = catalog(s3)?;
    let mut names = catalog.files();
    names.sort();
    let (mut objects, mut prefixes) = (Vec::new(), Vec::<String>::new());
    let (mut truncated, mut last) = (false, None);
    for name in names.iter().filter(|n| n.starts_with(prefix) && start_after.is_none_or(|s| n.as_str() > s)) {
        let group = delimiter
            .filter(|d| !d.is_empty())
            .and_then(|d| name[prefix.len()..].find(d).map(|at| name[..prefix.len() + at + d.len()].to_owned()));
        if group.as_ref().is_some_and(|g| prefixes.last() == Some(g) || start_after.is_some_and(|s| g.as_str() <= s)) {
            continue;
        }
        if objects.len() + prefixes.len() == max_keys {
            truncated = true;
            break;
        }
        match group {
            Some(group) => {
                last = Some(group.clone());
                prefixes.push(group);
            }
            None => {
                let file = file(catalog, name)?;
                last = Some(name.clone());
                objects.push(Object {
                    key: Some(name.clone()),
                    size: Some(file.size as i64),
                    e_tag: Some(etag(&file.etag)),
                    last_modified: Some(timestamp(file.modified_ms)),
                    storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                    ..Default::default()
                });
            }
        }
    }
    let prefixes = prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(p) }).collect();
    Ok((objects, prefixes, truncated, last))
}

/// Writes to the catalog namespace are refused: it is derived data.
pub fn read_only() -> s3s::S3Error {
    s3_error!(AccessDenied, "{CATALOG_BUCKET} is the server's read-only catalog")
}

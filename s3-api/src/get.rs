//! GetObject and HeadObject: conditional requests, ranges, part numbers, and the body
//! streamed chunk by chunk (each chunk verified before it is sent).

use crate::QuarryS3;
use crate::error::engine_error;
use crate::meta::{SetChecksums, checksum_fields, etag, timestamp, user_metadata_headers};
use bytes::Bytes;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use std::ops::Range as ByteRange;
use storage_core::encryption::DataKey;
use storage_core::{Engine, ObjectEntry};

/// Chunks read ahead of the client per download (bounds memory per GET).
const READ_AHEAD_CHUNKS: usize = 2;

/// The conditional headers of a GET or HEAD.
pub struct Conditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

fn etag_matches(condition: &ETagCondition, current: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(tag) => tag.value() == current,
    }
}

/// RFC 9110 §13.2.2 order, as S3 applies it: If-Match, else If-Unmodified-Since (412);
/// then If-None-Match, else If-Modified-Since (304). Dates compare at whole seconds.
pub fn check_conditions(c: &Conditions<'_>, entry: &ObjectEntry, not_modified_code: bool) -> S3Result<()> {
    let last_modified_s = entry.meta.last_modified_ms.div_euclid(1000);
    let seconds = |t: &Timestamp| crate::meta::millis(t).div_euclid(1000);
    match (c.if_match, c.if_unmodified_since) {
        (Some(m), _) if !etag_matches(m, &entry.meta.etag) => return Err(precondition_failed()),
        (None, Some(t)) if last_modified_s > seconds(t) => return Err(precondition_failed()),
        _ => {}
    }
    let not_modified = match (c.if_none_match, c.if_modified_since) {
        (Some(m), _) => etag_matches(m, &entry.meta.etag),
        (None, Some(t)) => last_modified_s <= seconds(t),
        _ => false,
    };
    if not_modified {
        return Err(if not_modified_code { not_modified_error(entry) } else { precondition_failed() });
    }
    Ok(())
}

/// 304 Not Modified carries the validators a 200 would have (RFC 9110 §15.4.5): the
/// ETag and Last-Modified, so a cache can tell what it holds is still current.
fn not_modified_error(entry: &ObjectEntry) -> s3s::S3Error {
    let mut error = s3_error!(NotModified);
    let mut headers = http::HeaderMap::new();
    if let Ok(etag) = http::HeaderValue::from_str(&format!("\"{}\"", entry.meta.etag)) {
        headers.insert(http::header::ETAG, etag);
    }
    let mut last_modified = Vec::new();
    if timestamp(entry.meta.last_modified_ms).format(TimestampFormat::HttpDate, &mut last_modified).is_ok()
        && let Ok(value) = http::HeaderValue::from_bytes(&last_modified)
    {
        headers.insert(http::header::LAST_MODIFIED, value);
    }
    error.set_headers(headers);
    error
}

fn precondition_failed() -> s3s::S3Error {
    s3_error!(PreconditionFailed, "At least one of the pre-conditions you specified did not hold")
}

/// The checksum of part `number` as a GET of that part reports it: the part's value,
/// with the object checksum's algorithm and type (a single-part object is its one part).
pub(crate) fn part_checksum(meta: &storage_core::ObjectMeta, number: i32) -> Option<storage_core::StoredChecksum> {
    let object = meta.checksum.as_ref()?;
    let Some(values) = &meta.part_checksums else {
        return (meta.part_sizes.is_none() && number == 1).then(|| object.clone());
    };
    let value = values.get(usize::try_from(number).ok()?.checked_sub(1)?)?;
    Some(storage_core::StoredChecksum { value: value.clone(), ..object.clone() })
}

/// The bytes a request asks for: a Range header, a part number, or everything.
fn requested_range(
    entry: &ObjectEntry,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> S3Result<Option<ByteRange<u64>>> {
    let size = entry.meta.size_bytes;
    if let Some(part_number) = part_number {
        if range.is_some() {
            return Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter"));
        }
        let sizes = entry.meta.part_sizes.clone().unwrap_or_else(|| vec![size]);
        let index = usize::try_from(part_number).ok().filter(|n| (1..=sizes.len()).contains(n));
        // Past the last part: 400 InvalidPart, as S3 answers (and ceph/s3-tests checks); a
        // plain object is one part.
        let Some(index) = index else {
            return Err(s3_error!(InvalidPart, "The requested partnumber is not satisfiable"));
        };
        let start: u64 = sizes[..index - 1].iter().sum();
        return Ok(Some(start..start + sizes[index - 1]));
    }
    match range {
        None => Ok(None),
        Some(range) => range
            .check(size)
            .map(Some)
            .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable (object size {size})")),
    }
}

/// The object a request names: the latest version of `key`, or the version `version_id`
/// names. A delete marker is no object: S3 answers 404 NoSuchKey when it is the latest
/// version and 405 MethodNotAllowed when named, both with `x-amz-delete-marker: true`.
pub fn lookup(s3: &QuarryS3, bucket: &str, key: &str, version_id: Option<&str>) -> S3Result<ObjectEntry> {
    let version = crate::version::requested(version_id)?;
    let found = match version {
        None => s3.engine.latest(bucket, key),
        Some(version) => s3.engine.version(bucket, key, version),
    }
    .map_err(engine_error)?;
    match found {
        Some(entry) if !entry.delete_marker => Ok(entry),
        Some(marker) => {
            let mut error = match version {
                None => s3_error!(NoSuchKey, "The specified key does not exist."),
                Some(_) => s3_error!(MethodNotAllowed, "The specified method is not allowed against this resource."),
            };
            let mut headers = http::HeaderMap::new();
            headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
            if let Some(id) = crate::version::header(s3, bucket, &marker)?
                && let Ok(value) = http::HeaderValue::from_str(&id)
            {
                headers.insert("x-amz-version-id", value);
            }
            error.set_headers(headers);
            Err(error)
        }
        None => {
            s3.require_bucket(bucket)?;
            Err(match version {
                None => s3_error!(NoSuchKey, "The specified key does not exist."),
                Some(_) => s3_error!(NoSuchVersion, "The specified version does not exist."),
            })
        }
    }
}

/// The object's bytes as a stream. The first piece is read and verified before this
/// returns, so that a body held in one record (an inline object, a small range) is
/// whole before the status line goes out: damage there is an error response, not a
/// 200 with a cut body. The stream yields that piece at once, so HTTP writes it with the
/// head in one write (through a channel it was often not there yet, and a small GET took
/// two writes). A reader task reads the rest, `READ_AHEAD_CHUNKS` ahead, and stops as
/// soon as the client goes away.
pub async fn body_stream(
    engine: &Engine,
    entry: &ObjectEntry,
    range: ByteRange<u64>,
    data_keys: Option<Vec<DataKey>>,
) -> S3Result<StreamingBlob> {
    let mut reader = match data_keys {
        Some(keys) => engine.read_decrypted(entry, range, keys),
        None => engine.read(entry, range),
    };
    let first = reader.next_chunk().await.transpose().map_err(engine_error)?;
    let first = futures::stream::iter(first.map(Ok::<Bytes, std::io::Error>));
    if reader.is_finished() {
        return Ok(StreamingBlob::wrap(first));
    }
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(READ_AHEAD_CHUNKS);
    tokio::spawn(async move {
        while let Some(chunk) = reader.next_chunk().await {
            let item = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = item.is_err();
            if sender.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    let rest = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    Ok(StreamingBlob::wrap(futures::StreamExt::chain(first, rest)))
}

/// GET and HEAD check the same conditions and answer with the same headers; their s3s
/// types differ only in name. Evaluates to (output without body, entry, byte range,
/// data keys when the object is encrypted).
macro_rules! serve_object {
    ($s3:expr, $input:expr, $Output:ident) => {{
        let input = $input;
        let customer_key = crate::sse::customer_key_of!(input)?;
        let entry = lookup($s3, &input.bucket, &input.key, input.version_id.as_deref())?;
        let conditions = Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        };
        check_conditions(&conditions, &entry, true)?;
        let size = entry.meta.size_bytes;
        let partial = requested_range(&entry, input.range.as_ref(), input.part_number)?;
        // A part number past the last is InvalidPart, whatever keys came with it.
        let data_keys = crate::sse::data_keys($s3.keys.server_key(), entry.meta.encryption.as_ref(), customer_key)?;
        let range = partial.clone().unwrap_or(0..size);
        // A checksum describes the whole object, or with partNumber the part: never a
        // range.
        let checksum_mode = input.checksum_mode.as_ref().is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        let checksum = match (input.part_number, input.range.is_some()) {
            (_, true) => None,
            (Some(number), false) => part_checksum(&entry.meta, number),
            (None, false) => entry.meta.checksum.clone(),
        }
        .filter(|_| checksum_mode);
        let meta = &entry.meta;
        let lock = crate::lock::headers(meta);
        let mut output = $Output {
            content_length: Some((range.end - range.start) as i64),
            content_range: partial.as_ref().map(|r| format!("bytes {}-{}/{size}", r.start, r.end - 1)),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&meta.etag)),
            last_modified: Some(timestamp(meta.last_modified_ms)),
            content_type: input.response_content_type.or_else(|| {
                // Objects stored before the default was kept have none.
                Some(meta.content_type.clone().unwrap_or_else(|| crate::meta::DEFAULT_CONTENT_TYPE.into()))
            }),
            content_encoding: input.response_content_encoding.or_else(|| meta.content_encoding.clone()),
            content_disposition: input.response_content_disposition.or_else(|| meta.content_disposition.clone()),
            content_language: input.response_content_language.or_else(|| meta.content_language.clone()),
            cache_control: input.response_cache_control.or_else(|| meta.cache_control.clone()),
            expires: input.response_expires.or_else(|| meta.expires_ms.map(timestamp)),
            parts_count: meta.part_sizes.as_ref().map(|p| p.len() as i32),
            // S3 names the class only when it is not STANDARD.
            storage_class: meta.storage_class.clone().map(StorageClass::from),
            version_id: crate::version::header($s3, &input.bucket, &entry)?,
            object_lock_mode: lock.0,
            object_lock_retain_until_date: lock.1,
            object_lock_legal_hold_status: lock.2,
            ..Default::default()
        };
        output.set_checksums(checksum_fields(checksum.as_ref()));
        crate::sse::report!(output, meta.encryption.as_ref());
        (output, entry, range, data_keys)
    }};
}

pub async fn get_object(s3: &QuarryS3, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
    if req.input.bucket == crate::CATALOG_BUCKET {
        return crate::catalog::get_object(s3, req.input).await;
    }
    crate::sse::refuse_on_read(&req.headers)?;
    let (mut output, entry, range, data_keys) = serve_object!(s3, req.input, GetObjectOutput);
    output.tag_count = tag_count(&entry);
    let metadata = user_metadata_headers(&entry.meta)?;
    output.body = Some(body_stream(&s3.engine, &entry, range, data_keys).await?);
    let mut response = S3Response::new(output);
    response.headers = metadata;
    Ok(response)
}

pub async fn head_object(s3: &QuarryS3, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
    if req.input.bucket == crate::CATALOG_BUCKET {
        return crate::catalog::head_object(s3, req.input).await;
    }
    crate::sse::refuse_on_read(&req.headers)?;
    let (output, entry, _, _) = serve_object!(s3, req.input, HeadObjectOutput);
    let mut response = S3Response::new(output);
    response.headers = user_metadata_headers(&entry.meta)?;
    // s3s's HeadObjectOutput has no field for it; S3 sends it on HEAD as on GET.
    if let Some(count) = tag_count(&entry) {
        response.headers.insert("x-amz-tagging-count", http::HeaderValue::from(count));
    }
    Ok(response)
}

/// x-amz-tagging-count: sent when the object has tags.
fn tag_count(entry: &ObjectEntry) -> Option<i32> {
    (!entry.meta.tags.is_empty()).then_some(entry.meta.tags.len() as i32)
}

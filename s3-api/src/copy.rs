//! CopyObject: the new object points at the source's chunk records; no byte is copied
//! — unless one side is encrypted and the other is not, when the bytes are read and
//! written anew (`rewrite`). Between two encrypted sides the frames are shared and only
//! their data keys are sealed again for the destination.

use crate::QuarryS3;
use crate::error::engine_error;
use crate::get::{Conditions, check_conditions, lookup};
use crate::meta::{SetChecksums, checksum_fields, content_headers, etag, now_ms, timestamp};
use crate::unsupported::object_write_options;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use storage_core::{Body, ObjectRecord};

/// The bucket, key and version (if named) of a copy source.
pub fn copy_source(source: &CopySource) -> S3Result<(&str, &str, Option<&str>)> {
    let CopySource::Bucket { bucket, key, version_id } = source else {
        return Err(s3_error!(NotImplemented, "Only bucket/key copy sources are supported"));
    };
    Ok((bucket, key, version_id.as_deref()))
}

/// An If-Match / If-None-Match header of the request, parsed as S3 reads it.
fn header_condition<T>(req: &S3Request<T>, name: &str) -> S3Result<Option<ETagCondition>> {
    req.headers
        .get(name)
        .map(|value| {
            ETagCondition::parse_http_header(value.as_bytes())
                .map_err(|_| s3_error!(InvalidArgument, "The {name} header is not an ETag or '*'"))
        })
        .transpose()
}

pub async fn copy_object(s3: &QuarryS3, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
    let origin = crate::origin(&req);
    // The destination's conditions: s3s's CopyObjectInput has no fields for them.
    let write_conditions = crate::put::write_conditions(
        header_condition(&req, "if-none-match")?.as_ref(),
        header_condition(&req, "if-match")?.as_ref(),
    );
    let writer = s3.caller(&req);
    let input = req.input;
    let (source_bucket, source_key, source_version) = copy_source(&input.copy_source)?;
    let bucket_entry = s3.require_bucket(&input.bucket)?;
    crate::key::check_new_key(&input.key)?;
    // S3 gives a copy the class the request names, STANDARD when it names none.
    let storage_class = object_write_options!(input).check()?;
    // And the encryption the request names, else the bucket's default (not the source's).
    let encryption_named = input.server_side_encryption.is_some() || input.sse_customer_algorithm.is_some();
    let encryption = crate::sse::for_write(crate::sse::write_headers!(input), bucket_entry.encryption.as_ref())?;
    let source_customer_key = crate::sse::customer_key_of!(copy_source input)?;
    let source = lookup(s3, source_bucket, source_key, source_version)?;
    let source_keys =
        crate::sse::data_keys(s3.keys.server_key(), source.meta.encryption.as_ref(), source_customer_key)?;
    let conditions = Conditions {
        if_match: input.copy_source_if_match.as_ref(),
        if_none_match: input.copy_source_if_none_match.as_ref(),
        if_modified_since: input.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
    };
    check_conditions(&conditions, &source, false)?;

    let replace = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    let same_object = source_bucket == input.bucket && source_key == input.key;
    if same_object && !replace && storage_class == source.meta.storage_class && !encryption_named {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let mut meta = if replace { content_headers!(input).into_meta()? } else { source.meta.clone() };
    meta.size_bytes = source.meta.size_bytes;
    meta.etag = source.meta.etag.clone();
    meta.checksum = source.meta.checksum.clone();
    meta.part_sizes = source.meta.part_sizes.clone();
    meta.part_checksums = source.meta.part_checksums.clone();
    meta.storage_class = storage_class;
    meta.upload_id = None; // the copy is no upload's object
    meta.encryption = None;
    let body = match (source_keys, &encryption) {
        (None, None) => Body::Chunks(source.chunks.clone()),
        (Some(keys), Some(to)) => {
            let sealed_data_keys = crate::sse::reseal(s3.keys.server_key(), &keys, to)?;
            meta.encryption = Some(storage_core::Encryption { sealed_data_keys, ..to.record() });
            Body::Chunks(source.chunks.clone())
        }
        (keys, to) => {
            let algorithm = source
                .meta
                .checksum
                .as_ref()
                .and_then(|c| crate::checksum::Algorithm::parse(&c.algorithm))
                .unwrap_or(crate::checksum::Algorithm::Crc64Nvme);
            let whole = 0..source.meta.size_bytes;
            let rewritten = rewrite(s3, &source, keys, whole, to.as_ref(), algorithm).await?;
            meta.part_sizes = None;
            meta.part_checksums = None;
            meta.checksum = Some(rewritten.ingested.checksum.clone());
            meta.etag = hex::encode(rewritten.ingested.md5);
            if let (Some(to), Some(sealed)) = (to, rewritten.sealed_data_key) {
                meta.etag = to.etag(&rewritten.ingested.md5);
                meta.encryption = Some(storage_core::Encryption { sealed_data_keys: vec![sealed], ..to.record() });
            }
            rewritten.ingested.body
        }
    };
    // x-amz-tagging-directive: COPY (the default) keeps the source's tags; a tagging
    // header is checked either way, never dropped unread.
    let requested_tags = crate::tagging::from_header(input.tagging.as_deref())?;
    // A copy gets the lock the request names (or the bucket's default), not the source's.
    (meta.retention, meta.legal_hold) = crate::lock::requested_lock!(&bucket_entry, input)?;
    meta.tags = match input.tagging_directive.as_ref().map(TaggingDirective::as_str) {
        Some(TaggingDirective::REPLACE) => requested_tags,
        _ => source.meta.tags.clone(),
    };
    // A copy gets the ACL the request names (private by default), never the source's.
    let acl = crate::acl::acl_headers!(input, input.acl.as_ref().map(|a| a.as_str()));
    (meta.acl, meta.owner) = crate::acl::for_object_write(&bucket_entry, writer.as_ref(), &acl)?;
    meta.last_modified_ms = now_ms();
    let copy_source_version_id = source_version.map(|_| source.version_id().to_string());
    let record = ObjectRecord {
        origin: Some(origin),
        if_none_match: write_conditions.if_none_match,
        if_none_match_etag: write_conditions.if_none_match_etag,
        if_match: write_conditions.if_match,
        ..ObjectRecord::new(input.bucket, input.key, meta)
    };
    let entry = s3.engine.put_object(record, body).await.map_err(engine_error)?;
    let mut result = CopyObjectResult {
        e_tag: Some(etag(&entry.meta.etag)),
        last_modified: Some(timestamp(entry.meta.last_modified_ms)),
        ..Default::default()
    };
    result.set_checksums(checksum_fields(entry.meta.checksum.as_ref()));
    let mut output = CopyObjectOutput {
        copy_object_result: Some(result),
        version_id: crate::version::of_write(&entry),
        copy_source_version_id,
        ..Default::default()
    };
    crate::sse::report!(output, entry.meta.encryption.as_ref());
    Ok(S3Response::new(output))
}

/// A body written anew from bytes `range` of `source`, and its sealed data key when
/// `to` encrypts it.
pub struct Rewritten {
    pub ingested: crate::body::Ingested,
    pub sealed_data_key: Option<String>,
}

/// Reads `range` of `source` (opened with `source_keys` when encrypted) and writes it as
/// a new body, encrypted as `to` says: for copies whose two sides cannot share frames.
pub async fn rewrite(
    s3: &QuarryS3,
    source: &storage_core::ObjectEntry,
    source_keys: Option<Vec<storage_core::encryption::DataKey>>,
    range: std::ops::Range<u64>,
    to: Option<&crate::sse::WriteEncryption>,
    algorithm: crate::checksum::Algorithm,
) -> S3Result<Rewritten> {
    let stream = to.map(|e| e.new_stream(s3.keys.server_key())).transpose()?;
    let length = range.end - range.start;
    let bytes = crate::get::body_stream(&s3.engine, source, range, source_keys).await?;
    let ingested = crate::body::ingest(
        &s3.engine,
        Some(bytes),
        crate::body::Expectations {
            content_length: Some(length as i64),
            content_md5: None,
            checksum: crate::body::ChecksumPlan { algorithm, header_value: None, trailer_required: false },
            max_size_bytes: s3.config.max_object_size_bytes,
            trailing_headers: None,
            sealer: stream.as_ref().map(|(data_key, _)| storage_core::encryption::FrameSealer::new(data_key)),
        },
    )
    .await?;
    Ok(Rewritten { ingested, sealed_data_key: stream.map(|(_, sealed)| sealed) })
}

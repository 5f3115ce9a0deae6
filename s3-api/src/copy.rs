//! CopyObject: the new object points at the source's chunk records; no byte is copied.

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
    crate::unsupported::check_copy_source_encryption(&input)?;
    // S3 gives a copy the class the request names, STANDARD when it names none.
    let storage_class = object_write_options!(input).check()?;
    let source = lookup(s3, source_bucket, source_key, source_version)?;
    let conditions = Conditions {
        if_match: input.copy_source_if_match.as_ref(),
        if_none_match: input.copy_source_if_none_match.as_ref(),
        if_modified_since: input.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
    };
    check_conditions(&conditions, &source, false)?;

    let replace = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    let same_object = source_bucket == input.bucket && source_key == input.key;
    if same_object && !replace && storage_class == source.meta.storage_class {
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
    meta.storage_class = storage_class;
    meta.upload_id = None; // the copy is no upload's object
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
    let entry = s3.engine.put_object(record, Body::Chunks(source.chunks)).await.map_err(engine_error)?;
    let mut result = CopyObjectResult {
        e_tag: Some(etag(&entry.meta.etag)),
        last_modified: Some(timestamp(entry.meta.last_modified_ms)),
        ..Default::default()
    };
    result.set_checksums(checksum_fields(entry.meta.checksum.as_ref()));
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(result),
        version_id: crate::version::of_write(&entry),
        copy_source_version_id,
        ..Default::default()
    }))
}

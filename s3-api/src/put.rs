//! PutObject: stream the body into chunk records, verify it, then commit it atomically
//! (with If-None-Match / If-Match decided by the writer, race-free).

use crate::QuarryS3;
use crate::body::{self, DeclaredChecksums, Expectations};
use crate::checksum::Algorithm;
use crate::error::engine_error;
use crate::meta::{ContentHeaders, checksum_fields, etag, now_ms};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use storage_core::ObjectRecord;

pub async fn put_object(s3: &QuarryS3, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
    let S3Request { input, headers, trailing_headers, .. } = req;
    // Refuse early (the commit checks again, atomically).
    s3.require_bucket(&input.bucket)?;
    if input.write_offset_bytes.is_some() {
        return Err(s3_error!(NotImplemented, "Appending to objects (x-amz-write-offset-bytes) is not supported"));
    }
    let if_none_match = match &input.if_none_match {
        None => false,
        Some(ETagCondition::Any) => true,
        Some(_) => {
            return Err(s3_error!(NotImplemented, "If-None-Match on PUT supports only '*'"));
        }
    };
    let if_match = match &input.if_match {
        None => None,
        Some(ETagCondition::ETag(tag)) => Some(tag.value().to_owned()),
        Some(ETagCondition::Any) => Some("*".to_owned()),
    };
    let declared = DeclaredChecksums {
        values: [
            input.checksum_crc32.as_ref(),
            input.checksum_crc32c.as_ref(),
            input.checksum_crc64nvme.as_ref(),
            input.checksum_sha1.as_ref(),
            input.checksum_sha256.as_ref(),
        ],
        sdk_algorithm: input.checksum_algorithm.as_ref(),
    };
    let plan = body::plan_checksum(declared, &headers, Algorithm::Crc64Nvme)?;
    let ingested = body::ingest(
        &s3.engine,
        input.body,
        Expectations {
            content_length: input.content_length,
            content_md5: input.content_md5.as_deref(),
            checksum: plan,
            max_size_bytes: s3.config.max_object_size_bytes,
            trailing_headers,
        },
    )
    .await?;

    let mut meta = ContentHeaders {
        content_type: input.content_type,
        content_encoding: input.content_encoding,
        content_disposition: input.content_disposition,
        content_language: input.content_language,
        cache_control: input.cache_control,
        expires: input.expires,
        metadata: input.metadata,
    }
    .into_meta()?;
    meta.size_bytes = ingested.size_bytes;
    meta.etag = hex::encode(ingested.md5);
    meta.last_modified_ms = now_ms();
    meta.checksum = Some(ingested.checksum);
    let record = ObjectRecord {
        bucket: input.bucket,
        key: input.key,
        meta,
        chunks: Vec::new(),
        inline: false,
        if_none_match,
        if_match,
    };
    let entry = s3.engine.put_object(record, ingested.body).await.map_err(engine_error)?;
    let checksums = checksum_fields(entry.meta.checksum.as_ref());
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(etag(&entry.meta.etag)),
        size: Some(entry.meta.size_bytes as i64),
        checksum_crc32: checksums.crc32,
        checksum_crc32c: checksums.crc32c,
        checksum_crc64nvme: checksums.crc64nvme,
        checksum_sha1: checksums.sha1,
        checksum_sha256: checksums.sha256,
        checksum_type: checksums.checksum_type,
        ..Default::default()
    }))
}

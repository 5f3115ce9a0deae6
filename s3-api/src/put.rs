//! PutObject: stream the body into chunk records, verify it, then commit it atomically
//! (with If-None-Match / If-Match decided by the writer, race-free).

use crate::QuarryS3;
use crate::body::{self, Expectations};
use crate::checksum::Algorithm;
use crate::error::engine_error;
use crate::meta::{SetChecksums, checksum_fields, content_headers, declared_checksums, etag, now_ms};
use crate::unsupported::object_write_options;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use storage_core::encryption::FrameSealer;
use storage_core::{Encryption, ObjectRecord};

pub async fn put_object(s3: &QuarryS3, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
    let origin = crate::origin(&req);
    let writer = s3.caller(&req);
    let S3Request { input, headers, trailing_headers, method, .. } = req;
    // Refuse early (the commit checks again, atomically).
    let bucket_entry = s3.require_bucket(&input.bucket)?;
    if input.write_offset_bytes.is_some() {
        return Err(s3_error!(NotImplemented, "Appending to objects (x-amz-write-offset-bytes) is not supported"));
    }
    crate::key::check_new_key(&input.key)?;
    let storage_class = object_write_options!(input).check()?;
    let encryption = crate::sse::for_write(crate::sse::write_headers!(input), bucket_entry.encryption.as_ref())?;
    let stream = encryption.as_ref().map(|e| e.new_stream(s3.keys.server_key())).transpose()?;
    let conditions = write_conditions(input.if_none_match.as_ref(), input.if_match.as_ref());
    let declared = declared_checksums!(input);
    let plan = body::plan_checksum(declared, &headers, Algorithm::Crc64Nvme)?;
    let ingested = body::ingest(
        &s3.engine,
        input.body,
        Expectations {
            content_length: input.content_length,
            content_md5: body::content_md5(input.content_md5.as_deref(), &headers),
            checksum: plan,
            max_size_bytes: s3.config.max_object_size_bytes,
            trailing_headers,
            sealer: stream.as_ref().map(|(data_key, _)| FrameSealer::new(data_key)),
        },
    )
    .await?;

    let mut meta = content_headers!(input).into_meta()?;
    meta.size_bytes = ingested.size_bytes;
    meta.etag = hex::encode(ingested.md5);
    if let (Some(encryption), Some((_, sealed))) = (&encryption, stream) {
        meta.etag = encryption.etag(&ingested.md5);
        meta.encryption = Some(Encryption { sealed_data_keys: vec![sealed], ..encryption.record() });
    }
    meta.last_modified_ms = now_ms();
    meta.checksum = Some(ingested.checksum);
    meta.storage_class = storage_class;
    meta.tags = crate::tagging::from_header(input.tagging.as_deref())?;
    (meta.retention, meta.legal_hold) = crate::lock::requested_lock!(&bucket_entry, input)?;
    let acl = crate::acl::acl_headers!(input, input.acl.as_ref().map(|a| a.as_str()));
    (meta.acl, meta.owner) = crate::acl::for_object_write(&bucket_entry, writer.as_ref(), &acl)?;
    let record = ObjectRecord {
        bucket: input.bucket,
        key: input.key,
        meta,
        chunks: Vec::new(),
        inline: false,
        if_none_match: conditions.if_none_match,
        if_none_match_etag: conditions.if_none_match_etag,
        if_match: conditions.if_match,
        origin: Some(origin),
    };
    let entry = s3.engine.put_object(record, ingested.body).await.map_err(engine_error)?;
    let mut output = PutObjectOutput {
        // A browser upload (POST) names its ETag in the redirect's query and the 201
        // PostResponse, which s3s writes from the bare value: S3 puts it in quotes there.
        e_tag: Some(if method == http::Method::POST {
            s3s::dto::ETag::Strong(format!("\"{}\"", entry.meta.etag))
        } else {
            etag(&entry.meta.etag)
        }),
        size: Some(entry.meta.size_bytes as i64),
        version_id: crate::version::of_write(&entry),
        ..Default::default()
    };
    output.set_checksums(checksum_fields(entry.meta.checksum.as_ref()));
    crate::sse::report!(output, entry.meta.encryption.as_ref());
    Ok(S3Response::new(output))
}

/// The conditions of a conditional write (PutObject, CompleteMultipartUpload, the
/// destination of CopyObject), as the record carries them.
pub(crate) struct WriteConditions {
    /// If-None-Match `*`: only if the key has no current object.
    pub if_none_match: bool,
    /// If-None-Match with an ETag: only if the current object's ETag differs. AWS takes
    /// `*` only (501 otherwise); MinIO and Ceph take an ETag as RFC 7232 does, and the
    /// clients moving from them rely on it.
    pub if_none_match_etag: Option<String>,
    /// If-Match: an ETag, or `*` for "only if the key has a current object".
    pub if_match: Option<String>,
}

pub(crate) fn write_conditions(
    if_none_match: Option<&ETagCondition>,
    if_match: Option<&ETagCondition>,
) -> WriteConditions {
    let (if_none_match, if_none_match_etag) = match if_none_match {
        None => (false, None),
        Some(ETagCondition::Any) => (true, None),
        Some(ETagCondition::ETag(tag)) => (false, Some(tag.value().to_owned())),
    };
    let if_match = if_match.map(|m| match m {
        ETagCondition::ETag(tag) => tag.value().to_owned(),
        ETagCondition::Any => "*".to_owned(),
    });
    WriteConditions { if_none_match, if_none_match_etag, if_match }
}

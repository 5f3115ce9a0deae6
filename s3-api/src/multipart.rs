//! Multipart uploads. Parts are stored like object bodies (chunk records, or inline in
//! the part record); completing an upload writes one record that lists the chosen
//! parts' chunks in order — no part byte is copied.

use crate::QuarryS3;
use crate::body::{self, Expectations};
use crate::checksum::{self, Algorithm, COMPOSITE, FULL_OBJECT};
use crate::error::engine_error;
use crate::meta::{SetChecksums, checksum_fields, content_headers, declared_checksums, etag, now_ms, timestamp};
use crate::unsupported::reported_class;
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use std::collections::HashMap;
use storage_core::{ObjectRecord, PartEntry, PartRecord, UploadEntry, UploadRecord};

/// S3's limits: part numbers 1..=10000, every part but the last at least 5 MiB.
const MAX_PART_NUMBER: i32 = 10_000;
const MIN_PART_SIZE_BYTES: u64 = 5 * 1024 * 1024;
/// A part may be at most 5 GiB.
const MAX_PART_SIZE_BYTES: u64 = 5 * 1024 * 1024 * 1024;
const MAX_PARTS_PER_PAGE: usize = 1000;

fn no_such_upload() -> s3s::S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified multipart upload does not exist. The upload ID might be invalid, or the upload might have been aborted or completed."
    )
}

/// The upload of (bucket, key, upload id): an id of another bucket or key is no upload
/// here, and an id not of the server's own format never reaches the index.
fn upload(s3: &QuarryS3, bucket: &str, key: &str, upload_id: &str) -> S3Result<UploadEntry> {
    s3.require_bucket(bucket)?;
    if !is_upload_id(upload_id) {
        return Err(no_such_upload());
    }
    s3.engine.index().upload(bucket, key, upload_id).map_err(engine_error)?.ok_or_else(no_such_upload)
}

/// Upload ids: 20 hex digits of creation time in nanoseconds (so they sort by creation,
/// as ListMultipartUploads lists them) then 16 random hex digits, all lowercase.
const UPLOAD_ID_TIME_DIGITS: usize = 20;
const UPLOAD_ID_RANDOM_DIGITS: usize = 16;

fn new_upload_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!(
        "{:0tw$x}{:0rw$x}",
        nanos as u64,
        rand::random::<u64>(),
        tw = UPLOAD_ID_TIME_DIGITS,
        rw = UPLOAD_ID_RANDOM_DIGITS
    )
}

/// Whether `id` is of the form [`new_upload_id`] makes. Only such ids are looked up.
fn is_upload_id(id: &str) -> bool {
    id.len() == UPLOAD_ID_TIME_DIGITS + UPLOAD_ID_RANDOM_DIGITS
        && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub async fn create_multipart_upload(
    s3: &QuarryS3,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let writer = s3.caller(&req);
    let input = req.input;
    let bucket_entry = s3.require_bucket(&input.bucket)?;
    let algorithm = input
        .checksum_algorithm
        .as_ref()
        .map(|a| {
            Algorithm::parse(a.as_str()).ok_or_else(|| s3_error!(InvalidRequest, "Unsupported checksum algorithm"))
        })
        .transpose()?;
    let checksum_type = input.checksum_type.as_ref().map(|t| t.as_str().to_owned());
    if let Some(t) = &checksum_type {
        let supported = match (t.as_str(), algorithm) {
            (FULL_OBJECT, Some(a)) => a.supports_full_object(),
            (COMPOSITE, Some(a)) => a != Algorithm::Crc64Nvme,
            _ => false,
        };
        if !supported {
            return Err(s3_error!(
                InvalidRequest,
                "The checksum type {t} is not supported with this checksum algorithm"
            ));
        }
    }
    crate::key::check_new_key(&input.key)?;
    let storage_class = crate::unsupported::object_write_options!(input).check()?;
    let encryption = crate::sse::for_write(crate::sse::write_headers!(input), bucket_entry.encryption.as_ref())?;
    let mut meta = content_headers!(input).into_meta()?;
    meta.storage_class = storage_class;
    // The scheme and its key's id; each part brings its own data key.
    meta.encryption = encryption.as_ref().map(crate::sse::WriteEncryption::record);
    meta.tags = crate::tagging::from_header(input.tagging.as_deref())?;
    (meta.retention, meta.legal_hold) = crate::lock::requested_lock!(&bucket_entry, input)?;
    let acl = crate::acl::acl_headers!(input, input.acl.as_ref().map(|a| a.as_str()));
    (meta.acl, meta.owner) = crate::acl::for_object_write(&bucket_entry, writer.as_ref(), &acl)?;
    let upload_id = new_upload_id();
    let record = UploadRecord {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        upload_id: upload_id.clone(),
        initiated_ms: now_ms(),
        meta,
        checksum_algorithm: algorithm.map(|a| a.name().to_owned()),
        checksum_type: checksum_type.clone(),
    };
    let reported = record.meta.encryption.clone();
    s3.engine.create_upload(record).await.map_err(engine_error)?;
    let mut output = CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload_id),
        checksum_algorithm: input.checksum_algorithm,
        checksum_type: checksum_type.map(ChecksumType::from),
        ..Default::default()
    };
    crate::sse::report!(output, reported.as_ref());
    Ok(S3Response::new(output))
}

pub async fn upload_part(s3: &QuarryS3, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
    let S3Request { input, headers, trailing_headers, .. } = req;
    if !(1..=MAX_PART_NUMBER).contains(&input.part_number) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
        ));
    }
    let upload = upload(s3, &input.bucket, &input.key, &input.upload_id)?;
    // Parts carry the upload's algorithm if it named one; else what the client sends.
    let fallback =
        upload.upload.checksum_algorithm.as_deref().and_then(Algorithm::parse).unwrap_or(Algorithm::Crc64Nvme);
    let declared = declared_checksums!(input);
    let plan = body::plan_checksum(declared, &headers, fallback)?;
    let encryption = part_encryption(&upload, crate::sse::customer_key_of!(input)?)?;
    let stream = encryption.as_ref().map(|e| e.new_stream(s3.keys.server_key())).transpose()?;
    let ingested = body::ingest(
        &s3.engine,
        input.body,
        Expectations {
            content_length: input.content_length,
            content_md5: body::content_md5(input.content_md5.as_deref(), &headers),
            checksum: plan,
            max_size_bytes: MAX_PART_SIZE_BYTES.min(s3.config.max_object_size_bytes),
            trailing_headers,
            sealer: stream.as_ref().map(|(data_key, _)| storage_core::encryption::FrameSealer::new(data_key)),
        },
    )
    .await?;
    let sealed_data_key = stream.map(|(_, sealed)| sealed);
    let part = PartRecord {
        bucket: input.bucket,
        key: input.key,
        upload_id: input.upload_id,
        part_number: input.part_number as u32,
        size_bytes: ingested.size_bytes,
        etag: part_etag(encryption.as_ref(), &ingested.md5),
        last_modified_ms: now_ms(),
        checksum: Some(ingested.checksum),
        chunks: Vec::new(),
        inline: false,
        sealed_data_key,
    };
    let (part_etag, checksum) = (part.etag.clone(), part.checksum.clone());
    s3.engine.put_part(part, ingested.body).await.map_err(engine_error)?;
    let mut output = UploadPartOutput { e_tag: Some(etag(&part_etag)), ..Default::default() };
    output.set_checksums(checksum_fields(checksum.as_ref()));
    crate::sse::report!(output, upload.upload.meta.encryption.as_ref());
    Ok(S3Response::new(output))
}

/// How a part of `upload` is encrypted: as the upload said at creation (with the same
/// SSE-C key), or not at all.
fn part_encryption(
    upload: &UploadEntry,
    customer: Option<crate::sse::CustomerKey>,
) -> S3Result<Option<crate::sse::WriteEncryption>> {
    match &upload.upload.meta.encryption {
        Some(encryption) => crate::sse::WriteEncryption::of_upload(encryption, customer).map(Some),
        None if customer.is_some() => {
            Err(s3_error!(InvalidRequest, "The encryption parameters are not applicable to this upload."))
        }
        None => Ok(None),
    }
}

/// A part's ETag: the MD5 of its bytes, or what its encryption makes of it.
fn part_etag(encryption: Option<&crate::sse::WriteEncryption>, md5: &[u8; 16]) -> String {
    encryption.map_or_else(|| hex::encode(md5), |e| e.etag(md5))
}

/// UploadPartCopy: the part points at (a range of) the source object's chunk records.
/// Only its ETag and checksum need the bytes, which are read, never written again.
pub async fn upload_part_copy(
    s3: &QuarryS3,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = req.input;
    if !(1..=MAX_PART_NUMBER).contains(&input.part_number) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
        ));
    }
    let (source_bucket, source_key, source_version) = crate::copy::copy_source(&input.copy_source)?;
    let upload = upload(s3, &input.bucket, &input.key, &input.upload_id)?;
    let source = crate::get::lookup(s3, source_bucket, source_key, source_version)?;
    let conditions = crate::get::Conditions {
        if_match: input.copy_source_if_match.as_ref(),
        if_none_match: input.copy_source_if_none_match.as_ref(),
        if_modified_since: input.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
    };
    crate::get::check_conditions(&conditions, &source, false)?;
    let size = source.meta.size_bytes;
    let range = match &input.copy_source_range {
        None => 0..size,
        Some(text) => parse_copy_range(text, size)?,
    };
    if range.end - range.start > MAX_PART_SIZE_BYTES {
        return Err(s3_error!(EntityTooLarge, "A part may be at most {MAX_PART_SIZE_BYTES} bytes"));
    }
    let algorithm =
        upload.upload.checksum_algorithm.as_deref().and_then(Algorithm::parse).unwrap_or(Algorithm::Crc64Nvme);
    let source_keys = crate::sse::data_keys(
        s3.keys.server_key(),
        source.meta.encryption.as_ref(),
        crate::sse::customer_key_of!(copy_source input)?,
    )?;
    let encryption = part_encryption(&upload, crate::sse::customer_key_of!(input)?)?;
    if source_keys.is_some() || encryption.is_some() {
        // Encrypted bytes on either side: the part is written anew, not shared.
        let rewritten =
            crate::copy::rewrite(s3, &source, source_keys, range.clone(), encryption.as_ref(), algorithm).await?;
        let part = PartRecord {
            bucket: input.bucket,
            key: input.key,
            upload_id: input.upload_id,
            part_number: input.part_number as u32,
            size_bytes: rewritten.ingested.size_bytes,
            etag: part_etag(encryption.as_ref(), &rewritten.ingested.md5),
            last_modified_ms: now_ms(),
            checksum: Some(rewritten.ingested.checksum.clone()),
            chunks: Vec::new(),
            inline: false,
            sealed_data_key: rewritten.sealed_data_key,
        };
        let (part_etag, last_modified, checksum) = (part.etag.clone(), part.last_modified_ms, part.checksum.clone());
        s3.engine.put_part(part, rewritten.ingested.body).await.map_err(engine_error)?;
        let mut result = CopyPartResult {
            e_tag: Some(etag(&part_etag)),
            last_modified: Some(timestamp(last_modified)),
            ..Default::default()
        };
        result.set_checksums(checksum_fields(checksum.as_ref()));
        let mut output = UploadPartCopyOutput { copy_part_result: Some(result), ..Default::default() };
        crate::sse::report!(output, upload.upload.meta.encryption.as_ref());
        return Ok(S3Response::new(output));
    }
    let mut md5 = Md5::new();
    let mut hasher = algorithm.hasher();
    let mut reader = s3.engine.read(&source, range.clone());
    while let Some(chunk) = reader.next_chunk().await {
        let chunk = chunk.map_err(engine_error)?;
        md5.update(&chunk);
        hasher.update(&chunk);
    }
    let checksum = checksum::stored(algorithm, hasher.finish(), FULL_OBJECT);
    let pieces = storage_core::slice_pieces(&source.chunks, range.clone());
    let part = PartRecord {
        bucket: input.bucket,
        key: input.key,
        upload_id: input.upload_id,
        part_number: input.part_number as u32,
        size_bytes: range.end - range.start,
        etag: hex::encode(md5.finalize()),
        last_modified_ms: now_ms(),
        checksum: Some(checksum.clone()),
        chunks: Vec::new(),
        inline: false,
        sealed_data_key: None,
    };
    let (part_etag, last_modified) = (part.etag.clone(), part.last_modified_ms);
    s3.engine.put_part(part, storage_core::Body::Chunks(pieces)).await.map_err(engine_error)?;
    let mut result = CopyPartResult {
        e_tag: Some(etag(&part_etag)),
        last_modified: Some(timestamp(last_modified)),
        ..Default::default()
    };
    result.set_checksums(checksum_fields(Some(&checksum)));
    Ok(S3Response::new(UploadPartCopyOutput { copy_part_result: Some(result), ..Default::default() }))
}

/// `x-amz-copy-source-range: bytes=first-last`, inclusive, inside the source.
fn parse_copy_range(text: &str, size: u64) -> S3Result<std::ops::Range<u64>> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let (first, last) = text.trim().strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(invalid)?;
    let (first, last): (u64, u64) = (first.parse().map_err(|_| invalid())?, last.parse().map_err(|_| invalid())?);
    if first > last {
        return Err(invalid());
    }
    if last >= size {
        return Err(s3_error!(InvalidRange, "Range specified is not valid for source object of size: {size}"));
    }
    Ok(first..last + 1)
}

/// A part's checksum value as the client listed it in CompleteMultipartUpload.
fn listed_checksum(part: &CompletedPart, algorithm: Algorithm) -> Option<&String> {
    match algorithm {
        Algorithm::Crc32 => part.checksum_crc32.as_ref(),
        Algorithm::Crc32c => part.checksum_crc32c.as_ref(),
        Algorithm::Crc64Nvme => part.checksum_crc64nvme.as_ref(),
        Algorithm::Sha1 => part.checksum_sha1.as_ref(),
        Algorithm::Sha256 => part.checksum_sha256.as_ref(),
    }
}

pub async fn complete_multipart_upload(
    s3: &QuarryS3,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let origin = crate::origin(&req);
    let input = req.input;
    let conditions = crate::put::write_conditions(input.if_none_match.as_ref(), input.if_match.as_ref());
    let listed = input.multipart_upload.clone().and_then(|m| m.parts).unwrap_or_default();
    if listed.is_empty() {
        return Err(s3_error!(MalformedXML, "You must specify at least one part"));
    }
    let numbered = in_part_order(&listed)?;
    let upload = match upload(s3, &input.bucket, &input.key, &input.upload_id) {
        Ok(upload) => upload.upload,
        // A retry of a Complete that succeeded gets the same answer, as S3 gives it.
        Err(e) => return completed_before(s3, &input, &numbered)?.ok_or(e),
    };
    let mut stored: HashMap<u32, PartEntry> = s3
        .engine
        .index()
        .parts(&upload.bucket, &upload.key, &upload.upload_id)
        .map_err(engine_error)?
        .into_iter()
        .map(|p| (p.part.part_number, p))
        .collect();

    let invalid_part = |n: i32| {
        s3_error!(
            InvalidPart,
            "One or more of the specified parts could not be found (part {n}). The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
        )
    };
    let mut chosen: Vec<PartRecord> = Vec::with_capacity(numbered.len());
    for (number, part) in numbered {
        let entry = u32::try_from(number).ok().and_then(|n| stored.remove(&n)).ok_or_else(|| invalid_part(number))?;
        if part.e_tag.as_ref().is_some_and(|t| t.value() != entry.part.etag) {
            return Err(invalid_part(number));
        }
        if let Some(checksum) = &entry.part.checksum
            && let Some(algorithm) = Algorithm::parse(&checksum.algorithm)
            && listed_checksum(part, algorithm).is_some_and(|v| v.trim() != checksum.value)
        {
            return Err(invalid_part(number));
        }
        chosen.push(entry.part);
    }
    if let Some(small) = chosen[..chosen.len() - 1].iter().find(|p| p.size_bytes < MIN_PART_SIZE_BYTES) {
        return Err(s3_error!(
            EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed size: part {} is {} bytes; every part but the last must be at least {MIN_PART_SIZE_BYTES} bytes",
            small.part_number,
            small.size_bytes
        ));
    }

    let mut md5_of_md5s = Md5::new();
    for part in &chosen {
        md5_of_md5s
            .update(hex::decode(&part.etag).map_err(|_| s3_error!(InternalError, "stored part ETag is not hex"))?);
    }
    let object_checksum = completed_checksum(&upload, &chosen)?;
    if let Some(ours) = &object_checksum {
        let theirs = match Algorithm::parse(&ours.algorithm) {
            Some(Algorithm::Crc32) => input.checksum_crc32.as_ref(),
            Some(Algorithm::Crc32c) => input.checksum_crc32c.as_ref(),
            Some(Algorithm::Crc64Nvme) => input.checksum_crc64nvme.as_ref(),
            Some(Algorithm::Sha1) => input.checksum_sha1.as_ref(),
            Some(Algorithm::Sha256) => input.checksum_sha256.as_ref(),
            None => None,
        };
        // A composite value may be sent with or without its "-N" suffix.
        let base = ours.value.split('-').next().unwrap_or_default();
        if let Some(theirs) = theirs
            && theirs.trim() != ours.value
            && theirs.trim() != base
        {
            return Err(s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                ours.algorithm
            ));
        }
    }

    let mut meta = upload.meta.clone();
    meta.size_bytes = chosen.iter().map(|p| p.size_bytes).sum();
    meta.etag = format!("{}-{}", hex::encode(md5_of_md5s.finalize()), chosen.len());
    meta.last_modified_ms = now_ms();
    meta.checksum = object_checksum;
    meta.part_sizes = Some(chosen.iter().map(|p| p.size_bytes).collect());
    meta.part_checksums = part_checksums(meta.checksum.as_ref(), &chosen);
    meta.upload_id = Some(upload.upload_id.clone());
    if let Some(encryption) = meta.encryption.as_mut() {
        encryption.sealed_data_keys = chosen
            .iter()
            .map(|p| {
                p.sealed_data_key.clone().ok_or_else(|| {
                    s3_error!(InternalError, "part {} of an encrypted upload has no data key", p.part_number)
                })
            })
            .collect::<S3Result<Vec<_>>>()?;
    }
    let record = ObjectRecord {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        meta,
        chunks: chosen.iter().flat_map(|p| p.chunks.iter().copied()).collect(),
        inline: false,
        if_none_match: conditions.if_none_match,
        if_none_match_etag: conditions.if_none_match_etag,
        if_match: conditions.if_match,
        origin: Some(origin),
    };
    let entry = s3.engine.complete_upload(&upload.upload_id, record).await.map_err(engine_error)?;
    Ok(completed(&input, &entry))
}

/// CompleteMultipartUpload's answer for the object `entry` it made.
fn completed(
    input: &CompleteMultipartUploadInput,
    entry: &storage_core::ObjectEntry,
) -> S3Response<CompleteMultipartUploadOutput> {
    let mut output = CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        e_tag: Some(etag(&entry.meta.etag)),
        version_id: crate::version::of_write(entry),
        ..Default::default()
    };
    output.set_checksums(checksum_fields(entry.meta.checksum.as_ref()));
    crate::sse::report!(@server output, crate::sse::reported(entry.meta.encryption.as_ref()));
    S3Response::new(output)
}

/// The listed parts by number, checked to be in ascending order. A part number listed
/// again (a client that re-sent a part and recorded both answers) is taken from its last
/// entry, as S3 does.
fn in_part_order(listed: &[CompletedPart]) -> S3Result<Vec<(i32, &CompletedPart)>> {
    let mut numbered: Vec<(i32, &CompletedPart)> = Vec::with_capacity(listed.len());
    for part in listed {
        let number = part.part_number.ok_or_else(|| s3_error!(MalformedXML, "A part is missing its PartNumber"))?;
        match numbered.last_mut() {
            Some((previous, _)) if number < *previous => {
                return Err(s3_error!(
                    InvalidPartOrder,
                    "The list of parts was not in ascending order. The parts list must be specified in order by part number."
                ));
            }
            Some((previous, last)) if number == *previous => *last = part,
            _ => numbered.push((number, part)),
        }
    }
    Ok(numbered)
}

/// The answer to a CompleteMultipartUpload of an upload that is no more, if that upload
/// was completed, with the same parts, into the object now at its key.
fn completed_before(
    s3: &QuarryS3,
    input: &CompleteMultipartUploadInput,
    listed: &[(i32, &CompletedPart)],
) -> S3Result<Option<S3Response<CompleteMultipartUploadOutput>>> {
    let Some(entry) = s3.engine.object(&input.bucket, &input.key).map_err(engine_error)? else { return Ok(None) };
    if entry.meta.upload_id.as_deref() != Some(input.upload_id.as_str()) {
        return Ok(None);
    }
    let mut md5_of_md5s = Md5::new();
    for (_, part) in listed {
        let Some(md5) = part.e_tag.as_ref().and_then(|t| hex::decode(t.value()).ok()) else { return Ok(None) };
        md5_of_md5s.update(md5);
    }
    if format!("{}-{}", hex::encode(md5_of_md5s.finalize()), listed.len()) != entry.meta.etag {
        return Ok(None);
    }
    Ok(Some(completed(input, &entry)))
}

/// The whole object's checksum: the upload's algorithm (CRC64NVME when it named none,
/// as S3 does), FULL_OBJECT or COMPOSITE as asked. `None` if a part lacks a value of
/// that algorithm (possible only when the upload named no algorithm).
/// Each part's checksum value, when every part has one of the object checksum's
/// algorithm (what a GET of one part reports).
fn part_checksums(object: Option<&storage_core::StoredChecksum>, parts: &[PartRecord]) -> Option<Vec<String>> {
    let algorithm = &object?.algorithm;
    parts.iter().map(|p| p.checksum.as_ref().filter(|c| &c.algorithm == algorithm).map(|c| c.value.clone())).collect()
}

fn completed_checksum(upload: &UploadRecord, parts: &[PartRecord]) -> S3Result<Option<storage_core::StoredChecksum>> {
    let named = upload.checksum_algorithm.as_deref().and_then(Algorithm::parse);
    let algorithm = named.unwrap_or(Algorithm::Crc64Nvme);
    let checksum_type = match (&upload.checksum_type, named) {
        (Some(t), _) => t.clone(),
        (None, Some(a)) if a != Algorithm::Crc64Nvme => COMPOSITE.to_owned(),
        _ => FULL_OBJECT.to_owned(),
    };
    let mut values = Vec::with_capacity(parts.len());
    for part in parts {
        match &part.checksum {
            Some(c) if c.algorithm == algorithm.name() => values.push((c.value.clone(), part.size_bytes)),
            _ if named.is_some() => {
                return Err(s3_error!(
                    InvalidPart,
                    "Part {} has no {} checksum, which this upload requires",
                    part.part_number,
                    algorithm.name()
                ));
            }
            _ => return Ok(None),
        }
    }
    Ok(checksum::combine_parts(algorithm, &checksum_type, &values)
        .map(|v| checksum::stored(algorithm, v, &checksum_type)))
}

pub async fn abort_multipart_upload(
    s3: &QuarryS3,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    s3.require_bucket(&input.bucket)?;
    if !is_upload_id(&input.upload_id) {
        return Err(no_such_upload());
    }
    s3.engine.abort_upload(&input.bucket, &input.key, &input.upload_id).await.map_err(engine_error)?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub async fn list_parts(s3: &QuarryS3, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    let upload = upload(s3, &input.bucket, &input.key, &input.upload_id)?.upload;
    let marker = input.part_number_marker.unwrap_or(0);
    let limit = match input.max_parts {
        Some(n) if n < 0 => {
            return Err(s3_error!(InvalidArgument, "max-parts must not be negative"));
        }
        Some(n) => (n as usize).min(MAX_PARTS_PER_PAGE),
        None => MAX_PARTS_PER_PAGE,
    };
    let all = s3.engine.index().parts(&upload.bucket, &upload.key, &upload.upload_id).map_err(engine_error)?;
    let owner = s3.bucket_owner(&upload.bucket)?;
    let after: Vec<PartEntry> = all.into_iter().filter(|p| p.part.part_number as i64 > marker as i64).collect();
    let is_truncated = after.len() > limit;
    let page = &after[..after.len().min(limit)];
    let parts = page
        .iter()
        .map(|p| {
            let mut part = Part {
                part_number: Some(p.part.part_number as i32),
                size: Some(p.part.size_bytes as i64),
                e_tag: Some(etag(&p.part.etag)),
                last_modified: Some(timestamp(p.part.last_modified_ms)),
                ..Default::default()
            };
            part.set_checksums(checksum_fields(p.part.checksum.as_ref()));
            part
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.upload_id),
        part_number_marker: Some(marker),
        next_part_number_marker: page.last().filter(|_| is_truncated).map(|p| p.part.part_number as i32),
        max_parts: Some(limit as i32),
        is_truncated: Some(is_truncated),
        parts: Some(parts),
        storage_class: Some(StorageClass::from(reported_class(upload.meta.storage_class.as_ref()).to_owned())),
        owner: Some(crate::list::upload_owner(&upload.meta, &owner)),
        initiator: Some(crate::list::initiator(&crate::list::upload_owner(&upload.meta, &owner))),
        checksum_algorithm: upload.checksum_algorithm.map(ChecksumAlgorithm::from),
        checksum_type: upload.checksum_type.map(ChecksumType::from),
        ..Default::default()
    }))
}

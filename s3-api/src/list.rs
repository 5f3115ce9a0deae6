//! ListObjectsV2, ListObjects (v1), ListObjectVersions and ListMultipartUploads: ordered
//! range scans of the index, with prefix, delimiter (CommonPrefixes), pagination and encoding-type=url.

use crate::QuarryS3;
use crate::error::engine_error;
use crate::meta::{etag, timestamp};
use crate::unsupported::reported_class;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as TOKEN_BASE64;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use storage_core::{ListQuery, VersionId, VersionPage, VersionQuery};

/// The most keys one page may hold, whatever max-keys asks for.
const MAX_KEYS_PER_PAGE: usize = 1000;

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS_PER_PAGE),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(MAX_KEYS_PER_PAGE)),
    }
}

/// encoding-type=url: S3 percent-encodes keys and prefixes in the response, so that
/// keys with characters XML cannot carry survive. Everything but unreserved characters
/// and '/' is encoded.
struct Encoder {
    url: bool,
}

impl Encoder {
    fn new(encoding_type: Option<&EncodingType>) -> S3Result<Encoder> {
        match encoding_type.map(EncodingType::as_str) {
            None => Ok(Encoder { url: false }),
            Some(t) if t == EncodingType::URL => Ok(Encoder { url: true }),
            Some(other) => Err(s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request: {other}")),
        }
    }

    fn apply(&self, value: String) -> String {
        if !self.url {
            return value;
        }
        urlencoding::encode(&value).replace("%2F", "/")
    }

    fn opt(&self, value: Option<String>) -> Option<String> {
        value.map(|v| self.apply(v))
    }
}

fn object(encoder: &Encoder, key: String, entry: &storage_core::ObjectEntry) -> Object {
    Object {
        key: Some(encoder.apply(key)),
        size: Some(entry.meta.size_bytes as i64),
        e_tag: Some(etag(&entry.meta.etag)),
        last_modified: Some(timestamp(entry.meta.last_modified_ms)),
        storage_class: Some(ObjectStorageClass::from(reported_class(entry.meta.storage_class.as_ref()).to_owned())),
        checksum_algorithm: entry.meta.checksum.as_ref().map(|c| vec![ChecksumAlgorithm::from(c.algorithm.clone())]),
        checksum_type: entry.meta.checksum.as_ref().map(|c| ChecksumType::from(c.checksum_type.clone())),
        // The writer, when not the bucket's owner; listings that name owners fill in the rest.
        owner: entry.meta.owner.as_deref().map(crate::auth::owner_named),
        restore_status: None,
    }
}

/// The owner of an upload (and of the object it makes): its writer when not the
/// bucket's owner (`bucket_owner`).
pub(crate) fn upload_owner(meta: &storage_core::ObjectMeta, bucket_owner: &Owner) -> Owner {
    meta.owner.as_deref().map_or_else(|| bucket_owner.clone(), crate::auth::owner_named)
}

pub(crate) fn initiator(owner: &Owner) -> Initiator {
    Initiator { id: owner.id.clone(), display_name: owner.display_name.clone() }
}

/// One page of a listing: objects, common prefixes, truncated, last key or prefix.
pub(crate) type Listed = (Vec<Object>, Vec<CommonPrefix>, bool, Option<String>);

fn list_page(s3: &QuarryS3, bucket: &str, query: &ListQuery, encoder: &Encoder) -> S3Result<Listed> {
    if bucket == crate::CATALOG_BUCKET {
        let (mut objects, mut prefixes, truncated, last) = crate::catalog::list(
            s3,
            &query.prefix,
            query.delimiter.as_deref(),
            query.start_after.as_deref(),
            query.max_keys,
        )?;
        for o in &mut objects {
            o.key = encoder.opt(o.key.take());
        }
        for p in &mut prefixes {
            p.prefix = encoder.opt(p.prefix.take());
        }
        return Ok((objects, prefixes, truncated, last));
    }
    s3.require_bucket(bucket)?;
    if query.max_keys == 0 {
        // S3 answers max-keys=0 with an empty page that is not truncated.
        return Ok((Vec::new(), Vec::new(), false, None));
    }
    let mut page = s3.engine.list_objects(bucket, query).map_err(engine_error)?;
    let objects = std::mem::take(&mut page.objects).into_iter().map(|(k, e)| object(encoder, k, &e)).collect();
    let prefixes = std::mem::take(&mut page.common_prefixes)
        .into_iter()
        .map(|p| CommonPrefix { prefix: Some(encoder.apply(p)) })
        .collect();
    Ok((objects, prefixes, page.is_truncated, page.last))
}

pub async fn list_objects_v2(
    s3: &QuarryS3,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    let encoder = Encoder::new(input.encoding_type.as_ref())?;
    let resume_after = match &input.continuation_token {
        Some(token) => Some(decode_token(token)?),
        None => input.start_after.clone(),
    };
    let query = ListQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: delimiter(&input.delimiter),
        start_after: resume_after,
        max_keys: max_keys(input.max_keys)?,
    };
    let (mut objects, prefixes, is_truncated, last) = list_page(s3, &input.bucket, &query, &encoder)?;
    // ListObjectsV2 names each object's owner only when asked (fetch-owner=true).
    if input.fetch_owner == Some(true) {
        let owner = s3.bucket_owner(&input.bucket)?;
        for object in &mut objects {
            object.owner.get_or_insert_with(|| owner.clone());
        }
    } else {
        for object in &mut objects {
            object.owner = None;
        }
    }
    let next_token = last.as_deref().filter(|_| is_truncated).map(encode_token);
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(encoder.apply(query.prefix)),
        delimiter: encoder.opt(query.delimiter),
        max_keys: Some(query.max_keys as i32),
        key_count: Some((objects.len() + prefixes.len()) as i32),
        is_truncated: Some(is_truncated),
        continuation_token: input.continuation_token,
        next_continuation_token: next_token,
        start_after: encoder.opt(input.start_after),
        encoding_type: input.encoding_type,
        contents: Some(objects),
        common_prefixes: Some(prefixes),
        request_charged: None,
    }))
}

pub async fn list_objects(s3: &QuarryS3, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    let encoder = Encoder::new(input.encoding_type.as_ref())?;
    let query = ListQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: delimiter(&input.delimiter),
        start_after: input.marker.clone().filter(|m| !m.is_empty()),
        max_keys: max_keys(input.max_keys)?,
    };
    let (mut objects, prefixes, is_truncated, last) = list_page(s3, &input.bucket, &query, &encoder)?;
    // ListObjects (v1) names every object's owner.
    let owner = s3.bucket_owner(&input.bucket)?;
    for object in &mut objects {
        object.owner.get_or_insert_with(|| owner.clone());
    }
    // S3 documents NextMarker only with a delimiter; sending it always helps clients
    // that paginate without one, and is what most S3 servers do.
    let next_marker = last.filter(|_| is_truncated);
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        // ListObjects (v1) echoes Prefix as sent even with encoding-type=url, as S3 does
        // (botocore decodes Delimiter, Marker, NextMarker and keys there, not Prefix).
        prefix: Some(query.prefix),
        marker: Some(encoder.apply(input.marker.unwrap_or_default())),
        delimiter: encoder.opt(query.delimiter),
        max_keys: Some(query.max_keys as i32),
        is_truncated: Some(is_truncated),
        next_marker: encoder.opt(next_marker),
        encoding_type: input.encoding_type,
        contents: Some(objects),
        common_prefixes: Some(prefixes),
        request_charged: None,
    }))
}

/// ListObjectVersions: every version of each key, the latest first, delete markers
/// among them. Pagination follows S3: a page resumes after (key-marker,
/// version-id-marker), or after every version of key-marker when no version is named.
pub async fn list_object_versions(
    s3: &QuarryS3,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = req.input;
    let encoder = Encoder::new(input.encoding_type.as_ref())?;
    let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
    let version_id_marker = input.version_id_marker.as_deref().filter(|v| !v.is_empty());
    if key_marker.is_none() && version_id_marker.is_some() {
        return Err(s3_error!(InvalidArgument, "A version-id marker cannot be specified without a key marker."));
    }
    let query = VersionQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: delimiter(&input.delimiter),
        key_marker,
        version_id_marker: crate::version::requested(version_id_marker)?,
        max_keys: max_keys(input.max_keys)?,
    };
    let page = if input.bucket == crate::CATALOG_BUCKET {
        catalog_versions(s3, &query)?
    } else {
        s3.require_bucket(&input.bucket)?;
        if query.max_keys == 0 {
            VersionPage::default()
        } else {
            s3.engine.list_object_versions(&input.bucket, &query).map_err(engine_error)?
        }
    };
    let owner = s3.bucket_owner(&input.bucket)?;
    let mut versions = Vec::new();
    let mut delete_markers = Vec::new();
    for (key, entry, is_latest) in page.versions {
        let version_id = Some(entry.version_id().to_string());
        if entry.delete_marker {
            delete_markers.push(DeleteMarkerEntry {
                is_latest: Some(is_latest),
                key: Some(encoder.apply(key)),
                last_modified: Some(timestamp(entry.meta.last_modified_ms)),
                owner: Some(owner.clone()),
                version_id,
            });
            continue;
        }
        let o = object(&encoder, key, &entry);
        versions.push(ObjectVersion {
            checksum_algorithm: o.checksum_algorithm,
            checksum_type: o.checksum_type,
            e_tag: o.e_tag,
            is_latest: Some(is_latest),
            key: o.key,
            last_modified: o.last_modified,
            owner: Some(owner.clone()),
            restore_status: None,
            size: o.size,
            storage_class: o.storage_class.map(|c| ObjectVersionStorageClass::from(c.as_str().to_owned())),
            version_id,
        });
    }
    let (next_key_marker, next_version_id_marker) = match page.last.filter(|_| page.is_truncated) {
        Some((key, version)) => (Some(key), version.map(|v| v.to_string())),
        None => (None, None),
    };
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(encoder.apply(query.prefix)),
        delimiter: encoder.opt(query.delimiter),
        max_keys: Some(query.max_keys as i32),
        is_truncated: Some(page.is_truncated),
        key_marker: Some(encoder.apply(input.key_marker.unwrap_or_default())),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        next_key_marker: encoder.opt(next_key_marker),
        next_version_id_marker,
        encoding_type: input.encoding_type,
        versions: Some(versions),
        delete_markers: Some(delete_markers),
        common_prefixes: Some(
            page.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(encoder.apply(p)) }).collect(),
        ),
        request_charged: None,
    }))
}

/// The catalog's files are never versioned: each is its own `null` version, the latest.
fn catalog_versions(s3: &QuarryS3, query: &VersionQuery) -> S3Result<VersionPage> {
    if query.version_id_marker.is_some_and(|v| v != VersionId::Null) {
        return Err(s3_error!(InvalidArgument, "Invalid version id specified"));
    }
    let (objects, prefixes, is_truncated, last) = crate::catalog::list(
        s3,
        &query.prefix,
        query.delimiter.as_deref(),
        query.key_marker.as_deref(),
        query.max_keys,
    )?;
    let last_is_object = objects.last().and_then(|o| o.key.clone()) == last;
    let versions = objects
        .into_iter()
        .map(|o| {
            let meta = storage_core::ObjectMeta {
                size_bytes: o.size.unwrap_or(0) as u64,
                etag: o.e_tag.map(|t| t.value().to_owned()).unwrap_or_default(),
                last_modified_ms: o.last_modified.map_or(0, |t| crate::meta::millis(&t)),
                ..Default::default()
            };
            let entry = storage_core::ObjectEntry::new(0, meta, Vec::new(), false, false);
            (o.key.unwrap_or_default(), entry, true)
        })
        .collect();
    Ok(VersionPage {
        versions,
        common_prefixes: prefixes.into_iter().filter_map(|p| p.prefix).collect(),
        is_truncated,
        last: last.map(|l| (l, last_is_object.then_some(VersionId::Null))),
    })
}

/// An empty delimiter groups nothing: S3 treats it as no delimiter (and does not echo it).
fn delimiter(requested: &Option<String>) -> Option<String> {
    requested.clone().filter(|d| !d.is_empty())
}

/// A continuation token for a listing that resumes after `last`.
pub(crate) fn encode_token(last: &str) -> String {
    TOKEN_BASE64.encode(last)
}

/// The name a continuation token resumes after.
pub(crate) fn decode_token(token: &str) -> S3Result<String> {
    TOKEN_BASE64
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))
}

pub async fn list_multipart_uploads(
    s3: &QuarryS3,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    s3.require_bucket(&input.bucket)?;
    let owner = s3.bucket_owner(&input.bucket)?;
    let encoder = Encoder::new(input.encoding_type.as_ref())?;
    let limit = max_keys(input.max_uploads)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let upload_id_marker = input.upload_id_marker.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());

    let mut uploads = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut is_truncated = false;
    let mut next = (None, None);
    for entry in s3.engine.index().uploads(&input.bucket).map_err(engine_error)? {
        let upload = entry.upload;
        if !upload.key.starts_with(&prefix) {
            continue;
        }
        // After the markers: keys past key-marker, or the same key with a later upload id.
        let after_marker = upload.key.as_str() > key_marker.as_str()
            || (upload.key == key_marker && !upload_id_marker.is_empty() && upload.upload_id > upload_id_marker);
        if !key_marker.is_empty() && !after_marker {
            continue;
        }
        let group = delimiter.as_deref().and_then(|d| {
            upload.key[prefix.len()..].find(d).map(|at| upload.key[..prefix.len() + at + d.len()].to_owned())
        });
        if let Some(group) = &group
            && prefixes.last() == Some(group)
        {
            continue;
        }
        if uploads.len() + prefixes.len() == limit {
            is_truncated = true;
            break;
        }
        match group {
            Some(group) => {
                next = (Some(group.clone()), None);
                prefixes.push(group);
            }
            None => {
                next = (Some(upload.key.clone()), Some(upload.upload_id.clone()));
                uploads.push(MultipartUpload {
                    key: Some(encoder.apply(upload.key)),
                    upload_id: Some(upload.upload_id),
                    initiated: Some(timestamp(upload.initiated_ms)),
                    storage_class: Some(StorageClass::from(
                        reported_class(upload.meta.storage_class.as_ref()).to_owned(),
                    )),
                    owner: Some(upload_owner(&upload.meta, &owner)),
                    initiator: Some(initiator(&upload_owner(&upload.meta, &owner))),
                    checksum_algorithm: upload.checksum_algorithm.map(ChecksumAlgorithm::from),
                    checksum_type: upload.checksum_type.map(ChecksumType::from),
                });
            }
        }
    }
    let (next_key_marker, next_upload_id_marker) = if is_truncated { next } else { (None, None) };
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: Some(encoder.apply(prefix)),
        delimiter: encoder.opt(input.delimiter),
        key_marker: Some(encoder.apply(key_marker)),
        upload_id_marker: Some(upload_id_marker),
        next_key_marker: encoder.opt(next_key_marker),
        next_upload_id_marker,
        max_uploads: Some(limit as i32),
        is_truncated: Some(is_truncated),
        uploads: Some(uploads),
        common_prefixes: Some(prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(encoder.apply(p)) }).collect()),
        encoding_type: input.encoding_type,
        request_charged: None,
    }))
}

//! Conversions between s3s's types and the engine's object metadata.

use s3s::dto::{ETag, Metadata, Timestamp};
use s3s::{S3Result, s3_error};
use std::collections::BTreeMap;
use storage_core::{ObjectMeta, StoredChecksum};

pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    now.as_millis() as i64
}

pub fn timestamp(ms: i64) -> Timestamp {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(at)
}

pub fn millis(timestamp: &Timestamp) -> i64 {
    let at: time::OffsetDateTime = timestamp.clone().into();
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

/// The headers an object keeps, as the request gave them.
#[derive(Debug, Default, Clone)]
pub struct ContentHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<Timestamp>,
    pub metadata: Option<Metadata>,
}

/// The Content-Type of an object uploaded without one, as S3 gives it.
pub const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// User metadata may hold at most this much (S3's limit for x-amz-meta-*).
const MAX_USER_METADATA_BYTES: usize = 2 * 1024;

impl ContentHeaders {
    /// Metadata for a new object (size, ETag, time and checksum are filled by the caller).
    pub fn into_meta(self) -> S3Result<ObjectMeta> {
        for (name, value) in [
            ("Content-Type", &self.content_type),
            ("Content-Encoding", &self.content_encoding),
            ("Content-Disposition", &self.content_disposition),
            ("Content-Language", &self.content_language),
            ("Cache-Control", &self.cache_control),
        ] {
            if let Some(value) = value {
                check_header_value(name, value)?;
            }
        }
        let user_metadata: BTreeMap<String, String> = self.metadata.unwrap_or_default().into_iter().collect();
        for (name, value) in &user_metadata {
            check_user_metadata(name, value)?;
        }
        let user_metadata_bytes: usize = user_metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if user_metadata_bytes > MAX_USER_METADATA_BYTES {
            return Err(s3_error!(
                MetadataTooLarge,
                "Your metadata headers exceed the maximum allowed metadata size ({MAX_USER_METADATA_BYTES} bytes)"
            ));
        }
        Ok(ObjectMeta {
            // S3 keeps this type for an object uploaded without one.
            content_type: self.content_type.or_else(|| Some(DEFAULT_CONTENT_TYPE.into())),
            content_encoding: self.content_encoding.and_then(strip_aws_chunked),
            content_disposition: self.content_disposition,
            content_language: self.content_language,
            cache_control: self.cache_control,
            expires_ms: self.expires.as_ref().map(millis),
            user_metadata,
            ..ObjectMeta::default()
        })
    }
}

/// User metadata travels back as `x-amz-meta-<name>: <value>` headers: a name must be an
/// HTTP token and a value must not hold control characters (CR/LF would end the header), or
/// every later GET/HEAD of the object could not be answered.
fn check_user_metadata(name: &str, value: &str) -> S3Result<()> {
    let token_byte = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token_byte) {
        return Err(s3_error!(InvalidArgument, "User-defined metadata names must be HTTP tokens"));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(s3_error!(
            InvalidArgument,
            "User-defined metadata values must not contain control characters such as CR or LF"
        ));
    }
    Ok(())
}

/// A header the object is answered with. A request's own headers cannot hold CR or LF,
/// but a POST form's fields can; stored, such a value would make every later GET/HEAD
/// of the object fail.
fn check_header_value(name: &str, value: &str) -> S3Result<()> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(s3_error!(
            InvalidArgument,
            "The {name} value must not contain control characters such as CR or LF"
        ));
    }
    Ok(())
}

/// `aws-chunked` is how the body was sent, not how it is stored: S3 drops it.
fn strip_aws_chunked(encoding: String) -> Option<String> {
    let kept: Vec<&str> = encoding
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    if kept.is_empty() { None } else { Some(kept.join(", ")) }
}

/// User metadata as `x-amz-meta-<name>` response headers, each value the bytes it was
/// sent as. S3 returns non-ASCII values as they came (raw UTF-8, which HTTP allows in a
/// header value as obs-text); s3s would encode them as RFC 2047 words, so they go into
/// the response's headers, not into the output's `metadata`.
pub fn user_metadata_headers(meta: &ObjectMeta) -> S3Result<http::HeaderMap> {
    let mut headers = http::HeaderMap::new();
    for (name, value) in &meta.user_metadata {
        let name = http::HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes())
            .map_err(|_| s3_error!(InternalError, "stored user metadata has a name that is no header name"))?;
        let value = http::HeaderValue::from_bytes(value.as_bytes())
            .map_err(|_| s3_error!(InternalError, "stored user metadata has a value that is no header value"))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// The checksum fields of a response, for whichever algorithm the object has.
#[derive(Debug, Default)]
pub struct ChecksumFields {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub checksum_type: Option<s3s::dto::ChecksumType>,
}

pub fn checksum_fields(checksum: Option<&StoredChecksum>) -> ChecksumFields {
    let mut fields = ChecksumFields::default();
    let Some(checksum) = checksum else {
        return fields;
    };
    let value = Some(checksum.value.clone());
    match checksum.algorithm.as_str() {
        "CRC32" => fields.crc32 = value,
        "CRC32C" => fields.crc32c = value,
        "CRC64NVME" => fields.crc64nvme = value,
        "SHA1" => fields.sha1 = value,
        "SHA256" => fields.sha256 = value,
        _ => return fields,
    }
    fields.checksum_type = Some(s3s::dto::ChecksumType::from(checksum.checksum_type.clone()));
    fields
}

/// Responses that carry an object's (or part's) checksum.
pub trait SetChecksums {
    fn set_checksums(&mut self, fields: ChecksumFields);
}

macro_rules! impl_set_checksums {
    ($($output:ty),* $(,)?) => {$(
        impl SetChecksums for $output {
            fn set_checksums(&mut self, fields: ChecksumFields) {
                self.checksum_crc32 = fields.crc32;
                self.checksum_crc32c = fields.crc32c;
                self.checksum_crc64nvme = fields.crc64nvme;
                self.checksum_sha1 = fields.sha1;
                self.checksum_sha256 = fields.sha256;
                self.checksum_type = fields.checksum_type;
            }
        }
    )*};
}

/// Part-level responses have no checksum type.
macro_rules! impl_set_part_checksums {
    ($($output:ty),* $(,)?) => {$(
        impl SetChecksums for $output {
            fn set_checksums(&mut self, fields: ChecksumFields) {
                self.checksum_crc32 = fields.crc32;
                self.checksum_crc32c = fields.crc32c;
                self.checksum_crc64nvme = fields.crc64nvme;
                self.checksum_sha1 = fields.sha1;
                self.checksum_sha256 = fields.sha256;
            }
        }
    )*};
}

impl_set_checksums!(
    s3s::dto::PutObjectOutput,
    s3s::dto::GetObjectOutput,
    s3s::dto::HeadObjectOutput,
    s3s::dto::CopyObjectResult,
    s3s::dto::CompleteMultipartUploadOutput,
    s3s::dto::Checksum,
);
impl_set_part_checksums!(s3s::dto::UploadPartOutput, s3s::dto::Part, s3s::dto::CopyPartResult, s3s::dto::ObjectPart);

/// The checksum values a request declares (PutObject, UploadPart), in `Algorithm::ALL` order.
macro_rules! declared_checksums {
    ($input:expr) => {
        $crate::body::DeclaredChecksums {
            values: [
                $input.checksum_crc32.as_ref(),
                $input.checksum_crc32c.as_ref(),
                $input.checksum_crc64nvme.as_ref(),
                $input.checksum_sha1.as_ref(),
                $input.checksum_sha256.as_ref(),
            ],
            sdk_algorithm: $input.checksum_algorithm.as_ref(),
        }
    };
}
pub(crate) use declared_checksums;

/// The headers an object was stored with, from a request that sets them.
macro_rules! content_headers {
    ($input:expr) => {
        $crate::meta::ContentHeaders {
            content_type: $input.content_type,
            content_encoding: $input.content_encoding,
            content_disposition: $input.content_disposition,
            content_language: $input.content_language,
            cache_control: $input.cache_control,
            expires: $input.expires,
            metadata: $input.metadata,
        }
    };
}
pub(crate) use content_headers;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_chunked_is_dropped_from_content_encoding() {
        assert_eq!(strip_aws_chunked("aws-chunked".into()), None);
        assert_eq!(strip_aws_chunked("aws-chunked, gzip".into()), Some("gzip".into()));
        assert_eq!(strip_aws_chunked("gzip".into()), Some("gzip".into()));
    }

    #[test]
    fn content_headers_with_cr_or_lf_are_refused() {
        let with = |headers: ContentHeaders| headers.into_meta().map(|m| m.content_type);
        let refused =
            with(ContentHeaders { content_type: Some("text/plain\r\nX-Injected: 1".into()), ..Default::default() });
        assert_eq!(refused.unwrap_err().code(), &s3s::S3ErrorCode::InvalidArgument, "a Content-Type with CR LF");
        let refused = with(ContentHeaders { cache_control: Some("no\nstore".into()), ..Default::default() });
        assert_eq!(refused.unwrap_err().code(), &s3s::S3ErrorCode::InvalidArgument, "a Cache-Control with LF");
        let kept =
            with(ContentHeaders { content_disposition: Some("attachment;\tfilename=a".into()), ..Default::default() });
        assert!(kept.is_ok(), "a tab is allowed in a header value");
    }

    #[test]
    fn timestamps_round_trip_to_the_millisecond() {
        let ms = 1_700_000_000_123;
        assert_eq!(millis(&timestamp(ms)), ms);
    }
}

//! Taking in a request body (PutObject, UploadPart): stream it into chunk records while
//! computing its MD5 and checksum, then verify everything the client declared. Only a
//! body that passed every check is handed back for committing; a failed one leaves
//! only unreferenced chunk records, which compaction reclaims.

use crate::checksum::{self, Algorithm};
use crate::error::engine_error;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt;
use md5::{Digest, Md5};
use s3s::dto::{ChecksumAlgorithm, StreamingBlob};
use s3s::{S3Error, S3Result, TrailingHeaders, s3_error};
use storage_core::encryption::FrameSealer;
use storage_core::{Body, Engine, StoredChecksum};

/// Which checksum to compute for a body, and where the client's value comes from.
#[derive(Debug, Clone)]
pub struct ChecksumPlan {
    pub algorithm: Algorithm,
    /// A value from a header; `None` means "from the trailer, if one comes".
    pub header_value: Option<String>,
    /// The client announced a trailer with this checksum (x-amz-trailer): it must come.
    pub trailer_required: bool,
}

/// The x-amz-checksum-* values of a request, in `Algorithm::ALL` order.
pub struct DeclaredChecksums<'a> {
    pub values: [Option<&'a String>; 5],
    pub sdk_algorithm: Option<&'a ChecksumAlgorithm>,
}

/// Decides the checksum for a body: a value sent as a header wins, then an announced
/// trailer, then x-amz-sdk-checksum-algorithm, then `fallback` (S3 computes CRC64NVME
/// for every new object when the client names none).
pub fn plan_checksum(
    declared: DeclaredChecksums<'_>,
    headers: &http::HeaderMap,
    fallback: Algorithm,
) -> S3Result<ChecksumPlan> {
    let sent: Vec<(Algorithm, &String)> =
        Algorithm::ALL.into_iter().zip(declared.values).filter_map(|(a, v)| v.map(|v| (a, v))).collect();
    if sent.len() > 1 {
        return Err(s3_error!(
            InvalidRequest,
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        ));
    }
    if let Some((algorithm, value)) = sent.first() {
        return Ok(ChecksumPlan {
            algorithm: *algorithm,
            header_value: Some((*value).clone()),
            trailer_required: false,
        });
    }
    if let Some(trailer) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
        let algorithm = Algorithm::from_header(trailer)
            .ok_or_else(|| s3_error!(InvalidRequest, "Unsupported x-amz-trailer value: {trailer}"))?;
        return Ok(ChecksumPlan { algorithm, header_value: None, trailer_required: true });
    }
    if let Some(name) = declared.sdk_algorithm {
        let algorithm = Algorithm::parse(name.as_str())
            .ok_or_else(|| s3_error!(InvalidRequest, "Unsupported checksum algorithm: {}", name.as_str()))?;
        return Ok(ChecksumPlan { algorithm, header_value: None, trailer_required: false });
    }
    Ok(ChecksumPlan { algorithm: fallback, header_value: None, trailer_required: false })
}

pub struct Expectations<'a> {
    pub content_length: Option<i64>,
    pub content_md5: Option<&'a str>,
    pub checksum: ChecksumPlan,
    pub max_size_bytes: u64,
    pub trailing_headers: Option<TrailingHeaders>,
    /// Encrypts the body as it is stored (server-side encryption); sizes, digests and
    /// checksums stay those of the plaintext.
    pub sealer: Option<FrameSealer>,
}

pub struct Ingested {
    pub body: Body,
    pub size_bytes: u64,
    pub md5: [u8; 16],
    pub checksum: StoredChecksum,
}

/// Before refusing a body early, read (and discard) up to this much of it, so the client
/// — still sending — reads our error instead of a reset connection.
const DRAIN_LIMIT_BYTES: u64 = 8 * 1024 * 1024;

async fn drain(blob: &mut StreamingBlob) {
    let mut drained = 0u64;
    while drained < DRAIN_LIMIT_BYTES {
        match blob.next().await {
            Some(Ok(data)) => drained += data.len() as u64,
            _ => return,
        }
    }
}

/// The Content-MD5 to check: s3s reads an empty header as none, but S3 refuses it
/// (400 InvalidDigest), so an empty one present is passed on as given.
pub fn content_md5<'a>(parsed: Option<&'a str>, headers: &'a http::HeaderMap) -> Option<&'a str> {
    parsed.or_else(|| headers.get("content-md5").map(|v| v.to_str().unwrap_or("-")))
}

pub async fn ingest(engine: &Engine, mut blob: Option<StreamingBlob>, expect: Expectations<'_>) -> S3Result<Ingested> {
    if let Some(length) = expect.content_length
        && length as u64 > expect.max_size_bytes
    {
        if let Some(blob) = blob.as_mut() {
            drain(blob).await;
        }
        return Err(too_large(expect.max_size_bytes));
    }
    let expected_md5 = expect
        .content_md5
        .map(|v| {
            BASE64
                .decode(v.trim())
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))
        })
        .transpose()?;

    let mut writer = engine.body_writer();
    let mut md5 = Md5::new();
    let mut hasher = expect.checksum.algorithm.hasher();
    let mut sealer = expect.sealer;
    let mut size_bytes = 0u64;
    if let Some(mut blob) = blob {
        while let Some(frame) = blob.next().await {
            let data = frame.map_err(body_error)?;
            if size_bytes + data.len() as u64 > expect.max_size_bytes {
                drain(&mut blob).await;
                return Err(too_large(expect.max_size_bytes));
            }
            size_bytes += data.len() as u64;
            md5.update(&data);
            hasher.update(&data);
            let stored = match sealer.as_mut() {
                Some(sealer) => sealer.push(&data),
                None => data,
            };
            if !stored.is_empty() {
                writer.write(stored).await.map_err(engine_error)?;
            }
        }
    }
    if let Some(sealer) = sealer {
        writer.write(sealer.finish()).await.map_err(engine_error)?;
        debug_assert_eq!(writer.size_bytes(), storage_core::encryption::sealed_len(size_bytes));
    }
    if let Some(length) = expect.content_length
        && length as u64 != size_bytes
    {
        return Err(s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header ({length} declared, {size_bytes} received)"
        ));
    }
    let md5: [u8; 16] = md5.finalize().into();
    if let Some(expected) = expected_md5
        && expected[..] != md5[..]
    {
        return Err(s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."));
    }

    let plan = &expect.checksum;
    let computed = hasher.finish();
    let trailer_value = expect
        .trailing_headers
        .as_ref()
        .and_then(|t| t.read(|h| h.get(plan.algorithm.header()).and_then(|v| v.to_str().ok()).map(str::to_owned)))
        .flatten();
    if plan.trailer_required && trailer_value.is_none() {
        return Err(s3_error!(
            IncompleteBody,
            "The request announced a {} trailer that did not arrive",
            plan.algorithm.header()
        ));
    }
    if let Some(declared) = plan.header_value.as_deref().or(trailer_value.as_deref())
        && declared.trim() != computed
    {
        return Err(s3_error!(
            BadDigest,
            "The {} you specified did not match the calculated checksum.",
            plan.algorithm.header()
        ));
    }
    let body = writer.finish().await.map_err(engine_error)?;
    Ok(Ingested { body, size_bytes, md5, checksum: checksum::stored(plan.algorithm, computed, checksum::FULL_OBJECT) })
}

fn too_large(max_size_bytes: u64) -> S3Error {
    s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed object size ({max_size_bytes} bytes)")
}

/// A failure while reading the body: s3s reports signature and payload-hash mismatches
/// of uploads this way. Its error types are private, so they are told apart by their
/// text (s3s is pinned; `body_errors_map_to_s3_codes` guards the mapping).
fn body_error(error: s3s::StdError) -> S3Error {
    let error = match error.downcast::<S3Error>() {
        Ok(s3_error) => return *s3_error,
        Err(other) => other,
    };
    let text = error.to_string();
    if text.contains("Sha256Mismatch") {
        crate::error::custom(
            "XAmzContentSHA256Mismatch",
            http::StatusCode::BAD_REQUEST,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    } else if text.contains("SignatureMismatch") {
        s3_error!(
            SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided (chunk signature)."
        )
    } else {
        s3_error!(IncompleteBody, "Error reading the request body: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::body_error;

    #[test]
    fn body_errors_map_to_s3_codes() {
        let cases = [
            ("UploadStreamError: Sha256Mismatch", "XAmzContentSHA256Mismatch", 400),
            ("AwsChunkedStreamError: SignatureMismatch", "SignatureDoesNotMatch", 403),
            ("AwsChunkedStreamError: Incomplete", "IncompleteBody", 400),
        ];
        for (text, code, status) in cases {
            let error = body_error(Box::new(std::io::Error::other(text)));
            assert_eq!(error.code().as_str(), code, "{text}");
            let actual = error.status_code().or_else(|| error.code().status_code()).map(|s| s.as_u16());
            assert_eq!(actual, Some(status), "{text}");
        }
    }
}

//! What S3 requires of a request's signature that s3s does not check, decided before
//! s3s sees the request:
//!
//! * SigV2 (`Authorization: AWS key:sig`, or a `Signature=` presigned URL) is refused
//!   unless the server runs with `--allow-sigv2`. SigV2 signs neither the body nor most of
//!   the query, so a captured request can be replayed with other parameters.
//! * When SigV2 is allowed, its `Date` (or `x-amz-date`) must be a valid HTTP date within
//!   15 minutes of the server's clock (s3s checks no date for SigV2), and it is never
//!   accepted on the SQL endpoint or the admin API, whose query and body it would not cover.
//! * A SigV2 signature of a path-style bucket request (`/bucket`) may cover `/bucket/`,
//!   the form botocore signs (its SigV2 canonical resource is the virtual-hosted one);
//!   s3s verifies against the path as sent, so such a request is handed on as
//!   `/bucket/` (see [`sigv2_bucket_uri`]).
//! * A presigned SigV4 URL lives at most seven days (`X-Amz-Expires` ≤ 604800).
//! * A signed aws-chunked body must end with its final zero-length chunk (s3s treats an
//!   early end of the stream as the end of the body).

use bytes::Bytes;
use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

/// S3's limit on the difference between a request's date and the server's clock.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
/// S3's limit on `X-Amz-Expires` of a presigned SigV4 URL: seven days.
pub const MAX_PRESIGNED_EXPIRES_SECS: u64 = 7 * 24 * 60 * 60;

/// An S3 error answered before s3s sees the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: http::StatusCode,
    pub code: &'static str,
    pub message: String,
}

fn refusal(status: http::StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { status, code, message: message.into() }
}

/// Is this request signed with SigV2 (header or presigned URL)? The same tests s3s uses to
/// pick its SigV2 path.
fn is_sigv2(uri: &http::Uri, headers: &http::HeaderMap) -> bool {
    let header_auth =
        headers.get(http::header::AUTHORIZATION).is_some_and(|v| v.as_bytes().starts_with(b"AWS ") && v.len() > 4);
    header_auth || query_value(uri, "Signature").is_some()
}

/// The sub-resources a SigV2 canonical resource includes (as s3s lists them).
const SIGV2_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// The URI to hand s3s for a SigV2 header-signed request to a path-style bucket
/// (`/bucket`, no trailing slash) whose signature covers `/bucket/`: that path with
/// the slash. `None` leaves the request as it is (s3s then verifies it as sent, so
/// this never lets a bad signature through; it only picks which path was signed).
pub fn sigv2_bucket_uri<B>(request: &http::Request<B>, secret: impl Fn(&str) -> Option<String>) -> Option<http::Uri> {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let path = request.uri().path();
    if path.len() < 2 || path[1..].contains('/') {
        return None;
    }
    let auth = request.headers().get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (access_key, signature) = auth.strip_prefix("AWS ")?.split_once(':')?;
    let secret = secret(access_key)?;
    let with_slash = format!("{path}/");
    let string_to_sign = sigv2_string_to_sign(request.method(), request.headers(), &with_slash, request.uri());
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(string_to_sign.as_bytes());
    let computed = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if computed != signature {
        return None;
    }
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{with_slash}?{query}"),
        None => with_slash,
    };
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

/// The SigV2 StringToSign of a header-signed request over `resource`, as S3 defines it.
fn sigv2_string_to_sign(method: &http::Method, headers: &http::HeaderMap, resource: &str, uri: &http::Uri) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let date = if headers.contains_key("x-amz-date") { "" } else { header("date") };
    let mut out = format!("{method}\n{}\n{}\n{date}\n", header("content-md5"), header("content-type"));
    let mut amz: Vec<&str> = headers.keys().map(|k| k.as_str()).filter(|k| k.starts_with("x-amz-")).collect();
    amz.sort_unstable();
    amz.dedup();
    for name in amz {
        let values: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::trim).collect();
        out.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    out.push_str(resource);
    let pairs: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default();
    let mut first = true;
    for name in SIGV2_SUBRESOURCES {
        if let Some((_, value)) = pairs.iter().find(|(k, _)| k == name) {
            out.push(if first { '?' } else { '&' });
            first = false;
            out.push_str(name);
            if !value.is_empty() {
                out.push('=');
                out.push_str(value);
            }
        }
    }
    out
}

/// The first value of a query parameter, percent-decoded.
fn query_value(uri: &http::Uri, name: &str) -> Option<String> {
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

/// Checks the request's signature scheme and dates. `extension` is true for our own
/// non-S3 requests (the SQL endpoint, the admin API).
/// S3's answer to a customer key (SSE-C) sent over plain HTTP.
pub const CUSTOMER_KEY_NEEDS_TLS: &str =
    "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.";

/// Headers that carry an SSE-C key (of the object, or of a copy's source).
const CUSTOMER_KEY_HEADERS: [&str; 4] = [
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-algorithm",
    "x-amz-copy-source-server-side-encryption-customer-key",
];

/// A customer key travels only over TLS, as on S3: `allowed` is false for a plain-HTTP
/// connection unless `--allow-sse-c-over-http` (for TLS that ends in a proxy in front).
pub fn check_customer_key_transport(headers: &http::HeaderMap, allowed: bool) -> Result<(), Refusal> {
    if allowed || !CUSTOMER_KEY_HEADERS.iter().any(|h| headers.contains_key(*h)) {
        return Ok(());
    }
    Err(refusal(http::StatusCode::BAD_REQUEST, "InvalidRequest", CUSTOMER_KEY_NEEDS_TLS))
}

pub fn check(
    uri: &http::Uri,
    headers: &http::HeaderMap,
    extension: bool,
    allow_sigv2: bool,
    now: SystemTime,
) -> Result<(), Refusal> {
    if is_sigv2(uri, headers) {
        if !allow_sigv2 {
            return Err(refusal(
                http::StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
            ));
        }
        if extension {
            return Err(refusal(
                http::StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "The SQL endpoint and the admin API require AWS4-HMAC-SHA256 signatures.",
            ));
        }
        // A presigned SigV2 URL carries `Expires`, which s3s checks; header auth needs a date.
        if headers.contains_key(http::header::AUTHORIZATION) {
            check_sigv2_date(headers, now)?;
        }
    }
    if let Some(expires) = query_value(uri, "X-Amz-Expires") {
        match expires.parse::<u64>() {
            Ok(secs) if secs <= MAX_PRESIGNED_EXPIRES_SECS => {}
            Ok(_) => {
                return Err(refusal(
                    http::StatusCode::FORBIDDEN,
                    "AuthorizationQueryParametersError",
                    format!("X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGNED_EXPIRES_SECS}"),
                ));
            }
            Err(_) => {
                return Err(refusal(
                    http::StatusCode::FORBIDDEN,
                    "AuthorizationQueryParametersError",
                    "X-Amz-Expires should be a number",
                ));
            }
        }
    }
    Ok(())
}

/// SigV2 signs `x-amz-date` if present, else `Date`: that one must be a valid HTTP date
/// within [`MAX_CLOCK_SKEW`] of `now`.
fn check_sigv2_date(headers: &http::HeaderMap, now: SystemTime) -> Result<(), Refusal> {
    let date = headers.get("x-amz-date").or_else(|| headers.get(http::header::DATE));
    let parsed = date.and_then(|v| v.to_str().ok()).and_then(parse_http_date);
    let Some(date) = parsed else {
        return Err(refusal(
            http::StatusCode::FORBIDDEN,
            "AccessDenied",
            "AWS authentication requires a valid Date or x-amz-date header",
        ));
    };
    let skew = now.duration_since(date).unwrap_or_else(|e| e.duration());
    if skew > MAX_CLOCK_SKEW {
        return Err(refusal(
            http::StatusCode::FORBIDDEN,
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        ));
    }
    Ok(())
}

/// An HTTP date (IMF-fixdate `Tue, 07 Jul 2010 21:53:04 GMT`, RFC 850 or asctime). As in
/// S3, the day of the week is not checked against the date; a date before 1970 is not valid.
fn parse_http_date(text: &str) -> Option<SystemTime> {
    const IMF_FIXDATE_WITHOUT_WEEKDAY: &[time::format_description::BorrowedFormatItem<'_>] =
        time::macros::format_description!("[day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    let text = text.trim();
    let without_weekday = text.split_once(", ").map(|(_, rest)| rest);
    match without_weekday.and_then(|rest| time::PrimitiveDateTime::parse(rest, IMF_FIXDATE_WITHOUT_WEEKDAY).ok()) {
        Some(date) if date.year() >= 1970 => Some(date.assume_utc().into()),
        Some(_) => None,
        None => httpdate::parse_http_date(text).ok(),
    }
}

/// Does this request carry an aws-chunked (streaming) body?
pub fn is_aws_chunked(headers: &http::HeaderMap) -> bool {
    headers.get("x-amz-content-sha256").is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"))
}

/// The longest chunk header line we track (`<hex size>;chunk-signature=<64 hex>\r\n` is
/// about 90 bytes); past it we stop tracking and leave the framing error to s3s.
const MAX_CHUNK_LINE_BYTES: usize = 4096;

/// Where a [`FinalChunkGuard`] is in the aws-chunked framing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Framing {
    /// Reading a chunk header line (the bytes so far).
    Header(Vec<u8>),
    /// Skipping a chunk's data and its CRLF.
    Data { remaining_bytes: u64 },
    /// The zero-length chunk was seen: what follows are trailers.
    Finished,
    /// Malformed framing: s3s's decoder reports it, we stop tracking.
    Untracked,
}

impl Framing {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self {
                Framing::Header(line) => match data.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        line.extend_from_slice(&data[..end]);
                        data = &data[end + 1..];
                        *self = Framing::after_header(line);
                    }
                    None => {
                        line.extend_from_slice(data);
                        if line.len() > MAX_CHUNK_LINE_BYTES {
                            *self = Framing::Untracked;
                        }
                        return;
                    }
                },
                Framing::Data { remaining_bytes } => {
                    let skipped = (*remaining_bytes).min(data.len() as u64);
                    data = &data[skipped as usize..];
                    *remaining_bytes -= skipped;
                    if *remaining_bytes == 0 {
                        *self = Framing::Header(Vec::new());
                    }
                }
                Framing::Finished | Framing::Untracked => return,
            }
        }
    }

    fn after_header(line: &[u8]) -> Framing {
        let size = line.split(|&b| b == b';' || b == b'\r').next().unwrap_or_default();
        let size = std::str::from_utf8(size).ok().and_then(|s| u64::from_str_radix(s.trim(), 16).ok());
        match size {
            Some(0) => Framing::Finished,
            // The data, then its CRLF.
            Some(size) => Framing::Data { remaining_bytes: size.saturating_add(2) },
            None => Framing::Untracked,
        }
    }
}

/// Passes an aws-chunked request body through unchanged, and fails it if it ends before
/// the final zero-length chunk (a truncated upload must not be stored).
pub struct FinalChunkGuard {
    inner: s3s::Body,
    framing: Framing,
    failed: bool,
}

impl FinalChunkGuard {
    pub fn new(inner: s3s::Body) -> FinalChunkGuard {
        FinalChunkGuard { inner, framing: Framing::Header(Vec::new()), failed: false }
    }
}

impl Stream for FinalChunkGuard {
    type Item = Result<Bytes, s3s::StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(data))) => {
                self.framing.feed(&data);
                Poll::Ready(Some(Ok(data)))
            }
            Poll::Ready(None) if matches!(self.framing, Framing::Header(_) | Framing::Data { .. }) => {
                self.failed = true;
                Poll::Ready(Some(Err("the aws-chunked body ended before its final zero-length chunk".into())))
            }
            other => other,
        }
    }
}

impl s3s::stream::ByteStream for FinalChunkGuard {
    fn remaining_length(&self) -> s3s::stream::RemainingLength {
        s3s::stream::ByteStream::remaining_length(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse::<http::HeaderName>().unwrap(), v.parse().unwrap())).collect()
    }

    fn uri(text: &str) -> http::Uri {
        text.parse().unwrap()
    }

    const NOW_SECS: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS)
    }

    fn http_date(secs: u64) -> String {
        httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn code(result: Result<(), Refusal>) -> Option<&'static str> {
        result.err().map(|r| r.code)
    }

    #[test]
    fn sigv2_is_refused_unless_allowed() {
        let date = http_date(NOW_SECS);
        let v2 = headers(&[("authorization", "AWS key:c2lnbmF0dXJl"), ("date", &date)]);
        assert_eq!(code(check(&uri("/b/k"), &v2, false, false, now())), Some("InvalidRequest"));
        assert_eq!(code(check(&uri("/b/k"), &v2, false, true, now())), None);
        let presigned = uri("/b/k?AWSAccessKeyId=key&Expires=1800000600&Signature=abc");
        assert_eq!(code(check(&presigned, &http::HeaderMap::new(), false, false, now())), Some("InvalidRequest"));
        assert_eq!(code(check(&presigned, &http::HeaderMap::new(), false, true, now())), None);
        // SigV4 is not SigV2.
        let v4 = headers(&[("authorization", "AWS4-HMAC-SHA256 Credential=key/20260101/us-east-1/s3/aws4_request")]);
        assert_eq!(code(check(&uri("/b/k"), &v4, false, false, now())), None);
    }

    #[test]
    fn sigv2_dates_must_be_valid_and_recent() {
        let check_date = |date: &str| {
            let h = headers(&[("authorization", "AWS key:c2lnbmF0dXJl"), ("date", date)]);
            code(check(&uri("/b/k"), &h, false, true, now()))
        };
        assert_eq!(check_date(&http_date(NOW_SECS - 14 * 60)), None);
        assert_eq!(check_date(&http_date(NOW_SECS + 14 * 60)), None);
        assert_eq!(check_date(&http_date(NOW_SECS - 16 * 60)), Some("RequestTimeTooSkewed"));
        assert_eq!(check_date(&http_date(NOW_SECS + 16 * 60)), Some("RequestTimeTooSkewed"));
        assert_eq!(check_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some("RequestTimeTooSkewed"));
        assert_eq!(check_date("garbage"), Some("AccessDenied"));
        // The weekday is not checked (2010-07-07 was a Wednesday); years stay in range.
        assert_eq!(check_date("Tue, 07 Jul 2010 21:53:04 GMT"), Some("RequestTimeTooSkewed"));
        assert_eq!(check_date("Tue, 07 Jul 9999 21:53:04 GMT"), Some("RequestTimeTooSkewed"));
        assert_eq!(check_date("Tue, 07 Jul 1950 21:53:04 GMT"), Some("AccessDenied"));
        let fourteen_minutes_ago = time::OffsetDateTime::from(now() - Duration::from_secs(14 * 60));
        let wrong_weekday = format!(
            "Xyz, {:02} {} {} {:02}:{:02}:{:02} GMT",
            fourteen_minutes_ago.day(),
            &format!("{:?}", fourteen_minutes_ago.month())[..3],
            fourteen_minutes_ago.year(),
            fourteen_minutes_ago.hour(),
            fourteen_minutes_ago.minute(),
            fourteen_minutes_ago.second()
        );
        assert_eq!(check_date(&wrong_weekday), None, "{wrong_weekday}");
        let no_date = headers(&[("authorization", "AWS key:c2lnbmF0dXJl")]);
        assert_eq!(code(check(&uri("/b/k"), &no_date, false, true, now())), Some("AccessDenied"));
        // x-amz-date, when present, is the signed date.
        let amz = headers(&[
            ("authorization", "AWS key:c2lnbmF0dXJl"),
            ("date", &http_date(NOW_SECS)),
            ("x-amz-date", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ]);
        assert_eq!(code(check(&uri("/b/k"), &amz, false, true, now())), Some("RequestTimeTooSkewed"));
    }

    #[test]
    fn sigv2_never_reaches_the_sql_endpoint_or_admin_api() {
        let h = headers(&[("authorization", "AWS key:c2lnbmF0dXJl"), ("date", &http_date(NOW_SECS))]);
        assert_eq!(code(check(&uri("/?sql"), &h, true, true, now())), Some("InvalidRequest"));
    }

    #[test]
    fn presigned_urls_live_at_most_a_week() {
        let at = |expires: &str| {
            let u = uri(&format!("/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={expires}&X-Amz-Signature=0"));
            code(check(&u, &http::HeaderMap::new(), false, false, now()))
        };
        assert_eq!(at("604800"), None);
        assert_eq!(at("1"), None);
        assert_eq!(at("604801"), Some("AuthorizationQueryParametersError"));
        assert_eq!(at("-1"), Some("AuthorizationQueryParametersError"));
        assert_eq!(at("soon"), Some("AuthorizationQueryParametersError"));
    }

    fn framing_after(parts: &[&[u8]]) -> Framing {
        let mut framing = Framing::Header(Vec::new());
        for part in parts {
            framing.feed(part);
        }
        framing
    }

    #[test]
    fn framing_tracks_the_final_chunk_across_any_split() {
        let sig = "chunk-signature=".to_string() + &"0".repeat(64);
        let body = format!("5;{sig}\r\nhello\r\n3;{sig}\r\nabc\r\n0;{sig}\r\n\r\n");
        let bytes = body.as_bytes();
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(framing_after(&[a, b]), Framing::Finished, "split at {split}");
        }
        // Unsigned framing with trailers.
        let unsigned = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        assert_eq!(framing_after(&[unsigned]), Framing::Finished);
        // Truncated before the final chunk, at every point.
        let truncated = format!("5;{sig}\r\nhello\r\n3;{sig}\r\nabc\r\n");
        for end in 0..=truncated.len() {
            let framing = framing_after(&[&truncated.as_bytes()[..end]]);
            assert!(
                matches!(framing, Framing::Header(_) | Framing::Data { .. }),
                "a body cut at {end} must not count as finished: {framing:?}"
            );
        }
        assert_eq!(framing_after(&[b"zz\r\n"]), Framing::Untracked);
    }

    /// An aws-chunked encoding of `sizes`-long chunks, with or without the final chunk.
    fn encode(sizes: &[usize], final_chunk: bool) -> Vec<u8> {
        let mut body = Vec::new();
        let sizes = sizes.iter().copied().chain(final_chunk.then_some(0));
        for size in sizes {
            body.extend_from_slice(format!("{size:x};chunk-signature={}\r\n", "f".repeat(64)).as_bytes());
            body.extend(std::iter::repeat_n(b'\n', size)); // newlines in data must not confuse it
            body.extend_from_slice(b"\r\n");
        }
        body
    }

    proptest::proptest! {
        /// However the body is cut into reads, it is finished exactly when the final chunk
        /// arrived.
        #[test]
        fn framing_finishes_exactly_at_the_final_chunk(
            sizes in proptest::collection::vec(1usize..3000, 0..6),
            final_chunk: bool,
            cuts in proptest::collection::vec(0usize..20_000, 0..8),
        ) {
            let body = encode(&sizes, final_chunk);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (body.len() + 1)).collect();
            cuts.push(body.len());
            cuts.sort_unstable();
            let mut framing = Framing::Header(Vec::new());
            let mut start = 0;
            for cut in cuts {
                framing.feed(&body[start..cut]);
                start = cut;
            }
            proptest::prop_assert_eq!(framing == Framing::Finished, final_chunk, "{:?}", framing);
        }
    }
}

//! Requests adjusted or answered before s3s sees them, where s3s's own handling differs
//! from S3's: over-long XML bodies, SigV4 signed over `Date`, PUT bodies of unknown length.

use bytes::Bytes;
use std::time::Duration;

/// s3s reads an XML request body up to this size (its `xml_max_body_size` default).
const XML_BODY_MAX_BYTES: u64 = 20 * 1024 * 1024;

/// A refused body is read and dropped up to this much, so that the client, still sending
/// it, gets the answer instead of a broken pipe; a larger one ends the connection.
const REFUSED_BODY_DRAIN_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// ... and for at most this long.
const REFUSED_BODY_DRAIN_TIMEOUT_MS: u64 = 10_000;

/// CompleteMultipartUpload (`POST ?uploadId`) and DeleteObjects (`POST ?delete`) carry XML
/// that s3s reads whole. Past its limit s3s answers 500 (it does not recognise the
/// length-limit error of the body it reads), so a declared length over the limit is refused
/// here with S3's error for an over-long request.
pub fn oversized_xml_body<B>(request: &http::Request<B>) -> bool {
    let declared_bytes = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    xml_post(request) && declared_bytes.is_some_and(|n| n > XML_BODY_MAX_BYTES)
}

/// A POST whose XML body s3s reads whole: CompleteMultipartUpload, DeleteObjects.
fn xml_post<B>(request: &http::Request<B>) -> bool {
    if request.method() != http::Method::POST {
        return false;
    }
    let query = request.uri().query().unwrap_or("");
    query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        name == "uploadId" || name == "delete"
    })
}

/// An XML POST of unknown length (`Transfer-Encoding: chunked`, no Content-Length): s3s
/// would answer 500 once it passed the XML limit, so it is read here first, up to the limit.
pub fn unsized_xml_post<B>(request: &http::Request<B>) -> bool {
    xml_post(request) && !request.headers().contains_key(http::header::CONTENT_LENGTH)
}

/// Reads an XML body of unknown length, at most `XML_BODY_MAX_BYTES` (memory shared with
/// the bodies of unsized PUTs), and hands it on with its length; longer is 400
/// MaxMessageLengthExceeded, as for a declared length.
pub async fn buffer_unsized_xml_post(
    request: http::Request<s3s::Body>,
) -> Result<(s3s::HttpRequest, tokio::sync::SemaphorePermit<'static>), s3s::HttpResponse> {
    let over_limit = || {
        let mut refused = xml_error(
            http::StatusCode::BAD_REQUEST,
            "MaxMessageLengthExceeded",
            &format!("Your request was too big: the XML body may hold at most {XML_BODY_MAX_BYTES} bytes"),
        );
        refused.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        refused
    };
    buffer_body(request, XML_BODY_MAX_BYTES as usize, over_limit).await
}

pub async fn refuse_oversized_xml_body(request: http::Request<s3s::Body>) -> s3s::HttpResponse {
    let message = format!("Your request was too big: the XML body may hold at most {XML_BODY_MAX_BYTES} bytes");
    refuse_draining(request, "MaxMessageLengthExceeded", &message).await
}

/// 400 `code`, after reading and dropping the body (at most `REFUSED_BODY_DRAIN_MAX_BYTES`,
/// for at most `REFUSED_BODY_DRAIN_TIMEOUT_MS`) so that the client, still sending, reads
/// the answer; a body not drained closes the connection.
async fn refuse_draining(request: http::Request<s3s::Body>, code: &str, message: &str) -> s3s::HttpResponse {
    use http_body_util::BodyExt;
    let declared_bytes = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    let mut drained = declared_bytes <= REFUSED_BODY_DRAIN_MAX_BYTES;
    if drained {
        let mut body = request.into_body();
        let drain = async {
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    return false;
                }
            }
            true
        };
        drained =
            tokio::time::timeout(Duration::from_millis(REFUSED_BODY_DRAIN_TIMEOUT_MS), drain).await.unwrap_or(false);
    }
    let mut response = xml_error(http::StatusCode::BAD_REQUEST, code, message);
    if !drained {
        // The rest of the body is still on the connection: it cannot carry another request.
        response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    response
}

/// SigV4 takes the request time from `x-amz-date` or, without it, from a signed `Date`
/// header; s3s reads only `x-amz-date`. For a SigV4 header-signed request that signs `Date`
/// and has no `x-amz-date`, the same instant is added as `x-amz-date` (an unsigned header:
/// the signature is still checked over the headers the client signed).
pub fn date_as_amz_date<B>(request: &mut http::Request<B>) {
    let headers = request.headers();
    if headers.contains_key("x-amz-date") {
        return;
    }
    let signs_date = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.strip_prefix("AWS4-HMAC-SHA256 "))
        .and_then(|fields| fields.split(',').find_map(|f| f.trim().strip_prefix("SignedHeaders=")))
        .is_some_and(|signed| signed.split(';').any(|h| h == "date"));
    if !signs_date {
        return;
    }
    let Some(date) = headers.get(http::header::DATE).and_then(|v| v.to_str().ok()) else { return };
    // RFC 2822 writes UTC as "-0000" or "+0000" (Python's email.utils.formatdate, as botocore
    // sends it); HTTP writes "GMT".
    let date = match date.strip_suffix(" -0000").or_else(|| date.strip_suffix(" +0000")) {
        Some(rest) => format!("{rest} GMT"),
        None => date.to_owned(),
    };
    let Ok(at) = s3s::dto::Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, &date) else { return };
    let mut iso = Vec::new();
    if at.format(s3s::dto::TimestampFormat::DateTime, &mut iso).is_err() {
        return;
    }
    // 2026-12-04T13:26:53.000Z -> 20261204T132653Z (ISO 8601 basic, as x-amz-date is written)
    let iso = String::from_utf8_lossy(&iso);
    let basic: String = iso.split('.').next().unwrap_or("").chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    if let Ok(value) = http::HeaderValue::from_str(&format!("{basic}Z")) {
        request.headers_mut().insert("x-amz-date", value);
    }
}

/// A PUT whose body has no declared length (`Transfer-Encoding: chunked`, no Content-Length)
/// and a payload that is not aws-chunked: s3s needs the length to verify the payload hash,
/// so such a body is read first, up to this much ...
const UNSIZED_BODY_MAX_BYTES: usize = 16 * 1024 * 1024;
/// ... within this much memory for all such requests at once (past it: 503 SlowDown).
const UNSIZED_BODIES_BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// ... and within this long.
const UNSIZED_BODY_TIMEOUT_MS: u64 = 60_000;

pub fn unsized_put<B>(request: &http::Request<B>) -> bool {
    let headers = request.headers();
    let chunked = headers
        .get(http::header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    // aws-chunked payloads carry their length in x-amz-decoded-content-length.
    let aws_chunked =
        headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("STREAMING-"));
    request.method() == http::Method::PUT
        && chunked
        && !aws_chunked
        && !headers.contains_key(http::header::CONTENT_LENGTH)
}

fn unsized_budget() -> &'static tokio::sync::Semaphore {
    static BUDGET: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    BUDGET.get_or_init(|| tokio::sync::Semaphore::new(UNSIZED_BODIES_BUDGET_BYTES))
}

/// A browser upload (POST Object): s3s holds the whole file in memory before it decides
/// anything, so a form is at most `s3_api::POST_FORM_MAX_BYTES` long (a Content-Length
/// it must declare), and holds its length of the budget shared with unsized PUTs while
/// s3s reads it.
const POST_FORM_MAX_BYTES: u64 = s3_api::POST_FORM_MAX_BYTES;

/// Is this a POST Object: a multipart form POSTed to a bucket?
pub fn form_post<B>(request: &http::Request<B>) -> bool {
    request.method() == http::Method::POST
        && request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// Admits a POST form for s3s to read: its declared length within `POST_FORM_MAX_BYTES`
/// and within the budget of bodies held in memory, which it holds until answered.
pub async fn admit_form_post(
    request: http::Request<s3s::Body>,
    customer_key_allowed: bool,
) -> Result<(s3s::HttpRequest, tokio::sync::SemaphorePermit<'static>), s3s::HttpResponse> {
    let declared_bytes = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(declared_bytes) = declared_bytes else {
        let mut refused = xml_error(
            http::StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header.",
        );
        refused.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        return Err(refused);
    };
    if declared_bytes > POST_FORM_MAX_BYTES {
        let message = format!(
            "Your proposed upload exceeds the maximum allowed size: a POST form may be at most {POST_FORM_MAX_BYTES} bytes"
        );
        return Err(refuse_draining(request, "EntityTooLarge", &message).await);
    }
    use http_body_util::BodyExt;
    // Twice its length: read here whole, then by s3s.
    let Ok(permit) = unsized_budget().try_acquire_many((2 * declared_bytes) as u32) else {
        return Err(xml_error(http::StatusCode::SERVICE_UNAVAILABLE, "SlowDown", "Please reduce your request rate."));
    };
    let (mut parts, body) = request.into_parts();
    let read = tokio::time::timeout(Duration::from_millis(UNSIZED_BODY_TIMEOUT_MS), body.collect()).await;
    let Ok(Ok(collected)) = read else {
        let mut refused =
            xml_error(http::StatusCode::BAD_REQUEST, "IncompleteBody", "The request body ended early or too slowly.");
        refused.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        return Err(refused);
    };
    let form = collected.to_bytes();
    let boundary =
        parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(crate::form::boundary_of);
    let form = match boundary.as_deref().and_then(|b| crate::form::read_fields(&form, b)) {
        Some(fields) => {
            if let Some(field) = fields.missing_signature() {
                return Err(xml_error(
                    http::StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    &format!(
                        "Bucket POST must contain a field named '{field}'. If it is specified, please check the order of the fields."
                    ),
                ));
            }
            if fields.has_customer_key() && !customer_key_allowed {
                return Err(xml_error(
                    http::StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    crate::auth_guard::CUSTOMER_KEY_NEEDS_TLS,
                ));
            }
            let policy = fields.value(&form, "policy");
            if let Some(message) = policy.and_then(s3_api::post_form::policy_expiration_error) {
                return Err(xml_error(http::StatusCode::BAD_REQUEST, "InvalidPolicyDocument", &message));
            }
            // The values of the fields s3s does not read go along beside the form.
            parts.extensions.insert(s3_api::post_form::PostFormFields {
                acl: fields.value(&form, "acl").map(str::to_owned),
                tagging: fields.value(&form, "tagging").map(str::to_owned),
            });
            fields.with_filename_in_key(&form)
        }
        // s3s answers a form it cannot read.
        None => form,
    };
    parts.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(form.len()));
    // Handed on in pieces, as a connection would deliver it: s3s reads a form's fields
    // piece by piece, and one piece holding the whole file would count against them.
    const PIECE_BYTES: usize = 64 * 1024;
    let pieces: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = (0..form.len())
        .step_by(PIECE_BYTES)
        .map(|start| Ok(http_body::Frame::data(form.slice(start..(start + PIECE_BYTES).min(form.len())))))
        .collect();
    let body = s3s::Body::http_body(http_body_util::StreamBody::new(futures::stream::iter(pieces)));
    Ok((http::Request::from_parts(parts, body), permit))
}

/// Reads a bounded body of unknown length and hands it on with its Content-Length.
pub async fn buffer_unsized_put(
    request: http::Request<s3s::Body>,
) -> Result<(s3s::HttpRequest, tokio::sync::SemaphorePermit<'static>), s3s::HttpResponse> {
    let over_limit = || {
        let mut refused = xml_error(
            http::StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header for a body this large.",
        );
        refused.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        refused
    };
    buffer_body(request, UNSIZED_BODY_MAX_BYTES, over_limit).await
}

/// Reads a body of unknown length, at most `max_bytes` (`over_limit` answers a longer
/// one), and hands the request on with its Content-Length.
async fn buffer_body(
    request: http::Request<s3s::Body>,
    max_bytes: usize,
    over_limit: impl FnOnce() -> s3s::HttpResponse,
) -> Result<(s3s::HttpRequest, tokio::sync::SemaphorePermit<'static>), s3s::HttpResponse> {
    use http_body_util::BodyExt;
    let Ok(permit) = unsized_budget().try_acquire_many(max_bytes as u32) else {
        return Err(xml_error(http::StatusCode::SERVICE_UNAVAILABLE, "SlowDown", "Please reduce your request rate."));
    };
    let (mut parts, mut body) = request.into_parts();
    // Ok(Some(bytes)): the whole body; Ok(None): past `max_bytes`, the rest read and
    // dropped (bounded, as for a refused declared length) so that the client, still
    // sending, gets the answer and not a broken pipe; Err: ended early or too slowly.
    let read = async {
        let mut buffer = bytes::BytesMut::new();
        let mut over = false;
        let mut seen = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ())?;
            let Some(data) = frame.data_ref() else { continue };
            seen += data.len() as u64;
            if over || buffer.len() + data.len() > max_bytes {
                over = true;
                if seen > REFUSED_BODY_DRAIN_MAX_BYTES {
                    return Ok((None, false));
                }
            } else {
                buffer.extend_from_slice(data);
            }
        }
        Ok::<_, ()>((if over { None } else { Some(buffer.freeze()) }, true))
    };
    let collected = tokio::time::timeout(Duration::from_millis(UNSIZED_BODY_TIMEOUT_MS), read).await;
    let bytes = match collected {
        Ok(Ok((Some(bytes), _))) => bytes,
        Ok(Ok((None, drained))) => {
            let mut refused = over_limit();
            if drained {
                refused.headers_mut().remove(http::header::CONNECTION);
            }
            return Err(refused);
        }
        Ok(Err(_)) | Err(_) => {
            let mut refused = xml_error(
                http::StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "The request body ended early or too slowly.",
            );
            refused.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            return Err(refused);
        }
    };
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    parts.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(bytes.len()));
    Ok((http::Request::from_parts(parts, s3s::Body::from(bytes)), permit))
}

/// A CORS preflight (OPTIONS), answered as S3 does from the bucket's CORS rules (none:
/// no configuration, or no such bucket). Preflights carry no signature.
pub fn cors_preflight(headers: &http::HeaderMap, rules: Option<&[storage_core::CorsRule]>) -> s3s::HttpResponse {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(origin), Some(method)) = (text("origin"), text("access-control-request-method")) else {
        let missing = if text("origin").is_none() { "Origin" } else { "Access-Control-Request-Method" };
        return xml_error(
            http::StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Insufficient information. {missing} request header needed."),
        );
    };
    let Some(rules) = rules else {
        return xml_error(
            http::StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: CORS is not enabled for this bucket.",
        );
    };
    let asked_headers: Vec<String> = text("access-control-request-headers")
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    match s3_api::cors::matching_rule(rules, origin, method, &asked_headers) {
        Some(rule) => {
            let mut response = http::Response::new(s3s::Body::empty());
            response.headers_mut().extend(s3_api::cors::response_headers(rule, origin, Some(&asked_headers)));
            response
        }
        None => xml_error(
            http::StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        ),
    }
}

/// An S3 error document (the HTTP front adds Resource and RequestId to every one).
pub fn xml_error(status: http::StatusCode, code: &str, message: &str) -> s3s::HttpResponse {
    let message = message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = http::Response::new(s3s::Body::from(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    response
}

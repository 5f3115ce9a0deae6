//! The HTTP side: accept connections, route our own paths (/health) before the S3
//! service, and shut down gracefully (stop accepting, let requests finish).

use crate::auth_guard;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::service::S3Service;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use storage_core::{Engine, EngineStats};

/// The background compactor merges the catalog when it has more files than this.
const CATALOG_FILES_BEFORE_COMPACTION: usize = 32;

/// How long in-flight requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE_MS: u64 = 30_000;

/// When and how fast the background scrub runs.
#[derive(Debug, Clone, Copy)]
pub struct ScrubSchedule {
    pub interval_secs: u64,
    pub rate_bytes_per_sec: u64,
}

/// What the front accepts of a request before the S3 layer sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestPolicy {
    /// Accept SigV2 signatures (`--allow-sigv2`); off by default.
    pub allow_sigv2: bool,
}

pub async fn serve(
    address: SocketAddr,
    s3: S3Service,
    engine: Engine,
    scrub: ScrubSchedule,
    policy: RequestPolicy,
) -> Result<(), String> {
    let listener =
        tokio::net::TcpListener::bind(address).await.map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests and scripts wait for this exact line.
    println!("quarry listening on http://{local}");
    tracing::info!("listening on http://{local}");

    let scrubber = tokio::spawn(background_scrub(engine.clone(), scrub));
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // e.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (s3, engine) = (s3.clone(), engine.clone());
                let service = service_fn(move |request: http::Request<Incoming>| {
                    route(s3.clone(), engine.clone(), policy, peer, request)
                });
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, "connection ended with an error: {e}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    scrubber.abort();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_millis(SHUTDOWN_GRACE_MS)) => {
            tracing::warn!("requests still running after {SHUTDOWN_GRACE_MS} ms; closing anyway");
        }
    }
    Ok(())
}

/// Our own paths first. "health", "ready" and "metrics" are valid bucket names, so only
/// an exact GET of the path with no query is taken; everything else is S3.
async fn route(
    s3: S3Service,
    engine: Engine,
    policy: RequestPolicy,
    peer: SocketAddr,
    mut request: http::Request<Incoming>,
) -> Result<s3s::HttpResponse, s3s::HttpError> {
    if request.method() == http::Method::GET && request.uri().query().is_none() {
        match request.uri().path() {
            "/health" => return Ok(text(http::StatusCode::OK, "ok\n".into())),
            "/ready" if engine.disk_full() => {
                return Ok(text(http::StatusCode::SERVICE_UNAVAILABLE, "disk full: read-only\n".into()));
            }
            "/ready" => return Ok(text(http::StatusCode::OK, "ready\n".into())),
            "/metrics" => return Ok(text(http::StatusCode::OK, metrics(&engine))),
            _ => {}
        }
    }
    let expects_continue =
        request.headers().get(http::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let empty_body = request.headers().get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0");
    // Every S3 request gets an id: in the response (x-amz-request-id) and in the journal.
    let request_id = format!("{:016X}", rand::random::<u64>());
    request.extensions_mut().insert(s3_api::RequestContext { peer: Some(peer), request_id: request_id.clone() });
    date_as_amz_date(&mut request);
    let extension = s3_api::is_extension_request(request.method(), request.uri());
    let guarded = auth_guard::check(request.uri(), request.headers(), extension, policy.allow_sigv2, SystemTime::now());
    let mut response = match guarded {
        Err(refusal) => error_document(&refusal, request.uri().path(), &request_id),
        Ok(()) if oversized_xml_body(&request) => refuse_oversized_xml_body(request).await,
        Ok(()) if unsized_put(&request) => match buffer_unsized_put(merge_repeated_headers(request)).await {
            // The permit is held until s3s has taken the buffered body.
            Ok((sized, _permit)) => s3.call(sized).await?,
            Err(refused) => refused,
        },
        Ok(()) => {
            let aws_chunked = auth_guard::is_aws_chunked(request.headers());
            let request = merge_repeated_headers(request).map(s3s::Body::from);
            let request = if aws_chunked {
                request.map(|body| {
                    let guard: s3s::stream::DynByteStream = Box::pin(auth_guard::FinalChunkGuard::new(body));
                    s3s::Body::from(guard)
                })
            } else {
                request
            };
            s3.call(request).await?
        }
    };
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amz-request-id", value);
    }
    // A request with "Expect: 100-continue" whose body we never read (empty, or refused
    // first) gets its final response without a 100 Continue. botocore (bundled in the
    // aws cli 1.x) then keeps that status line on the pooled connection and misreads
    // the next response on it, waiting until its read timeout. Closing the connection
    // resets the client; it costs one reconnect.
    if expects_continue && (empty_body || !response.status().is_success()) {
        response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// An S3 error document for a request refused before the S3 layer.
fn error_document(refusal: &auth_guard::Refusal, resource: &str, request_id: &str) -> s3s::HttpResponse {
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;")
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
        refusal.code,
        escape(&refusal.message),
        escape(resource),
        escape(request_id)
    );
    let mut response = http::Response::new(s3s::Body::from(Bytes::from(body)));
    *response.status_mut() = refusal.status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    response
}

fn text(status: http::StatusCode, body: String) -> s3s::HttpResponse {
    let mut response = http::Response::new(s3s::Body::from(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}

/// Prometheus text exposition of the engine's counters.
fn metrics(engine: &Engine) -> String {
    let stats = engine.stats();
    let counters = [
        ("quarry_sidecar_hits_total", "Sealed segments replayed from their sidecar", &stats.sidecar_hits),
        ("quarry_sidecar_misses_total", "Sealed segments scanned for lack of a valid sidecar", &stats.sidecar_misses),
        ("quarry_sidecars_written_total", "Sidecars written", &stats.sidecars_written),
        ("quarry_corrupt_reads_total", "Reads refused because stored data failed verification", &stats.corrupt_reads),
        (
            "quarry_chunk_read_bytes_total",
            "Payload bytes of the chunk records read and verified to serve object reads",
            &stats.chunk_read_bytes,
        ),
        ("quarry_damaged_regions_total", "Damaged log regions found by replay or scrub", &stats.damaged_regions),
        ("quarry_scrubbed_bytes_total", "Bytes verified by scrubs", &stats.scrubbed_bytes),
    ];
    let mut out = String::new();
    for (name, help, counter) in counters {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n", EngineStats::get(counter)));
    }
    let full = u8::from(engine.disk_full());
    out.push_str("# HELP quarry_disk_full 1 while writes are refused for lack of disk space\n");
    out.push_str(&format!("# TYPE quarry_disk_full gauge\nquarry_disk_full {full}\n"));
    out
}

/// A compaction pass every `interval_secs`: segments past the dead-ratio threshold, and
/// any holding dead object bytes for half the erasure deadline.
pub async fn background_compaction(engine: Engine, options: storage_core::CompactionOptions, interval_secs: u64) {
    loop {
        tokio::time::sleep(Duration::from_secs(interval_secs)).await;
        // The catalog is merged once enough small files pile up.
        if engine.catalog().is_some_and(|c| c.files().len() > CATALOG_FILES_BEFORE_COMPACTION) {
            let merging = engine.clone();
            match tokio::task::spawn_blocking(move || merging.compact_catalog()).await {
                Ok(Ok(())) => tracing::info!("catalog compacted"),
                Ok(Err(e)) => tracing::error!("catalog compaction failed: {e}"),
                Err(e) => tracing::error!("catalog compaction panicked: {e}"),
            }
        }
        match engine.compact(options).await {
            Ok(report) if report.segments_in.is_empty() => {}
            Ok(report) => tracing::info!(
                segments_in = ?report.segments_in,
                bytes_in = report.bytes_in,
                bytes_out = report.bytes_out,
                elapsed_ms = report.elapsed_ms,
                "compacted"
            ),
            Err(e) => tracing::error!("background compaction failed: {e}"),
        }
    }
}

/// Re-verifies the whole log every `interval_secs`, paced to `rate_bytes_per_sec`.
async fn background_scrub(engine: Engine, schedule: ScrubSchedule) {
    if schedule.interval_secs == 0 {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_secs(schedule.interval_secs)).await;
        let scrubbing = engine.clone();
        let rate = Some(schedule.rate_bytes_per_sec);
        match tokio::task::spawn_blocking(move || scrubbing.scrub(rate)).await {
            Ok(Ok(report)) if report.is_clean() => {
                tracing::info!(records = report.records, bytes = report.bytes, "background scrub: no damage")
            }
            Ok(Ok(report)) => tracing::error!("background scrub found damage:\n{report}"),
            Ok(Err(e)) => tracing::error!("background scrub failed: {e}"),
            Err(e) => tracing::error!("background scrub panicked: {e}"),
        }
    }
}

/// Headers that clients may send as several lines, which s3s refuses as duplicates.
/// The SDKs send `Content-Encoding: gzip` and `Content-Encoding: aws-chunked` as two
/// lines on a streaming upload; HTTP says such lines equal one comma-joined line.
const MERGEABLE_HEADERS: [http::header::HeaderName; 1] = [http::header::CONTENT_ENCODING];

fn merge_repeated_headers<B>(mut request: http::Request<B>) -> http::Request<B> {
    for name in MERGEABLE_HEADERS {
        let headers = request.headers_mut();
        if headers.get_all(&name).iter().count() < 2 {
            continue;
        }
        let joined: Vec<&str> = headers.get_all(&name).iter().filter_map(|v| v.to_str().ok()).collect();
        // SigV4 canonicalizes repeated headers as their values joined by a bare ",".
        if let Ok(value) = http::HeaderValue::from_str(&joined.join(",")) {
            headers.insert(name, value);
        }
    }
    request
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutdown signal received");
}

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
fn oversized_xml_body<B>(request: &http::Request<B>) -> bool {
    if request.method() != http::Method::POST {
        return false;
    }
    let query = request.uri().query().unwrap_or("");
    let xml_post = query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        name == "uploadId" || name == "delete"
    });
    let declared_bytes = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    xml_post && declared_bytes.is_some_and(|n| n > XML_BODY_MAX_BYTES)
}

async fn refuse_oversized_xml_body(request: http::Request<Incoming>) -> s3s::HttpResponse {
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
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>MaxMessageLengthExceeded</Code>\
         <Message>Your request was too big: the XML body may hold at most {XML_BODY_MAX_BYTES} bytes</Message></Error>"
    );
    let mut response = http::Response::new(s3s::Body::from(Bytes::from(body)));
    *response.status_mut() = http::StatusCode::BAD_REQUEST;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
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
fn date_as_amz_date<B>(request: &mut http::Request<B>) {
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

fn unsized_put<B>(request: &http::Request<B>) -> bool {
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

/// Reads a bounded body of unknown length and hands it on with its Content-Length.
async fn buffer_unsized_put(
    request: http::Request<Incoming>,
) -> Result<(s3s::HttpRequest, tokio::sync::SemaphorePermit<'static>), s3s::HttpResponse> {
    use http_body_util::BodyExt;
    let Ok(permit) = unsized_budget().try_acquire_many(UNSIZED_BODY_MAX_BYTES as u32) else {
        return Err(xml_error(http::StatusCode::SERVICE_UNAVAILABLE, "SlowDown", "Please reduce your request rate."));
    };
    let (mut parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, UNSIZED_BODY_MAX_BYTES);
    let collected = tokio::time::timeout(Duration::from_millis(UNSIZED_BODY_TIMEOUT_MS), limited.collect()).await;
    let bytes = match collected {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            let mut refused = xml_error(
                http::StatusCode::LENGTH_REQUIRED,
                "MissingContentLength",
                "You must provide the Content-Length HTTP header for a body this large.",
            );
            refused.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
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

fn xml_error(status: http::StatusCode, code: &str, message: &str) -> s3s::HttpResponse {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = http::Response::new(s3s::Body::from(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    response
}

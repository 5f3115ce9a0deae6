//! The HTTP side: accept connections, route our own paths (/health) before the S3
//! service, and shut down gracefully (stop accepting, let requests finish). Connections
//! are capped and timed out (header read, body idle, keep-alive idle).

use crate::body::{BodyStats, IdleTimeoutBody, ReportingBody};
use crate::connections::{self, Connection, Connections};
use crate::{access_log, attributes_etag, auth_guard, error_doc, preflight};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use s3s::service::S3Service;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use storage_core::{Engine, EngineStats};

/// The background compactor merges the catalog when it has more files than this.
const CATALOG_FILES_BEFORE_COMPACTION: usize = 32;

/// Requests one HTTP/2 connection may have in flight (RFC 9113 asks for at least 100).
const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Header block one HTTP/2 request may send (hyper's default, stated).
const HTTP2_MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// Streams a client may open and reset before they are accepted (the "rapid reset" flood).
const HTTP2_MAX_PENDING_RESET_STREAMS: usize = 20;

/// How long in-flight requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE_MS: u64 = 30_000;

/// When and how fast the background scrub runs.
#[derive(Debug, Clone, Copy)]
pub struct ScrubSchedule {
    pub interval_secs: u64,
    pub rate_bytes_per_sec: u64,
}

/// When lifecycle passes run, and how long a lifecycle day is.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleSchedule {
    pub interval_secs: u64,
    pub day_secs: u64,
}

/// What the front accepts of a request before the S3 layer sees it.
#[derive(Debug, Clone)]
pub struct RequestPolicy {
    /// Accept SigV2 signatures (`--allow-sigv2`); off by default.
    pub allow_sigv2: bool,
    /// Accept SSE-C keys over plain HTTP (`--allow-sse-c-over-http`); off by default.
    pub allow_sse_c_over_http: bool,
    /// Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (`--trusted-proxy`).
    pub trusted_proxies: Arc<crate::forwarded::TrustedProxies>,
    /// The keys, to tell which form of a bucket's path a SigV2 signature covers.
    pub keys: Arc<s3_api::KeyStore>,
}

/// What `route` applies to one request.
#[derive(Debug, Clone)]
struct FrontSettings {
    limits: ConnectionLimits,
    policy: RequestPolicy,
    /// The connection is TLS (`aws:SecureTransport`).
    secure_transport: bool,
    /// The Host names a bucket (virtual-hosted style): our own paths are objects there.
    /// The bucket a virtual-hosted-style Host names.
    host_bucket: Option<String>,
}

/// Connection limits and timeouts (see `--help` for each).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout_ms: u64,
    pub body_idle_timeout_ms: u64,
    pub keep_alive_timeout_ms: u64,
}

/// Where the server listens, and with what certificate if it serves HTTPS.
pub struct Listen {
    pub address: SocketAddr,
    pub tls: Option<Arc<crate::tls::CertificateSource>>,
}

pub async fn serve(
    listen: Listen,
    s3: S3Service,
    engine: Engine,
    scrub: ScrubSchedule,
    limits: ConnectionLimits,
    domains: s3_api::DomainHost,
    policy: RequestPolicy,
) -> Result<(), String> {
    let Listen { address, tls } = listen;
    let domains = Arc::new(domains);
    let acceptor = match &tls {
        Some(source) => Some(tokio_rustls::TlsAcceptor::from(source.server_config()?)),
        None => None,
    };
    let listener =
        tokio::net::TcpListener::bind(address).await.map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let open_files = connections::raise_open_files_limit();
    let connections = Arc::new(Connections::new(connections::connection_cap(limits.max_connections, open_files)));
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    // Tests and scripts wait for this exact line.
    println!("quarry listening on {scheme}://{local}");
    tracing::info!(max_connections = connections.max(), open_files, "listening on {scheme}://{local}");
    let reloader = tokio::spawn(crate::tls::reload_on_sighup(tls));

    let scrubber = tokio::spawn(background_scrub(engine.clone(), scrub));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Without a timer hyper applies no timeout at all. The header timeout also bounds
    // the wait for the first request on a connection.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms.max(1)));
    // HTTP/2 (ALPN over TLS, or prior knowledge) multiplexes requests on one connection:
    // bounded per connection, as the connection cap bounds connections.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(HTTP2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(HTTP2_MAX_HEADER_LIST_BYTES)
        .max_pending_accept_reset_streams(HTTP2_MAX_PENDING_RESET_STREAMS);
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
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
                let Some(admitted) = connections.admit() else {
                    tracing::warn!(%peer, max_connections = connections.max(), "connection refused: every connection is busy");
                    continue;
                };
                // A response goes out as more than one write (head, then body). With Nagle's
                // algorithm the second small write waits for the ACK of the first, which the
                // client's delayed ACK holds back ~40 ms: every small GET took 44 ms.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, "TCP_NODELAY not set: {e}");
                }
                let front = ConnectionFront {
                    s3: s3.clone(),
                    engine: engine.clone(),
                    domains: domains.clone(),
                    policy: policy.clone(),
                    limits,
                    peer,
                    builder: builder.clone(),
                    shutdown: shutdown_rx.clone(),
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => front.run(stream, admitted, false).await,
                        Some(acceptor) => {
                            // The handshake is bounded like a request's headers: a client
                            // that opens a socket and stalls holds it no longer; and a
                            // connection shed at the cap meanwhile closes at once.
                            let handshake_timeout = Duration::from_millis(limits.header_read_timeout_ms.max(1));
                            let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                            let shed = admitted.connection.close.notified();
                            tokio::select! {
                                done = handshake => match done {
                                    Ok(Ok(stream)) => front.run(stream, admitted, true).await,
                                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                                    Err(_) => tracing::debug!(%peer, "TLS handshake not done within {handshake_timeout:?}"),
                                },
                                () = shed => tracing::debug!(%peer, "shed at the connection cap during its TLS handshake"),
                            }
                        }
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    scrubber.abort();
    reloader.abort();
    let _ = shutdown_tx.send(true);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(SHUTDOWN_GRACE_MS);
    while connections.count() > 0 {
        if tokio::time::Instant::now() > deadline {
            tracing::warn!("requests still running after {SHUTDOWN_GRACE_MS} ms; closing anyway");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// What one accepted connection is served with.
struct ConnectionFront {
    s3: S3Service,
    engine: Engine,
    domains: Arc<s3_api::DomainHost>,
    policy: RequestPolicy,
    limits: ConnectionLimits,
    peer: SocketAddr,
    builder: auto::Builder<TokioExecutor>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl ConnectionFront {
    /// Runs the connection until it ends, is shed at the cap, stays idle past the
    /// keep-alive timeout, or the server shuts down (in-flight requests finish).
    async fn run<IO>(self, io: IO, admitted: connections::Admitted, secure_transport: bool)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let ConnectionFront { s3, engine, domains, policy, limits, peer, builder, mut shutdown } = self;
        let connection = admitted.connection.clone();
        let service = {
            let connection = connection.clone();
            service_fn(move |request: http::Request<Incoming>| {
                let host_bucket = request
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| domains.bucket_of(h))
                    .map(str::to_owned);
                let front = FrontSettings { limits, policy: policy.clone(), secure_transport, host_bucket };
                route(s3.clone(), engine.clone(), peer, connection.clone(), front, request)
            })
        };
        let served = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        let keep_alive = Duration::from_millis(limits.keep_alive_timeout_ms.max(1));
        let mut served = std::pin::pin!(served);
        let mut draining = false;
        loop {
            let idle_deadline = connection.idle_deadline(keep_alive);
            tokio::select! {
                result = served.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, "connection ended with an error: {e}");
                    }
                    break;
                }
                // No request is in flight on a shed or idle connection: dropping it loses nothing.
                () = connection.close.notified() => break,
                () = connection.activity.notified() => {}
                () = tokio::time::sleep_until(idle_deadline.unwrap_or_else(tokio::time::Instant::now)),
                    if idle_deadline.is_some() && !draining => {
                    if connection.idle_deadline(keep_alive).is_some_and(|d| d <= tokio::time::Instant::now()) {
                        tracing::debug!(%peer, "closing an idle connection");
                        break;
                    }
                }
                changed = shutdown.changed(), if !draining => {
                    draining = true;
                    if changed.is_ok() {
                        served.as_mut().graceful_shutdown();
                    }
                }
            }
        }
        drop(admitted);
    }
}

/// Our own paths first. "health", "ready" and "metrics" are valid bucket names, so only
/// an exact GET of the path with no query is taken, and not on a bucket's own host
/// (virtual-hosted style, where `/health` is an object); everything else is S3.
async fn route(
    s3: S3Service,
    engine: Engine,
    peer: SocketAddr,
    connection: Arc<Connection>,
    front: FrontSettings,
    request: http::Request<Incoming>,
) -> Result<s3s::HttpResponse, s3s::HttpError> {
    let FrontSettings { limits, policy, secure_transport, host_bucket } = front;
    if request.method() == http::Method::GET && request.uri().query().is_none() && host_bucket.is_none() {
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
    connection.request_started();
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let host = request.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
    let access_key = access_log::access_key(&request);
    // Every S3 request gets an id: in the response (x-amz-request-id) and in the journal.
    let request_id = format!("{:016X}", rand::random::<u64>());
    let stats = Arc::new(BodyStats::default());
    let request = request.map(|incoming| {
        let timeout = Duration::from_millis(limits.body_idle_timeout_ms.max(1));
        s3s::Body::http_body(IdleTimeoutBody::new(incoming, timeout, stats.clone()))
    });
    // The bucket a browser's CORS rules come from: the Host's, else the path's first part.
    let bucket = host_bucket.or_else(|| {
        let first = request.uri().path().trim_start_matches('/').split('/').next().unwrap_or_default();
        (!first.is_empty()).then(|| first.to_owned())
    });
    // Looked up only for a browser's request (one with an Origin): other requests pay nothing.
    let from_browser = request.headers().contains_key(http::header::ORIGIN);
    let cors_rules =
        bucket.filter(|_| from_browser).and_then(|b| engine.bucket(&b).ok().flatten()).and_then(|entry| entry.cors);
    let client = policy.trusted_proxies.client_of(peer.ip(), secure_transport, request.headers());
    let context = s3_api::RequestContext {
        source_ip: Some(client.ip),
        secure_transport: client.secure_transport,
        request_id: request_id.clone(),
    };
    let response = s3_response(s3, context, policy, cors_rules, &stats, request).await;
    let status = response.status();
    let line = access_log::AccessLine {
        method,
        path,
        host,
        status,
        access_key,
        request_id,
        peer,
        client_ip: client.ip,
        started,
    };
    let finished = move |bytes_out: u64| {
        line.emit(stats.bytes_in.load(std::sync::atomic::Ordering::Relaxed), bytes_out);
        connection.request_finished();
    };
    Ok(response.map(|body| s3s::Body::http_body(ReportingBody::new(body, finished))))
}

/// The S3 service's answer, with our request id and complete error documents.
async fn s3_response(
    s3: S3Service,
    context: s3_api::RequestContext,
    policy: RequestPolicy,
    cors_rules: Option<Vec<storage_core::CorsRule>>,
    stats: &BodyStats,
    mut request: http::Request<s3s::Body>,
) -> s3s::HttpResponse {
    let expects_continue =
        request.headers().get(http::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let empty_body = request.headers().get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0");
    let is_head = request.method() == http::Method::HEAD;
    let method = request.method().clone();
    let header_text = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let origin = header_text("origin");
    let request_method_asked = header_text("access-control-request-method");
    let is_post = request.method() == http::Method::POST;
    let resource = request.uri().path().to_owned();
    let asks_attributes = attributes_etag::is_attributes_request(request.method(), request.uri());
    let request_id = context.request_id.clone();
    let request_id = request_id.as_str();
    let customer_key_allowed = context.secure_transport || policy.allow_sse_c_over_http;
    request.extensions_mut().insert(context);
    preflight::date_as_amz_date(&mut request);
    let extension = s3_api::is_extension_request(request.method(), request.uri());
    let guarded = auth_guard::check(request.uri(), request.headers(), extension, policy.allow_sigv2, SystemTime::now())
        .and_then(|()| auth_guard::check_customer_key_transport(request.headers(), customer_key_allowed));
    if guarded.is_ok()
        && policy.allow_sigv2
        && let Some(uri) = auth_guard::sigv2_bucket_uri(&request, |key| policy.keys.secret(key))
    {
        *request.uri_mut() = uri;
    }
    let called = match guarded {
        Ok(()) if request.method() == http::Method::OPTIONS => {
            Ok(preflight::cors_preflight(request.headers(), cors_rules.as_deref()))
        }
        Err(refusal) => Ok(preflight::xml_error(refusal.status, refusal.code, &refusal.message)),
        Ok(()) if preflight::oversized_xml_body(&request) => Ok(preflight::refuse_oversized_xml_body(request).await),
        Ok(()) if preflight::form_post(&request) => {
            match preflight::admit_form_post(request, customer_key_allowed).await {
                // The permit is held until s3s has read and stored the form's file.
                Ok((admitted, _permit)) => s3.call(merge_repeated_headers(admitted)).await,
                Err(refused) => Ok(refused),
            }
        }
        Ok(()) if preflight::unsized_xml_post(&request) => {
            match preflight::buffer_unsized_xml_post(merge_repeated_headers(request)).await {
                Ok((sized, _permit)) => s3.call(sized).await,
                Err(refused) => Ok(refused),
            }
        }
        Ok(()) if preflight::unsized_put(&request) => {
            match preflight::buffer_unsized_put(merge_repeated_headers(request)).await {
                // The permit is held until s3s has taken the buffered body.
                Ok((sized, _permit)) => s3.call(sized).await,
                Err(refused) => Ok(refused),
            }
        }
        Ok(()) => {
            let request = merge_repeated_headers(request);
            let request = if auth_guard::is_aws_chunked(request.headers()) {
                request.map(|body| {
                    let guard: s3s::stream::DynByteStream = Box::pin(auth_guard::FinalChunkGuard::new(body));
                    s3s::Body::from(guard)
                })
            } else {
                request
            };
            s3.call(request).await
        }
    };
    let mut response = match called {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(request_id, "S3 service failed: {e:?}");
            let mut response = http::Response::new(s3s::Body::empty());
            *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    };
    if stats.timed_out.load(std::sync::atomic::Ordering::Relaxed) {
        // The client stopped sending its body: S3's RequestTimeout, and the connection
        // closes (the rest of the body will never be read).
        response = http::Response::new(s3s::Body::from(error_doc::request_timeout(&resource, request_id)));
        *response.status_mut() = http::StatusCode::BAD_REQUEST;
        response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
        response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    } else if response.status().is_client_error() || response.status().is_server_error() {
        response = complete_error_document(response, is_head, is_post, &resource, request_id).await;
    } else if asks_attributes && response.status().is_success() {
        response = unquote_attributes_etag(response, request_id).await;
    }
    if let Ok(value) = http::HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amz-request-id", value);
    }
    if let (Some(rules), Some(origin)) = (&cors_rules, &origin)
        && method != http::Method::OPTIONS
    {
        // The method asked about: a browser's Access-Control-Request-Method, else its own.
        let asked = request_method_asked.as_deref().unwrap_or(method.as_str());
        if let Some(rule) = s3_api::cors::matching_rule(rules, origin, asked, &[]) {
            response.headers_mut().extend(s3_api::cors::response_headers(rule, origin, None));
        }
    }
    // A request with "Expect: 100-continue" whose body we never read (empty, or refused
    // first) gets its final response without a 100 Continue. botocore (bundled in the
    // aws cli 1.x) then keeps that status line on the pooled connection and misreads
    // the next response on it, waiting until its read timeout. Closing the connection
    // resets the client; it costs one reconnect.
    if expects_continue && (empty_body || !response.status().is_success()) {
        response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    response
}

/// Adds Message, Resource and RequestId to an S3 error document (s3s leaves them out).
async fn complete_error_document(
    response: s3s::HttpResponse,
    is_head: bool,
    is_post: bool,
    resource: &str,
    request_id: &str,
) -> s3s::HttpResponse {
    let is_xml = response.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().ends_with(b"xml"));
    let small = http_body::Body::size_hint(response.body())
        .exact()
        .is_some_and(|len| len > 0 && len <= error_doc::MAX_ERROR_DOCUMENT_BYTES as u64);
    if is_head || !is_xml || !small {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match http_body_util::BodyExt::collect(body).await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::error!(request_id, "reading an error document: {e}");
            Bytes::new()
        }
    };
    let (status, bytes) =
        if is_post { error_doc::post_policy_refusal(parts.status, bytes) } else { (parts.status, bytes) };
    parts.status = status;
    let completed = error_doc::complete(&bytes, parts.status, resource, request_id).unwrap_or(bytes);
    parts.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(completed.len()));
    http::Response::from_parts(parts, s3s::Body::from(completed))
}

/// GetObjectAttributes' answer with S3's unquoted ETag. The document is small: at most
/// 1,000 parts of a few fields each, built in memory by s3s.
async fn unquote_attributes_etag(response: s3s::HttpResponse, request_id: &str) -> s3s::HttpResponse {
    let (mut parts, body) = response.into_parts();
    let bytes = match http_body_util::BodyExt::collect(body).await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::error!(request_id, "reading a GetObjectAttributes answer: {e}");
            Bytes::new()
        }
    };
    let unquoted = attributes_etag::unquote(&bytes).unwrap_or(bytes);
    parts.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(unquoted.len()));
    http::Response::from_parts(parts, s3s::Body::from(unquoted))
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
/// Carries out the buckets' lifecycle rules every `interval_secs`.
pub async fn background_lifecycle(engine: Engine, schedule: LifecycleSchedule) {
    if schedule.interval_secs == 0 {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_secs(schedule.interval_secs)).await;
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let day_ms = (schedule.day_secs as i64).saturating_mul(1000);
        match s3_api::lifecycle::run_pass(&engine, now_ms, day_ms).await {
            Ok(report) if report == s3_api::lifecycle::PassReport::default() => {}
            Ok(report) => tracing::info!(
                expired = report.expired,
                noncurrent_removed = report.noncurrent_removed,
                delete_markers_removed = report.delete_markers_removed,
                uploads_aborted = report.uploads_aborted,
                "lifecycle pass"
            ),
            Err(e) => tracing::error!("lifecycle pass failed: {e}"),
        }
    }
}

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

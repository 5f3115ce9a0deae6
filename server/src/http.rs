//! The HTTP side: accept connections, route our own paths (/health) before the S3
//! service, and shut down gracefully (stop accepting, let requests finish).

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::service::S3Service;
use std::net::SocketAddr;
use std::time::Duration;

/// How long in-flight requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE_MS: u64 = 30_000;

pub async fn serve(address: SocketAddr, s3: S3Service) -> Result<(), String> {
    let listener =
        tokio::net::TcpListener::bind(address).await.map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests and scripts wait for this exact line.
    println!("quarry listening on http://{local}");
    tracing::info!("listening on http://{local}");

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
                let s3 = s3.clone();
                let service = service_fn(move |request: http::Request<Incoming>| route(s3.clone(), request));
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
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_millis(SHUTDOWN_GRACE_MS)) => {
            tracing::warn!("requests still running after {SHUTDOWN_GRACE_MS} ms; closing anyway");
        }
    }
    Ok(())
}

async fn route(s3: S3Service, request: http::Request<Incoming>) -> Result<s3s::HttpResponse, s3s::HttpError> {
    if request.uri().path() == "/health" && request.method() == http::Method::GET {
        let mut response = http::Response::new(s3s::Body::from(Bytes::from_static(b"ok\n")));
        response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
        return Ok(response);
    }
    hyper::service::Service::call(&s3, merge_repeated_headers(request)).await
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

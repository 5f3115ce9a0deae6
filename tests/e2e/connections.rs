//! Connection limits and timeouts, on real sockets: a slowloris header, a stalled
//! request body, an idle keep-alive connection, and more idle sockets than the
//! server has file descriptors.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

/// Generous upper bound for "the server closed it after a 1 s timeout" on a busy machine.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

fn server_with(flags: &[&str]) -> Server {
    Server::start_with(ServerOptions {
        extra_args: flags.iter().map(|f| f.to_string()).collect(),
        ..Default::default()
    })
}

/// Reads until the server closes the connection (EOF or reset) or `limit` passes.
/// Returns what was read and when the connection ended (None: still open at `limit`).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let start = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (received, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, Some(start.elapsed())),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_header_is_closed_after_the_header_read_timeout() {
    let server = server_with(&["--header-read-timeout-ms", "1000"]);
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n").await.expect("send the request line");
    let start = Instant::now();
    // One header byte every 100 ms, never the blank line that ends the head.
    let mut closed_after = None;
    while start.elapsed() < CLOSE_WITHIN {
        if stream.write_all(b"X").await.is_err() {
            closed_after = Some(start.elapsed());
            break;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(start.elapsed());
                break;
            }
            _ => {}
        }
    }
    let closed_after = closed_after.unwrap_or_else(|| {
        panic!(
            "expected the server to close a header trickling in for 1 s+, but it was still open after {CLOSE_WITHIN:?}"
        )
    });
    assert!(
        closed_after >= Duration::from_millis(800),
        "expected the connection to live about --header-read-timeout-ms 1000, closed after {closed_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_body_is_answered_after_the_body_idle_timeout_and_nothing_is_stored() {
    let server = server_with(&["--body-idle-timeout-ms", "1000"]);
    let s3 = server.client();
    create_bucket(&s3, "stall").await;

    for (key, expect_continue) in [("announced-1000-sent-10", false), ("expect-100-continue", true)] {
        let url = format!("{}/stall/{key}", server.endpoint());
        let body = vec![b'x'; 1000];
        let mut head = format!("PUT /stall/{key} HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000\r\n", server.addr());
        for (name, value) in sigv4_headers("PUT", &url, &body, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if expect_continue {
            head.push_str("Expect: 100-continue\r\n");
        }
        head.push_str("\r\n");
        let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
        stream.write_all(head.as_bytes()).await.expect("send the head");
        if !expect_continue {
            stream.write_all(&body[..10]).await.expect("send 10 of 1000 body bytes");
        }
        let (received, closed_after) = read_until_closed(&mut stream, CLOSE_WITHIN).await;
        let text = String::from_utf8_lossy(&received);
        assert!(
            closed_after.is_some(),
            "{key}: expected the server to answer and close a body stalled for 1 s+ within {CLOSE_WITHIN:?}, \
             the connection is still open; received so far: {text:?}"
        );
        // The final response (after any 100 Continue) is S3's RequestTimeout.
        let final_response = text.rsplit("HTTP/1.1 ").next().unwrap_or_default();
        assert!(
            final_response.starts_with("400") && final_response.contains("<Code>RequestTimeout</Code>"),
            "{key}: expected HTTP 400 RequestTimeout, got {text:?}"
        );
        let head = s3.head_object().bucket("stall").key(key).send().await;
        assert_eq!(err_status(head.as_ref().expect_err("HEAD of a stalled PUT must fail")), Some(404), "{key}");
    }
    assert!(list_all_keys(&s3, "stall").await.is_empty(), "a stalled upload left an object behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connection_is_closed() {
    let server = server_with(&["--keep-alive-timeout-ms", "1000"]);
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("send");
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(CLOSE_WITHIN, stream.read(&mut buf)).await.expect("a response").expect("read");
    let response = String::from_utf8_lossy(&buf[..n]);
    assert!(response.starts_with("HTTP/1.1 200"), "GET /health: expected 200, got {response:?}");
    assert!(!response.to_ascii_lowercase().contains("connection: close"), "the first response closed already");
    let (_, closed_after) = read_until_closed(&mut stream, CLOSE_WITHIN).await;
    let closed_after = closed_after.unwrap_or_else(|| {
        panic!("expected an idle keep-alive connection to be closed after 1 s, still open after {CLOSE_WITHIN:?}")
    });
    assert!(closed_after >= Duration::from_millis(800), "closed too early: after {closed_after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_beyond_the_fd_limit_do_not_lock_out_clients() {
    const OPEN_FILES: u64 = 256;
    const IDLE_SOCKETS: usize = 400;
    let server = Server::start_with(ServerOptions { open_files_limit: Some(OPEN_FILES), ..Default::default() });
    let s3 = server.client();
    create_bucket(&s3, "crowded").await;

    let mut idle = Vec::with_capacity(IDLE_SOCKETS);
    for i in 0..IDLE_SOCKETS {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(server.addr()))
            .await
            .unwrap_or_else(|_| panic!("connect #{i} timed out"))
            .unwrap_or_else(|e| panic!("connect #{i}: {e}"));
        idle.push(stream);
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let health = tokio::time::timeout(
        Duration::from_secs(5),
        raw_request("GET", &format!("{}/health", server.endpoint()), &[], ""),
    )
    .await;
    let health = health.unwrap_or_else(|_| {
        panic!("GET /health with {IDLE_SOCKETS} idle sockets open (fd limit {OPEN_FILES}): expected 200, timed out after 5 s")
    });
    assert_eq!(health.status, 200, "GET /health with {IDLE_SOCKETS} idle sockets open");

    let Ok(put) = tokio::time::timeout(
        Duration::from_secs(10),
        s3.put_object().bucket("crowded").key("k").body(ByteStream::from_static(b"still served")).send(),
    )
    .await
    else {
        panic!("signed PUT with {IDLE_SOCKETS} idle sockets open: timed out after 10 s");
    };
    put.ok_or_panic("signed PUT with idle sockets open");
    assert_eq!(get(&s3, "crowded", "k").await, b"still served");
    drop(idle);
}

/// A small GET on a keep-alive connection is answered without waiting for the client's
/// delayed ACK: the response's head and body are separate writes, and with Nagle's
/// algorithm on the server's socket the body waited ~40 ms for the ACK of the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_responses_are_not_held_back_by_nagle() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("nagle").send().await.expect("CreateBucket");
    let body = vec![7u8; 4096];
    s3.put_object().bucket("nagle").key("small").body(ByteStream::from(body.clone())).send().await.expect("PutObject");
    let presigned = s3
        .get_object()
        .bucket("nagle")
        .key("small")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
        .await
        .expect("presign");
    let uri: http::Uri = presigned.uri().parse().expect("presigned URI");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        uri.path_and_query().expect("path").as_str(),
        uri.authority().expect("authority")
    );

    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let mut latencies = Vec::new();
    for _ in 0..21 {
        let sent = Instant::now();
        stream.write_all(request.as_bytes()).await.expect("send request");
        let response = read_response(&mut stream).await;
        latencies.push(sent.elapsed());
        assert!(
            response.starts_with(b"HTTP/1.1 200"),
            "GET: {}",
            String::from_utf8_lossy(&response[..80.min(response.len())])
        );
        assert!(response.ends_with(&body), "GET returned the object's 4096 bytes");
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(
        median < Duration::from_millis(20),
        "expected a small GET on a warm keep-alive connection in well under the ~40 ms of a delayed ACK, got a median of {median:?} (all: {latencies:?})"
    );
}

/// One HTTP/1.1 response with a Content-Length body, read whole.
async fn read_response(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(CLOSE_WITHIN, stream.read(&mut buf))
            .await
            .expect("response within 5 s")
            .expect("read");
        assert!(n > 0, "the server closed the connection mid-response");
        received.extend_from_slice(&buf[..n]);
        let Some(head_end) = received.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().expect("content-length"));
        if received.len() >= head_end + 4 + length {
            return received;
        }
    }
}

//! HTTPS: the listener with `--tls-cert` / `--tls-key`, SDK clients that trust the
//! certificate, `aws:SecureTransport` in bucket policies, the certificate reloaded on
//! SIGHUP, a stalled handshake closed, and `quarry sql --endpoint https://…`.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;

/// The policy AWS recommends for "HTTPS only": every action denied over plain HTTP.
const DENY_INSECURE: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
     "Resource": ["arn:aws:s3:::alice-tls", "arn:aws:s3:::alice-tls/*"],
     "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
  ]
}"#;

/// An SDK client that trusts only `trusted_pem` (not necessarily the server's).
fn client_trusting(server: &Server, access_key: &str, secret_key: &str, trusted_pem: &str) -> aws_sdk_s3::Client {
    let config = server.config_builder(access_key, secret_key).http_client(https_client_trusting(trusted_pem));
    aws_sdk_s3::Client::from_conf(config.build())
}

fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("quarry-e2e-tls-").tempdir().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_sdk_clients_and_secure_transport_reaches_policies() {
    let server = Server::start_with(ServerOptions {
        config_toml: Some(TWO_OWNERS_CONFIG.into()),
        tls: true,
        ..Default::default()
    });
    assert!(server.endpoint().starts_with("https://"), "the ready line names an https URL: {}", server.endpoint());
    let alice = server.client_with("alicekey", "alicesecret123");

    create_bucket(&alice, "alice-tls").await;
    let data = seeded_bytes(7, 3 * MIB + 11);
    put(&alice, "alice-tls", "big.bin", &data).await;
    assert_bytes_eq(&get(&alice, "alice-tls", "big.bin").await, &data, "GET over TLS");

    // The "HTTPS only" policy leaves requests over TLS alone.
    alice.put_bucket_policy().bucket("alice-tls").policy(DENY_INSECURE).send().await.ok_or_panic("PutBucketPolicy");
    assert_bytes_eq(&get(&alice, "alice-tls", "big.bin").await, &data, "GET over TLS under the HTTPS-only policy");
    put(&alice, "alice-tls", "small.txt", b"over tls").await;

    // A client that does not trust the certificate gets no answer at all.
    let other = TestCertificate::write(&server.temp_path().join("other"));
    let stranger = client_trusting(&server, "alicekey", "alicesecret123", &other.cert_pem);
    let refused = stranger.head_bucket().bucket("alice-tls").send().await;
    assert!(refused.is_err(), "a client trusting another certificate must fail the handshake: {refused:?}");

    // Plain HTTP on the TLS port is not served.
    let mut plain = std::net::TcpStream::connect(server.addr()).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    plain.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "plain HTTP to the TLS port got an HTTP answer: {}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_plain_http_the_https_only_policy_denies() {
    let mut server =
        Server::start_with(ServerOptions { config_toml: Some(TWO_OWNERS_CONFIG.into()), ..Default::default() });
    let alice = server.client_with("alicekey", "alicesecret123");
    create_bucket(&alice, "alice-tls").await;
    put(&alice, "alice-tls", "doc.txt", b"plain").await;
    alice.put_bucket_policy().bucket("alice-tls").policy(DENY_INSECURE).send().await.ok_or_panic("PutBucketPolicy");
    // SIGHUP without TLS ends nothing (its default action would): `systemctl reload`.
    // SAFETY: kill only sends a signal to the server process this test started.
    assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) }, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let denied = alice.get_object().bucket("alice-tls").key("doc.txt").send().await;
    expect_s3_error(denied, 403, &["AccessDenied"], "the owner's GET over plain HTTP under the HTTPS-only policy");
    let denied = alice.put_object().bucket("alice-tls").key("new.txt").body(b"x".to_vec().into()).send().await;
    expect_s3_error(denied, 403, &["AccessDenied"], "the owner's PUT over plain HTTP under the HTTPS-only policy");
    // The owner keeps the right to change the policy (S3's lockout rule).
    alice.delete_bucket_policy().bucket("alice-tls").send().await.ok_or_panic("DeleteBucketPolicy by the owner");
    assert_eq!(get(&alice, "alice-tls", "doc.txt").await, b"plain");
    server.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_at_the_connection_cap_make_room_at_once() {
    const MAX_CONNECTIONS: usize = 4;
    let server = Server::start_with(ServerOptions {
        tls: true,
        extra_args: vec!["--max-connections".into(), MAX_CONNECTIONS.to_string()],
        ..Default::default()
    });
    let s3 = server.client();
    create_bucket(&s3, "crowded").await;
    drop(s3); // its pooled connection would count against the cap
    // Sockets that never start their handshake fill the cap (20 s header-read timeout).
    let mut stalled = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let socket = std::net::TcpStream::connect(server.addr()).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        stalled.push(socket);
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    server.client().head_bucket().bucket("crowded").send().await.ok_or_panic("HEAD with the cap full of handshakes");
    // The stalled connection shed for it was closed then, not at its handshake timeout
    // (20 s): a read sees the close at once (the others time out after 2 s).
    let mut closed = None;
    for (i, socket) in stalled.iter_mut().enumerate() {
        let mut buf = [0u8; 1];
        let read = socket.read(&mut buf);
        if matches!(read, Ok(0)) || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset) {
            closed = Some((i, started.elapsed()));
            break;
        }
    }
    let (i, after) = closed.expect("a stalled handshake is closed to make room for the new connection");
    assert!(after < Duration::from_secs(10), "stalled connection {i} closed only after {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_is_reloaded_on_sighup_and_stalled_handshakes_are_closed() {
    let dir = scratch_dir();
    let first = TestCertificate::write(dir.path());
    let mut args = first.args();
    args.extend(["--header-read-timeout-ms".to_owned(), "500".to_owned()]);
    let server = Server::start_with(ServerOptions { extra_args: args, ..Default::default() });
    let old_trust = client_trusting(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, &first.cert_pem);
    create_bucket(&old_trust, "reload").await;

    // A bad file and a SIGHUP: the certificate in use stays.
    std::fs::write(&first.key_path, "not a key").unwrap();
    // SAFETY: kill only sends a signal to the server process this test started.
    assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) }, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    old_trust.head_bucket().bucket("reload").send().await.ok_or_panic("HEAD after a failed reload (old certificate)");
    assert!(
        server.logs_tail().contains("TLS certificate not reloaded"),
        "the failed reload is logged:\n{}",
        server.logs_tail()
    );

    // A new certificate in the same files and a SIGHUP: new connections present it.
    let second = TestCertificate::write(dir.path());
    assert_ne!(first.cert_pem, second.cert_pem);
    assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A fresh client each time: no pooled connection from before the reload.
        let new_trust = client_trusting(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, &second.cert_pem);
        match new_trust.head_bucket().bucket("reload").send().await {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => {
                panic!("the new certificate is not presented 10 s after SIGHUP: {e:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let old_again = client_trusting(&server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, &first.cert_pem);
    assert!(old_again.head_bucket().bucket("reload").send().await.is_err(), "the old certificate is still presented");

    // A client that connects and never starts the handshake is closed after the
    // header-read timeout (500 ms here).
    let mut idle = std::net::TcpStream::connect(server.addr()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = idle.read(&mut buf);
    assert!(
        matches!(read, Ok(0)) || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "a stalled handshake must be closed by the server, got {read:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "closed only after {:?}", started.elapsed());

    // `quarry sql --endpoint https://…` trusts the certificate of QUARRY_CA_BUNDLE.
    let sql = |bundle: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
            .args(["sql", "--endpoint", server.endpoint(), "--format", "csv", "SELECT 40 + 2 AS answer"])
            .env("QUARRY_ACCESS_KEY", ADMIN_ACCESS_KEY)
            .env("QUARRY_SECRET_KEY", ADMIN_SECRET_KEY)
            .env("QUARRY_CA_BUNDLE", bundle)
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .unwrap()
    };
    let answered = sql(&second.cert_path);
    assert!(
        answered.status.success() && String::from_utf8_lossy(&answered.stdout).contains("42"),
        "quarry sql over https with the server's certificate as CA bundle: {answered:?}"
    );
    let refused = sql(&dir.path().join("none.pem"));
    assert!(!refused.status.success(), "quarry sql with a missing CA bundle must fail: {refused:?}");
    let stranger = TestCertificate::write(&dir.path().join("stranger"));
    let refused = sql(&stranger.cert_path);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "quarry sql trusting another certificate must fail: {refused:?}");
    assert!(stderr.contains("cannot reach"), "the failure says the server was not reached: {stderr}");
}

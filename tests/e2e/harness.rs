//! Test harness: spawns the real `quarry` binary on an ephemeral port with its own
//! temporary data directory, and hands out AWS SDK clients pointed at it.
//!
//! Every test starts its own [`Server`], so tests are independent and can run in
//! parallel. Dropping the [`Server`] kills the process (and, if the test is
//! panicking, prints the tail of the server's stderr to help debugging).

#![allow(dead_code)]

use std::fmt::{Debug, Display};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region, StalledStreamProtectionConfig};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresignedRequest;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use md5::{Digest, Md5};
use rand::{RngCore, SeedableRng};

pub const ADMIN_ACCESS_KEY: &str = "quarryadmin";
pub const ADMIN_SECRET_KEY: &str = "quarryadminsecret123";
pub const REGION: &str = "us-east-1";
pub const MIB: usize = 1024 * 1024;

/// The line the server prints on stdout once it accepts connections, then
/// `http://IP:PORT` (or `https://` with TLS).
const READY_PREFIX: &str = "quarry listening on ";
/// How long a fresh server may take to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a restarted server (which may have to recover its data dir) may take.
const RESTART_TIMEOUT: Duration = Duration::from_secs(60);

/// Options for [`Server::start_with`].
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Contents of a TOML config file passed with `--config`.
    pub config_toml: Option<String>,
    /// Value for `--max-object-size-bytes`.
    pub max_object_size_bytes: Option<u64>,
    /// Data directory to use instead of `<tempdir>/data`.
    pub data_dir: Option<PathBuf>,
    /// More `quarry serve` flags (e.g. `--query-timeout-ms 500`).
    pub extra_args: Vec<String>,
    /// RLIMIT_NOFILE (soft and hard) of the server process, as `ulimit -n` would set it.
    pub open_files_limit: Option<u64>,
    /// Serve HTTPS with a fresh self-signed certificate for 127.0.0.1, which the
    /// server's SDK clients trust.
    pub tls: bool,
}

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM files.
pub struct TestCertificate {
    pub cert_pem: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl TestCertificate {
    pub fn write(dir: &Path) -> TestCertificate {
        let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("generate a self-signed certificate");
        let cert_pem = generated.cert.pem();
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        fs::write(&cert_path, &cert_pem).unwrap();
        fs::write(&key_path, generated.signing_key.serialize_pem()).unwrap();
        TestCertificate { cert_pem, cert_path, key_path }
    }

    /// `--tls-cert` and `--tls-key` for these files.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert_path.display().to_string(),
            "--tls-key".into(),
            self.key_path.display().to_string(),
        ]
    }
}

/// An HTTPS client for the SDK that trusts only `trusted_pem`.
pub fn https_client_trusting(trusted_pem: &str) -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let context = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(trusted_pem.as_bytes().to_vec()))
        .build()
        .expect("a TLS context");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}

/// A running `quarry` process.
pub struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    endpoint: String,
    data_dir: PathBuf,
    config_path: Option<PathBuf>,
    options: ServerOptions,
    /// The certificate the server presents (`ServerOptions::tls`).
    certificate: Option<TestCertificate>,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
    starts: u32,
    // Declared last so the process is killed (in Drop) before the dir goes away.
    // `None` only after Drop decided to keep it (QUARRY_E2E_KEEP_TMP=1).
    tempdir: Option<tempfile::TempDir>,
}

impl Server {
    /// Start a server with default options (admin key only, no size limit).
    pub fn start() -> Server {
        Server::start_with(ServerOptions::default())
    }

    /// Start a server with the given options.
    pub fn start_with(options: ServerOptions) -> Server {
        let tempdir =
            tempfile::Builder::new().prefix("quarry-e2e-").tempdir().expect("create temp dir for the test server");
        let data_dir = options.data_dir.clone().unwrap_or_else(|| tempdir.path().join("data"));
        fs::create_dir_all(&data_dir).unwrap_or_else(|e| panic!("create data dir {}: {e}", data_dir.display()));
        let config_path = options.config_toml.as_ref().map(|toml| {
            let path = tempdir.path().join("quarry.toml");
            fs::write(&path, toml).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        });
        let stdout_log = tempdir.path().join("stdout.log");
        let stderr_log = tempdir.path().join("stderr.log");
        let certificate = options.tls.then(|| TestCertificate::write(&tempdir.path().join("tls")));
        let mut server = Server {
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            endpoint: String::new(),
            data_dir,
            config_path,
            options,
            certificate,
            stdout_log,
            stderr_log,
            starts: 0,
            tempdir: Some(tempdir),
        };
        server.spawn(START_TIMEOUT);
        server
    }

    fn spawn(&mut self, timeout: Duration) {
        assert!(self.child.is_none(), "spawn called while a child is running");
        self.starts += 1;
        let bin = env!("CARGO_BIN_EXE_quarry");

        let mut stderr_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.stderr_log.display()));
        let _ = writeln!(stderr_file, "===== e2e harness: quarry start #{} =====", self.starts);
        let mut stdout_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stdout_log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.stdout_log.display()));
        let _ = writeln!(stdout_file, "===== e2e harness: quarry start #{} =====", self.starts);

        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg("--address").arg("127.0.0.1:0").arg("--data-dir").arg(&self.data_dir);
        if let Some(path) = &self.config_path {
            cmd.arg("--config").arg(path);
        }
        if let Some(max) = self.options.max_object_size_bytes {
            cmd.arg("--max-object-size-bytes").arg(max.to_string());
        }
        cmd.args(&self.options.extra_args);
        if let Some(certificate) = &self.certificate {
            cmd.args(certificate.args());
        }
        // Settings inherited from the developer's environment must not leak in.
        for var in [
            "QUARRY_ADDRESS",
            "QUARRY_DATA_DIR",
            "QUARRY_CONFIG",
            "QUARRY_MAX_OBJECT_SIZE_BYTES",
            "QUARRY_REGION",
            "QUARRY_QUERY_MEMORY_BYTES",
            "QUARRY_QUERY_TIMEOUT_MS",
            "QUARRY_CATALOG_FLUSH_INTERVAL_MS",
            "QUARRY_CATALOG_FLUSH_AFTER_CHANGES",
            "QUARRY_SERVER_KEY",
            "QUARRY_TLS_CERT",
            "QUARRY_TLS_KEY",
            "QUARRY_ALLOW_SSE_C_OVER_HTTP",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("NO_COLOR", "1") // plain-text logs in stderr.log
            .env("QUARRY_ACCESS_KEY", ADMIN_ACCESS_KEY)
            .env("QUARRY_SECRET_KEY", ADMIN_SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file));
        if let Some(limit) = self.options.open_files_limit {
            use std::os::unix::process::CommandExt;
            // rlim_t is u64 on Linux but not on every platform.
            #[allow(clippy::unnecessary_cast)]
            let limit = libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: limit as libc::rlim_t };
            // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("failed to spawn {bin}: {e}"));

        // Read stdout until the ready line, then keep draining it forever (into
        // stdout.log) so the pipe never fills up and blocks the server.
        let stdout = child.stdout.take().expect("child stdout is piped");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("quarry-stdout".into())
            .spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut buf = Vec::new();
                let mut tx = Some(tx);
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let _ = stdout_file.write_all(&buf);
                    if tx.is_some() {
                        let line = String::from_utf8_lossy(&buf);
                        if line.starts_with(READY_PREFIX) {
                            let _ = tx.take().unwrap().send(line.trim_end().to_string());
                        }
                    }
                }
            })
            .expect("spawn stdout drain thread");

        let deadline = Instant::now() + timeout;
        let ready_line = loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => break line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "quarry (start #{}) exited with {status} before printing {READY_PREFIX:?}\n{}",
                            self.starts,
                            self.logs_tail()
                        );
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "quarry (start #{}) did not print {READY_PREFIX:?} within {timeout:?}\n{}",
                            self.starts,
                            self.logs_tail()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed without the ready line: the process is exiting.
                    let status = wait_with_timeout(&mut child, Duration::from_secs(5));
                    panic!(
                        "quarry (start #{}) closed stdout without printing {READY_PREFIX:?} ({status})\n{}",
                        self.starts,
                        self.logs_tail()
                    );
                }
            }
        };

        let url = ready_line[READY_PREFIX.len()..].split_whitespace().next().unwrap_or("");
        let (scheme, rest) = url.split_once("://").unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ready line {ready_line:?} does not name a URL (http://IP:PORT)")
        });
        let addr_str = rest.trim_end_matches('/');
        let addr: SocketAddr = addr_str.parse().unwrap_or_else(|e| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ready line {ready_line:?} does not end in IP:PORT ({addr_str:?}: {e})")
        });
        assert_ne!(addr.port(), 0, "ready line {ready_line:?} reports port 0, expected the real bound port");
        self.addr = addr;
        self.endpoint = format!("{scheme}://{addr}");
        self.child = Some(child);
    }

    /// `http://IP:PORT` (or `https://`) of the running server.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The temp dir owned by this server (scratch space for the test too).
    pub fn temp_path(&self) -> &Path {
        self.tempdir.as_ref().expect("temp dir").path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is not running").id()
    }

    /// Admin client.
    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_with(ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY)
    }

    /// Client signing with the given key pair.
    pub fn client_with(&self, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.config_builder(access_key, secret_key).build())
    }

    /// Admin client with stalled-stream protection off (for very large transfers
    /// where the server may legitimately pause, e.g. while fsyncing).
    pub fn bulk_client(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            self.config_builder(ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY)
                .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
                .build(),
        )
    }

    /// SDK config builder pointed at this server, for tests that need to tweak it.
    pub fn config_builder(&self, access_key: &str, secret_key: &str) -> aws_sdk_s3::config::Builder {
        assert!(self.child.is_some(), "server is not running (killed and not restarted)");
        aws_sdk_s3::config::Builder::new()
            .behavior_version_latest()
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(access_key, secret_key, None, None, "e2e"))
            .http_client(match &self.certificate {
                Some(certificate) => https_client_trusting(&certificate.cert_pem),
                None => aws_smithy_http_client::Builder::new().build_http(),
            })
    }

    /// SIGKILL the server (no graceful shutdown) and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("quarry had already exited with {status} before kill -9\n{}", self.logs_tail());
            }
            // std's Child::kill sends SIGKILL on unix.
            child.kill().expect("SIGKILL quarry");
            let status = child.wait().expect("wait for killed quarry");
            let _ = writeln!(
                OpenOptions::new().append(true).open(&self.stderr_log).unwrap(),
                "===== e2e harness: quarry killed with SIGKILL ({status}) ====="
            );
        }
    }

    /// kill -9 the server, then start it again on the same data dir (and config).
    /// The new process may listen on a different port: create new clients afterwards.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn(RESTART_TIMEOUT);
    }

    /// Peak resident set size (VmHWM) of the server process, in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:") * 1024
    }

    /// Current resident set size (VmRSS) of the server process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:") * 1024
    }

    /// Panics (with logs) if the server process has exited.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("server is not running");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("quarry exited unexpectedly with {status}\n{}", self.logs_tail());
        }
    }

    /// Everything the server wrote to stderr so far (its log).
    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr_log).unwrap_or_else(|e| panic!("read {}: {e}", self.stderr_log.display()))
    }

    /// The last lines of the server's stderr and stdout, for failure messages.
    pub fn logs_tail(&self) -> String {
        format!(
            "--- quarry stderr (tail, {}) ---\n{}\n--- quarry stdout (tail) ---\n{}\n--- end ---",
            self.stderr_log.display(),
            file_tail(&self.stderr_log, 60),
            file_tail(&self.stdout_log, 20)
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let state = match self.child.take() {
            Some(mut child) => {
                let exited = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                match exited {
                    Some(status) => format!("had already exited with {status}"),
                    None => "was still running".to_string(),
                }
            }
            None => "was not running (killed by the test)".to_string(),
        };
        if std::thread::panicking() {
            eprintln!("e2e: test failed; quarry (last endpoint {}) {state}:\n{}", self.endpoint, self.logs_tail());
            if std::env::var_os("QUARRY_E2E_KEEP_TMP").is_some()
                && let Some(dir) = self.tempdir.take()
            {
                eprintln!("e2e: QUARRY_E2E_KEEP_TMP is set, keeping {}", dir.keep().display());
            }
        }
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.to_string(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return "still running; killed".to_string();
            }
            Err(e) => return format!("wait failed: {e}"),
        }
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let line =
        status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} line in {path}:\n{status}"));
    let value = line[field.len()..].trim();
    let kib = value.strip_suffix("kB").unwrap_or(value).trim();
    kib.parse().unwrap_or_else(|e| panic!("cannot parse {field} value {value:?} in {path}: {e}"))
}

fn file_tail(path: &Path, max_lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("<cannot open {}>", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(16 * 1024);
    let _ = file.seek(SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

// ---------------------------------------------------------------------------
// Result / error helpers
// ---------------------------------------------------------------------------

/// `.ok_or_panic("what")` on SDK results: panics with the full error chain.
pub trait OkOrPanic<T> {
    fn ok_or_panic(self, what: impl Display) -> T;
}

impl<T, E: std::error::Error + 'static> OkOrPanic<T> for Result<T, E> {
    #[track_caller]
    fn ok_or_panic(self, what: impl Display) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{what}: expected success, got error: {}", DisplayErrorContext(&e)),
        }
    }
}

/// HTTP status of a failed SDK call, if a response was received.
pub fn err_status<E>(err: &SdkError<E>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// Asserts that `res` failed with HTTP `status` and (unless `codes` is empty,
/// e.g. for HEAD requests which have no body) an S3 error code among `codes`.
#[track_caller]
pub fn expect_s3_error<T: Debug, E>(
    res: Result<T, SdkError<E>>,
    status: u16,
    codes: &[&str],
    what: impl Display,
) -> SdkError<E>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match res {
        Ok(v) => panic!("{what}: expected HTTP {status} {codes:?}, got success: {v:?}"),
        Err(e) => {
            let got_status = err_status(&e);
            let got_code = e.code().map(str::to_owned);
            assert_eq!(
                got_status,
                Some(status),
                "{what}: expected HTTP {status} {codes:?}, got HTTP {got_status:?} code {got_code:?}: {}",
                DisplayErrorContext(&e)
            );
            if !codes.is_empty() {
                assert!(
                    got_code.as_deref().is_some_and(|c| codes.contains(&c)),
                    "{what}: expected error code in {codes:?}, got {got_code:?} (HTTP {got_status:?}): {}",
                    DisplayErrorContext(&e)
                );
            }
            e
        }
    }
}

// ---------------------------------------------------------------------------
// Data helpers
// ---------------------------------------------------------------------------

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

pub fn md5_bytes(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// The S3 ETag of a single-part object: quoted hex MD5.
pub fn etag_of(data: &[u8]) -> String {
    format!("\"{}\"", md5_hex(data))
}

/// The S3 ETag of a multipart object: `"` hex(md5(concat of binary part md5s)) `-N"`.
pub fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut concat = Vec::with_capacity(parts.len() * 16);
    for p in parts {
        concat.extend_from_slice(&md5_bytes(p));
    }
    format!("\"{}-{}\"", md5_hex(&concat), parts.len())
}

/// An SSE-C key made from `seed`, as its headers carry it: (base64 key, base64 MD5 of
/// the key).
pub fn customer_key_b64(seed: u8) -> (String, String) {
    let key = [seed; 32];
    (base64(&key), base64(&md5_bytes(&key)))
}

/// A PutObject of `body` sealed with an SSE-C key (a `customer_key_b64` pair), to send.
pub fn put_with_customer_key(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: impl Into<ByteStream>,
    customer: &(String, String),
) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&customer.0)
        .sse_customer_key_md5(&customer.1)
}

pub fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// `len` random bytes from the thread RNG.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rng().fill_bytes(&mut v);
    v
}

/// `len` deterministic pseudo-random bytes for `seed`.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::SmallRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Collects a GetObject body, panicking with context on error (this is where the
/// SDK reports response checksum mismatches).
pub async fn collect_body(body: ByteStream, what: impl Display) -> Vec<u8> {
    match body.collect().await {
        Ok(b) => b.into_bytes().to_vec(),
        Err(e) => panic!("{what}: reading body failed: {}", DisplayErrorContext(&e)),
    }
}

/// Writes `data` to a file in `dir` and returns a streaming ByteStream for it.
/// Streaming bodies make the SDK use `aws-chunked` encoding with a checksum trailer
/// (in-memory bodies get the checksum as a plain header instead).
pub async fn file_stream(dir: &Path, name: &str, data: &[u8]) -> ByteStream {
    let path = dir.join(name);
    fs::write(&path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    ByteStream::read_from()
        .path(&path)
        .buffer_size(64 * 1024)
        .build()
        .await
        .unwrap_or_else(|e| panic!("ByteStream from {}: {e}", path.display()))
}

// Bit-at-a-time reflected CRCs, to cross-check checksums the server reports
// independently of the SDK. Only used on small buffers.
fn crc32_reflected(poly: u32, data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ poly } else { crc >> 1 };
        }
    }
    !crc
}

/// base64 of the big-endian CRC32 (IEEE) of `data`, as in `x-amz-checksum-crc32`.
pub fn crc32_b64(data: &[u8]) -> String {
    base64(&crc32_reflected(0xEDB8_8320, data).to_be_bytes())
}

/// base64 of the big-endian CRC32C of `data`, as in `x-amz-checksum-crc32c`.
pub fn crc32c_b64(data: &[u8]) -> String {
    base64(&crc32_reflected(0x82F6_3B78, data).to_be_bytes())
}

/// base64 of the big-endian CRC64/NVME of `data`, as in `x-amz-checksum-crc64nvme`.
pub fn crc64nvme_b64(data: &[u8]) -> String {
    let poly = 0x9A6C_9329_AC4B_C9B5u64;
    let mut crc = !0u64;
    for &b in data {
        crc ^= b as u64;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ poly } else { crc >> 1 };
        }
    }
    base64(&(!crc).to_be_bytes())
}

/// Decodes an `encoding-type=url` value from a listing (form encoding: `+` is a
/// space, `%XX` is a byte), as botocore's `unquote_plus` does.
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                let hexpair = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                let byte = u8::from_str_radix(hexpair, 16)
                    .unwrap_or_else(|e| panic!("bad percent escape at offset {i} in {s:?}: {e}"));
                out.push(byte);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| panic!("url-decoded {s:?} is not UTF-8: {e}"))
}

// ---------------------------------------------------------------------------
// Raw HTTP (for presigned URLs, unauthenticated requests, exact status codes)
// ---------------------------------------------------------------------------

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Text of the first `<tag>...</tag>` element of an XML body.
    pub fn xml_tag(&self, tag: &str) -> Option<String> {
        xml_tag(&self.body_str(), tag)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

pub fn xml_tag(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(xml[start..end].to_string())
}

/// Two owner users, alice and bob, besides the admin key: for tests with three callers
/// (an owner, another user, anonymous requests).
pub const TWO_OWNERS_CONFIG: &str = r#"
[[keys]]
access_key = "alicekey"
secret_key = "alicesecret123"

[[keys]]
access_key = "bobkey"
secret_key = "bobsecret12345"
"#;

/// The URL of `path` (bucket, bucket/key, ?query) on `server`, for unsigned requests.
pub fn server_url(server: &Server, path: &str) -> String {
    format!("{}/{path}", server.endpoint())
}

/// Sends one HTTP/1.1 request with a plain hyper client.
pub async fn raw_request(method: &str, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> RawResponse {
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let req = builder.body(Full::new(body.into())).unwrap_or_else(|e| panic!("build raw {method} {url}: {e}"));
    let resp = client.request(req).await.unwrap_or_else(|e| panic!("raw {method} {url}: {e:?}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body =
        resp.into_body().collect().await.unwrap_or_else(|e| panic!("raw {method} {url}: reading body: {e}")).to_bytes();
    RawResponse { status, headers, body }
}

/// Performs a presigned request (with the headers the SDK says must be sent).
pub async fn send_presigned(req: &PresignedRequest, body: impl Into<Bytes>) -> RawResponse {
    send_presigned_to(req, req.uri(), &[], body).await
}

/// Performs a presigned request against `uri` (e.g. a tampered copy of
/// `req.uri()`), adding `extra_headers`.
pub async fn send_presigned_to(
    req: &PresignedRequest,
    uri: &str,
    extra_headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> RawResponse {
    let mut headers: Vec<(&str, &str)> = req.headers().collect();
    headers.extend_from_slice(extra_headers);
    raw_request(req.method(), uri, &headers, body).await
}

/// Creates a bucket with the admin client, panicking on failure.
pub async fn create_bucket(client: &aws_sdk_s3::Client, bucket: &str) {
    client.create_bucket().bucket(bucket).send().await.ok_or_panic(format!("CreateBucket {bucket}"));
}

/// PutObject of an in-memory body; returns the ETag.
pub async fn put(client: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) -> String {
    let out = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .ok_or_panic(format!("PutObject {bucket}/{key} ({} bytes)", data.len()));
    out.e_tag().unwrap_or_default().to_string()
}

/// GetObject, returning the whole body.
pub async fn get(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client.get_object().bucket(bucket).key(key).send().await.ok_or_panic(format!("GetObject {bucket}/{key}"));
    collect_body(out.body, format!("GetObject {bucket}/{key}")).await
}

/// All keys in a bucket (ListObjectsV2, following continuation tokens).
pub async fn list_all_keys(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token.clone())
            .send()
            .await
            .ok_or_panic(format!("ListObjectsV2 {bucket} token {token:?}"));
        keys.extend(out.contents().iter().map(|o| o.key().unwrap_or_default().to_string()));
        if out.is_truncated() == Some(true) {
            token = Some(
                out.next_continuation_token()
                    .unwrap_or_else(|| panic!("ListObjectsV2 {bucket}: IsTruncated=true but no NextContinuationToken"))
                    .to_string(),
            );
        } else {
            break;
        }
    }
    keys
}

/// Short human-readable description of a byte buffer for assertion messages
/// (never dumps megabytes into the output).
pub fn describe(data: &[u8]) -> String {
    format!("{} bytes, md5 {}", data.len(), md5_hex(data))
}

/// Asserts two buffers are equal, reporting sizes/MD5s and the first difference
/// instead of dumping the contents.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: impl Display) {
    if got != want {
        let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: body mismatch: got {}, want {} (first differing offset: {first_diff:?})",
            describe(got),
            describe(want)
        );
    }
}

// ---------------------------------------------------------------------------
// The SQL endpoint (POST /?sql), SigV4-signed like `quarry sql` signs it
// ---------------------------------------------------------------------------

/// The headers that sign `method url` with `body` as `access_key` (SigV4, service s3,
/// the payload's SHA-256 in `x-amz-content-sha256`, as server/src/client.rs signs).
pub fn sigv4_headers(
    method: &str,
    url: &str,
    body: &[u8],
    access_key: &str,
    secret_key: &str,
) -> Vec<(String, String)> {
    sigv4_headers_with(method, url, body, &[], access_key, secret_key)
}

/// [`sigv4_headers`] for a request that also sends (and signs) the `extra` headers, whose
/// values may hold any bytes a header value may; they are among the headers returned.
pub fn sigv4_headers_with(
    method: &str,
    url: &str,
    body: &[u8],
    extra: &[(&str, &str)],
    access_key: &str,
    secret_key: &str,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign};
    let identity = aws_credential_types::Credentials::new(access_key, secret_key, None, None, "e2e").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .expect("SigV4 signing params")
        .into();
    let signable = SignableRequest::new(method, url, extra.iter().copied(), SignableBody::Bytes(body))
        .unwrap_or_else(|e| panic!("cannot sign {method} {url}: {e}"));
    let (instructions, _) =
        sign(signable, &params).unwrap_or_else(|e| panic!("cannot sign {method} {url}: {e}")).into_parts();
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let mut request = request.body(()).expect("request to sign");
    instructions.apply_to_request_http1x(&mut request);
    request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect()
}

/// `POST /?sql&format=FORMAT` with `sql` as the body, signed with the given key.
pub async fn sql_as(server: &Server, access_key: &str, secret_key: &str, format: &str, sql: &str) -> RawResponse {
    let url = format!("{}/?sql&format={format}", server.endpoint());
    let headers = sigv4_headers("POST", &url, sql.as_bytes(), access_key, secret_key);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    raw_request("POST", &url, &headers, sql.as_bytes().to_vec()).await
}

/// A query as the admin key; panics (with the error document) unless it answers 200.
pub async fn sql_ok(server: &Server, format: &str, sql: &str) -> RawResponse {
    sql_ok_as(server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, format, sql).await
}

/// A query as the given key; panics (with the error document) unless it answers 200.
pub async fn sql_ok_as(server: &Server, access_key: &str, secret_key: &str, format: &str, sql: &str) -> RawResponse {
    let response = sql_as(server, access_key, secret_key, format, sql).await;
    assert_eq!(
        response.status,
        200,
        "SQL as {access_key} (format {format}): {sql}\nexpected HTTP 200, got {}: {}",
        response.status,
        response.body_str()
    );
    response
}

/// The CSV text of a query as the admin key.
pub async fn sql_csv(server: &Server, sql: &str) -> String {
    sql_ok(server, "csv", sql).await.body_str()
}

/// Asserts `response` is an S3 error document with this status and code; returns its
/// Message (empty if it has none).
#[track_caller]
pub fn expect_error_document(response: &RawResponse, status: u16, code: &str, what: impl Display) -> String {
    let got_code = response.xml_tag("Code");
    assert!(
        response.status == status && got_code.as_deref() == Some(code),
        "{what}: expected HTTP {status} {code}, got HTTP {} {got_code:?}: {}",
        response.status,
        response.body_str()
    );
    xml_unescape(&response.xml_tag("Message").unwrap_or_default())
}

/// The text of an XML element with the five predefined entities decoded.
pub fn xml_unescape(text: &str) -> String {
    text.replace("&quot;", "\"").replace("&apos;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// Runs `quarry admin compact` against `server` with the admin key.
pub fn admin_compact(server: &Server) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["admin", "compact", "--endpoint", server.endpoint()])
        .env("QUARRY_ACCESS_KEY", ADMIN_ACCESS_KEY)
        .env("QUARRY_SECRET_KEY", ADMIN_SECRET_KEY)
        .output()
        .unwrap()
}

/// A file under `dir` that still contains `marker`, if any.
pub fn file_containing(dir: &Path, marker: &[u8]) -> Option<String> {
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).ok()?.filter_map(|e| e.ok()).map(|e| e.path()));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(marker.len()).any(|w| w == marker)
        {
            return Some(path.display().to_string());
        }
    }
    None
}

/// `/health` answers within 1 s, three times 200 ms apart, while `what` goes on: the
/// runtime's workers are free to serve other requests.
pub async fn assert_health_answers_promptly(server: &Server, what: &str) {
    for _ in 0..3 {
        let asked = std::time::Instant::now();
        let health = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            raw_request("GET", &format!("{}/health", server.endpoint()), &[], Vec::new()),
        )
        .await
        .unwrap_or_else(|_| panic!("/health answers within 2 s while {what}"));
        assert_eq!(health.status, 200, "/health while {what}");
        let took = asked.elapsed();
        assert!(took < std::time::Duration::from_secs(1), "/health took {took:?} while {what}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A well-formed CompleteMultipartUpload body of 10,000 parts padded past the 20 MiB s3s
/// reads of an XML body.
pub fn oversized_complete_multipart_body() -> String {
    let padding = " ".repeat(2300);
    let mut body = String::from("<CompleteMultipartUpload>");
    for n in 1..=10_000 {
        body.push_str(&format!("<Part><PartNumber>{n}</PartNumber><ETag>\"e\"</ETag></Part>{padding}"));
    }
    body.push_str("</CompleteMultipartUpload>");
    assert!(body.len() > 21 * MIB, "the body must exceed 20 MiB, has {} bytes", body.len());
    body
}

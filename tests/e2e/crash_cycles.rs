//! Crash cycles: concurrent clients write, overwrite and delete a small key space
//! while the real server process is killed with SIGKILL at random moments, over
//! many cycles. After every restart, each key must hold either its last
//! acknowledged state or the result of the one operation that was in flight on it
//! when the kill happened, and every visible object must be byte-identical to the
//! version it names (never a mix of versions, never a torn body).
//!
//! `QUARRY_CRASH_CYCLES` sets the number of cycles (default 20);
//! `QUARRY_CRASH_SEED` fixes the seed of the random choices (printed at the start;
//! the kill timing relative to the requests is of course not reproducible).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::StalledStreamProtectionConfig;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::StreamExt;
use rand::{Rng, SeedableRng};

use crate::harness::*;

const BUCKET: &str = "crash-cycles";
const KEYS: usize = 64;
const TASKS: usize = 8;
const DEFAULT_CYCLES: u32 = 20;
/// Load runs for a random time in this range (ms) before the SIGKILL.
const LOAD_MS: std::ops::RangeInclusive<u64> = 150..=700;
/// Every object body starts with this magic followed by the version id.
const MAGIC: &[u8; 4] = b"QCV1";
const HEADER_LEN: usize = 16;
/// First part of a multipart version (the minimum non-last part size).
const MPU_PART1: usize = 5 * MIB;
/// How long client tasks may take to notice the kill and stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the verification of one cycle may take.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// Identifies one version of one key: unique per (cycle, task, sequence number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Vid {
    cycle: u32,
    task: u32,
    seq: u32,
}

impl Vid {
    fn header(self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(MAGIC);
        h[4..8].copy_from_slice(&self.cycle.to_be_bytes());
        h[8..12].copy_from_slice(&self.task.to_be_bytes());
        h[12..16].copy_from_slice(&self.seq.to_be_bytes());
        h
    }

    fn parse(body: &[u8]) -> Option<Vid> {
        if body.len() < HEADER_LEN || &body[..4] != MAGIC {
            return None;
        }
        let word = |i: usize| u32::from_be_bytes(body[i..i + 4].try_into().unwrap());
        Some(Vid { cycle: word(4), task: word(8), seq: word(12) })
    }

    /// Seed of the pseudo-random bytes after the header.
    fn seed(self) -> u64 {
        splitmix64(((self.cycle as u64) << 40) ^ ((self.task as u64) << 32) ^ self.seq as u64 ^ 0x51AB_C0DE)
    }
}

impl fmt::Display for Vid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}-t{}-s{}", self.cycle, self.task, self.seq)
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// How a version was written, enough to regenerate its bytes.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Single {
        len: usize,
    },
    /// A 2-part multipart upload: `MPU_PART1` bytes, then `part2` bytes.
    Multipart {
        part2: usize,
    },
}

/// What the test knows about a version (bodies are regenerated on demand only).
#[derive(Debug, Clone)]
struct Version {
    shape: Shape,
    len: usize,
    md5: String,
    etag: String,
}

impl Version {
    fn new(vid: Vid, shape: Shape) -> (Version, Vec<Vec<u8>>) {
        let parts = match shape {
            Shape::Single { len } => vec![single_body(vid, len)],
            Shape::Multipart { part2 } => {
                vec![single_body(vid, MPU_PART1), seeded_bytes(vid.seed() ^ 0xFFFF_0000_FFFF, part2)]
            }
        };
        let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let etag = match shape {
            Shape::Single { .. } => etag_of(&parts[0]),
            Shape::Multipart { .. } => multipart_etag(&slices),
        };
        let whole = slices.concat();
        let version = Version { shape, len: whole.len(), md5: md5_hex(&whole), etag };
        (version, parts)
    }

    fn content(&self, vid: Vid) -> Vec<u8> {
        match self.shape {
            Shape::Single { len } => single_body(vid, len),
            Shape::Multipart { part2 } => {
                [single_body(vid, MPU_PART1), seeded_bytes(vid.seed() ^ 0xFFFF_0000_FFFF, part2)].concat()
            }
        }
    }
}

fn single_body(vid: Vid, len: usize) -> Vec<u8> {
    assert!(len >= HEADER_LEN, "test bug: body of {len} bytes cannot hold the version header");
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(&vid.header());
    body.extend_from_slice(&seeded_bytes(vid.seed(), len - HEADER_LEN));
    body
}

type Registry = Arc<Mutex<HashMap<Vid, Version>>>;

/// The state of one key: absent, or holding one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Absent,
    Holds(Vid),
}

/// Per-key model. Each key belongs to exactly one client task (key % TASKS), so
/// operations on a key are sequential and the model is exact: at most one
/// operation per key can be unacknowledged when the server dies.
#[derive(Debug, Clone)]
struct Slot {
    index: usize,
    key: String,
    /// State after the last acknowledged operation.
    acked: State,
    /// The state the in-flight (sent, not acknowledged) operation would produce.
    in_flight: Option<State>,
}

#[derive(Debug, Default)]
struct TaskOutcome {
    slots: Vec<Slot>,
    acked_puts: u64,
    acked_deletes: u64,
    acked_multipart: u64,
    acked_bytes: u64,
    /// An operation that failed while the server was supposed to be alive.
    error_before_kill: Option<String>,
    /// Wrong responses to acknowledged operations (e.g. a bad ETag).
    failures: Vec<String>,
}

fn crash_client(server: &Server) -> aws_sdk_s3::Client {
    // No retries: after the kill an operation must fail at once (not after
    // backoff), and before the kill any error is a server failure to report, not
    // something to paper over. Stalled-stream protection is off because fsync
    // pauses under load are legitimate.
    aws_sdk_s3::Client::from_conf(
        server
            .config_builder(ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY)
            .retry_config(RetryConfig::disabled())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .build(),
    )
}

fn err_text<E: std::error::Error + 'static>(e: &E) -> String {
    DisplayErrorContext(e).to_string()
}

async fn put_version(s3: &aws_sdk_s3::Client, key: &str, vid: Vid, body: Vec<u8>) -> Result<Option<String>, String> {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .metadata("vid", vid.to_string())
        .body(ByteStream::from(body))
        .send()
        .await
        .map(|out| out.e_tag().map(str::to_owned))
        .map_err(|e| err_text(&e))
}

async fn multipart_version(
    s3: &aws_sdk_s3::Client,
    key: &str,
    vid: Vid,
    parts: Vec<Vec<u8>>,
) -> Result<Option<String>, String> {
    let created = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .metadata("vid", vid.to_string())
        .send()
        .await
        .map_err(|e| format!("CreateMultipartUpload: {}", err_text(&e)))?;
    let upload_id = created.upload_id().ok_or("CreateMultipartUpload: no UploadId in the response")?.to_string();
    let mut completed = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        let n = i as i32 + 1;
        let want_etag = etag_of(&part);
        let out = s3
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .part_number(n)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(|e| format!("UploadPart {n}: {}", err_text(&e)))?;
        let etag = out.e_tag().unwrap_or_default().to_string();
        if etag != want_etag {
            return Err(format!("UploadPart {n}: expected ETag {want_etag}, got {etag:?}"));
        }
        completed.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
    }
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .map(|out| out.e_tag().map(str::to_owned))
        .map_err(|e| format!("CompleteMultipartUpload: {}", err_text(&e)))
}

/// One client task: random puts / overwrites / deletes / multipart uploads on
/// its own keys until an operation fails (the server was killed).
async fn client_task(
    s3: aws_sdk_s3::Client,
    cycle: u32,
    task: u32,
    slots: Vec<Slot>,
    rng_seed: u64,
    killed: Arc<AtomicBool>,
    registry: Registry,
) -> TaskOutcome {
    let mut rng = rand::rngs::StdRng::seed_from_u64(rng_seed);
    let mut out = TaskOutcome { slots, ..TaskOutcome::default() };
    for seq in 0u32.. {
        if killed.load(Ordering::SeqCst) {
            break; // do not count operations started after the kill as in flight
        }
        let i = rng.random_range(0..out.slots.len());
        let key = out.slots[i].key.clone();
        let vid = Vid { cycle, task, seq };
        let roll = rng.random_range(0..1000);
        let (what, target, result) = if roll < 180 {
            out.slots[i].in_flight = Some(State::Absent);
            let res = s3.delete_object().bucket(BUCKET).key(&key).send().await;
            ("DeleteObject".to_string(), State::Absent, res.map(|_| None).map_err(|e| err_text(&e)))
        } else {
            let shape = if roll < 195 {
                Shape::Multipart { part2: rng.random_range(HEADER_LEN..=256 * 1024) }
            } else if roll < 300 {
                // 1-3 MiB: several 1 MiB chunks, sometimes exactly on a boundary.
                let len = match rng.random_range(0..4) {
                    0 => rng.random_range(1..=3) * MIB,
                    1 => rng.random_range(1..=2) * MIB + 1,
                    _ => rng.random_range(MIB..=3 * MIB),
                };
                Shape::Single { len }
            } else if roll < 600 {
                Shape::Single { len: rng.random_range(HEADER_LEN..=4096) }
            } else {
                Shape::Single { len: rng.random_range(4096..=256 * 1024) }
            };
            let (version, parts) = Version::new(vid, shape);
            let len = version.len;
            registry.lock().unwrap().insert(vid, version);
            out.slots[i].in_flight = Some(State::Holds(vid));
            match shape {
                Shape::Single { .. } => {
                    let body = parts.into_iter().next().unwrap();
                    (
                        format!("PutObject {vid} ({len} bytes)"),
                        State::Holds(vid),
                        put_version(&s3, &key, vid, body).await,
                    )
                }
                Shape::Multipart { .. } => (
                    format!("multipart upload {vid} ({len} bytes)"),
                    State::Holds(vid),
                    multipart_version(&s3, &key, vid, parts).await,
                ),
            }
        };
        match result {
            Ok(etag) => {
                if let State::Holds(vid) = target {
                    let version = registry.lock().unwrap()[&vid].clone();
                    if etag.as_deref() != Some(version.etag.as_str()) {
                        out.failures.push(format!(
                            "cycle {cycle} key {key}: {what} acknowledged with ETag {etag:?}, expected {}",
                            version.etag
                        ));
                    }
                    match version.shape {
                        Shape::Single { .. } => out.acked_puts += 1,
                        Shape::Multipart { .. } => out.acked_multipart += 1,
                    }
                    out.acked_bytes += version.len as u64;
                } else {
                    out.acked_deletes += 1;
                }
                let slot = &mut out.slots[i];
                slot.acked = target;
                slot.in_flight = None;
            }
            Err(e) => {
                if !killed.load(Ordering::SeqCst) {
                    out.error_before_kill =
                        Some(format!("cycle {cycle} task {task} key {key}: {what} failed before the kill: {e}"));
                }
                break;
            }
        }
    }
    out
}

/// What one GET (after a restart) found for one key.
struct Observation {
    index: usize,
    state: Option<State>,
    failures: Vec<String>,
}

fn describe_state(state: State, registry: &HashMap<Vid, Version>) -> String {
    match state {
        State::Absent => "absent".to_string(),
        State::Holds(vid) => match registry.get(&vid) {
            Some(v) => format!("version {vid} ({} bytes, md5 {})", v.len, v.md5),
            None => format!("version {vid} (unknown to the test)"),
        },
    }
}

/// GETs one key and checks that whatever is there is an intact, known version.
async fn observe(s3: &aws_sdk_s3::Client, cycle: u32, slot: &Slot, registry: &Registry) -> Observation {
    let key = &slot.key;
    let mut failures = Vec::new();
    let state = match s3.get_object().bucket(BUCKET).key(key).send().await {
        Err(e) => {
            if err_status(&e) == Some(404) && e.code() == Some("NoSuchKey") {
                Some(State::Absent)
            } else {
                failures.push(format!(
                    "cycle {cycle} key {key}: GetObject after restart: expected the object or 404 NoSuchKey, got \
                     HTTP {:?} code {:?}: {}",
                    err_status(&e),
                    e.code(),
                    err_text(&e)
                ));
                None
            }
        }
        Ok(out) => {
            let meta_vid = out.metadata().and_then(|m| m.get("vid")).cloned();
            let etag = out.e_tag().map(str::to_owned);
            match out.body.collect().await {
                Err(e) => {
                    failures.push(format!("cycle {cycle} key {key}: reading the GetObject body failed: {e}"));
                    None
                }
                Ok(body) => {
                    let body = body.into_bytes();
                    match Vid::parse(&body) {
                        None => {
                            failures.push(format!(
                                "cycle {cycle} key {key}: expected a body starting with a {MAGIC:?} version header, \
                                 got {} starting with {:?}",
                                describe(&body),
                                &body[..body.len().min(HEADER_LEN)]
                            ));
                            None
                        }
                        Some(vid) => {
                            let version = registry.lock().unwrap().get(&vid).cloned();
                            match version {
                                None => failures.push(format!(
                                    "cycle {cycle} key {key}: body header names version {vid}, which the test never \
                                     wrote; got {}",
                                    describe(&body)
                                )),
                                Some(v) => {
                                    let got_md5 = md5_hex(&body);
                                    if body.len() != v.len || got_md5 != v.md5 {
                                        let want = v.content(vid);
                                        let first_diff = body.iter().zip(&want).position(|(a, b)| a != b);
                                        failures.push(format!(
                                            "cycle {cycle} key {key}: corrupt object: body header names version \
                                             {vid}, expected its {} bytes with md5 {}, got {} bytes with md5 \
                                             {got_md5} (first differing offset: {first_diff:?})",
                                            v.len,
                                            v.md5,
                                            body.len()
                                        ));
                                    }
                                    if etag.as_deref() != Some(v.etag.as_str()) {
                                        failures.push(format!(
                                            "cycle {cycle} key {key}: version {vid}: expected ETag {}, got {etag:?}",
                                            v.etag
                                        ));
                                    }
                                }
                            }
                            if meta_vid.as_deref() != Some(vid.to_string().as_str()) {
                                failures.push(format!(
                                    "cycle {cycle} key {key}: body is version {vid} but x-amz-meta-vid is \
                                     {meta_vid:?} (metadata of another version?)"
                                ));
                            }
                            Some(State::Holds(vid))
                        }
                    }
                }
            }
        }
    };

    if let Some(got) = state {
        let allowed = got == slot.acked || slot.in_flight == Some(got);
        if !allowed {
            let reg = registry.lock().unwrap();
            let in_flight = match slot.in_flight {
                Some(s) => format!("{} (the operation in flight at the kill)", describe_state(s, &reg)),
                None => "nothing (no operation was in flight on this key)".to_string(),
            };
            failures.push(format!(
                "cycle {cycle} key {key}: expected {} (last acknowledged) or {in_flight}, got {}",
                describe_state(slot.acked, &reg),
                describe_state(got, &reg)
            ));
        }
    }
    Observation { index: slot.index, state, failures }
}

/// Every key listed by ListObjectsV2 (small pages, so pagination is exercised),
/// with its size and ETag.
async fn list_everything(s3: &aws_sdk_s3::Client, cycle: u32) -> Result<Vec<(String, i64, String)>, String> {
    let mut entries = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .max_keys(7)
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| format!("cycle {cycle}: ListObjectsV2 (token {token:?}) failed: {}", err_text(&e)))?;
        for o in out.contents() {
            entries.push((
                o.key().unwrap_or_default().to_string(),
                o.size().unwrap_or(-1),
                o.e_tag().unwrap_or_default().to_string(),
            ));
        }
        if out.is_truncated() != Some(true) {
            return Ok(entries);
        }
        match out.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => return Err(format!("cycle {cycle}: ListObjectsV2: IsTruncated=true but no NextContinuationToken")),
        }
    }
}

/// Checks every key and the listing after a restart; returns the observed states
/// (indexed like `slots`) or the list of failures.
async fn verify(
    s3: &aws_sdk_s3::Client,
    cycle: u32,
    slots: &[Slot],
    registry: &Registry,
) -> Result<Vec<State>, Vec<String>> {
    let observations: Vec<Observation> =
        futures::stream::iter(slots).map(|slot| observe(s3, cycle, slot, registry)).buffered(8).collect().await;
    let mut failures: Vec<String> = observations.iter().flat_map(|o| o.failures.iter().cloned()).collect();

    match list_everything(s3, cycle).await {
        Err(e) => failures.push(e),
        Ok(listed) => {
            let reg = registry.lock().unwrap();
            let present: BTreeMap<&str, Vid> = observations
                .iter()
                .filter_map(|o| match o.state {
                    Some(State::Holds(vid)) => Some((slots[o.index].key.as_str(), vid)),
                    _ => None,
                })
                .collect();
            let listed_keys: BTreeSet<&str> = listed.iter().map(|(k, _, _)| k.as_str()).collect();
            if listed_keys.len() != listed.len() {
                failures.push(format!(
                    "cycle {cycle}: ListObjectsV2 returned {} entries but only {} distinct keys",
                    listed.len(),
                    listed_keys.len()
                ));
            }
            let got_absent: BTreeSet<&str> = observations
                .iter()
                .filter(|o| o.state == Some(State::Absent))
                .map(|o| slots[o.index].key.as_str())
                .collect();
            for (key, size, etag) in &listed {
                match present.get(key.as_str()) {
                    Some(vid) => {
                        let v = &reg[vid];
                        if *size != v.len as i64 || *etag != v.etag {
                            failures.push(format!(
                                "cycle {cycle}: ListObjectsV2 entry {key}: GetObject returned version {vid}, so \
                                 expected size {} ETag {}, got size {size} ETag {etag}",
                                v.len, v.etag
                            ));
                        }
                    }
                    None if got_absent.contains(key.as_str()) => failures.push(format!(
                        "cycle {cycle}: ListObjectsV2 lists {key} (size {size}, ETag {etag}) but GetObject says \
                         404 NoSuchKey"
                    )),
                    None if slots.iter().any(|s| s.key == *key) => {} // GET failed: already reported
                    None => failures.push(format!("cycle {cycle}: ListObjectsV2 lists {key}, a key never written")),
                }
            }
            for (key, vid) in &present {
                if !listed_keys.contains(key) {
                    failures.push(format!(
                        "cycle {cycle}: GetObject {key} returned version {vid}, but ListObjectsV2 does not list {key}"
                    ));
                }
            }
        }
    }

    if failures.is_empty() {
        Ok(observations.into_iter().map(|o| o.state.expect("no failure, so every key was observed")).collect())
    } else {
        Err(failures)
    }
}

#[derive(Debug, Default)]
struct Totals {
    acked_puts: u64,
    acked_deletes: u64,
    acked_multipart: u64,
    acked_bytes: u64,
    keys_verified: u64,
    objects_verified: u64,
    in_flight: u64,
    in_flight_survived: u64,
    in_flight_lost: u64,
    /// In flight, but its result equals the acknowledged state (e.g. deleting an
    /// absent key), so whether it was applied cannot be told.
    in_flight_indistinguishable: u64,
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.trim().parse().unwrap_or_else(|e| panic!("{name}={value:?} is not a non-negative integer: {e}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_random_moments_over_many_cycles() {
    let started = Instant::now();
    let cycles = env_u64("QUARRY_CRASH_CYCLES").map_or(DEFAULT_CYCLES, |n| n as u32);
    assert!(cycles >= 1, "QUARRY_CRASH_CYCLES must be at least 1");
    let seed = env_u64("QUARRY_CRASH_SEED").unwrap_or_else(rand::random);
    println!("crash_cycles: {cycles} cycles, {KEYS} keys, {TASKS} client tasks, seed {seed} (QUARRY_CRASH_SEED)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let mut server = Server::start();
    create_bucket(&server.client(), BUCKET).await;

    let registry: Registry = Arc::default();
    let mut slots: Vec<Slot> = (0..KEYS)
        .map(|index| Slot {
            index,
            key: format!("k/{:02}/{}", index, ["a", "bb", "c.bin"][index % 3]),
            acked: State::Absent,
            in_flight: None,
        })
        .collect();
    let mut totals = Totals::default();

    for cycle in 1..=cycles {
        // Load: every task works on its own keys until the server dies under it.
        let s3 = crash_client(&server);
        let killed = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let own: Vec<Slot> = slots.iter().filter(|s| s.index % TASKS == task).cloned().collect();
            handles.push(tokio::spawn(client_task(
                s3.clone(),
                cycle,
                task as u32,
                own,
                rng.random(),
                killed.clone(),
                registry.clone(),
            )));
        }
        let load_ms = rng.random_range(LOAD_MS);
        tokio::time::sleep(Duration::from_millis(load_ms)).await;
        killed.store(true, Ordering::SeqCst);
        server.kill9();

        let stop_deadline = Instant::now() + STOP_TIMEOUT;
        let mut in_flight_now = 0;
        let mut acked_this_cycle = 0;
        for (task, handle) in handles.into_iter().enumerate() {
            let left = stop_deadline.saturating_duration_since(Instant::now());
            let outcome = match tokio::time::timeout(left, handle).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(e)) => panic!("cycle {cycle}: client task {task} panicked: {e}"),
                Err(_) => panic!("cycle {cycle}: client task {task} did not stop within {STOP_TIMEOUT:?} of the kill"),
            };
            if let Some(e) = &outcome.error_before_kill {
                panic!("cycle {cycle} (seed {seed}): an operation failed while the server was alive: {e}");
            }
            assert!(
                outcome.failures.is_empty(),
                "cycle {cycle} (seed {seed}): wrong responses to acknowledged operations:\n{}",
                outcome.failures.join("\n")
            );
            totals.acked_puts += outcome.acked_puts;
            totals.acked_deletes += outcome.acked_deletes;
            totals.acked_multipart += outcome.acked_multipart;
            totals.acked_bytes += outcome.acked_bytes;
            acked_this_cycle += outcome.acked_puts + outcome.acked_deletes + outcome.acked_multipart;
            for slot in outcome.slots {
                in_flight_now += u64::from(slot.in_flight.is_some());
                let index = slot.index;
                slots[index] = slot;
            }
        }
        totals.in_flight += in_flight_now;

        // Restart on the same data dir and check every key against the model.
        let restart_at = Instant::now();
        server.restart();
        let restart_time = restart_at.elapsed();
        let s3 = crash_client(&server);
        let observed = match tokio::time::timeout(VERIFY_TIMEOUT, verify(&s3, cycle, &slots, &registry)).await {
            Err(_) => panic!("cycle {cycle}: verification after restart did not finish within {VERIFY_TIMEOUT:?}"),
            Ok(Err(failures)) => panic!(
                "cycle {cycle} (seed {seed}): {} problem(s) after kill -9 and restart (first 20):\n{}",
                failures.len(),
                failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
            ),
            Ok(Ok(observed)) => observed,
        };

        // The observed state becomes the acknowledged state of the next cycle.
        let mut present = 0;
        for (slot, got) in slots.iter_mut().zip(observed) {
            if let Some(target) = slot.in_flight.take() {
                if target == slot.acked {
                    totals.in_flight_indistinguishable += 1;
                } else if got == target {
                    totals.in_flight_survived += 1;
                } else {
                    totals.in_flight_lost += 1;
                }
            }
            slot.acked = got;
            present += u64::from(matches!(got, State::Holds(_)));
        }
        totals.keys_verified += KEYS as u64;
        totals.objects_verified += present;
        println!(
            "crash_cycles: cycle {cycle}/{cycles}: killed after {load_ms} ms, {acked_this_cycle} ops acknowledged, \
             {in_flight_now} in flight; restart {restart_time:?}; {present}/{KEYS} keys present and verified"
        );
    }

    let acked = totals.acked_puts + totals.acked_deletes + totals.acked_multipart;
    println!(
        "crash_cycles summary: {cycles} cycles (seed {seed}) in {:.1?}: {acked} acknowledged operations ({} puts, {} \
         deletes, {} multipart uploads; {:.1} MiB acknowledged); {} keys verified ({} present objects checked \
         byte-for-byte); {} ops in flight at kills: {} survived, {} lost, {} indistinguishable",
        started.elapsed(),
        totals.acked_puts,
        totals.acked_deletes,
        totals.acked_multipart,
        totals.acked_bytes as f64 / MIB as f64,
        totals.keys_verified,
        totals.objects_verified,
        totals.in_flight,
        totals.in_flight_survived,
        totals.in_flight_lost,
        totals.in_flight_indistinguishable,
    );
    assert!(
        acked >= u64::from(cycles),
        "test ineffective: only {acked} operations acknowledged over {cycles} cycles (expected at least one per cycle \
         on average)"
    );
}

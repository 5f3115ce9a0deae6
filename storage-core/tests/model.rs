//! Reference-model property test with crash injection.
//!
//! Random sequences of put / overwrite / delete / copy / multipart / clean restart /
//! crash run against the engine (on the fault-injecting `SimDir`) and against a plain
//! map. After every step both must agree on every key's bytes, on the upload a
//! multipart object was completed from (a retried CompleteMultipartUpload is answered
//! by it) and on the listing.
//!
//! A crash happens at a random point: the simulated disk fails after N more writes or
//! syncs (so an operation can die half-way), then the machine "loses power": unsynced
//! bytes are dropped or torn. An operation that returned Ok was acknowledged and must
//! survive; one that failed may or may not have happened — the model allows both and
//! then learns which from the engine.
//!
//! `QUARRY_PROPTEST_CASES` sets the number of cases (default 48).

use bytes::Bytes;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use storage_core::io::SimDir;
use storage_core::{Body, Engine, EngineConfig, ListQuery, ObjectMeta, ObjectRecord, PartRecord, UploadRecord};

const BUCKET: &str = "model";
const KEYS: u8 = 6;
const CHUNK_BYTES: usize = 1024;

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: u8,
        len: usize,
        seed: u8,
    },
    Delete {
        key: u8,
    },
    Copy {
        from: u8,
        to: u8,
    },
    Multipart {
        key: u8,
        part_lens: Vec<usize>,
        seed: u8,
        abort: bool,
    },
    Restart,
    Crash {
        torn_percent: u8,
        lose_index: bool,
    },
    /// Run `op` with the disk failing after `after_ops` writes/syncs, then crash.
    FailDuring {
        op: Box<Op>,
        after_ops: u8,
        torn_percent: u8,
        lose_index: bool,
    },
}

fn data_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS, 0usize..4000, any::<u8>()).prop_map(|(key, len, seed)| Op::Put { key, len, seed }),
        2 => (0..KEYS).prop_map(|key| Op::Delete { key }),
        1 => (0..KEYS, 0..KEYS).prop_map(|(from, to)| Op::Copy { from, to }),
        1 => (0..KEYS, prop::collection::vec(0usize..2500, 1..4), any::<u8>(), prop::bool::weighted(0.2))
            .prop_map(|(key, part_lens, seed, abort)| Op::Multipart { key, part_lens, seed, abort }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => data_op(),
        1 => Just(Op::Restart),
        1 => (0u8..=100, prop::bool::weighted(0.3)).prop_map(|(torn_percent, lose_index)| Op::Crash { torn_percent, lose_index }),
        2 => (data_op(), 0u8..12, 0u8..=100, prop::bool::weighted(0.3)).prop_map(|(op, after_ops, torn_percent, lose_index)| {
            Op::FailDuring { op: Box::new(op), after_ops, torn_percent, lose_index }
        }),
    ]
}

fn bytes_for(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(seed | 1).wrapping_add(seed)).collect()
}

fn key_name(key: u8) -> String {
    format!("dir/key-{key}")
}

/// What a key holds: its bytes, and for an object CompleteMultipartUpload made, the upload's id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    data: Vec<u8>,
    upload_id: Option<String>,
}

impl Stored {
    fn written(data: Vec<u8>) -> Stored {
        Stored { data, upload_id: None }
    }
}

/// What the model allows for one key: every state it may be in (usually exactly one).
type Allowed = Vec<Option<Stored>>;

struct Harness {
    dir: tempfile::TempDir,
    sim: SimDir,
    engine: Option<Engine>,
    model: BTreeMap<String, Allowed>,
    upload_counter: u64,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimDir::new();
        let mut harness = Harness { dir, sim, engine: None, model: BTreeMap::new(), upload_counter: 0 };
        harness.open();
        harness
    }

    fn config(&self) -> EngineConfig {
        let mut config = EngineConfig::new(self.dir.path());
        config.segment_dir = Some(Arc::new(self.sim.clone()));
        config.chunk_size_bytes = CHUNK_BYTES;
        config.segment_size_limit_bytes = 8 * 1024;
        config.index_cache_bytes = 1024 * 1024;
        config.disk_reserve_bytes = 0;
        config
    }

    fn open(&mut self) {
        self.engine = Some(Engine::open(self.config()).expect("the engine reopens after any crash"));
    }

    fn engine(&self) -> &Engine {
        self.engine.as_ref().unwrap()
    }

    async fn run(&mut self, op: &Op) {
        match op {
            Op::Restart => {
                self.engine().close().await.unwrap();
                self.engine = None;
                self.open();
            }
            Op::Crash { torn_percent, lose_index } => self.crash(*torn_percent, *lose_index),
            Op::FailDuring { op, after_ops, torn_percent, lose_index } => {
                let intended = self.intended(op);
                self.sim.fail_after(*after_ops as u64);
                let acknowledged = self.apply(op).await.is_ok();
                for (key, value) in intended {
                    if acknowledged {
                        self.set(&key, value);
                    } else {
                        // Not acknowledged: the old state or the new one.
                        let allowed = self.model.entry(key).or_insert_with(|| vec![None]);
                        if !allowed.contains(&value) {
                            allowed.push(value);
                        }
                    }
                }
                self.crash(*torn_percent, *lose_index);
            }
            data => {
                let intended = self.intended(data);
                self.apply(data).await.expect("with a healthy disk every operation succeeds");
                for (key, value) in intended {
                    self.set(&key, value);
                }
            }
        }
    }

    /// What a data operation changes if it takes effect. The model is certain at this
    /// point (every check collapses it to what the engine holds).
    fn intended(&self, op: &Op) -> Vec<(String, Option<Stored>)> {
        let current = |key: u8| self.model.get(&key_name(key)).and_then(|states| states[0].clone());
        match op {
            Op::Put { key, len, seed } => vec![(key_name(*key), Some(Stored::written(bytes_for(*len, *seed))))],
            Op::Delete { key } => vec![(key_name(*key), None)],
            // A copy is a new object: it does not carry the source's upload id.
            Op::Copy { from, to } => match current(*from) {
                Some(source) => vec![(key_name(*to), Some(Stored::written(source.data)))],
                None => vec![],
            },
            Op::Multipart { abort: true, .. } => vec![],
            Op::Multipart { key, part_lens, seed, .. } => {
                let whole: Vec<u8> = part_lens
                    .iter()
                    .enumerate()
                    .flat_map(|(i, len)| bytes_for(*len, seed.wrapping_add(i as u8)))
                    .collect();
                let upload_id = Some(upload_id_for(self.upload_counter + 1));
                vec![(key_name(*key), Some(Stored { data: whole, upload_id }))]
            }
            Op::Restart | Op::Crash { .. } | Op::FailDuring { .. } => vec![],
        }
    }

    fn crash(&mut self, torn_percent: u8, lose_index: bool) {
        self.sim.fail_after(0); // power is lost now: nothing more reaches the disk
        self.engine = None; // the writer's last sync fails; the process is "gone"
        self.sim.crash(torn_percent as f64 / 100.0);
        if lose_index {
            std::fs::remove_dir_all(self.dir.path().join("index")).unwrap();
        }
        self.open();
    }

    fn set(&mut self, key: &str, value: Option<Stored>) {
        self.model.insert(key.to_owned(), vec![value]);
    }

    /// Runs a data operation on the engine (the caller updates the model).
    async fn apply(&mut self, op: &Op) -> storage_core::Result<()> {
        let engine = self.engine().clone();
        match op {
            Op::Put { key, len, seed } => {
                let data = bytes_for(*len, *seed);
                let mut writer = engine.body_writer();
                for piece in data.chunks(700) {
                    writer.write(Bytes::copy_from_slice(piece)).await?;
                }
                let body = writer.finish().await?;
                engine.put_object(record(&key_name(*key), data.len() as u64), body).await?;
            }
            Op::Delete { key } => {
                engine.delete_object(BUCKET, &key_name(*key)).await?;
            }
            Op::Copy { from, to } => {
                let Some(source) = engine.object(BUCKET, &key_name(*from))? else { return Ok(()) };
                engine.put_object(record(&key_name(*to), source.meta.size_bytes), Body::Chunks(source.chunks)).await?;
            }
            Op::Multipart { key, part_lens, seed, abort } => {
                self.upload_counter += 1;
                let upload_id = upload_id_for(self.upload_counter);
                let name = key_name(*key);
                engine
                    .create_upload(UploadRecord {
                        bucket: BUCKET.into(),
                        key: name.clone(),
                        upload_id: upload_id.clone(),
                        initiated_ms: 0,
                        meta: ObjectMeta::default(),
                        checksum_algorithm: None,
                        checksum_type: None,
                    })
                    .await?;
                let mut whole = Vec::new();
                let mut chunks = Vec::new();
                for (i, len) in part_lens.iter().enumerate() {
                    let data = bytes_for(*len, seed.wrapping_add(i as u8));
                    let mut writer = engine.body_writer();
                    writer.write(Bytes::from(data.clone())).await?;
                    let body = writer.finish().await?;
                    let part = PartRecord {
                        bucket: BUCKET.into(),
                        key: name.clone(),
                        upload_id: upload_id.clone(),
                        part_number: i as u32 + 1,
                        size_bytes: data.len() as u64,
                        etag: format!("part{i}"),
                        last_modified_ms: 0,
                        checksum: None,
                        chunks: Vec::new(),
                        inline: false,
                    };
                    engine.put_part(part, body).await?;
                    whole.extend_from_slice(&data);
                }
                if *abort {
                    return engine.abort_upload(BUCKET, &name, &upload_id).await;
                }
                for part in engine.index().parts(BUCKET, &name, &upload_id)? {
                    chunks.extend(part.part.chunks);
                }
                let mut object = record(&name, whole.len() as u64);
                object.chunks = chunks;
                object.meta.upload_id = Some(upload_id.clone());
                engine.complete_upload(&upload_id, object).await?;
            }
            Op::Restart | Op::Crash { .. } | Op::FailDuring { .. } => unreachable!("not a data operation"),
        }
        Ok(())
    }

    /// Compares engine and model; where the model allowed several states, it learns
    /// the one the engine is in.
    async fn check(&mut self, step: usize, op: &Op) {
        let engine = self.engine().clone();
        for k in 0..KEYS {
            let name = key_name(k);
            let actual = read_all(&engine, &name)
                .await
                .unwrap_or_else(|e| panic!("step {step} ({op:?}): reading {name} failed: {e}"));
            let allowed = self.model.get(&name).cloned().unwrap_or_else(|| vec![None]);
            assert!(
                allowed.contains(&actual),
                "step {step} ({op:?}): {name} holds {} but the model allows {}",
                describe(&actual),
                allowed.iter().map(describe).collect::<Vec<_>>().join(" or ")
            );
            self.set(&name, actual);
        }
        let page = engine.list_objects(BUCKET, &ListQuery { max_keys: 1000, ..Default::default() }).unwrap();
        let listed: Vec<String> = page.objects.into_iter().map(|(k, _)| k).collect();
        let expected: Vec<String> = self.model.iter().filter(|(_, v)| v[0].is_some()).map(|(k, _)| k.clone()).collect();
        assert_eq!(listed, expected, "step {step} ({op:?}): listing disagrees with the model");
    }
}

fn describe(state: &Option<Stored>) -> String {
    match state {
        None => "nothing".into(),
        Some(Stored { data, upload_id }) => {
            let from = upload_id.as_ref().map(|id| format!(", completed from {id}")).unwrap_or_default();
            format!("{} bytes (blake3 {}{from})", data.len(), &blake3::hash(data).to_hex()[..12])
        }
    }
}

fn upload_id_for(counter: u64) -> String {
    format!("upload-{counter}")
}

fn record(key: &str, size: u64) -> ObjectRecord {
    ObjectRecord::new(BUCKET, key, ObjectMeta { size_bytes: size, etag: "x".into(), ..Default::default() })
}

async fn read_all(engine: &Engine, key: &str) -> storage_core::Result<Option<Stored>> {
    let Some(entry) = engine.object(BUCKET, key)? else { return Ok(None) };
    let mut reader = engine.read(&entry, 0..entry.meta.size_bytes);
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(Some(Stored { data: out, upload_id: entry.meta.upload_id.clone() }))
}

fn cases() -> u32 {
    std::env::var("QUARRY_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2000,
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
            "tests/model.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_model_through_crashes(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let mut harness = Harness::new();
            harness.engine().create_bucket(BUCKET, 0).await.unwrap();
            for (step, op) in ops.iter().enumerate() {
                harness.run(op).await;
                harness.check(step, op).await;
            }
        });
    }
}

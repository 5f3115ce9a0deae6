//! Writes seed inputs for `record_decode` and `sidecar_decode` (valid records and
//! sidecars of every kind, in each target's input modes) under `fuzz/seeds/`.
//!
//!     cd fuzz && cargo run --example gen_seeds
//!
//! Plain build, no fuzzing flags; the fuzz targets' input formats are described at the
//! top of each target.

use bytes::Bytes;
use std::path::Path;
use storage_core::index::RecordLocation;
use storage_core::log_entry::{
    ChunkPiece, LogEntry, ObjectMeta, ObjectRecord, PartRecord, StoredChecksum, UploadRecord,
};
use storage_core::record;
use storage_core::sidecar::{self, SidecarEntry};

fn entries() -> Vec<LogEntry> {
    let meta = ObjectMeta {
        size_bytes: 11,
        etag: "5eb63bbbe01eeed093cb22bb8f5acdc3".into(),
        last_modified_ms: 1_700_000_000_000,
        content_type: Some("text/plain".into()),
        content_encoding: Some("gzip".into()),
        content_disposition: Some("inline".into()),
        content_language: Some("en".into()),
        cache_control: Some("no-cache".into()),
        expires_ms: Some(-1),
        user_metadata: [("a".to_string(), "b".to_string())].into_iter().collect(),
        checksum: Some(StoredChecksum {
            algorithm: "CRC32".into(),
            value: "DUoRhQ==".into(),
            checksum_type: "FULL_OBJECT".into(),
        }),
        part_sizes: Some(vec![5, 6]),
        storage_class: Some("STANDARD_IA".into()),
        upload_id: None,
        tags: [("project".to_string(), "x".to_string())].into_iter().collect(),
        retention: None,
        legal_hold: true,
    };
    let object = ObjectRecord {
        bucket: "bucket".into(),
        key: "dir/key ü".into(),
        meta: meta.clone(),
        chunks: vec![ChunkPiece { lsn: 3, len: 5, offset: 0 }, ChunkPiece { lsn: 4, len: 6, offset: 0 }],
        inline: false,
        if_none_match: true,
        if_none_match_etag: None,
        if_match: Some("*".into()),
        origin: Some(storage_core::log_entry::Origin {
            requester: Some("admin".into()),
            source_ip: Some("127.0.0.1".into()),
            request_id: Some("0123456789abcdef".into()),
        }),
    };
    vec![
        LogEntry::Chunk,
        LogEntry::Object(object.clone()),
        LogEntry::Object(ObjectRecord { meta: ObjectMeta::default(), chunks: vec![], inline: true, ..object.clone() }),
        LogEntry::Tombstone {
            bucket: "bucket".into(),
            key: "k".into(),
            origin: None,
            version_id: None,
            deleted_ms: Some(1),
            conditions: None,
            bypass_governance: false,
        },
        LogEntry::BucketCreate { bucket: "bucket".into(), created_ms: 1, object_lock: false, owner: Some("alice".into()) },
        LogEntry::BucketPolicy { bucket: "bucket".into(), policy: Some("{}".into()) },
        LogEntry::BucketDelete { bucket: "bucket".into() },
        LogEntry::UploadCreate(UploadRecord {
            bucket: "bucket".into(),
            key: "k".into(),
            upload_id: "u1".into(),
            initiated_ms: 2,
            meta: meta.clone(),
            checksum_algorithm: Some("SHA256".into()),
            checksum_type: Some("COMPOSITE".into()),
        }),
        LogEntry::Part(PartRecord {
            bucket: "bucket".into(),
            key: "k".into(),
            upload_id: "u1".into(),
            part_number: 1,
            size_bytes: 5,
            etag: "e".into(),
            last_modified_ms: 3,
            checksum: None,
            chunks: vec![ChunkPiece { lsn: 9, len: 5, offset: 0 }],
            inline: true,
            sealed_data_key: None,
        }),
        LogEntry::UploadComplete { upload_id: "u1".into(), object },
        LogEntry::UploadAbort { bucket: "bucket".into(), key: "k".into(), upload_id: "u1".into() },
        LogEntry::Replaces { segments: vec![1, 2, u64::MAX] },
    ]
}

fn write(dir: &Path, name: String, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let records = root.join("record_decode");
    let sidecars = root.join("sidecar_decode");
    std::fs::create_dir_all(&records).unwrap();
    std::fs::create_dir_all(&sidecars).unwrap();

    let mut side = Vec::new();
    let mut offset = 0u64;
    for (i, entry) in entries().into_iter().enumerate() {
        let lsn = i as u64 + 1;
        let payload = Bytes::from(if i % 2 == 0 { b"hello world".to_vec() } else { vec![] });
        let rec = record::encode(lsn, &entry, payload.clone());
        let mut all = rec.head.clone();
        all.extend_from_slice(&payload);
        let header = &rec.head[record::PREFIX_BYTES..];

        // mode 1: the record without its checksum
        write(&records, format!("mode1-{i}"), &[&[1u8][..], &all].concat());
        all.extend_from_slice(&rec.checksum);
        // mode 0: the whole record
        write(&records, format!("mode0-{i}"), &[&[0u8][..], &all].concat());
        // mode 2: kind | lsn | split | header | payload
        let mut m2 = vec![2u8, entry.kind() as u8];
        m2.extend_from_slice(&lsn.to_le_bytes());
        m2.extend_from_slice(&(header.len() as u16).to_le_bytes());
        m2.extend_from_slice(header);
        m2.extend_from_slice(&payload);
        write(&records, format!("mode2-{i}"), &m2);

        side.push(SidecarEntry {
            lsn,
            location: RecordLocation { segment_id: 7, offset, record_len: rec.len() },
            payload_len: payload.len() as u64,
            kind: entry.kind(),
            header: Bytes::copy_from_slice(header),
        });
        offset += rec.len();
    }

    for n in [0, 1, 3, side.len()] {
        let entries = &side[..n];
        let file = sidecar::encode(entries);
        let body_end = file.len() - 32;
        write(&sidecars, format!("mode0-{n}"), &[&[0u8][..], &file].concat());
        write(&sidecars, format!("mode1-{n}"), &[&[1u8][..], &file[8..body_end]].concat());
        write(&sidecars, format!("mode2-{n}"), &[&[2u8][..], &file[16..body_end]].concat());
        let mut m3 = vec![3u8];
        for e in entries {
            m3.extend_from_slice(&e.lsn.to_le_bytes());
            m3.extend_from_slice(&e.location.offset.to_le_bytes());
            m3.extend_from_slice(&e.payload_len.to_le_bytes());
            m3.push(e.kind as u8);
            m3.extend_from_slice(&(e.header.len() as u16).to_le_bytes());
            m3.extend_from_slice(&e.header);
        }
        write(&sidecars, format!("mode3-{n}"), &m3);
    }
    println!("seeds written under {}", root.display());
}

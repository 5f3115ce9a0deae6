//! Round trip: a structured `LogEntry` (built from the input with `arbitrary`) and a
//! payload → `record::encode` → `record::decode` must give back the same entry, LSN,
//! kind and payload. The decoded record is then put in a sidecar, which must round-trip
//! too and give back the same entry through `SidecarEntry::entry`.
//!
//! The storage-core types do not implement `Arbitrary`, so mirrors of them are
//! generated here and converted.

#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use storage_core::index::RecordLocation;
use storage_core::log_entry::{
    ChunkPiece, DefaultRetention, LockMode, LogEntry, ObjectMeta, ObjectRecord, Origin, PartRecord, Retention,
    StoredChecksum, UploadRecord, VersioningStatus,
};
use storage_core::record;
use storage_core::sidecar::{self, SidecarEntry};

#[derive(Arbitrary, Debug)]
struct Input {
    lsn: u64,
    offset: u32,
    entry: Entry,
    payload: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Entry {
    Chunk,
    Object(Object),
    Tombstone {
        bucket: String,
        key: String,
        version_id: Option<String>,
        deleted_ms: Option<i64>,
        bypass: bool,
    },
    BucketCreate {
        bucket: String,
        created_ms: i64,
        object_lock: bool,
        owner: Option<String>,
    },
    BucketPolicy {
        bucket: String,
        policy: Option<String>,
    },
    BucketDelete {
        bucket: String,
    },
    BucketVersioning {
        bucket: String,
        enabled: bool,
    },
    ObjectTagging {
        bucket: String,
        key: String,
        version_id: Option<String>,
        tags: BTreeMap<String, String>,
    },
    BucketTagging {
        bucket: String,
        tags: BTreeMap<String, String>,
    },
    ObjectRetention {
        bucket: String,
        key: String,
        version_id: Option<String>,
        retention: Option<(bool, i64)>,
        bypass: bool,
        at_ms: i64,
    },
    ObjectLegalHold {
        bucket: String,
        key: String,
        version_id: Option<String>,
        on: bool,
    },
    BucketObjectLock {
        bucket: String,
        default_retention: Option<(bool, Option<u32>, Option<u32>)>,
    },
    UploadCreate(Upload),
    Part(Part),
    UploadComplete {
        upload_id: String,
        object: Object,
    },
    UploadAbort {
        bucket: String,
        key: String,
        upload_id: String,
    },
    Replaces {
        segments: Vec<u64>,
    },
}

#[derive(Arbitrary, Debug)]
struct Checksum {
    algorithm: String,
    value: String,
    checksum_type: String,
}

#[derive(Arbitrary, Debug)]
struct Meta {
    size_bytes: u64,
    etag: String,
    last_modified_ms: i64,
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires_ms: Option<i64>,
    user_metadata: BTreeMap<String, String>,
    checksum: Option<Checksum>,
    part_sizes: Option<Vec<u64>>,
    storage_class: Option<String>,
    tags: BTreeMap<String, String>,
    retention: Option<(bool, i64)>,
    legal_hold: bool,
}

#[derive(Arbitrary, Debug)]
struct Object {
    bucket: String,
    key: String,
    meta: Meta,
    chunks: Vec<(u64, u64, u64)>,
    inline: bool,
    if_none_match: bool,
    if_none_match_etag: Option<String>,
    requester: Option<String>,
    if_match: Option<String>,
}

#[derive(Arbitrary, Debug)]
struct Upload {
    bucket: String,
    key: String,
    upload_id: String,
    initiated_ms: i64,
    meta: Meta,
    checksum_algorithm: Option<String>,
    checksum_type: Option<String>,
}

#[derive(Arbitrary, Debug)]
struct Part {
    bucket: String,
    key: String,
    upload_id: String,
    part_number: u32,
    size_bytes: u64,
    etag: String,
    last_modified_ms: i64,
    checksum: Option<Checksum>,
    chunks: Vec<(u64, u64, u64)>,
    inline: bool,
}

fn retention((compliance, retain_until_ms): (bool, i64)) -> Retention {
    Retention { mode: if compliance { LockMode::Compliance } else { LockMode::Governance }, retain_until_ms }
}

fn checksum(c: Checksum) -> StoredChecksum {
    StoredChecksum { algorithm: c.algorithm, value: c.value, checksum_type: c.checksum_type }
}

fn chunks(c: Vec<(u64, u64, u64)>) -> Vec<ChunkPiece> {
    c.into_iter().map(|(lsn, len, offset)| ChunkPiece { lsn, len, offset }).collect()
}

fn meta(m: Meta) -> ObjectMeta {
    ObjectMeta {
        size_bytes: m.size_bytes,
        etag: m.etag,
        last_modified_ms: m.last_modified_ms,
        content_type: m.content_type,
        content_encoding: m.content_encoding,
        content_disposition: m.content_disposition,
        content_language: m.content_language,
        cache_control: m.cache_control,
        expires_ms: m.expires_ms,
        user_metadata: m.user_metadata,
        checksum: m.checksum.map(checksum),
        part_sizes: m.part_sizes,
        storage_class: m.storage_class,
        upload_id: None,
        tags: m.tags,
        retention: m.retention.map(retention),
        legal_hold: m.legal_hold,
    }
}

fn object(o: Object) -> ObjectRecord {
    ObjectRecord {
        bucket: o.bucket,
        key: o.key,
        meta: meta(o.meta),
        chunks: chunks(o.chunks),
        inline: o.inline,
        if_none_match: o.if_none_match,
        if_none_match_etag: o.if_none_match_etag,
        if_match: o.if_match,
        origin: o.requester.map(|requester| Origin { requester: Some(requester), source_ip: None, request_id: None }),
    }
}

fn log_entry(e: Entry) -> LogEntry {
    match e {
        Entry::Chunk => LogEntry::Chunk,
        Entry::Object(o) => LogEntry::Object(object(o)),
        Entry::Tombstone { bucket, key, version_id, deleted_ms, bypass } => LogEntry::Tombstone {
            bucket,
            key,
            origin: None,
            version_id,
            deleted_ms,
            conditions: None,
            bypass_governance: bypass,
        },
        Entry::BucketCreate { bucket, created_ms, object_lock, owner } => {
            LogEntry::BucketCreate { bucket, created_ms, object_lock, owner }
        }
        Entry::BucketPolicy { bucket, policy } => LogEntry::BucketPolicy { bucket, policy },
        Entry::BucketDelete { bucket } => LogEntry::BucketDelete { bucket },
        Entry::ObjectTagging { bucket, key, version_id, tags } => {
            LogEntry::ObjectTagging { bucket, key, version_id, tags }
        }
        Entry::BucketTagging { bucket, tags } => LogEntry::BucketTagging { bucket, tags },
        Entry::ObjectRetention { bucket, key, version_id, retention: r, bypass, at_ms } => LogEntry::ObjectRetention {
            bucket,
            key,
            version_id,
            retention: r.map(retention),
            bypass_governance: bypass,
            at_ms,
        },
        Entry::ObjectLegalHold { bucket, key, version_id, on } => {
            LogEntry::ObjectLegalHold { bucket, key, version_id, on }
        }
        Entry::BucketObjectLock { bucket, default_retention } => LogEntry::BucketObjectLock {
            bucket,
            default_retention: default_retention.map(|(compliance, days, years)| DefaultRetention {
                mode: if compliance { LockMode::Compliance } else { LockMode::Governance },
                days,
                years,
            }),
        },
        Entry::BucketVersioning { bucket, enabled } => LogEntry::BucketVersioning {
            bucket,
            status: if enabled { VersioningStatus::Enabled } else { VersioningStatus::Suspended },
        },
        Entry::UploadCreate(u) => LogEntry::UploadCreate(UploadRecord {
            bucket: u.bucket,
            key: u.key,
            upload_id: u.upload_id,
            initiated_ms: u.initiated_ms,
            meta: meta(u.meta),
            checksum_algorithm: u.checksum_algorithm,
            checksum_type: u.checksum_type,
        }),
        Entry::Part(p) => LogEntry::Part(PartRecord {
            bucket: p.bucket,
            key: p.key,
            upload_id: p.upload_id,
            part_number: p.part_number,
            size_bytes: p.size_bytes,
            etag: p.etag,
            last_modified_ms: p.last_modified_ms,
            checksum: p.checksum.map(checksum),
            chunks: chunks(p.chunks),
            inline: p.inline,
        }),
        Entry::UploadComplete { upload_id, object: o } => LogEntry::UploadComplete { upload_id, object: object(o) },
        Entry::UploadAbort { bucket, key, upload_id } => LogEntry::UploadAbort { bucket, key, upload_id },
        Entry::Replaces { segments } => LogEntry::Replaces { segments },
    }
}

fuzz_target!(|input: Input| {
    // LSN 0 is never written (the writer starts at 1) and the decoder refuses it.
    let lsn = input.lsn.max(1);
    let entry = log_entry(input.entry);
    let payload = Bytes::from(input.payload);

    let encoded = record::encode(lsn, &entry, payload.clone());
    let mut all = encoded.head.clone();
    all.extend_from_slice(&encoded.payload);
    all.extend_from_slice(&encoded.checksum);
    assert_eq!(all.len() as u64, encoded.len());
    let all = Bytes::from(all);

    let prefix = record::decode_prefix(&all).expect("prefix of an encoded record does not decode");
    let decoded = record::decode(all.clone()).expect("encoded record does not decode");
    assert_eq!(decoded.prefix, prefix);
    assert_eq!(decoded.prefix.lsn, lsn);
    assert_eq!(decoded.prefix.kind, entry.kind());
    assert_eq!(decoded.prefix.record_len(), all.len() as u64);
    assert_eq!(decoded.entry, entry);
    assert_eq!(decoded.payload, payload);

    // The same record as a sidecar entry, behind a record of the previous LSN.
    let first = SidecarEntry {
        lsn: lsn - 1,
        location: RecordLocation { segment_id: 9, offset: 0, record_len: record::record_len(0, 0) },
        payload_len: 0,
        kind: record::RecordKind::Chunk,
        header: Bytes::from_static(b"{\"type\":\"chunk\"}"),
    };
    let first = SidecarEntry {
        location: RecordLocation { record_len: record::record_len(first.header.len(), 0), ..first.location },
        ..first
    };
    let second = SidecarEntry {
        lsn,
        location: RecordLocation {
            segment_id: 9,
            offset: first.location.record_len + input.offset as u64,
            record_len: decoded.prefix.record_len(),
        },
        payload_len: decoded.prefix.payload_len,
        kind: decoded.prefix.kind,
        header: Bytes::copy_from_slice(&decoded.header),
    };
    let entries = vec![first, second];
    let file = sidecar::encode(&entries);
    let back = sidecar::decode(9, &file).expect("encoded sidecar does not decode");
    assert_eq!(back, entries);
    assert_eq!(back[0].entry().expect("chunk header"), LogEntry::Chunk);
    assert_eq!(back[1].entry().expect("sidecar header does not decode"), entry);
});

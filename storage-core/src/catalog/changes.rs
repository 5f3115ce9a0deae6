//! What each record changes in the catalog: a journal row, and the inventory row of
//! the key's current version (or its removal).
//!
//! A record does not say which version it made: that follows from its bucket's
//! versioning state at its LSN, as `index::apply` decides it. The flusher keeps that
//! state ([`Versioning`]) as it reads the log in order, and the manifest stores it with
//! the LSN it is as of.

use super::rows::{InventoryRow, JournalRow, LockColumns, lock_mode_name};
use crate::error::Result;
use crate::index::{Index, ObjectEntry};
use crate::log_entry::{LogEntry, ObjectRecord, Origin, VersioningStatus};
use crate::version::{NULL, VersionId};
use std::collections::BTreeMap;

/// Each bucket's versioning state; a bucket never versioned is absent.
pub(super) type Versioning = BTreeMap<String, VersioningStatus>;

/// What a change contributes to the catalog.
pub(super) enum Change {
    /// A journal row, and the key's current version is now this row.
    Put(JournalRow, Box<InventoryRow>),
    /// A journal row, and the key has no current version any more.
    Delete(JournalRow),
    /// A journal row only (a tag or lock change of a version that is not current).
    Journal(JournalRow),
}

/// Follows bucket records in `versioning`; other records leave it as it is.
pub(super) fn follow_versioning(entry: &LogEntry, versioning: &mut Versioning) {
    match entry {
        LogEntry::BucketCreate { bucket, object_lock: true, .. } => {
            versioning.insert(bucket.clone(), VersioningStatus::Enabled);
        }
        LogEntry::BucketCreate { bucket, .. } | LogEntry::BucketDelete { bucket } => {
            versioning.remove(bucket);
        }
        LogEntry::BucketVersioning { bucket, status } => {
            versioning.insert(bucket.clone(), *status);
        }
        _ => {}
    }
}

/// The id of the version a write at `lsn` makes (none in a bucket never versioned).
fn new_version_id(versioning: &Versioning, bucket: &str, lsn: u64) -> Option<String> {
    versioning.get(bucket).map(|status| match status {
        VersioningStatus::Enabled => VersionId::Lsn(lsn).to_string(),
        VersioningStatus::Suspended => NULL.to_owned(),
    })
}

/// The id of a version the index holds (none in a bucket never versioned).
fn id_of(versioning: &Versioning, bucket: &str, entry: &ObjectEntry) -> Option<String> {
    (entry.versioned || versioning.contains_key(bucket)).then(|| entry.version_id().to_string())
}

fn who(origin: &Option<Origin>) -> (Option<String>, Option<String>, Option<String>) {
    let origin = origin.clone().unwrap_or_default();
    (origin.requester, origin.source_ip, origin.request_id)
}

/// A journal row of `record_type` for `bucket/key` with nothing else filled in.
fn bare_row(record_type: &str, lsn: u64, at_ms: i64, bucket: &str, key: &str) -> JournalRow {
    JournalRow {
        sequence_number: lsn,
        record_type: record_type.into(),
        record_timestamp_ms: at_ms,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version_id: None,
        is_delete_marker: false,
        size: None,
        etag: None,
        content_type: None,
        last_modified_ms: None,
        user_metadata: BTreeMap::new(),
        requester: None,
        source_ip: None,
        request_id: None,
        tags: None,
        lock: LockColumns::default(),
    }
}

/// The catalog change a record at `lsn` makes; `versioning` is the state before it.
///
/// Where the inventory takes a key from the index (a version delete that promoted an
/// older version, a tag or lock change of the current version), it takes it as the
/// index holds it now: the index is at or past this record, and any later change of
/// the key follows with a higher LSN.
pub(super) fn change(entry: &LogEntry, lsn: u64, index: &Index, versioning: &Versioning) -> Result<Option<Change>> {
    let current_row = |bucket: &str, key: &str, entry: &ObjectEntry| {
        InventoryRow::of(bucket, key, id_of(versioning, bucket, entry), &entry.meta, lsn)
    };
    Ok(match entry {
        LogEntry::Object(object) | LogEntry::UploadComplete { object, .. } => {
            Some(put(object, lsn, new_version_id(versioning, &object.bucket, lsn)))
        }
        LogEntry::Tombstone { bucket, key, origin, version_id, deleted_ms, .. } => {
            let at_ms = deleted_ms.unwrap_or_else(super::now_ms);
            let mut row = match version_id {
                Some(version) => JournalRow {
                    version_id: Some(version.clone()),
                    ..bare_row("DELETE_VERSION", lsn, at_ms, bucket, key)
                },
                None => {
                    // In a versioned or suspended bucket, a delete adds a marker.
                    let marker = new_version_id(versioning, bucket, lsn);
                    JournalRow {
                        is_delete_marker: marker.is_some(),
                        version_id: marker,
                        ..bare_row("DELETE", lsn, at_ms, bucket, key)
                    }
                }
            };
            (row.requester, row.source_ip, row.request_id) = who(origin);
            match version_id.as_ref().map(|_| index.object(bucket, key)).transpose()?.flatten() {
                Some(current) => Some(Change::Put(row, Box::new(current_row(bucket, key, &current)))),
                None => Some(Change::Delete(row)),
            }
        }
        LogEntry::ObjectTagging { bucket, key, version_id, tags } => {
            let target = target_id(index, versioning, (bucket, key, version_id), lsn, |v| v.tags_lsn)?;
            let current = index.object(bucket, key)?.filter(|c| c.tags_lsn == Some(lsn));
            let row = JournalRow {
                version_id: target,
                tags: Some(tags.clone()),
                ..bare_row("UPDATE_TAGS", lsn, super::now_ms(), bucket, key)
            };
            Some(with_current(row, current.map(|c| current_row(bucket, key, &c))))
        }
        LogEntry::ObjectRetention { bucket, key, version_id, retention, at_ms, .. } => {
            let target = target_id(index, versioning, (bucket, key, version_id), lsn, |v| v.retention_lsn)?;
            let current = index.object(bucket, key)?.filter(|c| c.retention_lsn == Some(lsn));
            let lock = LockColumns {
                mode: retention.map(|r| lock_mode_name(r.mode).to_owned()),
                retain_until_ms: retention.map(|r| r.retain_until_ms),
                legal_hold: None,
            };
            let row = JournalRow { version_id: target, lock, ..bare_row("UPDATE_RETENTION", lsn, *at_ms, bucket, key) };
            Some(with_current(row, current.map(|c| current_row(bucket, key, &c))))
        }
        LogEntry::ObjectLegalHold { bucket, key, version_id, on } => {
            let target = target_id(index, versioning, (bucket, key, version_id), lsn, |v| v.legal_hold_lsn)?;
            let current = index.object(bucket, key)?.filter(|c| c.legal_hold_lsn == Some(lsn));
            let row = JournalRow {
                version_id: target,
                lock: LockColumns { legal_hold: Some(*on), ..Default::default() },
                ..bare_row("UPDATE_LEGAL_HOLD", lsn, super::now_ms(), bucket, key)
            };
            Some(with_current(row, current.map(|c| current_row(bucket, key, &c))))
        }
        _ => None,
    })
}

fn put(object: &ObjectRecord, lsn: u64, version_id: Option<String>) -> Change {
    let meta = &object.meta;
    let (requester, source_ip, request_id) = who(&object.origin);
    let row = JournalRow {
        version_id: version_id.clone(),
        size: Some(meta.size_bytes),
        etag: Some(meta.etag.clone()),
        content_type: meta.content_type.clone(),
        last_modified_ms: Some(meta.last_modified_ms),
        user_metadata: meta.user_metadata.clone(),
        requester,
        source_ip,
        request_id,
        tags: Some(meta.tags.clone()),
        lock: LockColumns::of(meta),
        ..bare_row("CREATE", lsn, meta.last_modified_ms, &object.bucket, &object.key)
    };
    Change::Put(row, Box::new(InventoryRow::of(&object.bucket, &object.key, version_id, meta, lsn)))
}

/// The version a change at `lsn` to (bucket, key, version) was made to: the one
/// named, or else the latest at the time. That is the newest version older than `lsn`
/// the index still holds, if the change's effect is on it (`changed_at` is the LSN of
/// the last such change to a version); if it was deleted or changed again since, the
/// catalog can no longer tell, and the row names no version.
fn target_id(
    index: &Index,
    versioning: &Versioning,
    (bucket, key, version_id): (&str, &str, &Option<String>),
    lsn: u64,
    changed_at: impl Fn(&ObjectEntry) -> Option<u64>,
) -> Result<Option<String>> {
    if version_id.is_some() {
        return Ok(version_id.clone());
    }
    let then_latest = index.version_before(bucket, key, lsn)?.filter(|v| changed_at(v) == Some(lsn));
    Ok(then_latest.and_then(|v| id_of(versioning, bucket, &v)))
}

fn with_current(row: JournalRow, current: Option<InventoryRow>) -> Change {
    match current {
        Some(inventory) => Change::Put(row, Box::new(inventory)),
        None => Change::Journal(row),
    }
}

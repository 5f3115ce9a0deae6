//! Listing: ListObjects (the latest version of each key, delete markers left out) and
//! ListObjectVersions (every version), as ordered index range scans.

use crate::error::Result;
use crate::index::{self, Index, ObjectEntry, VersionPage};
use crate::version::VersionId;

/// Listing parameters, as ListObjects(V2) gives them.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Only keys (and common prefixes) strictly greater than this.
    pub start_after: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<(String, ObjectEntry)>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// The last key or common prefix returned: where the next page starts after.
    pub last: Option<String>,
}

pub(crate) fn list_objects(index: &Index, bucket: &str, query: &ListQuery) -> Result<ListPage> {
    let mut page = ListPage::default();
    let prefix = query.prefix.as_str();
    let start_after = query.start_after.as_deref();
    let mut from: Vec<u8> = match start_after {
        Some(s) if s >= prefix => {
            let mut v = s.as_bytes().to_vec();
            v.push(0);
            v
        }
        _ => prefix.as_bytes().to_vec(),
    };
    let mut emitted = 0usize;
    'scan: loop {
        for item in index.objects_from(bucket, &from) {
            let (key, entry) = item?;
            if !key.starts_with(prefix) {
                break 'scan;
            }
            if entry.delete_marker {
                continue; // a key whose latest version is a delete marker is not listed
            }
            let group = common_prefix(&key, prefix, query.delimiter.as_deref());
            if let Some(common_prefix) = group {
                from = index::prefix_successor(common_prefix.as_bytes()).expect("a prefix ending in a delimiter");
                if start_after.is_some_and(|s| common_prefix.as_str() <= s) {
                    continue 'scan;
                }
                if emitted == query.max_keys {
                    page.is_truncated = true;
                    break 'scan;
                }
                emitted += 1;
                page.last = Some(common_prefix.clone());
                page.common_prefixes.push(common_prefix);
                continue 'scan;
            }
            if emitted == query.max_keys {
                page.is_truncated = true;
                break 'scan;
            }
            emitted += 1;
            page.last = Some(key.clone());
            page.objects.push((key, entry));
        }
        break;
    }
    Ok(page)
}

/// ListObjectVersions parameters.
#[derive(Debug, Clone, Default)]
pub struct VersionQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Start after this key, or, with `version_id_marker`, after that version of it.
    pub key_marker: Option<String>,
    pub version_id_marker: Option<VersionId>,
    pub max_keys: usize,
}

/// Every version of the keys of `bucket`, in key order, the latest of a key first and
/// then its noncurrent versions newest first: the latest versions (`O`) and the
/// noncurrent ones (`V`) are two ordered scans, merged.
pub(crate) fn list_versions(index: &Index, bucket: &str, query: &VersionQuery) -> Result<VersionPage> {
    let mut page = VersionPage::default();
    let prefix = query.prefix.as_str();
    let marker = query.key_marker.as_deref().filter(|m| !m.is_empty());
    // Versions of the marker key at or above this LSN were on earlier pages (0: all).
    let marker_lsn = match (marker, query.version_id_marker) {
        (Some(key), Some(version)) => match (index.version(bucket, key, version)?, version) {
            (Some(entry), _) => entry.lsn,
            (None, VersionId::Lsn(lsn)) => lsn,
            (None, VersionId::Null) => 0, // gone since: resume after the whole key
        },
        _ => 0,
    };
    let mut from: Vec<u8> = match marker {
        Some(m) if m >= prefix => m.as_bytes().to_vec(),
        _ => prefix.as_bytes().to_vec(),
    };
    let mut emitted = 0usize;
    'scan: loop {
        let mut latest = index.objects_from(bucket, &from);
        let mut noncurrent = index.noncurrent_versions_from(bucket, &from);
        let mut latest_head = latest.next().transpose()?;
        let mut noncurrent_head = noncurrent.next().transpose()?;
        loop {
            // The smaller key first; on a tie the latest version, then the noncurrent ones.
            let take_latest = match (&latest_head, &noncurrent_head) {
                (None, None) => break 'scan,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((a, _)), Some((b, _))) => a <= b,
            };
            let (key, entry) = if take_latest {
                std::mem::replace(&mut latest_head, latest.next().transpose()?)
            } else {
                std::mem::replace(&mut noncurrent_head, noncurrent.next().transpose()?)
            }
            .expect("a head was there");
            if !key.starts_with(prefix) {
                break 'scan; // keys only grow from here
            }
            if marker == Some(key.as_str()) && (marker_lsn == 0 || entry.lsn >= marker_lsn) {
                continue;
            }
            let group = common_prefix(&key, prefix, query.delimiter.as_deref());
            if let Some(common_prefix) = group {
                let Some(next) = index::prefix_successor(common_prefix.as_bytes()) else { break 'scan };
                from = next;
                if marker.is_some_and(|m| common_prefix.as_str() <= m) {
                    continue 'scan;
                }
                if emitted == query.max_keys {
                    page.is_truncated = true;
                    break 'scan;
                }
                emitted += 1;
                page.last = Some((common_prefix.clone(), None));
                page.common_prefixes.push(common_prefix);
                continue 'scan;
            }
            if emitted == query.max_keys {
                page.is_truncated = true;
                break 'scan;
            }
            emitted += 1;
            page.last = Some((key.clone(), Some(entry.version_id())));
            page.versions.push((key, entry, take_latest));
        }
    }
    Ok(page)
}

/// The common prefix `key` rolls up into: the key up to the first `delimiter` after
/// `prefix`, delimiter included (none for an empty delimiter).
fn common_prefix(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    let delimiter = delimiter.filter(|d| !d.is_empty())?;
    key[prefix.len()..].find(delimiter).map(|at| key[..prefix.len() + at + delimiter.len()].to_owned())
}

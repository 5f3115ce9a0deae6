//! Version ids. A version is named by the LSN of the record that made it, so an id
//! needs no state of its own: replay derives the same ids, and compaction keeps LSNs.
//! Versions made while a bucket is unversioned or suspended are the `null` version.

use std::fmt;

pub const NULL: &str = "null";
/// Hex digits of an id: a fixed width, so ids of one key sort as their LSNs do.
const ID_DIGITS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionId {
    Null,
    Lsn(u64),
}

impl VersionId {
    /// `None` for a string Quarry never issues (S3 answers 400 InvalidArgument).
    pub fn parse(text: &str) -> Option<VersionId> {
        if text == NULL {
            return Some(VersionId::Null);
        }
        if text.len() != ID_DIGITS || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        u64::from_str_radix(text, 16).ok().filter(|lsn| *lsn > 0).map(VersionId::Lsn)
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionId::Null => f.write_str(NULL),
            VersionId::Lsn(lsn) => write!(f, "{lsn:0width$x}", width = ID_DIGITS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_strangers_are_refused() {
        for id in [VersionId::Null, VersionId::Lsn(1), VersionId::Lsn(0xabc), VersionId::Lsn(u64::MAX)] {
            assert_eq!(VersionId::parse(&id.to_string()), Some(id), "{id}");
        }
        assert_eq!(VersionId::Lsn(255).to_string(), "00000000000000ff");
        for stranger in ["", "NULL", "0000000000000000", "00000000000000FF", "ff", "000000000000000g", "a-b"] {
            assert_eq!(VersionId::parse(stranger), None, "{stranger:?}");
        }
    }
}

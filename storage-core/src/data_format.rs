//! The data directory's format: `FORMAT` holds `quarry-data <version>`, the newest log
//! format the directory may contain. A build opens a directory of its own version or
//! older (and stamps it with its own), and refuses a newer one with a message naming
//! both versions: an older build would read records it does not know as damage and, at
//! the end of the log, cut them off as a torn tail.
//!
//! | version | what it added |
//! |---|---|
//! | 1 (no `FORMAT` file) | record kinds 1–10, sidecars `QIDX0001`/`QIDX0002` |
//! | 2 | record kinds 11–16 (bucket versioning, object and bucket tagging, object lock), version ids, delete markers and lock bypass in tombstones, sidecars `QIDX0003` |
//! | 3 | record kinds 17–24 (bucket policy, Block Public Access, bucket and object ACLs, Object Ownership, CORS, run-time users and access keys) |
//! | 4 | server-side encryption: encrypted bodies (`encryption` in object metadata, `sealed_data_key` in parts) and record kinds 25–26 (bucket default encryption, bucket lifecycle) |

use crate::error::{Error, Result};
use std::path::Path;

pub const DATA_FORMAT_VERSION: u32 = 4;
const FILE_NAME: &str = "FORMAT";
const PREFIX: &str = "quarry-data ";

/// Checks the directory's format and stamps it with this build's (atomically: a
/// temporary file, fsync, rename, directory fsync). Call with the directory locked.
pub fn check_and_stamp(data_dir: &Path) -> Result<()> {
    let path = data_dir.join(FILE_NAME);
    let found = match std::fs::read_to_string(&path) {
        Ok(text) => Some(
            parse(&text)
                .ok_or_else(|| Error::Corrupt(format!("{} is not a Quarry format file: {text:?}", path.display())))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    match found {
        Some(version) if version > DATA_FORMAT_VERSION => Err(Error::Invalid(format!(
            "{} was written by a newer Quarry (data format {version}); this build reads data formats up to \
             {DATA_FORMAT_VERSION}: run a newer build",
            data_dir.display()
        ))),
        Some(DATA_FORMAT_VERSION) => Ok(()),
        _ => stamp(data_dir),
    }
}

fn parse(text: &str) -> Option<u32> {
    text.trim_end().strip_prefix(PREFIX)?.parse().ok()
}

fn stamp(data_dir: &Path) -> Result<()> {
    use std::io::Write;
    let temporary = data_dir.join(format!("{FILE_NAME}.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(format!("{PREFIX}{DATA_FORMAT_VERSION}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, data_dir.join(FILE_NAME))?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_directories_are_stamped_and_newer_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        check_and_stamp(dir.path()).unwrap();
        let stamped = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(stamped, format!("quarry-data {DATA_FORMAT_VERSION}\n"));
        check_and_stamp(dir.path()).unwrap();

        std::fs::write(dir.path().join(FILE_NAME), "quarry-data 1\n").unwrap();
        check_and_stamp(dir.path()).unwrap();
        assert_eq!(parse(&std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap()), Some(DATA_FORMAT_VERSION));

        let newer = DATA_FORMAT_VERSION + 1;
        std::fs::write(dir.path().join(FILE_NAME), format!("quarry-data {newer}\n")).unwrap();
        let refused = check_and_stamp(dir.path()).unwrap_err().to_string();
        assert!(refused.contains(&format!("data format {newer}")), "{refused}");
        assert_eq!(parse(&std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap()), Some(newer), "left as is");

        std::fs::write(dir.path().join(FILE_NAME), "something else\n").unwrap();
        assert!(check_and_stamp(dir.path()).is_err(), "a file that is not a format file is refused");
    }
}

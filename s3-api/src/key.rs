//! Object key rules for writes, beyond the length s3s checks.

use s3s::{S3Result, s3_error};

/// Every response that names a key is XML (ListObjects without encoding-type,
/// CreateMultipartUpload, ListMultipartUploads, CompleteMultipartUpload), and XML 1.0
/// cannot carry most control characters, not even escaped: an SDK could write such a key
/// but never parse an answer naming it. Refused at write time, so no stored key has one.
pub fn check_new_key(key: &str) -> S3Result<()> {
    match key.chars().find(|&c| !xml_char(c)) {
        None => Ok(()),
        Some(c) => {
            Err(s3_error!(InvalidArgument, "Object keys must not contain U+{:04X}: XML 1.0 cannot carry it", c as u32))
        }
    }
}

/// XML 1.0's Char production (surrogates cannot occur in a Rust `char`).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_xml_cannot_carry_are_refused() {
        for ok in ["a", "dir/file.txt", "tab\tnew\nline\r", "é漢字", "\u{10FFFF}"] {
            assert!(check_new_key(ok).is_ok(), "{ok:?} should be accepted");
        }
        for bad in ["a\0b", "\u{1}", "esc\u{1b}", "\u{7}", "\u{FFFE}", "\u{FFFF}"] {
            assert!(check_new_key(bad).is_err(), "{bad:?} should be refused");
        }
    }
}

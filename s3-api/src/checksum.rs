//! The additional checksums of S3 (x-amz-checksum-*): computing them while a body
//! streams in, comparing them with what the client sent, and combining part checksums
//! into a multipart object's checksum.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use crc_fast::{CrcAlgorithm, Digest as CrcDigest};
use sha1::Digest as _;
use storage_core::StoredChecksum;

pub const FULL_OBJECT: &str = "FULL_OBJECT";
pub const COMPOSITE: &str = "COMPOSITE";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 5] =
        [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme, Algorithm::Sha1, Algorithm::Sha256];

    /// The name S3 uses in x-amz-checksum-algorithm and in responses.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The header that carries this checksum.
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    pub fn parse(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
    }

    pub fn from_header(header: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.header().eq_ignore_ascii_case(header.trim()))
    }

    fn crc(self) -> Option<CrcAlgorithm> {
        match self {
            Algorithm::Crc32 => Some(CrcAlgorithm::Crc32IsoHdlc),
            Algorithm::Crc32c => Some(CrcAlgorithm::Crc32Iscsi),
            Algorithm::Crc64Nvme => Some(CrcAlgorithm::Crc64Nvme),
            Algorithm::Sha1 | Algorithm::Sha256 => None,
        }
    }

    fn crc_width_bytes(self) -> usize {
        if self == Algorithm::Crc64Nvme { 8 } else { 4 }
    }

    /// Whether a multipart object may carry a FULL_OBJECT checksum of this kind (CRCs
    /// can be combined from the parts' values; SHAs cannot).
    pub fn supports_full_object(self) -> bool {
        self.crc().is_some()
    }

    pub fn hasher(self) -> Hasher {
        match self.crc() {
            Some(crc) => Hasher::Crc(self, CrcDigest::new(crc)),
            None if self == Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            None => Hasher::Sha256(sha2::Sha256::new()),
        }
    }
}

pub enum Hasher {
    Crc(Algorithm, CrcDigest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(_, d) => d.update(data),
            Hasher::Sha1(d) => d.update(data),
            Hasher::Sha256(d) => d.update(data),
        }
    }

    /// The digest, base64-encoded as S3 sends it.
    pub fn finish(self) -> String {
        match self {
            Hasher::Crc(algorithm, d) => encode_crc(algorithm, d.finalize()),
            Hasher::Sha1(d) => BASE64.encode(d.finalize()),
            Hasher::Sha256(d) => BASE64.encode(d.finalize()),
        }
    }
}

fn encode_crc(algorithm: Algorithm, value: u64) -> String {
    let width = algorithm.crc_width_bytes();
    BASE64.encode(&value.to_be_bytes()[8 - width..])
}

fn decode_crc(algorithm: Algorithm, value: &str) -> Option<u64> {
    let bytes = BASE64.decode(value).ok()?;
    if bytes.len() != algorithm.crc_width_bytes() {
        return None;
    }
    let mut word = [0u8; 8];
    word[8 - bytes.len()..].copy_from_slice(&bytes);
    Some(u64::from_be_bytes(word))
}

/// The checksum of a multipart object from its parts' checksums (in part order, each
/// with the part's size). `None` when a part lacks a value or the type is impossible.
pub fn combine_parts(algorithm: Algorithm, checksum_type: &str, parts: &[(String, u64)]) -> Option<String> {
    if checksum_type == FULL_OBJECT {
        let crc = algorithm.crc()?;
        let mut combined: Option<u64> = None;
        for (value, size) in parts {
            let part = decode_crc(algorithm, value)?;
            combined = Some(match combined {
                None => part,
                Some(so_far) => crc_fast::checksum_combine(crc, so_far, part, *size),
            });
        }
        // An upload with no parts cannot complete, so `combined` is set here.
        return Some(encode_crc(algorithm, combined?));
    }
    let mut hasher = algorithm.hasher();
    for (value, _) in parts {
        hasher.update(&BASE64.decode(value).ok()?);
    }
    Some(format!("{}-{}", hasher.finish(), parts.len()))
}

/// The form in which a checksum is kept with an object or part.
pub fn stored(algorithm: Algorithm, value: String, checksum_type: &str) -> StoredChecksum {
    StoredChecksum { algorithm: algorithm.name().to_owned(), value, checksum_type: checksum_type.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(algorithm: Algorithm, data: &[u8]) -> String {
        let mut h = algorithm.hasher();
        h.update(data);
        h.finish()
    }

    #[test]
    fn known_values() {
        // Values from the AWS documentation examples / standard check values.
        assert_eq!(digest(Algorithm::Crc32, b"123456789"), BASE64.encode(0xCBF43926u32.to_be_bytes()));
        assert_eq!(digest(Algorithm::Crc32c, b"123456789"), BASE64.encode(0xE3069283u32.to_be_bytes()));
        assert_eq!(digest(Algorithm::Sha256, b""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }

    #[test]
    fn full_object_crc_combines_parts() {
        for algorithm in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme] {
            let (a, b, c) = (vec![1u8; 1000], vec![2u8; 777], vec![3u8; 5]);
            let whole: Vec<u8> = [a.clone(), b.clone(), c.clone()].concat();
            let parts: Vec<(String, u64)> =
                [&a, &b, &c].iter().map(|p| (digest(algorithm, p), p.len() as u64)).collect();
            assert_eq!(combine_parts(algorithm, FULL_OBJECT, &parts), Some(digest(algorithm, &whole)), "{algorithm:?}");
        }
    }

    #[test]
    fn composite_is_hash_of_part_hashes() {
        let parts = vec![(digest(Algorithm::Sha256, b"a"), 1), (digest(Algorithm::Sha256, b"b"), 1)];
        let mut expected = Algorithm::Sha256.hasher();
        for (v, _) in &parts {
            expected.update(&BASE64.decode(v).unwrap());
        }
        assert_eq!(combine_parts(Algorithm::Sha256, COMPOSITE, &parts), Some(format!("{}-2", expected.finish())));
    }
}

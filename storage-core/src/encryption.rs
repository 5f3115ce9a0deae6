//! Server-side encryption at rest: how an encrypted body is laid out, sealed and opened.
//! Which key encrypts what (SSE-S3, SSE-KMS, SSE-C) is s3-api's business; this module
//! only knows data keys.
//!
//! Every body stream (a PutObject's body, one part of a multipart upload) is encrypted
//! under its own random 32-byte data key, so a (key, nonce) pair is never used twice.
//! The plaintext is cut into frames of `FRAME_PLAINTEXT_BYTES`; frame `i` is sealed with
//! ChaCha20-Poly1305 under nonce `i` (big-endian, in the last 8 of 12 bytes) and the
//! associated data `[1]` for the stream's last frame, `[0]` for the others, so frames
//! can be neither reordered nor cut off the end without failing to open. An empty body
//! is no frame at all. Frame format version 1 (`Encryption::format` in the metadata);
//! any other version is refused, never misread.

use bytes::{Bytes, BytesMut};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// The frame format this build writes and reads.
pub const FRAME_FORMAT: u32 = 1;
pub const FRAME_PLAINTEXT_BYTES: u64 = 64 * 1024;
pub const TAG_BYTES: u64 = 16;
pub const SEALED_FRAME_BYTES: u64 = FRAME_PLAINTEXT_BYTES + TAG_BYTES;
pub const DATA_KEY_BYTES: usize = 32;

/// How many bytes a body of `plain_bytes` takes encrypted.
pub fn sealed_len(plain_bytes: u64) -> u64 {
    plain_bytes + plain_bytes.div_ceil(FRAME_PLAINTEXT_BYTES) * TAG_BYTES
}

/// Opens the data keys of an encrypted object with keys the server holds (SSE-S3,
/// SSE-KMS); an error for keys it does not hold (SSE-C), or that do not open.
pub trait DataKeyOpener: Send + Sync {
    fn open(&self, encryption: &crate::Encryption) -> Result<Vec<DataKey>, String>;
}

/// One body stream's data key.
#[derive(Clone)]
pub struct DataKey(Key);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)") // never printed
    }
}

impl DataKey {
    pub fn generate() -> DataKey {
        DataKey(ChaCha20Poly1305::generate_key(&mut chacha20poly1305::aead::OsRng))
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<DataKey> {
        (bytes.len() == DATA_KEY_BYTES).then(|| DataKey(*Key::from_slice(bytes)))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }
}

fn nonce(frame_index: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&frame_index.to_be_bytes());
    *Nonce::from_slice(&nonce)
}

fn frame_aad(last: bool) -> [u8; 1] {
    [u8::from(last)]
}

/// Encrypts one body stream as it arrives. A full frame is held back until more bytes
/// follow, because only `finish` knows which frame is the last.
pub struct FrameSealer {
    cipher: ChaCha20Poly1305,
    pending: BytesMut,
    next_frame: u64,
}

impl FrameSealer {
    pub fn new(key: &DataKey) -> FrameSealer {
        FrameSealer { cipher: ChaCha20Poly1305::new(&key.0), pending: BytesMut::new(), next_frame: 0 }
    }

    /// Takes plaintext; returns the sealed frames now complete (possibly none).
    pub fn push(&mut self, mut data: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        while !data.is_empty() {
            if self.pending.len() as u64 == FRAME_PLAINTEXT_BYTES {
                self.seal_pending(false, &mut out);
            }
            let room = FRAME_PLAINTEXT_BYTES as usize - self.pending.len();
            let take = room.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        out.freeze()
    }

    /// Seals what is left as the last frame.
    pub fn finish(mut self) -> Bytes {
        let mut out = BytesMut::new();
        if !self.pending.is_empty() {
            self.seal_pending(true, &mut out);
        }
        out.freeze()
    }

    fn seal_pending(&mut self, last: bool, out: &mut BytesMut) {
        let mut frame = self.pending.split();
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce(self.next_frame), &frame_aad(last), &mut frame)
            .expect("a frame is far below the cipher's length limit");
        self.next_frame += 1;
        out.extend_from_slice(&frame);
        out.extend_from_slice(&tag);
    }
}

/// Opens sealed frame `frame_index` of a stream; `last` says whether it is the stream's
/// last frame. `None` when it does not open (another key, or changed bytes).
pub fn open_frame(key: &DataKey, frame_index: u64, last: bool, sealed: &[u8]) -> Option<Bytes> {
    let body_len = sealed.len().checked_sub(TAG_BYTES as usize)?;
    let (body, tag) = sealed.split_at(body_len);
    let mut plain = BytesMut::from(body);
    ChaCha20Poly1305::new(&key.0)
        .decrypt_in_place_detached(&nonce(frame_index), &frame_aad(last), &mut plain, tag.into())
        .ok()?;
    Some(plain.freeze())
}

/// The stored bytes to read for a plaintext range of an encrypted object, stream by
/// stream (`part_sizes`: the plaintext size of each stream, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRead {
    /// Which stream (index into the object's data keys).
    pub stream: usize,
    /// Frames `first_frame..` are read; the stored range holds exactly them.
    pub first_frame: u64,
    /// The frame count of the whole stream (to know its last frame).
    pub stream_frames: u64,
    /// The byte range in the object's stored (encrypted) body.
    pub stored: std::ops::Range<u64>,
    /// The plaintext bytes wanted, counted from the start of `first_frame`.
    pub wanted: std::ops::Range<u64>,
}

/// Maps a plaintext range onto the streams and frames that hold it.
pub fn plan_read(part_sizes: &[u64], range: std::ops::Range<u64>) -> Vec<StreamRead> {
    let mut reads = Vec::new();
    let (mut plain_start, mut stored_start) = (0u64, 0u64);
    for (stream, &size) in part_sizes.iter().enumerate() {
        let plain_end = plain_start + size;
        let from = range.start.max(plain_start);
        let to = range.end.min(plain_end);
        if from < to {
            let (local_from, local_to) = (from - plain_start, to - plain_start);
            let first_frame = local_from / FRAME_PLAINTEXT_BYTES;
            let end_frame = local_to.div_ceil(FRAME_PLAINTEXT_BYTES);
            let frames_start = first_frame * FRAME_PLAINTEXT_BYTES;
            let stored_end = (end_frame * SEALED_FRAME_BYTES).min(sealed_len(size));
            reads.push(StreamRead {
                stream,
                first_frame,
                stream_frames: size.div_ceil(FRAME_PLAINTEXT_BYTES),
                stored: stored_start + first_frame * SEALED_FRAME_BYTES..stored_start + stored_end,
                wanted: local_from - frames_start..local_to - frames_start,
            });
        }
        plain_start = plain_end;
        stored_start += sealed_len(size);
    }
    reads
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_all(key: &DataKey, data: &[u8], piece: usize) -> Vec<u8> {
        let mut sealer = FrameSealer::new(key);
        let mut out = Vec::new();
        for chunk in data.chunks(piece.max(1)) {
            out.extend_from_slice(&sealer.push(chunk));
        }
        out.extend_from_slice(&sealer.finish());
        out
    }

    fn open_all(key: &DataKey, sealed: &[u8], plain_len: u64) -> Option<Vec<u8>> {
        let frames = plain_len.div_ceil(FRAME_PLAINTEXT_BYTES);
        let mut out = Vec::new();
        for (i, frame) in sealed.chunks(SEALED_FRAME_BYTES as usize).enumerate() {
            out.extend_from_slice(&open_frame(key, i as u64, i as u64 + 1 == frames, frame)?);
        }
        Some(out)
    }

    #[test]
    fn bodies_of_every_length_round_trip_whatever_pieces_they_arrive_in() {
        let key = DataKey::generate();
        let frame = FRAME_PLAINTEXT_BYTES as usize;
        for len in [0, 1, 13, frame - 1, frame, frame + 1, 3 * frame, 3 * frame + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            for piece in [1000, frame, 3 * frame + 1] {
                let sealed = seal_all(&key, &data, piece);
                assert_eq!(sealed.len() as u64, sealed_len(len as u64), "len {len} piece {piece}");
                assert_eq!(open_all(&key, &sealed, len as u64).as_deref(), Some(&data[..]), "len {len}");
                if len > 0 {
                    assert_ne!(&sealed[..len.min(64)], &data[..len.min(64)], "ciphertext equals plaintext");
                }
            }
        }
    }

    #[test]
    fn another_key_a_changed_byte_a_reordered_or_cut_stream_do_not_open() {
        let key = DataKey::generate();
        let frame = FRAME_PLAINTEXT_BYTES as usize;
        let data = vec![5u8; 2 * frame + 10];
        let sealed = seal_all(&key, &data, 4096);
        assert!(open_all(&DataKey::generate(), &sealed, data.len() as u64).is_none(), "another key opened it");
        let mut changed = sealed.clone();
        changed[frame + 40] ^= 1;
        assert!(open_all(&key, &changed, data.len() as u64).is_none(), "a changed byte opened");
        // Cut after the second frame: that frame was sealed as not-last.
        let cut = &sealed[..2 * SEALED_FRAME_BYTES as usize];
        assert!(open_all(&key, cut, 2 * frame as u64).is_none(), "a cut stream opened");
        let second = &sealed[SEALED_FRAME_BYTES as usize..2 * SEALED_FRAME_BYTES as usize];
        assert!(open_frame(&key, 0, false, second).is_none(), "a frame opened at another position");
    }

    #[test]
    fn a_planned_read_yields_exactly_the_range() {
        let frame = FRAME_PLAINTEXT_BYTES as usize;
        let parts = [2 * frame as u64 + 5, 7, frame as u64];
        let keys: Vec<DataKey> = parts.iter().map(|_| DataKey::generate()).collect();
        let plain: Vec<Vec<u8>> =
            parts.iter().enumerate().map(|(p, &n)| (0..n).map(|i| (i as usize * 3 + p) as u8).collect()).collect();
        let mut stored = Vec::new();
        for (key, data) in keys.iter().zip(&plain) {
            stored.extend(seal_all(key, data, 9999));
        }
        let whole: Vec<u8> = plain.concat();
        let total = whole.len() as u64;
        for range in [0..total, 0..1, 5..frame as u64 + 3, frame as u64..2 * frame as u64 + 9, total - 1..total] {
            let mut got = Vec::new();
            for read in plan_read(&parts, range.clone()) {
                let bytes = &stored[read.stored.start as usize..read.stored.end as usize];
                let mut opened = Vec::new();
                for (i, f) in bytes.chunks(SEALED_FRAME_BYTES as usize).enumerate() {
                    let index = read.first_frame + i as u64;
                    opened.extend(open_frame(&keys[read.stream], index, index + 1 == read.stream_frames, f).unwrap());
                }
                got.extend_from_slice(&opened[read.wanted.start as usize..read.wanted.end as usize]);
            }
            assert_eq!(got, whole[range.start as usize..range.end as usize], "range {range:?}");
        }
    }
}

//! Access key secrets at rest. A secret made at run time is sealed with
//! ChaCha20-Poly1305 under the server key before it reaches the log, and opened only in
//! memory, for signature checks. The access key is the AEAD's associated data, so a
//! sealed secret copied onto another key does not open.
//!
//! Sealed form (versioned; another version is refused, never misread):
//! `v1:<nonce, 24 hex digits>:<ciphertext and tag, hex>`.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

const SEALED_VERSION: &str = "v1";
pub const SERVER_KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

/// The key that seals secrets at rest (32 bytes; 64 hex digits in its file or env).
#[derive(Clone)]
pub struct ServerKey(Key);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(..)") // never printed
    }
}

impl ServerKey {
    pub fn generate() -> ServerKey {
        ServerKey(ChaCha20Poly1305::generate_key(&mut chacha20poly1305::aead::OsRng))
    }

    pub fn from_hex(text: &str) -> Result<ServerKey, String> {
        let bytes = hex::decode(text.trim()).map_err(|_| "the server key is not hex".to_owned())?;
        if bytes.len() != SERVER_KEY_BYTES {
            return Err(format!(
                "the server key must be {SERVER_KEY_BYTES} bytes ({} hex digits)",
                SERVER_KEY_BYTES * 2
            ));
        }
        Ok(ServerKey(*Key::from_slice(&bytes)))
    }

    /// A key for one purpose (`context`, fixed per purpose) and `id`, derived from this
    /// one with BLAKE3's key derivation and keyed hash.
    pub fn derive(&self, context: &str, id: &[u8]) -> [u8; 32] {
        let purpose_key = blake3::derive_key(context, self.0.as_slice());
        *blake3::keyed_hash(&purpose_key, id).as_bytes()
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_slice())
    }

    pub fn seal(&self, access_key: &str, secret: &str) -> String {
        seal(&self.0, access_key.as_bytes(), secret.as_bytes())
    }

    /// The secret of `access_key`; an error if this key did not seal it (another server
    /// key), the text was changed, or it is of a version this build does not know.
    pub fn open(&self, access_key: &str, sealed: &str) -> Result<String, String> {
        let opened = open(&self.0, access_key.as_bytes(), sealed).map_err(|e| match e {
            OpenError::Malformed => format!("the sealed secret of {access_key} is malformed"),
            OpenError::UnknownVersion(version) => {
                format!("the secret of {access_key} is sealed in format {version:?}, unknown to this build")
            }
            OpenError::WrongKey => {
                format!("the server key does not open the secret of {access_key} (another server key?)")
            }
        })?;
        String::from_utf8(opened).map_err(|_| format!("the secret of {access_key} is not text"))
    }
}

/// Why a sealed text did not open.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    Malformed,
    UnknownVersion(String),
    /// Another key sealed it, or the text was changed.
    WrongKey,
}

/// Seals `msg` under `key` with ChaCha20-Poly1305 and a random nonce, `aad` bound to it:
/// `v1:<nonce hex>:<ciphertext and tag hex>` (secrets, and SSE data keys).
pub fn seal(key: &Key, aad: &[u8], msg: &[u8]) -> String {
    let nonce = ChaCha20Poly1305::generate_nonce(&mut chacha20poly1305::aead::OsRng);
    let sealed =
        ChaCha20Poly1305::new(key).encrypt(&nonce, Payload { msg, aad }).expect("sealing a short message cannot fail");
    format!("{SEALED_VERSION}:{}:{}", hex::encode(nonce), hex::encode(sealed))
}

/// Opens what `seal` made with the same key and `aad`.
pub fn open(key: &Key, aad: &[u8], sealed: &str) -> Result<Vec<u8>, OpenError> {
    let mut parts = sealed.splitn(3, ':');
    let (Some(version), Some(nonce), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(OpenError::Malformed);
    };
    if version != SEALED_VERSION {
        return Err(OpenError::UnknownVersion(version.to_owned()));
    }
    let nonce = hex::decode(nonce).ok().filter(|n| n.len() == NONCE_BYTES).ok_or(OpenError::Malformed)?;
    let body = hex::decode(body).map_err(|_| OpenError::Malformed)?;
    ChaCha20Poly1305::new(key)
        .decrypt(Nonce::from_slice(&nonce), Payload { msg: &body, aad })
        .map_err(|_| OpenError::WrongKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_server_key_and_access_key() {
        let key = ServerKey::generate();
        let sealed = key.seal("AK1", "the secret");
        assert!(!sealed.contains("the secret"), "sealed text carries the secret in the clear: {sealed}");
        assert_eq!(key.open("AK1", &sealed).unwrap(), "the secret");
        assert!(key.open("AK2", &sealed).is_err(), "a secret moved to another key must not open");
        assert!(ServerKey::generate().open("AK1", &sealed).is_err(), "another server key must not open it");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        assert!(key.open("AK1", std::str::from_utf8(&tampered).unwrap()).is_err(), "a changed seal must not open");
        assert!(key.open("AK1", &sealed.replacen("v1", "v9", 1)).unwrap_err().contains("unknown"));
        let again = ServerKey::from_hex(&key.to_hex()).unwrap();
        assert_eq!(again.open("AK1", &sealed).unwrap(), "the secret");
        assert!(ServerKey::from_hex("abcd").is_err());
    }
}

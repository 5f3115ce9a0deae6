//! Server-side encryption as S3 defines it: which scheme a write asks for (SSE-S3,
//! SSE-KMS, SSE-C, or the bucket's default), the key that seals each body stream's data
//! key, and the headers that report it. The frames themselves are
//! `storage_core::encryption`'s.
//!
//! Keys:
//! - SSE-S3: one key-encryption key derived from the server key.
//! - SSE-KMS: Quarry's built-in key service: the key named `id` is derived from the
//!   server key and the id, so every well-formed id names a key (no key store to keep);
//!   without an id, `aws/s3`, as AWS uses its managed key.
//! - SSE-C: the client's 256-bit key, checked against its MD5, used and forgotten; the
//!   MD5 is kept to tell a wrong key from a damaged object.
//!
//! A data key is sealed with ChaCha20-Poly1305: `v1:<nonce hex>:<ciphertext hex>`;
//! another version is refused.

use crate::secrets::ServerKey;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::Key;
use md5::{Digest, Md5};
use s3s::dto::ServerSideEncryption;
use s3s::{S3Error, S3Result, s3_error};
use storage_core::encryption::{DataKey, FRAME_FORMAT};
use storage_core::{BucketEncryption, Encryption, SseScheme};

/// The key id SSE-KMS uses when a request names none.
pub const DEFAULT_KMS_KEY_ID: &str = "aws/s3";
const MAX_KMS_KEY_ID_BYTES: usize = 2048;
const MAX_KMS_CONTEXT_BYTES: usize = 4096;
const SEALED_KEY_AAD: &[u8] = b"quarry data key v1";

/// A client's SSE-C key, checked against its MD5.
#[derive(Clone)]
pub struct CustomerKey {
    key: [u8; 32],
    /// base64, as the client sent it (and as responses repeat it).
    pub md5: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CustomerKey(md5 {})", self.md5) // the key itself is never printed
    }
}

/// The three SSE-C headers of a request (or the three copy-source ones).
pub struct CustomerHeaders<'a> {
    pub algorithm: Option<&'a String>,
    pub key: Option<&'a String>,
    pub key_md5: Option<&'a String>,
}

/// The SSE-C key a request carries, if any, checked as S3 checks it.
pub fn customer_key(h: CustomerHeaders<'_>) -> S3Result<Option<CustomerKey>> {
    let invalid = |message: &str| s3_error!(InvalidArgument, "{message}");
    match (h.algorithm, h.key, h.key_md5) {
        (None, None, None) => return Ok(None),
        (None, _, _) => {
            return Err(invalid(
                "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.",
            ));
        }
        (Some(_), None, _) => {
            return Err(invalid(
                "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key.",
            ));
        }
        (Some(_), Some(_), None) => {
            return Err(invalid(
                "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key.",
            ));
        }
        _ => {}
    }
    let (algorithm, key, md5) = (h.algorithm.unwrap(), h.key.unwrap(), h.key_md5.unwrap());
    if algorithm != "AES256" {
        return Err(crate::error::custom(
            "InvalidEncryptionAlgorithmError",
            http::StatusCode::BAD_REQUEST,
            "The encryption request you specified is not valid. The valid value is AES256.",
        ));
    }
    let key: [u8; 32] = BASE64
        .decode(key.trim())
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| invalid("The secret key was invalid for the specified algorithm."))?;
    let computed = BASE64.encode(Md5::digest(key));
    if computed != md5.trim() {
        return Err(invalid("The calculated MD5 hash of the key did not match the hash that was provided."));
    }
    Ok(Some(CustomerKey { key, md5: computed }))
}

/// The SSE-C key a request's three headers carry (`copy_source`: the three headers that
/// name the key of a copy's source), checked by `customer_key`.
macro_rules! customer_key_of {
    ($input:expr) => {
        $crate::sse::customer_key($crate::sse::CustomerHeaders {
            algorithm: $input.sse_customer_algorithm.as_ref(),
            key: $input.sse_customer_key.as_ref(),
            key_md5: $input.sse_customer_key_md5.as_ref(),
        })
    };
    (copy_source $input:expr) => {
        $crate::sse::customer_key($crate::sse::CustomerHeaders {
            algorithm: $input.copy_source_sse_customer_algorithm.as_ref(),
            key: $input.copy_source_sse_customer_key.as_ref(),
            key_md5: $input.copy_source_sse_customer_key_md5.as_ref(),
        })
    };
}
pub(crate) use customer_key_of;

/// What a write asks for: the headers of PutObject, CopyObject (destination) and
/// CreateMultipartUpload, and POST forms.
pub struct WriteHeaders<'a> {
    pub server_side_encryption: Option<&'a ServerSideEncryption>,
    pub kms_key_id: Option<&'a String>,
    pub kms_context: Option<&'a String>,
    pub bucket_key_enabled: Option<bool>,
    pub customer: CustomerHeaders<'a>,
}

macro_rules! write_headers {
    ($input:expr) => {
        $crate::sse::WriteHeaders {
            server_side_encryption: $input.server_side_encryption.as_ref(),
            kms_key_id: $input.ssekms_key_id.as_ref(),
            kms_context: $input.ssekms_encryption_context.as_ref(),
            bucket_key_enabled: $input.bucket_key_enabled,
            customer: $crate::sse::CustomerHeaders {
                algorithm: $input.sse_customer_algorithm.as_ref(),
                key: $input.sse_customer_key.as_ref(),
                key_md5: $input.sse_customer_key_md5.as_ref(),
            },
        }
    };
}
pub(crate) use write_headers;

/// How a write will be encrypted: the scheme and its key. `None`: not encrypted.
#[derive(Debug, Clone)]
pub struct WriteEncryption {
    pub scheme: SseScheme,
    pub kms_key_id: Option<String>,
    pub kms_context: Option<String>,
    pub bucket_key_enabled: bool,
    customer: Option<CustomerKey>,
}

/// A key id (or alias, or ARN) of the built-in key service: 1 to 2048 characters of
/// letters, digits and `/_:.-`.
pub fn check_kms_key_id(id: &str) -> S3Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_KMS_KEY_ID_BYTES
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_:.-".contains(&b));
    if !ok {
        return Err(crate::error::custom(
            "KMS.NotFoundException",
            http::StatusCode::BAD_REQUEST,
            format!("Invalid keyId {id}"),
        ));
    }
    Ok(())
}

/// Decides a write's encryption from its headers, else the bucket's default.
pub fn for_write(h: WriteHeaders<'_>, default: Option<&BucketEncryption>) -> S3Result<Option<WriteEncryption>> {
    let customer = customer_key(h.customer)?;
    let scheme = match h.server_side_encryption.map(ServerSideEncryption::as_str) {
        None => None,
        Some("AES256") => Some(SseScheme::S3),
        Some("aws:kms") => Some(SseScheme::Kms),
        Some("aws:kms:dsse") => {
            return Err(s3_error!(NotImplemented, "Dual-layer server-side encryption (aws:kms:dsse) is not supported"));
        }
        Some(other) => {
            return Err(s3_error!(InvalidArgument, "The encryption method specified is not supported: {other}"));
        }
    };
    if customer.is_some() && scheme.is_some() {
        return Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
        ));
    }
    if scheme != Some(SseScheme::Kms) && (h.kms_key_id.is_some() || h.kms_context.is_some()) {
        return Err(s3_error!(
            InvalidArgument,
            "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms"
        ));
    }
    if let Some(id) = h.kms_key_id {
        check_kms_key_id(id)?;
    }
    if let Some(context) = h.kms_context {
        let decoded = BASE64.decode(context.trim()).ok().filter(|_| context.len() <= MAX_KMS_CONTEXT_BYTES);
        let is_json_object = decoded
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
            .is_some_and(|v| v.as_object().is_some_and(|o| o.values().all(serde_json::Value::is_string)));
        if !is_json_object {
            return Err(s3_error!(
                InvalidArgument,
                "The x-amz-server-side-encryption-context header must be base64 of a JSON object of strings"
            ));
        }
    }
    if let Some(customer) = customer {
        return Ok(Some(WriteEncryption {
            scheme: SseScheme::Customer,
            kms_key_id: None,
            kms_context: None,
            bucket_key_enabled: false,
            customer: Some(customer),
        }));
    }
    let bucket_key_enabled = h.bucket_key_enabled.unwrap_or(false);
    Ok(match (scheme, default) {
        (Some(SseScheme::Kms), _) => Some(WriteEncryption {
            scheme: SseScheme::Kms,
            kms_key_id: Some(h.kms_key_id.cloned().unwrap_or_else(|| DEFAULT_KMS_KEY_ID.to_owned())),
            kms_context: h.kms_context.cloned(),
            bucket_key_enabled,
            customer: None,
        }),
        (Some(scheme), _) => {
            Some(WriteEncryption { scheme, kms_key_id: None, kms_context: None, bucket_key_enabled, customer: None })
        }
        (None, Some(default)) => Some(WriteEncryption {
            scheme: default.scheme,
            kms_key_id: (default.scheme == SseScheme::Kms)
                .then(|| default.kms_key_id.clone().unwrap_or_else(|| DEFAULT_KMS_KEY_ID.to_owned())),
            kms_context: None,
            bucket_key_enabled: default.bucket_key_enabled,
            customer: None,
        }),
        (None, None) => None,
    })
}

/// The key that seals data keys of a scheme (and KMS key id, or customer key).
fn key_encryption_key(
    server_key: Option<&ServerKey>,
    scheme: SseScheme,
    kms_key_id: Option<&str>,
    customer: Option<&CustomerKey>,
) -> S3Result<[u8; 32]> {
    let server = || {
        server_key.ok_or_else(|| {
            s3_error!(NotImplemented, "Server-side encryption needs the server key, which this server does not have")
        })
    };
    Ok(match scheme {
        SseScheme::S3 => server()?.derive("quarry sse-s3 key-encryption key v1", b""),
        SseScheme::Kms => server()?
            .derive("quarry sse-kms key-encryption key v1", kms_key_id.unwrap_or(DEFAULT_KMS_KEY_ID).as_bytes()),
        SseScheme::Customer => {
            customer.ok_or_else(|| s3_error!(InternalError, "an SSE-C key-encryption key without the key"))?.key
        }
    })
}

fn seal_data_key(kek: &[u8; 32], data_key: &DataKey) -> String {
    crate::secrets::seal(Key::from_slice(kek), SEALED_KEY_AAD, data_key.as_bytes())
}

fn open_data_key(kek: &[u8; 32], sealed: &str) -> Option<DataKey> {
    DataKey::from_bytes(&crate::secrets::open(Key::from_slice(kek), SEALED_KEY_AAD, sealed).ok()?)
}

impl WriteEncryption {
    /// A new data key for one body stream, and its sealed form for the metadata.
    pub fn new_stream(&self, server_key: Option<&ServerKey>) -> S3Result<(DataKey, String)> {
        let kek = key_encryption_key(server_key, self.scheme, self.kms_key_id.as_deref(), self.customer.as_ref())?;
        let data_key = DataKey::generate();
        let sealed = seal_data_key(&kek, &data_key);
        Ok((data_key, sealed))
    }

    /// The metadata an object (or upload) records; data keys are added by the caller.
    pub fn record(&self) -> Encryption {
        Encryption {
            scheme: self.scheme,
            format: FRAME_FORMAT,
            kms_key_id: self.kms_key_id.clone(),
            kms_context: self.kms_context.clone(),
            customer_key_md5: self.customer.as_ref().map(|c| c.md5.clone()),
            bucket_key_enabled: self.bucket_key_enabled,
            sealed_data_keys: Vec::new(),
        }
    }

    /// The same encryption an upload recorded, for one of its parts: SSE-C needs the
    /// client's key again (and the same one).
    pub fn of_upload(upload: &Encryption, customer: Option<CustomerKey>) -> S3Result<WriteEncryption> {
        let customer = check_customer_key(upload, customer)?;
        Ok(WriteEncryption {
            scheme: upload.scheme,
            kms_key_id: upload.kms_key_id.clone(),
            kms_context: upload.kms_context.clone(),
            bucket_key_enabled: upload.bucket_key_enabled,
            customer,
        })
    }

    /// The ETag of a body with this MD5. For SSE-C one that says nothing of the
    /// plaintext to whoever lacks the key (S3's is not the MD5 either), yet the same for
    /// the same bytes and key, so a part sent again keeps its ETag: a keyed BLAKE3 hash
    /// of the MD5 under the client's key.
    pub fn etag(&self, plain_md5: &[u8; 16]) -> String {
        match (self.scheme, &self.customer) {
            (SseScheme::Customer, Some(customer)) => {
                let keyed = blake3::keyed_hash(&customer.key, plain_md5);
                hex::encode(&keyed.as_bytes()[..16])
            }
            _ => hex::encode(plain_md5),
        }
    }
}

/// Checks that a read or part of an SSE-C object carries the key it was written with.
fn check_customer_key(stored: &Encryption, given: Option<CustomerKey>) -> S3Result<Option<CustomerKey>> {
    match (stored.scheme, given) {
        (SseScheme::Customer, None) => Err(s3_error!(
            InvalidRequest,
            "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
        )),
        (SseScheme::Customer, Some(key)) => {
            if stored.customer_key_md5.as_deref() != Some(key.md5.as_str()) {
                return Err(wrong_customer_key());
            }
            Ok(Some(key))
        }
        (_, Some(_)) => Err(not_applicable()),
        (_, None) => Ok(None),
    }
}

fn wrong_customer_key() -> S3Error {
    s3_error!(AccessDenied, "The SSE-C key provided does not match the key the object was encrypted with.")
}

fn not_applicable() -> S3Error {
    s3_error!(InvalidRequest, "The encryption parameters are not applicable to this object.")
}

/// The data keys to read an object (`None` for one stored unencrypted), checking the
/// request's SSE-C key against how the object was written.
pub fn data_keys(
    server_key: Option<&ServerKey>,
    stored: Option<&Encryption>,
    customer: Option<CustomerKey>,
) -> S3Result<Option<Vec<DataKey>>> {
    let Some(stored) = stored else {
        return match customer {
            Some(_) => Err(not_applicable()),
            None => Ok(None),
        };
    };
    if stored.format != FRAME_FORMAT {
        return Err(s3_error!(
            InternalError,
            "The object is encrypted in frame format {}, which this build does not read",
            stored.format
        ));
    }
    let customer = check_customer_key(stored, customer)?;
    let kek = key_encryption_key(server_key, stored.scheme, stored.kms_key_id.as_deref(), customer.as_ref())?;
    stored
        .sealed_data_keys
        .iter()
        .map(|sealed| {
            open_data_key(&kek, sealed).ok_or_else(|| match stored.scheme {
                SseScheme::Customer => wrong_customer_key(),
                _ => {
                    tracing::error!("an SSE data key does not open with the server key (another server key?)");
                    s3_error!(InternalError, "The object's data key does not open with this server's key.")
                }
            })
        })
        .collect::<S3Result<Vec<_>>>()
        .map(Some)
}

/// Opens the data keys of SSE-S3 and SSE-KMS objects for the engine's readers (the SQL
/// engine and S3 Select read through `Engine::read`); SSE-C objects need their
/// client's key, which only a request brings.
pub struct ServerDataKeys(pub ServerKey);

impl storage_core::encryption::DataKeyOpener for ServerDataKeys {
    fn open(&self, encryption: &Encryption) -> Result<Vec<DataKey>, String> {
        if encryption.scheme == SseScheme::Customer {
            return Err(
                "it is encrypted with a customer-provided key (SSE-C), which this request does not bring".into()
            );
        }
        match data_keys(Some(&self.0), Some(encryption), None) {
            Ok(keys) => Ok(keys.unwrap_or_default()),
            Err(e) => Err(e.message().unwrap_or("its data key does not open").to_owned()),
        }
    }
}

/// Seals `data_keys` again for another encryption (a copy whose destination is
/// encrypted differently: the frames stay, only their keys' seals change).
pub fn reseal(server_key: Option<&ServerKey>, data_keys: &[DataKey], to: &WriteEncryption) -> S3Result<Vec<String>> {
    let kek = key_encryption_key(server_key, to.scheme, to.kms_key_id.as_deref(), to.customer.as_ref())?;
    Ok(data_keys.iter().map(|k| seal_data_key(&kek, k)).collect())
}

/// GET and HEAD take no x-amz-server-side-encryption header (an encrypted object is
/// read with nothing but, for SSE-C, its key).
pub fn refuse_on_read(headers: &http::HeaderMap) -> S3Result<()> {
    if headers.contains_key("x-amz-server-side-encryption")
        || headers.contains_key("x-amz-server-side-encryption-aws-kms-key-id")
    {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-server-side-encryption headers are not supported for GET and HEAD requests"
        ));
    }
    Ok(())
}

/// The response fields that report an object's encryption.
pub struct Reported {
    pub server_side_encryption: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
    pub customer_algorithm: Option<String>,
    pub customer_key_md5: Option<String>,
    pub bucket_key_enabled: Option<bool>,
}

pub fn reported(encryption: Option<&Encryption>) -> Reported {
    let Some(e) = encryption else {
        return Reported {
            server_side_encryption: None,
            kms_key_id: None,
            customer_algorithm: None,
            customer_key_md5: None,
            bucket_key_enabled: None,
        };
    };
    let sse = match e.scheme {
        SseScheme::S3 => Some(ServerSideEncryption::from_static(ServerSideEncryption::AES256)),
        SseScheme::Kms => Some(ServerSideEncryption::from_static(ServerSideEncryption::AWS_KMS)),
        SseScheme::Customer => None,
    };
    Reported {
        server_side_encryption: sse,
        kms_key_id: e.kms_key_id.clone(),
        customer_algorithm: (e.scheme == SseScheme::Customer).then(|| "AES256".to_owned()),
        customer_key_md5: e.customer_key_md5.clone(),
        bucket_key_enabled: e.bucket_key_enabled.then_some(true),
    }
}

/// Sets an output's encryption fields (object responses have the same five;
/// CompleteMultipartUpload's lacks the SSE-C two, and S3 sends them there too).
macro_rules! report {
    ($output:expr, $encryption:expr) => {{
        let r = $crate::sse::reported($encryption);
        $output.sse_customer_algorithm = r.customer_algorithm.clone();
        $output.sse_customer_key_md5 = r.customer_key_md5.clone();
        $crate::sse::report!(@server $output, r);
    }};
    (@server $output:expr, $r:expr) => {{
        let r = $r;
        $output.server_side_encryption = r.server_side_encryption;
        $output.ssekms_key_id = r.kms_key_id;
        $output.bucket_key_enabled = r.bucket_key_enabled;
    }};
}
pub(crate) use report;

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(
        algorithm: Option<&'a String>,
        key: Option<&'a String>,
        md5: Option<&'a String>,
    ) -> CustomerHeaders<'a> {
        CustomerHeaders { algorithm, key, key_md5: md5 }
    }

    #[test]
    fn customer_keys_are_checked_as_s3_checks_them() {
        let aes = "AES256".to_owned();
        let key = "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs=".to_owned();
        let md5 = "DWygnHRtgiJ77HCm+1rvHw==".to_owned();
        let bad_md5 = "AAAAAAAAAAAAAAAAAAAAAA==".to_owned();
        let short = BASE64.encode([1u8; 16]);
        assert!(customer_key(headers(None, None, None)).unwrap().is_none());
        assert_eq!(customer_key(headers(Some(&aes), Some(&key), Some(&md5))).unwrap().unwrap().md5, md5);
        for (case, h) in [
            ("no algorithm", headers(None, Some(&key), Some(&md5))),
            ("no key", headers(Some(&aes), None, None)),
            ("no md5", headers(Some(&aes), Some(&key), None)),
            ("wrong md5", headers(Some(&aes), Some(&key), Some(&bad_md5))),
            ("short key", headers(Some(&aes), Some(&short), Some(&md5))),
        ] {
            let error = customer_key(h).unwrap_err();
            assert_eq!(error.code().as_str(), "InvalidArgument", "{case}");
        }
        let des = "DES".to_owned();
        let error = customer_key(headers(Some(&des), Some(&key), Some(&md5))).unwrap_err();
        assert_eq!(error.code().as_str(), "InvalidEncryptionAlgorithmError");
    }

    #[test]
    fn a_data_key_opens_only_under_the_key_that_sealed_it() {
        let server = ServerKey::generate();
        let kms_a = for_write(
            WriteHeaders {
                server_side_encryption: Some(&ServerSideEncryption::from_static("aws:kms")),
                kms_key_id: Some(&"key-a".to_owned()),
                kms_context: None,
                bucket_key_enabled: None,
                customer: headers(None, None, None),
            },
            None,
        )
        .unwrap()
        .unwrap();
        let (data_key, sealed) = kms_a.new_stream(Some(&server)).unwrap();
        let mut stored = kms_a.record();
        stored.sealed_data_keys = vec![sealed];
        let opened = data_keys(Some(&server), Some(&stored), None).unwrap().unwrap();
        assert_eq!(opened[0].as_bytes(), data_key.as_bytes());
        let mut other_id = stored.clone();
        other_id.kms_key_id = Some("key-b".into());
        assert!(data_keys(Some(&server), Some(&other_id), None).is_err(), "another KMS key opened it");
        assert!(data_keys(Some(&ServerKey::generate()), Some(&stored), None).is_err(), "another server key");
        let mut newer = stored.clone();
        newer.sealed_data_keys[0] = newer.sealed_data_keys[0].replacen("v1", "v2", 1);
        assert!(data_keys(Some(&server), Some(&newer), None).is_err(), "an unknown seal version was read");
    }

    #[test]
    fn conflicting_write_headers_are_invalid_arguments() {
        let aes = ServerSideEncryption::from_static("AES256");
        let bad = ServerSideEncryption::from_static("aes:kms");
        let id = "testkey-1".to_owned();
        let cases = [
            ("kms key id with AES256", Some(&aes), Some(&id)),
            ("unknown method", Some(&bad), None),
            ("kms key id alone", None, Some(&id)),
        ];
        for (case, sse, key_id) in cases {
            let h = WriteHeaders {
                server_side_encryption: sse,
                kms_key_id: key_id,
                kms_context: None,
                bucket_key_enabled: None,
                customer: headers(None, None, None),
            };
            assert_eq!(for_write(h, None).unwrap_err().code().as_str(), "InvalidArgument", "{case}");
        }
    }
}

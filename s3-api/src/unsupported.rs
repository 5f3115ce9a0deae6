//! Request headers for S3 features Quarry does not have (encryption, website
//! redirects) and the storage class. A header that asks for such a
//! feature gets the error AWS gives when the feature is unavailable, never a 200 that
//! silently drops it. Storage classes S3 defines are kept as given.

use s3s::dto::*;
use s3s::{S3Result, s3_error};

/// The headers of an object write (PutObject, CopyObject, CreateMultipartUpload) that ask
/// for something beyond plain storage.
pub struct ObjectWriteOptions<'a> {
    pub server_side_encryption: Option<&'a ServerSideEncryption>,
    pub ssekms_key_id: Option<&'a String>,
    pub ssekms_encryption_context: Option<&'a String>,
    pub bucket_key_enabled: Option<bool>,
    pub sse_customer_algorithm: Option<&'a String>,
    pub sse_customer_key: Option<&'a String>,
    pub sse_customer_key_md5: Option<&'a String>,
    pub website_redirect_location: Option<&'a String>,
    pub storage_class: Option<&'a StorageClass>,
}

/// The options of an object write request (the fields all three requests share).
macro_rules! object_write_options {
    ($input:expr) => {
        $crate::unsupported::ObjectWriteOptions {
            server_side_encryption: $input.server_side_encryption.as_ref(),
            ssekms_key_id: $input.ssekms_key_id.as_ref(),
            ssekms_encryption_context: $input.ssekms_encryption_context.as_ref(),
            bucket_key_enabled: $input.bucket_key_enabled,
            sse_customer_algorithm: $input.sse_customer_algorithm.as_ref(),
            sse_customer_key: $input.sse_customer_key.as_ref(),
            sse_customer_key_md5: $input.sse_customer_key_md5.as_ref(),
            website_redirect_location: $input.website_redirect_location.as_ref(),
            storage_class: $input.storage_class.as_ref(),
        }
    };
}
pub(crate) use object_write_options;

/// Storage classes S3 defines for general purpose buckets. Quarry keeps every object on the
/// same disks; the class is recorded and reported as the client chose it.
const STORAGE_CLASSES: [&str; 8] = [
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
];

impl ObjectWriteOptions<'_> {
    /// Refuses what Quarry cannot honour; returns the storage class to record
    /// (`None` for STANDARD, which is what an object without a class is).
    pub fn check(&self) -> S3Result<Option<String>> {
        check_encryption(self)?;
        if self.website_redirect_location.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "Website redirects (x-amz-website-redirect-location) are not supported"
            ));
        }
        storage_class(self.storage_class)
    }
}

fn check_encryption(o: &ObjectWriteOptions<'_>) -> S3Result<()> {
    if o.sse_customer_algorithm.is_some() || o.sse_customer_key.is_some() || o.sse_customer_key_md5.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "Server-side encryption with customer-provided keys (SSE-C) is not supported"
        ));
    }
    if o.server_side_encryption.is_some()
        || o.ssekms_key_id.is_some()
        || o.ssekms_encryption_context.is_some()
        || o.bucket_key_enabled.is_some()
    {
        return Err(s3_error!(
            NotImplemented,
            "Server-side encryption (x-amz-server-side-encryption) is not supported"
        ));
    }
    Ok(())
}

fn storage_class(class: Option<&StorageClass>) -> S3Result<Option<String>> {
    match class.map(StorageClass::as_str) {
        None | Some("STANDARD") => Ok(None),
        Some(c) if STORAGE_CLASSES.contains(&c) => Ok(Some(c.to_owned())),
        Some(c) => Err(s3_error!(InvalidStorageClass, "The storage class you specified is not valid: {c}")),
    }
}

/// SSE-C headers naming the key of a copy's source: no Quarry object is encrypted with a
/// customer key, so they never apply (AWS answers the same for an unencrypted source).
pub fn check_copy_source_encryption(input: &CopyObjectInput) -> S3Result<()> {
    if input.copy_source_sse_customer_algorithm.is_some()
        || input.copy_source_sse_customer_key.is_some()
        || input.copy_source_sse_customer_key_md5.is_some()
    {
        return Err(s3_error!(InvalidRequest, "The encryption parameters are not applicable to this object."));
    }
    Ok(())
}

/// The storage class as responses report it.
pub fn reported_class(stored: Option<&String>) -> &str {
    stored.map_or("STANDARD", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_classes() {
        assert_eq!(storage_class(None).unwrap(), None);
        assert_eq!(storage_class(Some(&StorageClass::from_static("STANDARD"))).unwrap(), None);
        assert_eq!(storage_class(Some(&StorageClass::from_static("GLACIER_IR"))).unwrap(), Some("GLACIER_IR".into()));
        let err = storage_class(Some(&StorageClass::from_static("FAST"))).unwrap_err();
        assert_eq!(err.code(), &s3s::S3ErrorCode::InvalidStorageClass);
    }
}

//! Request headers for S3 features Quarry does not have (website redirects) and the
//! storage class (encryption headers are `sse.rs`'s). A header that asks for such a
//! feature gets the error AWS gives when the feature is unavailable, never a 200 that
//! silently drops it. Storage classes S3 defines are kept as given.

use s3s::dto::*;
use s3s::{S3Result, s3_error};

/// The headers of an object write (PutObject, CopyObject, CreateMultipartUpload) that ask
/// for something beyond plain storage.
pub struct ObjectWriteOptions<'a> {
    pub website_redirect_location: Option<&'a String>,
    pub storage_class: Option<&'a StorageClass>,
}

/// The options of an object write request (the fields all three requests share).
macro_rules! object_write_options {
    ($input:expr) => {
        $crate::unsupported::ObjectWriteOptions {
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
        if self.website_redirect_location.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "Website redirects (x-amz-website-redirect-location) are not supported"
            ));
        }
        storage_class(self.storage_class)
    }
}

fn storage_class(class: Option<&StorageClass>) -> S3Result<Option<String>> {
    match class.map(StorageClass::as_str) {
        None | Some("STANDARD") => Ok(None),
        Some(c) if STORAGE_CLASSES.contains(&c) => Ok(Some(c.to_owned())),
        Some(c) => Err(s3_error!(InvalidStorageClass, "The storage class you specified is not valid: {c}")),
    }
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

//! Object and bucket tagging: Put/Get/DeleteObjectTagging (by version too),
//! Put/Get/DeleteBucketTagging, and the `x-amz-tagging` header of PUT, copy and
//! CreateMultipartUpload. S3's limits: 10 tags an object, 50 a bucket, keys of 1 to 128
//! and values of up to 256 Unicode characters, no key twice (400 InvalidTag).

use crate::QuarryS3;
use crate::error::engine_error;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use std::collections::BTreeMap;

pub const MAX_OBJECT_TAGS: usize = 10;
pub const MAX_BUCKET_TAGS: usize = 50;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

fn invalid(message: &str) -> s3s::S3Error {
    s3_error!(InvalidTag, "{message}")
}

/// Checks a tag set against S3's limits (`max_tags` of them).
pub fn validate(pairs: Vec<(String, String)>, max_tags: usize) -> S3Result<BTreeMap<String, String>> {
    if pairs.len() > max_tags {
        return Err(invalid(&format!("Object tags cannot be greater than {max_tags}")));
    }
    let mut tags = BTreeMap::new();
    for (key, value) in pairs {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_KEY_CHARS {
            return Err(invalid(&format!("The TagKey you have provided is invalid (1 to {MAX_KEY_CHARS} characters)")));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(invalid(&format!(
                "The TagValue you have provided is invalid (at most {MAX_VALUE_CHARS} characters)"
            )));
        }
        if tags.insert(key, value).is_some() {
            return Err(invalid("Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(tags)
}

/// The `x-amz-tagging` header: URL query parameters (`k1=v1&k2=v2`, a key without `=`
/// has an empty value).
pub fn from_header(header: Option<&str>) -> S3Result<BTreeMap<String, String>> {
    let Some(header) = header.filter(|h| !h.is_empty()) else { return Ok(BTreeMap::new()) };
    let decode = |text: &str| {
        urlencoding::decode(&text.replace('+', " ")).map(|s| s.into_owned()).map_err(|_| {
            invalid("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters")
        })
    };
    let mut pairs = Vec::new();
    for pair in header.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((decode(key)?, decode(value)?));
    }
    validate(pairs, MAX_OBJECT_TAGS)
}

fn from_tag_set(tagging: Tagging, max_tags: usize) -> S3Result<BTreeMap<String, String>> {
    let pairs =
        tagging.tag_set.into_iter().map(|tag| (tag.key.unwrap_or_default(), tag.value.unwrap_or_default())).collect();
    validate(pairs, max_tags)
}

fn tag_set(tags: &BTreeMap<String, String>) -> TagSet {
    tags.iter().map(|(key, value)| Tag { key: Some(key.clone()), value: Some(value.clone()) }).collect()
}

/// The version a tagging request names, and the object it names (404/405 as GET).
fn target(
    s3: &QuarryS3,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<(Option<storage_core::VersionId>, storage_core::ObjectEntry)> {
    let version = crate::version::requested(version_id)?;
    let entry = crate::get::lookup(s3, bucket, key, version_id)?;
    Ok((version, entry))
}

async fn set_object_tags(
    s3: &QuarryS3,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    tags: BTreeMap<String, String>,
) -> S3Result<Option<String>> {
    let (version, entry) = target(s3, bucket, key, version_id)?;
    s3.engine.set_object_tags(bucket, key, version, tags).await.map_err(engine_error)?;
    crate::version::header(s3, bucket, &entry)
}

pub async fn put_object_tagging(
    s3: &QuarryS3,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let input = req.input;
    let tags = from_tag_set(input.tagging, MAX_OBJECT_TAGS)?;
    let version_id = set_object_tags(s3, &input.bucket, &input.key, input.version_id.as_deref(), tags).await?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
}

pub async fn delete_object_tagging(
    s3: &QuarryS3,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let input = req.input;
    let version_id =
        set_object_tags(s3, &input.bucket, &input.key, input.version_id.as_deref(), BTreeMap::new()).await?;
    Ok(S3Response::new(DeleteObjectTaggingOutput { version_id }))
}

pub async fn get_object_tagging(
    s3: &QuarryS3,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let input = req.input;
    let (_, entry) = target(s3, &input.bucket, &input.key, input.version_id.as_deref())?;
    let version_id = crate::version::header(s3, &input.bucket, &entry)?;
    Ok(S3Response::new(GetObjectTaggingOutput { tag_set: tag_set(&entry.meta.tags), version_id }))
}

pub async fn put_bucket_tagging(
    s3: &QuarryS3,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let input = req.input;
    s3.require_bucket(&input.bucket)?;
    let tags = from_tag_set(input.tagging, MAX_BUCKET_TAGS)?;
    s3.engine.set_bucket_tags(&input.bucket, tags).await.map_err(engine_error)?;
    Ok(S3Response::new(PutBucketTaggingOutput::default()))
}

pub async fn delete_bucket_tagging(
    s3: &QuarryS3,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let input = req.input;
    s3.require_bucket(&input.bucket)?;
    s3.engine.set_bucket_tags(&input.bucket, BTreeMap::new()).await.map_err(engine_error)?;
    Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
}

/// A bucket without tags answers 404 NoSuchTagSet, as S3 does.
pub async fn get_bucket_tagging(
    s3: &QuarryS3,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let bucket = s3.require_bucket(&req.input.bucket)?;
    if bucket.tags.is_empty() {
        return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
    }
    Ok(S3Response::new(GetBucketTaggingOutput { tag_set: tag_set(&bucket.tags) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize, key_chars: usize, value_chars: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("{i}{}", "k".repeat(key_chars - 1)), "é".repeat(value_chars))).collect()
    }

    #[test]
    fn limits_are_s3s() {
        assert_eq!(validate(pairs(10, 128, 256), MAX_OBJECT_TAGS).unwrap().len(), 10, "at the limits");
        assert!(validate(pairs(11, 1, 0), MAX_OBJECT_TAGS).is_err(), "11 object tags");
        assert_eq!(validate(pairs(50, 2, 1), MAX_BUCKET_TAGS).unwrap().len(), 50);
        assert!(validate(pairs(51, 2, 1), MAX_BUCKET_TAGS).is_err(), "51 bucket tags");
        assert!(validate(pairs(1, 129, 0), MAX_OBJECT_TAGS).is_err(), "a key of 129 characters");
        assert!(validate(pairs(1, 1, 257), MAX_OBJECT_TAGS).is_err(), "a value of 257 characters");
        assert!(validate(vec![(String::new(), "v".into())], MAX_OBJECT_TAGS).is_err(), "an empty key");
        let twice = vec![("a".to_owned(), "1".to_owned()), ("a".to_owned(), "2".to_owned())];
        assert!(validate(twice, MAX_OBJECT_TAGS).is_err(), "a key twice");
    }

    #[test]
    fn the_header_is_url_query_parameters() {
        let tags = from_header(Some("foo=bar&bar&sp%20ace=a%2Bb&plus=a+b")).unwrap();
        let expected: BTreeMap<String, String> =
            [("foo", "bar"), ("bar", ""), ("sp ace", "a+b"), ("plus", "a b")].map(|(k, v)| (k.into(), v.into())).into();
        assert_eq!(tags, expected);
        assert!(from_header(None).unwrap().is_empty());
        assert!(from_header(Some("a=1&a=2")).is_err());
    }
}

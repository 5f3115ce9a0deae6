//! GetObjectAttributes: ETag, Checksum, ObjectParts (paginated by part number),
//! StorageClass and ObjectSize of an object or of one of its versions, each only when
//! asked for. ObjectParts is given for multipart objects only, as S3 does; Quarry keeps
//! each part's size, not its checksum, so parts carry no checksum.

use crate::QuarryS3;
use crate::meta::{SetChecksums, checksum_fields, etag, timestamp};
use crate::unsupported::reported_class;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// The most parts one answer lists, whatever MaxParts asks for (S3's limit).
const MAX_PARTS_PER_ANSWER: usize = 1000;

pub async fn get_object_attributes(
    s3: &QuarryS3,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let input = req.input;
    let customer_key = crate::sse::customer_key_of!(input)?;
    // One header of comma-separated names (boto3), or one header each (the Rust SDK).
    let wanted =
        |name: &str| input.object_attributes.iter().flat_map(|a| a.as_str().split(',')).any(|a| a.trim() == name);
    if input.object_attributes.is_empty() {
        return Err(s3_error!(InvalidArgument, "x-amz-object-attributes must name at least one attribute"));
    }
    let entry = crate::get::lookup(s3, &input.bucket, &input.key, input.version_id.as_deref())?;
    // An SSE-C object's attributes need its key, as its data does.
    crate::sse::data_keys(s3.keys.server_key(), entry.meta.encryption.as_ref(), customer_key)?;
    let meta = &entry.meta;
    let mut output = GetObjectAttributesOutput {
        last_modified: Some(timestamp(meta.last_modified_ms)),
        version_id: crate::version::header(s3, &input.bucket, &entry)?,
        ..Default::default()
    };
    if wanted(ObjectAttributes::ETAG) {
        output.e_tag = Some(etag(&meta.etag));
    }
    if wanted(ObjectAttributes::OBJECT_SIZE) {
        output.object_size = Some(meta.size_bytes as i64);
    }
    if wanted(ObjectAttributes::STORAGE_CLASS) {
        output.storage_class = Some(StorageClass::from(reported_class(meta.storage_class.as_ref()).to_owned()));
    }
    if wanted(ObjectAttributes::CHECKSUM) && meta.checksum.is_some() {
        let mut checksum = Checksum::default();
        checksum.set_checksums(checksum_fields(meta.checksum.as_ref()));
        output.checksum = Some(checksum);
    }
    if wanted(ObjectAttributes::OBJECT_PARTS) && meta.part_sizes.is_some() {
        output.object_parts = Some(parts_page(meta, input.part_number_marker, input.max_parts)?);
    }
    Ok(S3Response::new(output))
}

/// The parts after `marker`, at most `max_parts` of them, each with its checksum when
/// the object keeps one per part.
fn parts_page(
    meta: &storage_core::ObjectMeta,
    marker: Option<i32>,
    max_parts: Option<i32>,
) -> S3Result<GetObjectAttributesParts> {
    let sizes = meta.part_sizes.as_deref().unwrap_or_default();
    let marker = marker.unwrap_or(0);
    let max_parts = max_parts.unwrap_or(MAX_PARTS_PER_ANSWER as i32);
    if marker < 0 || max_parts < 0 {
        return Err(s3_error!(InvalidArgument, "part-number-marker and max-parts must not be negative"));
    }
    let limit = (max_parts as usize).min(MAX_PARTS_PER_ANSWER);
    let after: Vec<(i32, u64)> =
        sizes.iter().enumerate().map(|(i, size)| (i as i32 + 1, *size)).filter(|(n, _)| *n > marker).collect();
    let is_truncated = after.len() > limit;
    let parts: Vec<ObjectPart> = after
        .iter()
        .take(limit)
        .map(|(number, size)| {
            let mut part = ObjectPart { part_number: Some(*number), size: Some(*size as i64), ..Default::default() };
            part.set_checksums(checksum_fields(crate::get::part_checksum(meta, *number).as_ref()));
            part
        })
        .collect();
    Ok(GetObjectAttributesParts {
        is_truncated: Some(is_truncated),
        max_parts: Some(max_parts),
        next_part_number_marker: parts.last().and_then(|p| p.part_number).filter(|_| is_truncated),
        part_number_marker: Some(marker),
        total_parts_count: Some(sizes.len() as i32),
        parts: Some(parts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_paged_after_the_marker() {
        let meta = storage_core::ObjectMeta { part_sizes: Some(vec![5, 5, 5, 5, 5, 3]), ..Default::default() };
        let page = parts_page(&meta, Some(3), Some(1)).unwrap();
        let numbers =
            |p: &GetObjectAttributesParts| p.parts.iter().flatten().map(|p| p.part_number.unwrap()).collect::<Vec<_>>();
        assert_eq!(numbers(&page), vec![4]);
        assert_eq!(
            (page.is_truncated, page.next_part_number_marker, page.total_parts_count),
            (Some(true), Some(4), Some(6))
        );
        let rest = parts_page(&meta, Some(4), Some(10)).unwrap();
        assert_eq!(numbers(&rest), vec![5, 6]);
        assert_eq!((rest.is_truncated, rest.next_part_number_marker), (Some(false), None));
        assert!(parts_page(&meta, Some(-1), None).is_err());
    }
}

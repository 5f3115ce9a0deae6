//! GetObjectAttributes: each attribute only when asked for, ObjectParts for multipart
//! objects (paged by part number), by version.

use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectAttributes,
    VersioningConfiguration,
};

use crate::harness::*;

const ALL: [ObjectAttributes; 5] = [
    ObjectAttributes::Etag,
    ObjectAttributes::Checksum,
    ObjectAttributes::ObjectParts,
    ObjectAttributes::StorageClass,
    ObjectAttributes::ObjectSize,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_attributes_of_plain_multipart_and_versioned_objects() {
    let server = Server::start();
    let s3 = server.client();
    create_bucket(&s3, "attrs").await;

    // A plain object with a SHA-256 checksum: no ObjectParts.
    let put = s3
        .put_object()
        .bucket("attrs")
        .key("plain")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(b"hello".to_vec().into())
        .send()
        .await
        .unwrap();
    let got = s3.get_object_attributes().bucket("attrs").key("plain").set_object_attributes(Some(ALL.to_vec())).send();
    let got = got.await.unwrap();
    assert_eq!(got.object_size(), Some(5));
    // Unquoted, as S3 answers it here (and only here).
    assert_eq!(got.e_tag(), put.e_tag().map(|t| t.trim_matches('"')), "GetObjectAttributes' ETag");
    assert_eq!(got.storage_class().map(|c| c.as_str()), Some("STANDARD"));
    assert_eq!(got.checksum().and_then(|c| c.checksum_sha256()), put.checksum_sha256());
    assert!(got.object_parts().is_none(), "a plain object has no ObjectParts");
    assert!(got.version_id().is_none(), "no version in a bucket never versioned");
    let only_size =
        s3.get_object_attributes().bucket("attrs").key("plain").object_attributes(ObjectAttributes::ObjectSize).send();
    let only_size = only_size.await.unwrap();
    assert_eq!((only_size.object_size(), only_size.e_tag()), (Some(5), None), "only what is asked for");

    // A multipart object of 3 parts, paged one part at a time.
    let upload = s3.create_multipart_upload().bucket("attrs").key("mp").send().await.unwrap();
    let id = upload.upload_id().unwrap();
    let sizes = [5 * 1024 * 1024, 5 * 1024 * 1024, 100];
    let mut completed = CompletedMultipartUpload::builder();
    for (i, size) in sizes.iter().enumerate() {
        let number = i as i32 + 1;
        let part = s3.upload_part().bucket("attrs").key("mp").upload_id(id).part_number(number);
        let part = part.body(vec![b'p'; *size].into()).send().await.unwrap();
        completed = completed.parts(CompletedPart::builder().part_number(number).e_tag(part.e_tag().unwrap()).build());
    }
    let done = s3.complete_multipart_upload().bucket("attrs").key("mp").upload_id(id);
    done.multipart_upload(completed.build()).send().await.unwrap();
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = s3
            .get_object_attributes()
            .bucket("attrs")
            .key("mp")
            .object_attributes(ObjectAttributes::ObjectParts)
            .max_parts(1)
            .set_part_number_marker(marker.clone())
            .send()
            .await
            .unwrap();
        let parts = page.object_parts().expect("ObjectParts of a multipart object");
        assert_eq!(parts.total_parts_count(), Some(3));
        seen.extend(parts.parts().iter().map(|p| (p.part_number().unwrap(), p.size().unwrap())));
        if parts.is_truncated() != Some(true) {
            break;
        }
        marker = parts.next_part_number_marker().map(|m| m.to_string());
        assert!(seen.len() <= 3, "paging does not end: {seen:?}");
    }
    assert_eq!(seen, vec![(1, 5 * 1024 * 1024), (2, 5 * 1024 * 1024), (3, 100)]);

    // By version.
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    s3.put_bucket_versioning().bucket("attrs").versioning_configuration(enabled).send().await.unwrap();
    let v1 = s3.put_object().bucket("attrs").key("v").body(b"one".to_vec().into()).send().await.unwrap();
    s3.put_object().bucket("attrs").key("v").body(b"three".to_vec().into()).send().await.unwrap();
    let v1_id = v1.version_id().unwrap();
    let old = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("v")
        .version_id(v1_id)
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .unwrap();
    assert_eq!((old.object_size(), old.version_id()), (Some(3), Some(v1_id)));
    s3.delete_object().bucket("attrs").key("v").send().await.unwrap();
    let behind_marker =
        s3.get_object_attributes().bucket("attrs").key("v").object_attributes(ObjectAttributes::ObjectSize).send();
    expect_s3_error(behind_marker.await, 404, &["NoSuchKey"], "GetObjectAttributes behind a delete marker");
}

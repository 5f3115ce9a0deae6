//! Put/Get/DeleteBucketEncryption: a bucket's default encryption, which every object
//! write that names none gets (`sse::for_write`). Objects already stored keep theirs.

use crate::QuarryS3;
use crate::error::engine_error;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use storage_core::{BucketEncryption, SseScheme};

fn not_found() -> s3s::S3Error {
    crate::error::custom(
        "ServerSideEncryptionConfigurationNotFoundError",
        http::StatusCode::NOT_FOUND,
        "The server side encryption configuration was not found",
    )
}

/// The one rule of a configuration, checked as S3 checks it.
fn default_of(configuration: ServerSideEncryptionConfiguration) -> S3Result<BucketEncryption> {
    let [rule] = <[ServerSideEncryptionRule; 1]>::try_from(configuration.rules)
        .map_err(|_| s3_error!(MalformedXML, "A server-side encryption configuration holds exactly one rule"))?;
    let default = rule
        .apply_server_side_encryption_by_default
        .ok_or_else(|| s3_error!(MalformedXML, "The rule needs an ApplyServerSideEncryptionByDefault element"))?;
    let scheme = match default.sse_algorithm.as_str() {
        "AES256" => SseScheme::S3,
        "aws:kms" => SseScheme::Kms,
        "aws:kms:dsse" => {
            return Err(s3_error!(NotImplemented, "Dual-layer server-side encryption (aws:kms:dsse) is not supported"));
        }
        other => return Err(s3_error!(MalformedXML, "Unknown SSEAlgorithm {other}")),
    };
    if let Some(id) = &default.kms_master_key_id {
        if scheme != SseScheme::Kms {
            return Err(s3_error!(InvalidArgument, "a KMSMasterKeyID is allowed only with SSEAlgorithm aws:kms"));
        }
        crate::sse::check_kms_key_id(id)?;
    }
    Ok(BucketEncryption {
        scheme,
        kms_key_id: default.kms_master_key_id,
        bucket_key_enabled: rule.bucket_key_enabled.unwrap_or(false),
    })
}

pub async fn put_bucket_encryption(
    s3: &QuarryS3,
    req: S3Request<PutBucketEncryptionInput>,
) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
    let input = req.input;
    s3.require_bucket(&input.bucket)?;
    let config = default_of(input.server_side_encryption_configuration)?;
    s3.engine.set_bucket_encryption(&input.bucket, Some(config)).await.map_err(engine_error)?;
    Ok(S3Response::new(PutBucketEncryptionOutput::default()))
}

pub async fn get_bucket_encryption(
    s3: &QuarryS3,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    let bucket = s3.require_bucket(&req.input.bucket)?;
    let config = bucket.encryption.ok_or_else(not_found)?;
    let algorithm = match config.scheme {
        SseScheme::Kms => ServerSideEncryption::AWS_KMS,
        _ => ServerSideEncryption::AES256,
    };
    let rule = ServerSideEncryptionRule {
        apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
            kms_master_key_id: config.kms_key_id,
            sse_algorithm: ServerSideEncryption::from_static(algorithm),
        }),
        bucket_key_enabled: Some(config.bucket_key_enabled),
    };
    Ok(S3Response::new(GetBucketEncryptionOutput {
        server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration { rules: vec![rule] }),
    }))
}

pub async fn delete_bucket_encryption(
    s3: &QuarryS3,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    s3.require_bucket(&req.input.bucket)?;
    s3.engine.set_bucket_encryption(&req.input.bucket, None).await.map_err(engine_error)?;
    Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configuration(algorithm: &'static str, key: Option<&str>, rules: usize) -> ServerSideEncryptionConfiguration {
        let rule = ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                kms_master_key_id: key.map(str::to_owned),
                sse_algorithm: ServerSideEncryption::from_static(algorithm),
            }),
            bucket_key_enabled: None,
        };
        ServerSideEncryptionConfiguration { rules: vec![rule; rules] }
    }

    #[test]
    fn configurations_are_checked_as_s3_checks_them() {
        assert_eq!(default_of(configuration("AES256", None, 1)).unwrap().scheme, SseScheme::S3);
        let kms = default_of(configuration("aws:kms", Some("key-1"), 1)).unwrap();
        assert_eq!((kms.scheme, kms.kms_key_id.as_deref()), (SseScheme::Kms, Some("key-1")));
        for (case, config, code) in [
            ("two rules", configuration("AES256", None, 2), "MalformedXML"),
            ("no rule", configuration("AES256", None, 0), "MalformedXML"),
            ("key id with AES256", configuration("AES256", Some("k"), 1), "InvalidArgument"),
            ("unknown algorithm", configuration("DES", None, 1), "MalformedXML"),
        ] {
            assert_eq!(default_of(config).unwrap_err().code().as_str(), code, "{case}");
        }
    }
}

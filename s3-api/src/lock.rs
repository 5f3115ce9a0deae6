//! Object lock: buckets created with it (versioned for good), their default retention
//! (Put/GetObjectLockConfiguration), retention and legal hold of a version (on PUT,
//! copy and CreateMultipartUpload, and Put/GetObjectRetention, Put/GetObjectLegalHold).
//! What a lock forbids is decided by the engine's writer (`index::apply`), for every key
//! alike: a COMPLIANCE version cannot be deleted by anyone before its date, which can
//! only be extended; GOVERNANCE yields to `x-amz-bypass-governance-retention`; a legal
//! hold keeps a version until it is lifted.

use crate::QuarryS3;
use crate::error::engine_error;
use crate::meta::{millis, now_ms, timestamp};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use storage_core::{BucketEntry, LockMode, Retention};

fn missing_configuration() -> s3s::S3Error {
    s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration")
}

/// A mode in an XML body: anything else is MalformedXML, as S3 answers.
fn mode_of(text: &str) -> S3Result<LockMode> {
    match text {
        ObjectLockMode::GOVERNANCE => Ok(LockMode::Governance),
        ObjectLockMode::COMPLIANCE => Ok(LockMode::Compliance),
        other => Err(s3_error!(MalformedXML, "Unknown object lock mode {other:?}")),
    }
}

/// A mode in a header: anything else is InvalidArgument.
fn header_mode_of(text: &str) -> S3Result<LockMode> {
    mode_of(text).map_err(|_| s3_error!(InvalidArgument, "Unknown object lock mode {text:?}"))
}

/// S3's code for a default retention that is not a positive number of days or years
/// (s3s has no constant for it).
fn invalid_retention_period() -> s3s::S3Error {
    let mut error = s3s::S3Error::with_message(
        s3s::S3ErrorCode::Custom("InvalidRetentionPeriod".into()),
        "Default retention period must be a positive integer value",
    );
    error.set_status_code(http::StatusCode::BAD_REQUEST);
    error
}

fn mode_name(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Governance => ObjectLockMode::GOVERNANCE,
        LockMode::Compliance => ObjectLockMode::COMPLIANCE,
    }
}

/// The lock an object write asks for (`x-amz-object-lock-mode` and
/// `-retain-until-date` together, `-legal-hold`), or the bucket's default retention.
/// A lock on a bucket without object lock is 400 InvalidRequest, as on S3.
pub fn for_new_object(
    bucket: &BucketEntry,
    mode: Option<&ObjectLockMode>,
    retain_until: Option<&Timestamp>,
    legal_hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<(Option<Retention>, bool)> {
    let legal_hold = match legal_hold.map(ObjectLockLegalHoldStatus::as_str) {
        None | Some(ObjectLockLegalHoldStatus::OFF) => false,
        Some(ObjectLockLegalHoldStatus::ON) => true,
        Some(other) => return Err(s3_error!(InvalidArgument, "Unknown legal hold status {other:?}")),
    };
    let explicit = match (mode, retain_until) {
        (None, None) => None,
        (Some(mode), Some(until)) => {
            let retain_until_ms = millis(until);
            if retain_until_ms <= now_ms() {
                return Err(s3_error!(InvalidArgument, "The retain until date must be in the future!"));
            }
            Some(Retention { mode: header_mode_of(mode.as_str())?, retain_until_ms })
        }
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
            ));
        }
    };
    if !bucket.object_lock {
        if explicit.is_some() || legal_hold {
            return Err(missing_configuration());
        }
        return Ok((None, false));
    }
    let retention = explicit.or_else(|| bucket.default_retention.map(|d| d.from(now_ms())));
    Ok((retention, legal_hold))
}

/// `for_new_object` of a write request (PutObject, CopyObject, CreateMultipartUpload:
/// their lock fields have the same names).
macro_rules! requested_lock {
    ($bucket:expr, $input:expr) => {
        $crate::lock::for_new_object(
            $bucket,
            $input.object_lock_mode.as_ref(),
            $input.object_lock_retain_until_date.as_ref(),
            $input.object_lock_legal_hold_status.as_ref(),
        )
    };
}
pub(crate) use requested_lock;

/// The lock headers of GET and HEAD: (mode, retain-until, legal hold).
pub fn headers(
    meta: &storage_core::ObjectMeta,
) -> (Option<ObjectLockMode>, Option<Timestamp>, Option<ObjectLockLegalHoldStatus>) {
    let mode = meta.retention.map(|r| ObjectLockMode::from_static(mode_name(r.mode)));
    let until = meta.retention.map(|r| timestamp(r.retain_until_ms));
    let hold = meta.legal_hold.then(|| ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON));
    (mode, until, hold)
}

fn lock_bucket(s3: &QuarryS3, bucket: &str) -> S3Result<BucketEntry> {
    let entry = s3.require_bucket(bucket)?;
    if !entry.object_lock {
        return Err(missing_configuration());
    }
    Ok(entry)
}

pub async fn put_object_lock_configuration(
    s3: &QuarryS3,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let input = req.input;
    let entry = s3.require_bucket(&input.bucket)?;
    let configuration = input.object_lock_configuration.unwrap_or_default();
    if configuration.object_lock_enabled.as_ref().map(ObjectLockEnabled::as_str) != Some(ObjectLockEnabled::ENABLED) {
        return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled"));
    }
    if !entry.object_lock && entry.versioning != Some(storage_core::VersioningStatus::Enabled) {
        return Err(s3_error!(
            InvalidBucketState,
            "Object Lock configuration can be enabled only on a bucket whose versioning is enabled"
        ));
    }
    let default_retention = match configuration.rule.and_then(|r| r.default_retention) {
        None => None,
        Some(d) => {
            let mode = mode_of(d.mode.as_ref().map_or("", ObjectLockRetentionMode::as_str))?;
            let positive = |n: Option<i32>| -> S3Result<Option<u32>> {
                match n {
                    None => Ok(None),
                    Some(n) if n > 0 => Ok(Some(n as u32)),
                    Some(_) => Err(invalid_retention_period()),
                }
            };
            let (days, years) = (positive(d.days)?, positive(d.years)?);
            if days.is_some() == years.is_some() {
                return Err(s3_error!(MalformedXML, "A default retention names either Days or Years"));
            }
            Some(storage_core::DefaultRetention { mode, days, years })
        }
    };
    s3.engine.set_default_retention(&input.bucket, default_retention).await.map_err(engine_error)?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub async fn get_object_lock_configuration(
    s3: &QuarryS3,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let entry = s3.require_bucket(&req.input.bucket)?;
    if !entry.object_lock {
        return Err(s3_error!(
            ObjectLockConfigurationNotFoundError,
            "Object Lock configuration does not exist for this bucket"
        ));
    }
    let rule = entry.default_retention.map(|d| ObjectLockRule {
        default_retention: Some(DefaultRetention {
            mode: Some(ObjectLockRetentionMode::from_static(mode_name(d.mode))),
            days: d.days.map(|n| n as i32),
            years: d.years.map(|n| n as i32),
        }),
    });
    let configuration = ObjectLockConfiguration {
        object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
        rule,
    };
    Ok(S3Response::new(GetObjectLockConfigurationOutput { object_lock_configuration: Some(configuration) }))
}

pub async fn put_object_retention(
    s3: &QuarryS3,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let input = req.input;
    lock_bucket(s3, &input.bucket)?;
    let version = crate::version::requested(input.version_id.as_deref())?;
    crate::get::lookup(s3, &input.bucket, &input.key, input.version_id.as_deref())?;
    let retention = match input.retention {
        None => None,
        Some(ObjectLockRetention { mode: None, retain_until_date: None }) => None,
        Some(ObjectLockRetention { mode: Some(mode), retain_until_date: Some(until) }) => {
            Some(Retention { mode: mode_of(mode.as_str())?, retain_until_ms: millis(&until) })
        }
        Some(_) => return Err(s3_error!(MalformedXML, "A retention names both Mode and RetainUntilDate")),
    };
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    s3.engine.set_retention(&input.bucket, &input.key, version, retention, bypass).await.map_err(engine_error)?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

pub async fn get_object_retention(
    s3: &QuarryS3,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let input = req.input;
    lock_bucket(s3, &input.bucket)?;
    let entry = crate::get::lookup(s3, &input.bucket, &input.key, input.version_id.as_deref())?;
    let Some(retention) = entry.meta.retention else {
        return Err(s3_error!(
            NoSuchObjectLockConfiguration,
            "The specified object does not have a ObjectLock configuration"
        ));
    };
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from_static(mode_name(retention.mode))),
            retain_until_date: Some(timestamp(retention.retain_until_ms)),
        }),
    }))
}

pub async fn put_object_legal_hold(
    s3: &QuarryS3,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let input = req.input;
    lock_bucket(s3, &input.bucket)?;
    let version = crate::version::requested(input.version_id.as_deref())?;
    crate::get::lookup(s3, &input.bucket, &input.key, input.version_id.as_deref())?;
    let on = match input.legal_hold.and_then(|h| h.status).as_ref().map(ObjectLockLegalHoldStatus::as_str) {
        Some(ObjectLockLegalHoldStatus::ON) => true,
        Some(ObjectLockLegalHoldStatus::OFF) => false,
        _ => return Err(s3_error!(MalformedXML, "A legal hold's Status is ON or OFF")),
    };
    s3.engine.set_legal_hold(&input.bucket, &input.key, version, on).await.map_err(engine_error)?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub async fn get_object_legal_hold(
    s3: &QuarryS3,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let input = req.input;
    lock_bucket(s3, &input.bucket)?;
    let entry = crate::get::lookup(s3, &input.bucket, &input.key, input.version_id.as_deref())?;
    let status = if entry.meta.legal_hold { ObjectLockLegalHoldStatus::ON } else { ObjectLockLegalHoldStatus::OFF };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold { status: Some(ObjectLockLegalHoldStatus::from_static(status)) }),
    }))
}

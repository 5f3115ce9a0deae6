//! Bucket lifecycle: Put/Get/DeleteBucketLifecycleConfiguration with S3's checks, and
//! the pass that carries the rules out (`run_pass`, run by the server every
//! `--lifecycle-interval-secs`): expiring current versions (a delete, so a delete
//! marker in a versioned bucket), removing noncurrent versions, removing expired delete
//! markers, aborting incomplete multipart uploads. Object lock still keeps what it
//! keeps. Transitions to other storage classes are refused (501): Quarry keeps every
//! object on one tier, and relabelling objects GLACIER would promise what it cannot do.

use crate::QuarryS3;
use crate::error::engine_error;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use storage_core::{
    DeleteConditions, Engine, LifecycleFilter, LifecycleRule, ObjectEntry, Origin, Rejection, VersionQuery,
};

/// S3's limits on a lifecycle configuration.
const MAX_RULES: usize = 1000;
const MAX_RULE_ID_CHARS: usize = 255;
const MAX_NEWER_NONCURRENT_VERSIONS: i32 = 100;
/// Quarry's bounds (S3 documents none): tags in one rule's filter, and the text of a
/// whole configuration (IDs, prefixes, tags), which every record and pass carries.
const MAX_FILTER_TAGS: usize = 50;
const MAX_CONFIGURATION_TEXT_BYTES: usize = 512 * 1024;
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Versions listed per step of a pass.
const PAGE_KEYS: usize = 1000;
/// The versions of one key a pass holds at once (the newest); older ones wait for a
/// later pass, once these are gone.
const MAX_VERSIONS_PER_KEY: usize = 10_000;
/// The requester the journal shows for what a pass deletes.
const REQUESTER: &str = "quarry-lifecycle";

fn no_configuration() -> s3s::S3Error {
    crate::error::custom(
        "NoSuchLifecycleConfiguration",
        http::StatusCode::NOT_FOUND,
        "The lifecycle configuration does not exist",
    )
}

fn positive_days(days: i32, what: &str) -> S3Result<u32> {
    u32::try_from(days)
        .ok()
        .filter(|d| *d > 0)
        .ok_or_else(|| s3_error!(InvalidArgument, "'{what}' for a lifecycle rule must be a positive integer"))
}

fn midnight_ms(date: &Timestamp, what: &str) -> S3Result<i64> {
    let ms = crate::meta::millis(date);
    if ms.rem_euclid(DAY_MS) != 0 {
        return Err(s3_error!(InvalidArgument, "'{what}' must be at midnight GMT"));
    }
    Ok(ms)
}

fn filter_of(filter: LifecycleRuleFilter) -> S3Result<LifecycleFilter> {
    let tag = |t: Tag| match (t.key, t.value) {
        (Some(k), Some(v)) => Ok((k, v)),
        _ => Err(s3_error!(MalformedXML, "A lifecycle filter's Tag needs a Key and a Value")),
    };
    let given = [
        filter.prefix.is_some(),
        filter.tag.is_some(),
        filter.object_size_greater_than.is_some(),
        filter.object_size_less_than.is_some(),
        filter.and.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(s3_error!(MalformedXML, "A lifecycle Filter holds one condition, or several inside And"));
    }
    if let Some(and) = filter.and {
        return Ok(LifecycleFilter {
            prefix: and.prefix,
            tags: and.tags.unwrap_or_default().into_iter().map(tag).collect::<S3Result<_>>()?,
            size_greater_than: and.object_size_greater_than,
            size_less_than: and.object_size_less_than,
            and: true,
        });
    }
    Ok(LifecycleFilter {
        prefix: filter.prefix,
        tags: filter.tag.map(tag).transpose()?.into_iter().collect(),
        size_greater_than: filter.object_size_greater_than,
        size_less_than: filter.object_size_less_than,
        and: false,
    })
}

/// The rules of a PutBucketLifecycleConfiguration, checked as S3 checks them.
fn rules_of(configuration: BucketLifecycleConfiguration) -> S3Result<Vec<LifecycleRule>> {
    let rules = configuration.rules;
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(s3_error!(MalformedXML, "A lifecycle configuration holds 1 to {MAX_RULES} rules"));
    }
    let mut out: Vec<LifecycleRule> = Vec::with_capacity(rules.len());
    let mut text_bytes = 0usize;
    for rule in rules {
        let id = rule.id.unwrap_or_else(|| hex::encode(rand::random::<[u8; 12]>()));
        if id.chars().count() > MAX_RULE_ID_CHARS {
            return Err(s3_error!(InvalidArgument, "ID length should not exceed allowed limit of {MAX_RULE_ID_CHARS}"));
        }
        if out.iter().any(|r| r.id == id) {
            return Err(s3_error!(InvalidArgument, "Rule ID must be unique. Found same ID for more than one rule"));
        }
        let enabled = match rule.status.as_str() {
            ExpirationStatus::ENABLED => true,
            ExpirationStatus::DISABLED => false,
            other => {
                return Err(s3_error!(MalformedXML, "A lifecycle rule's Status is Enabled or Disabled, not {other}"));
            }
        };
        if rule.prefix.is_some() && rule.filter.is_some() {
            return Err(s3_error!(MalformedXML, "A lifecycle rule has a Prefix or a Filter, not both"));
        }
        let filter = rule.filter.map(filter_of).transpose()?;
        let has_tags = filter.as_ref().is_some_and(|f| !f.tags.is_empty());
        let mut parsed = LifecycleRule {
            id,
            enabled,
            legacy_prefix: rule.prefix,
            filter,
            expiration_days: None,
            expiration_date_ms: None,
            expired_object_delete_marker: None,
            noncurrent_days: None,
            newer_noncurrent_versions: None,
            abort_upload_days: None,
        };
        if let Some(expiration) = rule.expiration {
            let given = [
                expiration.days.is_some(),
                expiration.date.is_some(),
                expiration.expired_object_delete_marker.is_some(),
            ];
            if given.iter().filter(|g| **g).count() != 1 {
                return Err(s3_error!(
                    MalformedXML,
                    "An Expiration holds exactly one of Days, Date and ExpiredObjectDeleteMarker"
                ));
            }
            parsed.expiration_days = expiration.days.map(|d| positive_days(d, "Days")).transpose()?;
            parsed.expiration_date_ms = expiration.date.as_ref().map(|d| midnight_ms(d, "Date")).transpose()?;
            if expiration.expired_object_delete_marker.is_some() && has_tags {
                return Err(s3_error!(
                    InvalidArgument,
                    "ExpiredObjectDeleteMarker cannot be specified with object tags in a lifecycle filter"
                ));
            }
            parsed.expired_object_delete_marker = expiration.expired_object_delete_marker;
        }
        if let Some(noncurrent) = rule.noncurrent_version_expiration {
            let days = noncurrent
                .noncurrent_days
                .ok_or_else(|| s3_error!(MalformedXML, "A NoncurrentVersionExpiration needs NoncurrentDays"))?;
            parsed.noncurrent_days = Some(positive_days(days, "NoncurrentDays")?);
            if let Some(n) = noncurrent.newer_noncurrent_versions {
                if !(1..=MAX_NEWER_NONCURRENT_VERSIONS).contains(&n) {
                    return Err(s3_error!(
                        InvalidArgument,
                        "NewerNoncurrentVersions must be between 1 and {MAX_NEWER_NONCURRENT_VERSIONS}"
                    ));
                }
                parsed.newer_noncurrent_versions = Some(n as u32);
            }
        }
        if let Some(abort) = rule.abort_incomplete_multipart_upload {
            if has_tags {
                return Err(s3_error!(
                    InvalidArgument,
                    "AbortIncompleteMultipartUpload cannot be specified with object tags in a lifecycle filter"
                ));
            }
            let days = abort.days_after_initiation.ok_or_else(|| {
                s3_error!(MalformedXML, "An AbortIncompleteMultipartUpload needs DaysAfterInitiation")
            })?;
            parsed.abort_upload_days = Some(positive_days(days, "DaysAfterInitiation")?);
        }
        let transitions = rule.transitions.unwrap_or_default();
        for transition in &transitions {
            if let Some(date) = &transition.date {
                midnight_ms(date, "Date")?;
            }
        }
        if !transitions.is_empty() || rule.noncurrent_version_transitions.is_some_and(|t| !t.is_empty()) {
            return Err(s3_error!(
                NotImplemented,
                "Lifecycle transitions are not supported: Quarry keeps every object in one storage tier"
            ));
        }
        let has_action = parsed.expiration_days.is_some()
            || parsed.expiration_date_ms.is_some()
            || parsed.expired_object_delete_marker.is_some()
            || parsed.noncurrent_days.is_some()
            || parsed.abort_upload_days.is_some();
        if !has_action {
            return Err(s3_error!(InvalidRequest, "At least one action needs to be specified in a rule"));
        }
        let filter_text = parsed.filter.as_ref().map_or(0, |f| {
            f.prefix.as_ref().map_or(0, String::len) + f.tags.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
        });
        text_bytes += parsed.id.len() + parsed.legacy_prefix.as_ref().map_or(0, String::len) + filter_text;
        if text_bytes > MAX_CONFIGURATION_TEXT_BYTES {
            return Err(s3_error!(
                InvalidRequest,
                "A lifecycle configuration may hold at most {MAX_CONFIGURATION_TEXT_BYTES} bytes of IDs, prefixes and tags"
            ));
        }
        if parsed.filter.as_ref().is_some_and(|f| f.tags.len() > MAX_FILTER_TAGS) {
            return Err(s3_error!(InvalidRequest, "A lifecycle filter may name at most {MAX_FILTER_TAGS} tags"));
        }
        out.push(parsed);
    }
    Ok(out)
}

fn rule_dto(rule: LifecycleRule) -> LifecycleRule_ {
    let expiration = (rule.expiration_days.is_some()
        || rule.expiration_date_ms.is_some()
        || rule.expired_object_delete_marker.is_some())
    .then(|| LifecycleExpiration {
        date: rule.expiration_date_ms.map(crate::meta::timestamp),
        days: rule.expiration_days.map(|d| d as i32),
        expired_object_delete_marker: rule.expired_object_delete_marker,
    });
    let tag = |(key, value): (String, String)| Tag { key: Some(key), value: Some(value) };
    let filter = rule.filter.map(|f| {
        if f.and {
            LifecycleRuleFilter {
                and: Some(LifecycleRuleAndOperator {
                    object_size_greater_than: f.size_greater_than,
                    object_size_less_than: f.size_less_than,
                    prefix: f.prefix,
                    tags: (!f.tags.is_empty()).then(|| f.tags.into_iter().map(tag).collect()),
                }),
                ..Default::default()
            }
        } else {
            LifecycleRuleFilter {
                object_size_greater_than: f.size_greater_than,
                object_size_less_than: f.size_less_than,
                prefix: f.prefix,
                tag: f.tags.into_iter().next().map(tag),
                ..Default::default()
            }
        }
    });
    LifecycleRule_ {
        abort_incomplete_multipart_upload: rule
            .abort_upload_days
            .map(|d| AbortIncompleteMultipartUpload { days_after_initiation: Some(d as i32) }),
        expiration,
        filter,
        id: Some(rule.id),
        noncurrent_version_expiration: rule.noncurrent_days.map(|d| NoncurrentVersionExpiration {
            newer_noncurrent_versions: rule.newer_noncurrent_versions.map(|n| n as i32),
            noncurrent_days: Some(d as i32),
        }),
        noncurrent_version_transitions: None,
        prefix: rule.legacy_prefix,
        status: ExpirationStatus::from_static(if rule.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        transitions: None,
    }
}

/// s3s's rule type, named apart from the engine's.
type LifecycleRule_ = s3s::dto::LifecycleRule;

pub async fn put_bucket_lifecycle_configuration(
    s3: &QuarryS3,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let input = req.input;
    s3.require_bucket(&input.bucket)?;
    let configuration = input
        .lifecycle_configuration
        .ok_or_else(|| s3_error!(MalformedXML, "The request holds no lifecycle configuration"))?;
    let rules = rules_of(configuration)?;
    s3.engine.set_bucket_lifecycle(&input.bucket, Some(rules)).await.map_err(engine_error)?;
    Ok(S3Response::new(PutBucketLifecycleConfigurationOutput::default()))
}

pub async fn get_bucket_lifecycle_configuration(
    s3: &QuarryS3,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let bucket = s3.require_bucket(&req.input.bucket)?;
    let rules = bucket.lifecycle.ok_or_else(no_configuration)?;
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        rules: Some(rules.into_iter().map(rule_dto).collect()),
        ..Default::default()
    }))
}

pub async fn delete_bucket_lifecycle(
    s3: &QuarryS3,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    s3.require_bucket(&req.input.bucket)?;
    s3.engine.set_bucket_lifecycle(&req.input.bucket, None).await.map_err(engine_error)?;
    Ok(S3Response::new(DeleteBucketLifecycleOutput::default()))
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub expired: u64,
    pub noncurrent_removed: u64,
    pub delete_markers_removed: u64,
    pub uploads_aborted: u64,
}

/// When a time plus `days` lifecycle days has come: S3 rounds up to the next midnight
/// UTC; with a shortened day (tests) the sum is taken as it is.
fn due_at(from_ms: i64, days: u32, day_ms: i64) -> i64 {
    let due = from_ms.saturating_add(i64::from(days).saturating_mul(day_ms));
    if day_ms == DAY_MS { due.div_euclid(DAY_MS).saturating_add(1).saturating_mul(DAY_MS) } else { due }
}

fn origin() -> Option<Origin> {
    Some(Origin { requester: Some(REQUESTER.to_owned()), ..Default::default() })
}

/// Carries out every bucket's enabled rules as of `now_ms` (a lifecycle day is
/// `day_ms`). A version object lock keeps is left; its turn comes again next pass.
pub async fn run_pass(engine: &Engine, now_ms: i64, day_ms: i64) -> storage_core::Result<PassReport> {
    let mut report = PassReport::default();
    for (bucket, entry) in engine.buckets()? {
        let rules: Vec<LifecycleRule> = entry.lifecycle.unwrap_or_default().into_iter().filter(|r| r.enabled).collect();
        if rules.is_empty() {
            continue;
        }
        match expire_bucket(engine, &bucket, &rules, now_ms, day_ms, &mut report).await {
            Err(storage_core::Error::Rejected(Rejection::NoSuchBucket)) => continue, // deleted meanwhile
            other => other?,
        }
    }
    Ok(report)
}

async fn expire_bucket(
    engine: &Engine,
    bucket: &str,
    rules: &[LifecycleRule],
    now_ms: i64,
    day_ms: i64,
    report: &mut PassReport,
) -> storage_core::Result<()> {
    let mut query = VersionQuery { max_keys: PAGE_KEYS, ..Default::default() };
    // One key's versions, newest first (the listing gives them so).
    let mut group: Vec<ObjectEntry> = Vec::new();
    let mut group_key = String::new();
    loop {
        let page = engine.list_object_versions(bucket, &query)?;
        for (key, version, _latest) in page.versions {
            if key != group_key && !group.is_empty() {
                expire_key(engine, bucket, &group_key, &group, rules, now_ms, day_ms, report).await?;
                group.clear();
            }
            group_key = key;
            if group.len() < MAX_VERSIONS_PER_KEY {
                group.push(version);
            }
        }
        if !page.is_truncated {
            break;
        }
        let Some((key, version)) = page.last else { break };
        query.key_marker = Some(key);
        query.version_id_marker = version;
    }
    if !group.is_empty() {
        expire_key(engine, bucket, &group_key, &group, rules, now_ms, day_ms, report).await?;
    }
    for upload in engine.index().uploads(bucket)? {
        let upload = upload.upload;
        let due = rules.iter().filter(|r| upload.key.starts_with(r.prefix())).filter_map(|r| r.abort_upload_days);
        if due.into_iter().any(|days| due_at(upload.initiated_ms, days, day_ms) <= now_ms) {
            engine.abort_upload(bucket, &upload.key, &upload.upload_id).await?;
            report.uploads_aborted += 1;
        }
    }
    Ok(())
}

/// Applies the rules to one key's versions (`versions[0]` is the latest).
#[allow(clippy::too_many_arguments)]
async fn expire_key(
    engine: &Engine,
    bucket: &str,
    key: &str,
    versions: &[ObjectEntry],
    rules: &[LifecycleRule],
    now_ms: i64,
    day_ms: i64,
    report: &mut PassReport,
) -> storage_core::Result<()> {
    let latest = &versions[0];
    let applying = |v: &ObjectEntry| -> Vec<&LifecycleRule> {
        rules.iter().filter(|r| r.applies_to(key, &v.meta.tags, v.meta.size_bytes)).collect()
    };
    if latest.delete_marker {
        // A delete marker with nothing behind it: ExpiredObjectDeleteMarker removes it.
        let only_version = versions.len() == 1;
        let wanted = rules.iter().any(|r| r.expired_object_delete_marker == Some(true) && key.starts_with(r.prefix()));
        if only_version && wanted {
            let conditions = DeleteConditions { if_match: Some("*".into()), ..Default::default() };
            let removed =
                engine.delete_version(bucket, key, latest.version_id(), Some(conditions), false, origin()).await;
            count(removed, &mut report.delete_markers_removed)?;
        }
    } else {
        let expired = applying(latest).into_iter().any(|r| {
            r.expiration_date_ms.is_some_and(|date| date <= now_ms)
                || r.expiration_days.is_some_and(|days| due_at(latest.meta.last_modified_ms, days, day_ms) <= now_ms)
        });
        if expired {
            // Only this version: one written meanwhile is not expired by this decision.
            let conditions = DeleteConditions {
                if_match: Some(latest.meta.etag.clone()),
                last_modified_ms: Some(latest.meta.last_modified_ms),
                ..Default::default()
            };
            let deleted = engine.delete_object_by(bucket, key, Some(conditions), origin()).await;
            count(deleted, &mut report.expired)?;
        }
    }
    // Noncurrent versions, newest first: each became noncurrent when the one before it
    // in the list was written.
    for (rank, pair) in versions.windows(2).enumerate() {
        let (successor, version) = (&pair[0], &pair[1]);
        let due = applying(version).into_iter().any(|r| {
            let keep = r.newer_noncurrent_versions.unwrap_or(0) as usize;
            r.noncurrent_days
                .is_some_and(|days| rank >= keep && due_at(successor.meta.last_modified_ms, days, day_ms) <= now_ms)
        });
        if due {
            let removed = engine.delete_version(bucket, key, version.version_id(), None, false, origin()).await;
            count(removed, &mut report.noncurrent_removed)?;
        }
    }
    Ok(())
}

/// Counts a removal; a version object lock keeps, or one a condition no longer
/// matches (changed meanwhile), is skipped, not an error.
fn count(result: storage_core::Result<storage_core::Applied>, counter: &mut u64) -> storage_core::Result<()> {
    match result {
        Ok(_) => {
            *counter += 1;
            Ok(())
        }
        Err(storage_core::Error::Rejected(
            Rejection::ObjectLocked | Rejection::PreconditionFailed | Rejection::NoSuchKey,
        )) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: Option<&str>, status: &'static str, days: Option<i32>) -> LifecycleRule_ {
        LifecycleRule_ {
            abort_incomplete_multipart_upload: None,
            expiration: days.map(|d| LifecycleExpiration { days: Some(d), ..Default::default() }),
            filter: None,
            id: id.map(str::to_owned),
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            prefix: Some("logs/".into()),
            status: ExpirationStatus::from_static(status),
            transitions: None,
        }
    }

    fn configuration(rules: Vec<LifecycleRule_>) -> BucketLifecycleConfiguration {
        BucketLifecycleConfiguration { rules }
    }

    #[test]
    fn configurations_are_checked_as_s3_checks_them() {
        let ok = rules_of(configuration(vec![rule(Some("a"), "Enabled", Some(3)), rule(None, "Disabled", Some(1))]));
        let ok = ok.unwrap();
        assert_eq!((ok[0].id.as_str(), ok[0].enabled, ok[0].expiration_days), ("a", true, Some(3)));
        assert!(!ok[1].id.is_empty(), "a rule without an ID gets one");
        let long = "x".repeat(256);
        let cases = [
            (
                "same ID twice",
                vec![rule(Some("a"), "Enabled", Some(1)), rule(Some("a"), "Enabled", Some(2))],
                "InvalidArgument",
            ),
            ("an ID of 256 characters", vec![rule(Some(&long), "Enabled", Some(1))], "InvalidArgument"),
            ("status bad", vec![rule(Some("a"), "bad", Some(1))], "MalformedXML"),
            ("zero days", vec![rule(Some("a"), "Enabled", Some(0))], "InvalidArgument"),
            ("no action", vec![rule(Some("a"), "Enabled", None)], "InvalidRequest"),
            ("no rule", vec![], "MalformedXML"),
        ];
        for (case, rules, code) in cases {
            assert_eq!(rules_of(configuration(rules)).unwrap_err().code().as_str(), code, "{case}");
        }
        let mut many_tags = rule(Some("tags"), "Enabled", Some(1));
        many_tags.prefix = None;
        let tag = |i: usize| Tag { key: Some(format!("k{i}")), value: Some("v".into()) };
        many_tags.filter = Some(LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator { tags: Some((0..51).map(tag).collect()), ..Default::default() }),
            ..Default::default()
        });
        assert_eq!(rules_of(configuration(vec![many_tags])).unwrap_err().code().as_str(), "InvalidRequest");
        let long_prefix = |i: usize| {
            let mut r = rule(Some(&format!("r{i}")), "Enabled", Some(1));
            r.prefix = Some("p".repeat(1024));
            r
        };
        let too_much = configuration((0..600).map(long_prefix).collect());
        assert_eq!(rules_of(too_much).unwrap_err().code().as_str(), "InvalidRequest", "600 KiB of prefixes");
        let mut transition = rule(Some("t"), "Enabled", Some(30));
        transition.transitions = Some(vec![Transition { days: Some(1), ..Default::default() }]);
        assert_eq!(rules_of(configuration(vec![transition])).unwrap_err().code().as_str(), "NotImplemented");
    }

    #[test]
    fn a_rule_reads_back_as_it_was_put() {
        let put = vec![rule(Some("a"), "Enabled", Some(31))];
        let got: Vec<LifecycleRule_> =
            rules_of(configuration(put.clone())).unwrap().into_iter().map(rule_dto).collect();
        assert_eq!(got, put);
    }

    #[test]
    fn days_are_counted_to_the_next_midnight() {
        let noon = 10 * DAY_MS + DAY_MS / 2;
        assert_eq!(due_at(noon, 1, DAY_MS), 12 * DAY_MS);
        assert_eq!(due_at(noon, 1, 1000), noon + 1000, "a shortened day is not rounded");
    }
}

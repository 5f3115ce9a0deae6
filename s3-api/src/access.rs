//! What a caller may do: one decision per request, from
//! * the caller's user (`auth.rs`): admins may do anything; a scoped user what its
//!   grant covers; an owner whatever it likes with its own buckets;
//! * the bucket's policy (`policy/`): an explicit Deny refuses the request whoever
//!   asks (admins excepted), an Allow lets anyone it names in, anonymous callers
//!   included.
//!
//! The owner of a bucket may always read, replace and delete its policy, so that no
//! policy locks the owner out (as on S3). A bucket that does not exist lets the
//! request through to answer NoSuchBucket, as S3 does; the reserved names
//! (`quarry-catalog`, `quarry-admin`) are for admins only.

use crate::auth::{KeyStore, User, UserKind, is_read_only};
use crate::policy::{Caller, Decision, Policy, Request};
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{
    CopyObjectInput, CopySource, DeleteObjectsInput, PostObjectInput, PutObjectTaggingInput, UploadPartCopyInput,
};
use s3s::path::S3Path;
use s3s::{S3Request, S3Result, s3_error};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use storage_core::{BucketEntry, Engine, ObjectOwnership, Permission, VersionId};

/// Parsed bucket policies kept between requests, at most this many buckets' worth.
const POLICY_CACHE_ENTRIES: usize = 1024;

pub struct Access {
    keys: Arc<KeyStore>,
    engine: Engine,
    /// bucket → (the LSN of the record that set its policy, the parsed policy).
    policies: Mutex<HashMap<String, (u64, Arc<Policy>)>>,
}

fn denied() -> s3s::S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

/// One question: may `caller` do `operation` (as IAM action `action`) on this bucket
/// or object?
struct Ask<'a> {
    caller: Option<&'a User>,
    operation: &'a str,
    action: String,
    bucket: &'a str,
    key: Option<&'a str>,
    version_id: Option<&'a str>,
    context: Context<'a>,
}

/// The condition keys of a request: built the first time a policy needs them. Most
/// requests meet no policy (an admin's, or any in a bucket without one), and building
/// them formats the time and copies the `x-amz-*` headers.
enum Context<'a> {
    Built(HashMap<String, Vec<String>>),
    Deferred { headers: &'a http::HeaderMap, uri: &'a http::Uri, origin: Option<&'a crate::RequestContext> },
}

impl Ask<'_> {
    /// The condition keys, built now if they were not yet.
    fn context(&mut self) -> &mut HashMap<String, Vec<String>> {
        if let Context::Deferred { headers, uri, origin } = &self.context {
            let built = request_context(headers, uri, self.caller, *origin);
            self.context = Context::Built(built);
        }
        match &mut self.context {
            Context::Built(keys) => keys,
            Context::Deferred { .. } => unreachable!("built above"),
        }
    }

    /// The condition keys once `context` has built them.
    fn built_context(&self) -> &HashMap<String, Vec<String>> {
        match &self.context {
            Context::Built(keys) => keys,
            Context::Deferred { .. } => panic!("the condition keys are read before they were built"),
        }
    }
}

impl Access {
    pub fn new(keys: Arc<KeyStore>, engine: Engine) -> Access {
        Access { keys, engine, policies: Mutex::new(HashMap::new()) }
    }

    /// The caller's user; a key that names none is refused (s3s checked the signature).
    fn caller(&self, credentials: Option<&s3s::auth::Credentials>) -> S3Result<Option<User>> {
        match credentials {
            None => Ok(None),
            Some(c) => self.keys.user(&c.access_key).map(Some).ok_or_else(denied),
        }
    }

    fn policy(&self, bucket: &str, entry: &BucketEntry) -> S3Result<Option<Arc<Policy>>> {
        let (Some(text), Some(lsn)) = (&entry.policy, entry.policy_lsn) else { return Ok(None) };
        let mut cache = self.policies.lock().unwrap();
        if let Some((cached_lsn, policy)) = cache.get(bucket)
            && *cached_lsn == lsn
        {
            return Ok(Some(policy.clone()));
        }
        // Checked when it was put: a failure here means the server's checks changed.
        let policy = Arc::new(Policy::parse(text, bucket).map_err(|e| {
            tracing::error!("the stored policy of bucket {bucket} no longer parses: {e}");
            s3_error!(InternalError, "The bucket's policy cannot be read")
        })?);
        if cache.len() >= POLICY_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(bucket.to_owned(), (lsn, policy.clone()));
        Ok(Some(policy))
    }

    fn decide(&self, ask: Ask<'_>) -> S3Result<()> {
        if ask.caller.is_some_and(User::is_admin) {
            return Ok(());
        }
        if ask.bucket == crate::CATALOG_BUCKET || ask.bucket == crate::ADMIN_BUCKET {
            return Err(denied());
        }
        let Some(bucket) = self.engine.bucket(ask.bucket).map_err(crate::error::engine_error)? else {
            return Ok(()); // answered NoSuchBucket by the operation
        };
        self.decide_in(ask, &bucket)
    }

    /// `decide` for a caller who is not an admin, in an existing bucket.
    fn decide_in(&self, mut ask: Ask<'_>, bucket: &BucketEntry) -> S3Result<()> {
        let owns = ask.caller.is_some_and(|u| bucket.owner.as_deref() == Some(u.name.as_str()));
        if owns && matches!(ask.action.as_str(), "s3:GetBucketPolicy" | "s3:PutBucketPolicy" | "s3:DeleteBucketPolicy")
        {
            return Ok(());
        }
        let restricted = bucket.public_access_block.is_some_and(|b| b.restrict_public_buckets);
        let decision = match self.policy(ask.bucket, bucket)? {
            None => Decision::NotApplicable,
            Some(policy) => {
                ask.context();
                self.add_existing_object_tags(&mut ask)?;
                let caller = ask.caller.map_or(Caller::Anonymous, User::as_policy_caller);
                let resource = match ask.key {
                    Some(key) => format!("arn:aws:s3:::{}/{key}", ask.bucket),
                    None => format!("arn:aws:s3:::{}", ask.bucket),
                };
                let request =
                    Request { caller: &caller, action: &ask.action, resource: &resource, context: ask.built_context() };
                match policy.evaluate(&request) {
                    // RestrictPublicBuckets: a public policy lets in no one but the owner.
                    Decision::Allow if restricted && policy.is_public() => Decision::NotApplicable,
                    decision => decision,
                }
            }
        };
        // A scoped grant is the use of a bucket, not its ownership.
        let owner_only = matches!(
            ask.operation,
            "DeleteBucket"
                | "PutBucketPolicy"
                | "DeleteBucketPolicy"
                | "PutBucketAcl"
                | "PutBucketOwnershipControls"
                | "DeleteBucketOwnershipControls"
                | "PutPublicAccessBlock"
                | "DeletePublicAccessBlock"
                | "PutBucketCors"
                | "DeleteBucketCors"
                | "PutBucketEncryption"
                | "DeleteBucketEncryption"
                | "PutBucketLifecycleConfiguration"
                | "DeleteBucketLifecycle"
        );
        let granted =
            !owner_only && ask.caller.is_some_and(|u| u.scope_allows(ask.bucket, !is_read_only(ask.operation)));
        // As on S3, the bucket's owner reads another user's object, or its ACL, only as
        // that object's ACL lets it (it may still overwrite or delete it).
        let owns = owns && !self.owned_by_another(&ask, bucket)?;
        match decision {
            Decision::Deny => Err(denied()),
            Decision::Allow => Ok(()),
            Decision::NotApplicable if owns || granted => Ok(()),
            Decision::NotApplicable if self.acl_allows(&ask, bucket)? => Ok(()),
            Decision::NotApplicable if self.missing_but_listable(&mut ask, bucket)? => Ok(()),
            Decision::NotApplicable => Err(denied()),
        }
    }

    /// The object (version) a request names, if it exists and is not a delete marker.
    fn asked_object(&self, ask: &Ask<'_>) -> S3Result<Option<storage_core::ObjectEntry>> {
        let Some(key) = ask.key else { return Ok(None) };
        let object = match ask.version_id.and_then(VersionId::parse) {
            Some(version) => self.engine.version(ask.bucket, key, version),
            None => self.engine.object(ask.bucket, key),
        };
        Ok(object.map_err(crate::error::engine_error)?.filter(|o| !o.delete_marker))
    }

    /// Does a read of an object, or of its ACL, name one another user owns (ACLs on)?
    fn owned_by_another(&self, ask: &Ask<'_>, bucket: &BucketEntry) -> S3Result<bool> {
        let reads_object = matches!(
            ask.operation,
            "GetObject" | "HeadObject" | "SelectObjectContent" | "GetObjectAcl" | "PutObjectAcl"
        );
        if !reads_object || crate::acl::ownership_of(bucket) == ObjectOwnership::BucketOwnerEnforced {
            return Ok(false);
        }
        let caller = ask.caller.map(|u| u.name.as_str());
        Ok(self.asked_object(ask)?.and_then(|o| o.meta.owner).is_some_and(|owner| Some(owner.as_str()) != caller))
    }

    /// A GET or HEAD of a key that does not exist is 404 for a caller who may list it
    /// (s3:ListBucket, with the key as `s3:prefix`), 403 for anyone else, as on S3.
    fn missing_but_listable(&self, ask: &mut Ask<'_>, bucket: &BucketEntry) -> S3Result<bool> {
        if !matches!(ask.operation, "GetObject" | "HeadObject") || self.asked_object(ask)?.is_some() {
            return Ok(false);
        }
        let Some(key) = ask.key else { return Ok(false) };
        let key = key.to_owned();
        let mut context = ask.context().clone();
        context.insert("s3:prefix".into(), vec![key]);
        let list = Ask {
            caller: ask.caller,
            operation: "ListObjectsV2",
            action: "s3:ListBucket".into(),
            bucket: ask.bucket,
            key: None,
            version_id: None,
            context: Context::Built(context),
        };
        Ok(self.decide_in(list, bucket).is_ok())
    }

    /// Whether the bucket's or the object's ACL grants the request (never under
    /// BucketOwnerEnforced). An object's owner has every permission on it; a missing
    /// object is the bucket's READ to learn about (404 rather than 403).
    fn acl_allows(&self, ask: &Ask<'_>, bucket: &BucketEntry) -> S3Result<bool> {
        if crate::acl::ownership_of(bucket) == ObjectOwnership::BucketOwnerEnforced {
            return Ok(false);
        }
        let ignore_public = bucket.public_access_block.is_some_and(|b| b.ignore_public_acls);
        let bucket_grants = bucket.acl.as_deref().unwrap_or_default();
        let on_bucket = |permission| crate::acl::permits(bucket_grants, ask.caller, permission, ignore_public);
        let object_permission = match ask.operation {
            "ListObjects" | "ListObjectsV2" | "ListObjectVersions" | "ListMultipartUploads" | "HeadBucket" => {
                return Ok(on_bucket(Permission::Read));
            }
            "PutObject"
            | "CopyObject"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "UploadPartCopy"
            | "CompleteMultipartUpload"
            | "ListParts"
            | "AbortMultipartUpload"
            | "DeleteObject"
            | "DeleteObjects" => {
                return Ok(on_bucket(Permission::Write));
            }
            "GetBucketAcl" => return Ok(on_bucket(Permission::ReadAcp)),
            "PutBucketAcl" => return Ok(on_bucket(Permission::WriteAcp)),
            "GetObject" | "HeadObject" | "SelectObjectContent" => Permission::Read,
            "GetObjectAcl" => Permission::ReadAcp,
            "PutObjectAcl" => Permission::WriteAcp,
            _ => return Ok(false),
        };
        if ask.key.is_none() {
            return Ok(false);
        }
        let Some(object) = self.asked_object(ask)? else {
            return Ok(on_bucket(Permission::Read));
        };
        if object.meta.owner.is_some() && ask.caller.map(|u| &u.name) == object.meta.owner.as_ref() {
            return Ok(true);
        }
        let grants = object.meta.acl.as_deref().unwrap_or_default();
        Ok(crate::acl::permits(grants, ask.caller, object_permission, ignore_public))
    }

    /// `s3:ExistingObjectTag/<key>` of the object (version) asked about, if it exists.
    fn add_existing_object_tags(&self, ask: &mut Ask<'_>) -> S3Result<()> {
        // A delete marker has no tags: only an object (version) adds any.
        if let Some(object) = self.asked_object(ask)? {
            for (k, v) in &object.meta.tags {
                ask.context().insert(format!("s3:existingobjecttag/{}", k.to_ascii_lowercase()), vec![v.clone()]);
            }
        }
        Ok(())
    }
}

/// The access decision for one caller, key by key, for the SQL endpoint: a key is
/// listed if a ListObjects with it as prefix would be allowed, an object read if a
/// GetObject of it would be. Buckets are read once, when first asked about: a query
/// sees them as they were when it started.
pub struct CallerAccess {
    access: Arc<Access>,
    caller: Option<User>,
    /// The condition keys of the SQL request (source address, user agent, ...).
    context: HashMap<String, Vec<String>>,
    buckets: Mutex<HashMap<String, Option<BucketEntry>>>,
}

impl CallerAccess {
    pub fn new(
        access: Arc<Access>,
        caller: Option<User>,
        headers: &http::HeaderMap,
        uri: &http::Uri,
        origin: Option<&crate::RequestContext>,
    ) -> CallerAccess {
        let context = request_context(headers, uri, caller.as_ref(), origin);
        CallerAccess { access, caller, context, buckets: Mutex::new(HashMap::new()) }
    }

    fn allows(&self, operation: &str, bucket: &str, key: Option<&str>, extra: Option<(&str, &str)>) -> bool {
        if self.caller.as_ref().is_some_and(User::is_admin) {
            return true;
        }
        if bucket == crate::CATALOG_BUCKET || bucket == crate::ADMIN_BUCKET {
            return false;
        }
        let entry = {
            let mut buckets = self.buckets.lock().unwrap();
            match buckets.get(bucket) {
                Some(entry) => entry.clone(),
                None => {
                    let entry = self.access.engine.bucket(bucket).ok().flatten();
                    buckets.insert(bucket.to_owned(), entry.clone());
                    entry
                }
            }
        };
        let Some(entry) = entry else { return false };
        let mut context = self.context.clone();
        if let Some((name, value)) = extra {
            context.insert(name.to_owned(), vec![value.to_owned()]);
        }
        let ask = Ask {
            caller: self.caller.as_ref(),
            operation,
            action: action_of(operation, false),
            bucket,
            key,
            version_id: None,
            context: Context::Built(context),
        };
        self.access.decide_in(ask, &entry).is_ok()
    }

    /// May the caller list the whole bucket (true of every key when its bucket has no
    /// policy: without one, listing is decided for the bucket, never per key)?
    pub fn may_list_bucket(&self, bucket: &str) -> bool {
        self.allows("ListObjectsV2", bucket, None, None)
    }
}

impl quarry_sql::KeyAccess for CallerAccess {
    fn may_list(&self, bucket: &str, key: &str) -> bool {
        self.allows("ListObjectsV2", bucket, None, Some(("s3:prefix", key)))
    }

    fn may_read(&self, bucket: &str, key: &str) -> bool {
        self.allows("GetObject", bucket, Some(key), None)
    }
}

/// The IAM action of an S3 operation (`versioned`: the request names a version).
fn action_of(operation: &str, versioned: bool) -> String {
    let versioned_action = |base: &str| if versioned { format!("s3:{base}Version") } else { format!("s3:{base}") };
    match operation {
        "GetObject" | "HeadObject" | "SelectObjectContent" => versioned_action("GetObject"),
        "GetObjectAttributes" => versioned_action("GetObjectAttributes"),
        "GetObjectTagging" | "PutObjectTagging" | "DeleteObjectTagging" | "GetObjectAcl" | "PutObjectAcl" => {
            versioned_action(operation)
        }
        "DeleteObject" => versioned_action("DeleteObject"),
        "DeleteObjects" => "s3:DeleteObject".into(),
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => "s3:PutObject".into(),
        "ListParts" => "s3:ListMultipartUploadParts".into(),
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads".into(),
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "s3:ListBucket".into(),
        "ListObjectVersions" => "s3:ListBucketVersions".into(),
        "ListBuckets" => "s3:ListAllMyBuckets".into(),
        "DeleteBucketTagging" => "s3:PutBucketTagging".into(),
        "GetObjectLockConfiguration" => "s3:GetBucketObjectLockConfiguration".into(),
        "GetPublicAccessBlock" => "s3:GetBucketPublicAccessBlock".into(),
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "s3:PutBucketPublicAccessBlock".into(),
        "DeleteBucketOwnershipControls" => "s3:PutBucketOwnershipControls".into(),
        "PutObjectLockConfiguration" => "s3:PutBucketObjectLockConfiguration".into(),
        "PutBucketCors" | "DeleteBucketCors" => "s3:PutBucketCORS".into(),
        "GetBucketCors" => "s3:GetBucketCORS".into(),
        "PutBucketEncryption" | "DeleteBucketEncryption" => "s3:PutEncryptionConfiguration".into(),
        "GetBucketEncryption" => "s3:GetEncryptionConfiguration".into(),
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => "s3:PutLifecycleConfiguration".into(),
        "GetBucketLifecycleConfiguration" => "s3:GetLifecycleConfiguration".into(),
        other => format!("s3:{other}"),
    }
}

/// Condition keys of the request itself (the policy adds none of its own).
fn request_context(
    headers: &http::HeaderMap,
    uri: &http::Uri,
    caller: Option<&User>,
    origin: Option<&crate::RequestContext>,
) -> HashMap<String, Vec<String>> {
    let mut context: HashMap<String, Vec<String>> = HashMap::new();
    let mut put = |key: &str, value: String| context.entry(key.to_owned()).or_default().push(value);
    if let Some(ip) = origin.and_then(|o| o.source_ip) {
        put("aws:sourceip", ip.to_string());
    }
    // Quarry's own TLS, or a trusted proxy's (`--trusted-proxy`, X-Forwarded-Proto).
    let secure = origin.is_some_and(|o| o.secure_transport);
    put("aws:securetransport", secure.to_string());
    let now = time::OffsetDateTime::now_utc();
    if let Ok(text) = now.format(&time::format_description::well_known::Rfc3339) {
        put("aws:currenttime", text);
    }
    put("aws:epochtime", now.unix_timestamp().to_string());
    if let Some(user) = caller {
        put("aws:username", user.name.clone());
        put("aws:userid", user.canonical_id.clone());
    }
    for (name, value) in headers {
        let Ok(value) = value.to_str() else { continue };
        match name.as_str() {
            "referer" => put("aws:referer", value.to_owned()),
            "user-agent" => put("aws:useragent", value.to_owned()),
            "if-none-match" => put("s3:if-none-match", value.to_owned()),
            "x-amz-tagging" => add_request_tags(&mut put, value),
            n if n.starts_with("x-amz-") => put(&format!("s3:{n}"), value.to_owned()),
            _ => {}
        }
    }
    for (name, value) in url_query(uri) {
        match name.as_str() {
            "prefix" | "delimiter" | "max-keys" => put(&format!("s3:{name}"), value),
            "versionId" => put("s3:versionid", value),
            _ => {}
        }
    }
    context
}

/// `s3:RequestObjectTag/<key>` and `s3:RequestObjectTagKeys` of tags given as
/// `x-amz-tagging` (URL-encoded pairs).
fn add_request_tags(put: &mut impl FnMut(&str, String), tagging: &str) {
    for (k, v) in form_pairs(tagging) {
        put(&format!("s3:requestobjecttag/{}", k.to_ascii_lowercase()), v);
        put("s3:requestobjecttagkeys", k);
    }
}

fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode =
                |s: &str| urlencoding::decode(&s.replace('+', " ")).map(|d| d.into_owned()).unwrap_or_default();
            (decode(k), decode(v))
        })
        .collect()
}

fn url_query(uri: &http::Uri) -> Vec<(String, String)> {
    uri.query().map(form_pairs).unwrap_or_default()
}

fn origin(cx: &mut S3AccessContext<'_>) -> Option<crate::RequestContext> {
    cx.extensions_mut().get::<crate::RequestContext>().cloned()
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let origin = origin(cx);
        let caller = self.caller(cx.credentials())?;
        let caller = caller.as_ref();
        let operation = cx.s3_op().name();
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => (None, None),
            S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
        };
        match (operation, bucket) {
            ("ListBuckets", _) if caller.is_some() => Ok(()), // filtered to what the caller may see
            ("CreateBucket", _) => match caller {
                Some(user) if matches!(user.kind, UserKind::Admin | UserKind::Owner) => Ok(()),
                Some(_) => Err(s3_error!(AccessDenied, "This key may only use the buckets it was given")),
                None => Err(denied()),
            },
            // Decided with what only the request body tells (tags, keys; a POST upload's
            // key is a form field).
            ("PutObjectTagging" | "DeleteObjects" | "PostObject", Some(_)) => Ok(()),
            (_, Some(bucket)) => {
                self.check_expected_owner(cx.headers(), &bucket)?;
                let query = url_query(cx.uri());
                let version_id = query.iter().find(|(k, _)| k == "versionId").map(|(_, v)| v.clone());
                let ask = Ask {
                    caller,
                    operation,
                    action: action_of(operation, version_id.is_some()),
                    bucket: &bucket,
                    key: key.as_deref(),
                    version_id: version_id.as_deref(),
                    context: Context::Deferred { headers: cx.headers(), uri: cx.uri(), origin: origin.as_ref() },
                };
                self.decide(ask)
            }
            _ => Err(denied()),
        }
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        self.check_source(req.credentials.as_ref(), &req.input.copy_source)
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        self.check_source(req.credentials.as_ref(), &req.input.copy_source)
    }

    async fn put_object_tagging(&self, req: &mut S3Request<PutObjectTaggingInput>) -> S3Result<()> {
        let caller = self.caller(req.credentials.as_ref())?;
        let caller = caller.as_ref();
        let version_id = req.input.version_id.clone();
        let mut context = self.context_of(req, caller);
        for tag in &req.input.tagging.tag_set {
            let (Some(k), Some(v)) = (&tag.key, &tag.value) else { continue };
            context.entry(format!("s3:requestobjecttag/{}", k.to_ascii_lowercase())).or_default().push(v.clone());
            context.entry("s3:requestobjecttagkeys".into()).or_default().push(k.clone());
        }
        self.decide(Ask {
            caller,
            operation: "PutObjectTagging",
            action: action_of("PutObjectTagging", version_id.is_some()),
            bucket: &req.input.bucket,
            key: Some(&req.input.key),
            version_id: version_id.as_deref(),
            context: Context::Built(context),
        })
    }

    /// A browser upload (POST Object) is a PutObject of the form's key.
    async fn post_object(&self, req: &mut S3Request<PostObjectInput>) -> S3Result<()> {
        // The form's `acl` and `tagging` fields, which s3s leaves out, decide as its
        // `x-amz-acl` and `x-amz-tagging` would (the first hook s3s calls with the form).
        crate::post_form::fill_in(req)?;
        let caller = self.caller(req.credentials.as_ref())?;
        let caller = caller.as_ref();
        let mut context = self.context_of(req, caller);
        if let Some(acl) = &req.input.acl {
            context.insert("s3:x-amz-acl".into(), vec![acl.as_str().to_owned()]);
        }
        if let Some(tagging) = &req.input.tagging {
            add_request_tags(&mut |key: &str, value| context.entry(key.to_owned()).or_default().push(value), tagging);
        }
        self.decide(Ask {
            caller,
            operation: "PutObject",
            action: action_of("PutObject", false),
            bucket: &req.input.bucket,
            key: Some(&req.input.key),
            version_id: None,
            context: Context::Built(context),
        })
    }

    /// Every object named must be deletable: one that is not refuses the whole request.
    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        let caller = self.caller(req.credentials.as_ref())?;
        let caller = caller.as_ref();
        let context = self.context_of(req, caller);
        for object in &req.input.delete.objects {
            let version_id = object.version_id.as_deref();
            self.decide(Ask {
                caller,
                operation: "DeleteObjects",
                action: action_of("DeleteObject", version_id.is_some()),
                bucket: &req.input.bucket,
                key: Some(&object.key),
                version_id,
                context: Context::Built(context.clone()),
            })?;
        }
        Ok(())
    }
}

impl Access {
    /// `x-amz-expected-bucket-owner`: the request is refused (403) unless the bucket's
    /// owner has that canonical id, whoever asks.
    fn check_expected_owner(&self, headers: &http::HeaderMap, bucket: &str) -> S3Result<()> {
        let Some(expected) = headers.get("x-amz-expected-bucket-owner") else { return Ok(()) };
        let Some(entry) = self.engine.bucket(bucket).map_err(crate::error::engine_error)? else { return Ok(()) };
        if expected.as_bytes() != crate::acl::bucket_owner_id(&entry).as_bytes() {
            return Err(s3_error!(AccessDenied, "The bucket is not owned by the expected bucket owner"));
        }
        Ok(())
    }

    /// The condition keys of a request s3s has parsed (per-operation checks).
    fn context_of<T>(&self, req: &S3Request<T>, caller: Option<&User>) -> HashMap<String, Vec<String>> {
        request_context(&req.headers, &req.uri, caller, req.extensions.get::<crate::RequestContext>())
    }

    /// CopyObject and UploadPartCopy read their source: GetObject on it.
    fn check_source(&self, credentials: Option<&s3s::auth::Credentials>, source: &CopySource) -> S3Result<()> {
        let CopySource::Bucket { bucket, key, version_id } = source else {
            return Ok(());
        };
        let caller = self.caller(credentials)?;
        let caller = caller.as_ref();
        self.decide(Ask {
            caller,
            operation: "GetObject",
            action: action_of("GetObject", version_id.is_some()),
            bucket,
            key: Some(key),
            version_id: version_id.as_deref(),
            context: Context::Built(HashMap::new()),
        })
    }
}

//! The S3 protocol on top of storage-core. s3s parses requests, verifies SigV4 and
//! serializes responses; this crate maps each S3 operation onto the engine, one file
//! per operation family (bucket, put, get, delete, copy, list, multipart).

mod access;
mod acl;
mod admin;
mod admin_users;
mod attributes;
mod auth;
mod body;
mod bucket;
mod bucket_encryption;
mod bucket_policy;
mod catalog;
mod checksum;
mod copy;
pub mod cors;
mod delete;
mod error;
mod get;
mod host;
mod key;
pub mod lifecycle;
mod list;
mod lock;
mod meta;
mod multipart;
mod policy;
pub mod post_form;
mod public_access;
mod put;
mod query_gate;
pub mod secrets;
mod select;
mod sql;
mod sse;
mod tagging;
mod unsupported;
mod version;

pub use admin::ADMIN_BUCKET;
pub use admin_users::valid_user_name;
pub use auth::{AccessLevel, KeyConfig, KeyStore};
pub use catalog::CATALOG_BUCKET;
pub use host::{DomainHost, MAX_DOMAINS};
pub use sse::ServerDataKeys;

use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use std::sync::Arc;
use storage_core::Engine;

/// What the HTTP layer knows about a request, handed to the S3 layer in the request's
/// extensions: where it came from, over what, and the id it is answered with
/// (x-amz-request-id).
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client's address: the connection's peer, or the client a trusted proxy
    /// relays for (the policy key `aws:SourceIp`).
    pub source_ip: Option<std::net::IpAddr>,
    /// The request came over TLS (the policy key `aws:SecureTransport`).
    pub secure_transport: bool,
    pub request_id: String,
}

/// Our own requests beside the S3 API: the SQL endpoint and the admin API.
pub fn is_extension_request(method: &http::Method, uri: &http::Uri) -> bool {
    sql::is_sql_request(method, uri) || admin::is_admin_path(uri.path())
}

/// Who made a change, for the catalog's journal.
fn origin<T>(req: &S3Request<T>) -> storage_core::Origin {
    let context = req.extensions.get::<RequestContext>();
    storage_core::Origin {
        requester: req.credentials.as_ref().map(|c| c.access_key.clone()),
        source_ip: context.and_then(|c| c.source_ip).map(|ip| ip.to_string()),
        request_id: context.map(|c| c.request_id.clone()),
    }
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The largest object a single PutObject may upload.
    pub max_object_size_bytes: u64,
    pub region: String,
    /// What `POST /quarry-admin/compact` uses (forced on top).
    pub compaction: storage_core::CompactionOptions,
    /// Time and memory for one SQL query (S3 Select or the SQL endpoint).
    pub query_limits: quarry_sql::QueryLimits,
    /// Queries (S3 Select and the SQL endpoint together) that may run at once.
    pub max_concurrent_queries: usize,
    /// New buckets start with all four Block Public Access settings on.
    pub block_public_access: bool,
    /// New buckets' Object Ownership when CreateBucket names none.
    pub object_ownership: storage_core::ObjectOwnership,
    /// Domains under which `<bucket>.<domain>` addresses a bucket (virtual-hosted style).
    pub domains: DomainHost,
}

/// The S3 implementation: the engine, the keys, and the settings.
#[derive(Clone)]
pub struct QuarryS3 {
    engine: Engine,
    keys: Arc<KeyStore>,
    config: Arc<ApiConfig>,
    query_gate: query_gate::QueryGate,
}

impl QuarryS3 {
    /// The bucket exists and takes this request (the catalog namespace is read-only:
    /// the operations that read it answer before asking this).
    fn require_bucket(&self, bucket: &str) -> S3Result<storage_core::BucketEntry> {
        if bucket == CATALOG_BUCKET {
            return Err(catalog::read_only());
        }
        match self.engine.bucket(bucket).map_err(error::engine_error)? {
            Some(entry) => Ok(entry),
            None => Err(s3_error!(NoSuchBucket, "The specified bucket does not exist")),
        }
    }
}

impl QuarryS3 {
    /// The user who signed a request (none: anonymous).
    fn caller<T>(&self, req: &S3Request<T>) -> Option<auth::User> {
        req.credentials.as_ref().and_then(|c| self.keys.user(&c.access_key))
    }

    /// The owner of `bucket` as listings name it. Buckets made before buckets had
    /// owners belong to the admins, named "quarry".
    fn bucket_owner(&self, bucket: &str) -> S3Result<Owner> {
        let entry = self.engine.bucket(bucket).map_err(error::engine_error)?;
        Ok(match entry.and_then(|e| e.owner) {
            Some(name) => auth::owner_named(&name),
            None => Owner { id: Some("quarry".into()), display_name: Some("quarry".into()) },
        })
    }
}

/// The longest POST Object form (file and fields): s3s holds the file in memory before
/// anything is decided, so the front refuses longer forms from their Content-Length.
pub const POST_FORM_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// s3s's bounds: its defaults, but a POST form's file and fields kept small (s3s reads
/// them whole; its defaults are 5 GB and 20 MB).
fn s3s_config() -> s3s::config::S3Config {
    let mut config = s3s::config::S3Config::default();
    config.post_object_max_file_size = POST_FORM_MAX_BYTES;
    config.form_max_fields_size = 1024 * 1024;
    config.form_max_field_size = 256 * 1024;
    config
}

/// The S3 service (SigV4 auth and per-key access checks included), ready for hyper.
pub fn service(engine: Engine, keys: Arc<KeyStore>, config: ApiConfig) -> S3Service {
    let query_gate = query_gate::QueryGate::new(config.max_concurrent_queries);
    let routes = Routes {
        admin: admin::AdminRoute {
            engine: engine.clone(),
            keys: keys.clone(),
            compaction: config.compaction,
            identities: admin_users::Identities {
                engine: engine.clone(),
                keys: keys.clone(),
                changes: tokio::sync::Mutex::new(()),
            },
        },
        sql: sql::SqlRoute {
            engine: engine.clone(),
            keys: keys.clone(),
            limits: config.query_limits.clone(),
            gate: query_gate.clone(),
            access: Arc::new(access::Access::new(keys.clone(), engine.clone())),
        },
    };
    let domains = config.domains.clone();
    let engine_for_access = engine.clone();
    let s3 = QuarryS3 { engine, keys: keys.clone(), config: Arc::new(config), query_gate };
    let mut builder = S3ServiceBuilder::new(s3);
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(s3s_config()))));
    builder.set_host(domains);
    builder.set_auth(auth::Auth(keys.clone()));
    builder.set_access(access::Access::new(keys, engine_for_access));
    builder.set_route(routes);
    builder.build()
}

/// Our non-S3 requests: the admin API and the SQL endpoint (s3s takes one route).
struct Routes {
    admin: admin::AdminRoute,
    sql: sql::SqlRoute,
}

#[async_trait::async_trait]
impl s3s::route::S3Route for Routes {
    fn is_match(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        extensions: &mut http::Extensions,
    ) -> bool {
        self.admin.is_match(method, uri, headers, extensions) || self.sql.is_match(method, uri, headers, extensions)
    }

    async fn check_access(&self, req: &mut S3Request<s3s::Body>) -> S3Result<()> {
        if sql::is_sql_request(&req.method, &req.uri) {
            self.sql.check_access(req).await
        } else {
            self.admin.check_access(req).await
        }
    }

    async fn call(&self, req: S3Request<s3s::Body>) -> S3Result<S3Response<s3s::Body>> {
        if sql::is_sql_request(&req.method, &req.uri) { self.sql.call(req).await } else { self.admin.call(req).await }
    }
}

#[async_trait::async_trait]
impl S3 for QuarryS3 {
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        bucket::list_buckets(self, req).await
    }

    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        bucket::create_bucket(self, req).await
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        bucket::head_bucket(self, req).await
    }

    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        bucket::delete_bucket(self, req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        bucket::get_bucket_location(self, req).await
    }

    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        lock::put_object_lock_configuration(self, req).await
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        lock::get_object_lock_configuration(self, req).await
    }

    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        lock::put_object_retention(self, req).await
    }

    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        lock::get_object_retention(self, req).await
    }

    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        lock::put_object_legal_hold(self, req).await
    }

    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        lock::get_object_legal_hold(self, req).await
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        attributes::get_object_attributes(self, req).await
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        tagging::put_object_tagging(self, req).await
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        tagging::get_object_tagging(self, req).await
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        tagging::delete_object_tagging(self, req).await
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        bucket_policy::put_bucket_policy(self, req).await
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        bucket_policy::get_bucket_policy(self, req).await
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        bucket_policy::delete_bucket_policy(self, req).await
    }

    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        bucket_policy::get_bucket_policy_status(self, req).await
    }

    async fn get_bucket_acl(&self, req: S3Request<GetBucketAclInput>) -> S3Result<S3Response<GetBucketAclOutput>> {
        acl::get_bucket_acl(self, req).await
    }

    async fn put_bucket_acl(&self, req: S3Request<PutBucketAclInput>) -> S3Result<S3Response<PutBucketAclOutput>> {
        acl::put_bucket_acl(self, req).await
    }

    async fn get_object_acl(&self, req: S3Request<GetObjectAclInput>) -> S3Result<S3Response<GetObjectAclOutput>> {
        acl::get_object_acl(self, req).await
    }

    async fn put_object_acl(&self, req: S3Request<PutObjectAclInput>) -> S3Result<S3Response<PutObjectAclOutput>> {
        acl::put_object_acl(self, req).await
    }

    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        acl::get_bucket_ownership_controls(self, req).await
    }

    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        acl::put_bucket_ownership_controls(self, req).await
    }

    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        acl::delete_bucket_ownership_controls(self, req).await
    }

    async fn put_bucket_cors(&self, req: S3Request<PutBucketCorsInput>) -> S3Result<S3Response<PutBucketCorsOutput>> {
        cors::put_bucket_cors(self, req).await
    }

    async fn get_bucket_cors(&self, req: S3Request<GetBucketCorsInput>) -> S3Result<S3Response<GetBucketCorsOutput>> {
        cors::get_bucket_cors(self, req).await
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        cors::delete_bucket_cors(self, req).await
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        lifecycle::put_bucket_lifecycle_configuration(self, req).await
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        lifecycle::get_bucket_lifecycle_configuration(self, req).await
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        lifecycle::delete_bucket_lifecycle(self, req).await
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        bucket_encryption::put_bucket_encryption(self, req).await
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        bucket_encryption::get_bucket_encryption(self, req).await
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        bucket_encryption::delete_bucket_encryption(self, req).await
    }

    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        public_access::put_public_access_block(self, req).await
    }

    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        public_access::get_public_access_block(self, req).await
    }

    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        public_access::delete_public_access_block(self, req).await
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        tagging::put_bucket_tagging(self, req).await
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        tagging::get_bucket_tagging(self, req).await
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        tagging::delete_bucket_tagging(self, req).await
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        bucket::put_bucket_versioning(self, req).await
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        bucket::get_bucket_versioning(self, req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        list::list_object_versions(self, req).await
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        put::put_object(self, req).await
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        get::get_object(self, req).await
    }

    async fn get_object_torrent(
        &self,
        req: S3Request<GetObjectTorrentInput>,
    ) -> S3Result<S3Response<GetObjectTorrentOutput>> {
        // A missing bucket or key is answered as S3 answers it; torrents are not served.
        get::lookup(self, &req.input.bucket, &req.input.key, None)?;
        Err(s3_error!(NotImplemented, "GetObjectTorrent is not supported"))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        get::head_object(self, req).await
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        delete::delete_object(self, req).await
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        delete::delete_objects(self, req).await
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        copy::copy_object(self, req).await
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        list::list_objects(self, req).await
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        list::list_objects_v2(self, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        list::list_multipart_uploads(self, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create_multipart_upload(self, req).await
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete_multipart_upload(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort_multipart_upload(self, req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req).await
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }

    async fn select_object_content(
        &self,
        req: S3Request<SelectObjectContentInput>,
    ) -> S3Result<S3Response<SelectObjectContentOutput>> {
        select::select_object_content(self, req).await
    }
}

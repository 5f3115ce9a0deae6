//! Quarry's storage engine: an append-only log of checksummed records in segment
//! files (the source of truth), an index derived from it, and recovery that
//! replays the log into the index on start.
//!
//! Start at [`Engine`]; `ARCHITECTURE.md` at the repository root has the map.

pub mod catalog;
mod compactor;
pub mod data_format;
pub mod encryption;
mod engine;
mod error;
pub mod index;
pub mod io;
mod listing;
pub mod log_entry;
pub mod record;
mod recovery;
mod scrub;
pub mod segment;
pub mod sidecar;
mod space;
mod stats;
pub mod version;
mod writer;

pub use compactor::{CompactionOptions, CompactionReport, SegmentUsage};
pub use engine::{Body, BodyWriter, Engine, EngineConfig, NewBucket, ObjectReader, RecoverySummary};
pub use error::{Error, Rejection, Result};
pub use index::{AccessKeyEntry, Applied, BucketEntry, ObjectEntry, PartEntry, UploadEntry, UserEntry, VersionPage};
pub use listing::{ListPage, ListQuery, VersionQuery};
pub use log_entry::{
    BucketEncryption, ChunkPiece, CorsRule, DefaultRetention, DeleteConditions, Encryption, Grant, Grantee, KeyChange,
    LifecycleFilter, LifecycleRule, LockMode, ObjectMeta, ObjectOwnership, ObjectRecord, Origin, PartRecord,
    Permission, PublicAccessBlock, Retention, SseScheme, StoredChecksum, UploadRecord, UserChange, VersioningStatus,
    slice_pieces,
};
pub use scrub::ScrubReport;
pub use stats::EngineStats;
pub use version::VersionId;

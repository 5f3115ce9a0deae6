//! SQL over Quarry, on DataFusion: one engine behind three doors. The SQL text each door
//! receives is checked first, without DataFusion, by `quarry-sql-text`.
//!
//! * [`select`]: S3 Select (SelectObjectContent), one object, the S3 Select dialect;
//! * [`query`]: the SQL endpoint: `inventory`, `journal`, and object contents by prefix;
//! * [`catalog_tables`]: the catalog's Parquet files as tables (also used directly).
//!
//! Objects reach DataFusion through [`store::BucketStore`], an `ObjectStore` over
//! storage-core: in-process ranged reads, every byte verified.

mod bounded_functions;
pub mod catalog_tables;
mod decode;
mod input;
pub mod output;
pub mod query;
pub mod select;
pub mod session;
pub mod store;
pub mod unwind;

pub use catalog_tables::register_catalog;
pub use datafusion;
pub use decode::{CsvInput, HeaderInfo};
pub use output::ResultFormat;
pub use query::{QueryError, QueryErrorKind, QueryResult, run_query};
pub use select::{SelectError, SelectEvent, SelectRequest, SelectStats, select};
pub use session::{MemoryBudget, QueryLimits};
pub use store::{BucketScope, BucketStore, KeyAccess};

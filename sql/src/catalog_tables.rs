//! The catalog's Parquet files as DataFusion tables.
//!
//! [`register_catalog`] makes three tables of a catalog's files:
//! * `journal`: every change (one row per create or delete);
//! * `inventory_changes`: base ∪ deltas, every known state of every key;
//! * `inventory_tombstones`: deleted keys with the sequence number of the delete;
//!
//! and the view `inventory`: the latest state per key, with keys whose latest change is
//! a delete hidden (a LEFT ANTI JOIN against the tombstones).
//!
//! Only the files the catalog's manifest names are read, so a query never sees a file
//! half written.

use crate::store::BucketScope;
use datafusion::error::Result;
use datafusion::prelude::{ParquetReadOptions, SessionContext, col, lit};
use storage_core::catalog::{Catalog, CatalogSnapshot, inventory_schema, journal_schema, tombstone_schema};

/// The `inventory` view: latest state per (bucket, key), deleted keys hidden.
const INVENTORY_VIEW: &str = "
    CREATE VIEW inventory AS
    SELECT bucket, key, version_id, size, etag, content_type, last_modified, user_metadata, sequence_number
    FROM (
        SELECT c.*, row_number() OVER (PARTITION BY c.bucket, c.key ORDER BY c.sequence_number DESC) AS newest
        FROM inventory_changes c
        LEFT ANTI JOIN inventory_tombstones t
            ON c.bucket = t.bucket AND c.key = t.key AND t.sequence_number > c.sequence_number
    ) latest
    WHERE newest = 1";

/// Registers the catalog's tables and the `inventory` view in `ctx`. The files stay on
/// disk while the returned snapshot lives: keep it until the queries are done.
pub async fn register_catalog(ctx: &SessionContext, catalog: &Catalog) -> Result<CatalogSnapshot> {
    let snapshot = catalog.snapshot();
    let files = &snapshot.files;
    let paths = |prefix: &str, tombstones: bool| -> Vec<String> {
        files
            .iter()
            .filter(|f| f.starts_with(prefix) && f.contains("/tombstones-") == tombstones)
            .map(|f| catalog.dir().join(f).to_string_lossy().into_owned())
            .collect()
    };
    register(ctx, "journal", paths("journal/", false), journal_schema()).await?;
    register(ctx, "inventory_changes", paths("inventory/", false), inventory_schema()).await?;
    register(ctx, "inventory_tombstones", paths("inventory/", true), tombstone_schema()).await?;
    ctx.sql(INVENTORY_VIEW).await?;
    Ok(snapshot)
}

/// A table over exactly these Parquet files (an empty table when there are none).
async fn register(
    ctx: &SessionContext,
    name: &str,
    paths: Vec<String>,
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<()> {
    if paths.is_empty() {
        let empty = datafusion::datasource::MemTable::try_new(schema, vec![vec![]])?;
        ctx.register_table(name, std::sync::Arc::new(empty))?;
        return Ok(());
    }
    let frame = ctx.read_parquet(paths, ParquetReadOptions::default().schema(&schema)).await?;
    ctx.register_table(name, frame.into_view())?;
    Ok(())
}

/// Registers `journal` and `inventory` in `ctx` with only the rows of the buckets in
/// `scope`. The unfiltered tables live in a second session the query cannot name.
pub async fn register_scoped_catalog(
    ctx: &SessionContext,
    full: &SessionContext,
    catalog: &Catalog,
    scope: &BucketScope,
) -> Result<CatalogSnapshot> {
    let BucketScope::Only(buckets) = scope else {
        return register_catalog(ctx, catalog).await;
    };
    let snapshot = register_catalog(full, catalog).await?;
    let allowed: Vec<_> = buckets.iter().map(|b| lit(b.as_str())).collect();
    for table in ["journal", "inventory"] {
        let rows = full.table(table).await?;
        let visible = if allowed.is_empty() {
            rows.filter(lit(false))?
        } else {
            rows.filter(col("bucket").in_list(allowed.clone(), false))?
        };
        ctx.register_table(table, visible.into_view())?;
    }
    Ok(snapshot)
}

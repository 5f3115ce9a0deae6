//! The catalog's Parquet files as DataFusion tables.
//!
//! [`register_catalog`] makes tables of a catalog's files:
//! * `journal`: every change (one row per create or delete);
//! * `inventory_base`: the state of every live key when the catalog was last compacted
//!   (one row per key, deleted keys already gone);
//! * `inventory_deltas`: every state written since, and `inventory_changes`, base ∪ deltas;
//! * `inventory_tombstones`: keys deleted since, with the sequence number of the delete;
//!
//! and the view `inventory`: the latest state per key, keys whose latest change is a
//! delete hidden. Base rows are unique per key, so only the deltas need the latest-row
//! window; right after catalog compaction (no deltas, no tombstones) `inventory` is the
//! base file as it is.
//!
//! Only the files the catalog's manifest names are read, so a query never sees a file
//! half written.

use crate::store::{BucketScope, KeyAccess};
use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::{ParquetReadOptions, SessionContext, cast, col, lit};
use std::collections::BTreeSet;
use std::sync::Arc;
use storage_core::catalog::{Catalog, CatalogSnapshot, inventory_schema, journal_schema, tombstone_schema};

const INVENTORY_COLUMNS: &str = "bucket, key, version_id, size, etag, content_type, last_modified, user_metadata, \
     sequence_number, tags, object_lock_mode, object_lock_retain_until, object_lock_legal_hold";

/// `inventory` when there is nothing since the base.
fn inventory_of_base() -> String {
    format!("CREATE VIEW inventory AS SELECT {INVENTORY_COLUMNS} FROM inventory_base")
}

/// `inventory` in general: base rows no later change replaced or deleted, plus the
/// latest delta per key that no later tombstone deleted.
fn inventory_of_base_and_changes() -> String {
    format!(
        "CREATE VIEW inventory AS
        SELECT {INVENTORY_COLUMNS} FROM inventory_base b
        LEFT ANTI JOIN (
            SELECT bucket, key, sequence_number FROM inventory_deltas
            UNION ALL
            SELECT bucket, key, sequence_number FROM inventory_tombstones
        ) later ON b.bucket = later.bucket AND b.key = later.key AND later.sequence_number > b.sequence_number
        UNION ALL
        SELECT {INVENTORY_COLUMNS} FROM (
            SELECT d.*, row_number() OVER (PARTITION BY d.bucket, d.key ORDER BY d.sequence_number DESC) AS newest
            FROM inventory_deltas d
            LEFT ANTI JOIN inventory_tombstones t
                ON d.bucket = t.bucket AND d.key = t.key AND t.sequence_number > d.sequence_number
        ) latest
        WHERE newest = 1"
    )
}

/// Registers the catalog's tables and the `inventory` view in `ctx`. The files stay on
/// disk while the returned snapshot lives: keep it until the queries are done.
pub async fn register_catalog(ctx: &SessionContext, catalog: &Catalog) -> Result<CatalogSnapshot> {
    let snapshot = catalog.snapshot();
    let paths = |prefix: &str| -> Vec<String> {
        snapshot
            .files
            .iter()
            .filter(|f| f.starts_with(prefix))
            .map(|f| catalog.dir().join(f).to_string_lossy().into_owned())
            .collect()
    };
    let (base, deltas, tombstones) =
        (paths("inventory/base-"), paths("inventory/delta-"), paths("inventory/tombstones-"));
    let only_base = deltas.is_empty() && tombstones.is_empty();
    register(ctx, "journal", paths("journal/"), journal_schema()).await?;
    register(ctx, "inventory_base", base, inventory_schema()).await?;
    register(ctx, "inventory_deltas", deltas, inventory_schema()).await?;
    register(ctx, "inventory_tombstones", tombstones, tombstone_schema()).await?;
    ctx.sql("CREATE VIEW inventory_changes AS SELECT * FROM inventory_base UNION ALL SELECT * FROM inventory_deltas")
        .await?;
    ctx.sql(&if only_base { inventory_of_base() } else { inventory_of_base_and_changes() }).await?;
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
    let (whole, by_key, access) = match scope {
        BucketScope::All => return register_catalog(ctx, catalog).await,
        BucketScope::Only(buckets) => (buckets.clone(), BTreeSet::new(), None),
        BucketScope::Checked { whole, by_key, access } => (whole.clone(), by_key.clone(), Some(access.clone())),
    };
    let snapshot = register_catalog(full, catalog).await?;
    let in_list = |buckets: &BTreeSet<String>| {
        let names: Vec<_> = buckets.iter().map(|b| lit(b.as_str())).collect();
        if names.is_empty() { lit(false) } else { col("bucket").in_list(names, false) }
    };
    let mut visible = in_list(&whole);
    if let Some(access) = access.filter(|_| !by_key.is_empty()) {
        let may_list = may_list_udf(access);
        let key = cast(col("key"), DataType::Utf8);
        visible = visible.or(in_list(&by_key).and(may_list.call(vec![cast(col("bucket"), DataType::Utf8), key])));
    }
    for table in ["journal", "inventory"] {
        let rows = full.table(table).await?;
        ctx.register_table(table, rows.filter(visible.clone())?.into_view())?;
    }
    Ok(snapshot)
}

/// `quarry_may_list(bucket, key)`: whether the caller may list the key (a row of a
/// bucket whose policy may treat keys differently).
fn may_list_udf(access: Arc<dyn KeyAccess>) -> ScalarUDF {
    let decide = move |args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let buckets = arrays[0].as_string::<i32>();
        let keys = arrays[1].as_string::<i32>();
        let allowed: BooleanArray = buckets
            .iter()
            .zip(keys.iter())
            .map(|(bucket, key)| Some(matches!((bucket, key), (Some(b), Some(k)) if access.may_list(b, k))))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(allowed)))
    };
    create_udf(
        "quarry_may_list",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(decide),
    )
}

//! The SQL `inventory` view (DataFusion) equals the catalog's own reading of its files:
//! latest state per key, deleted keys hidden — before and after catalog compaction.

use bytes::Bytes;
use datafusion::arrow::array::{Array, StringArray, UInt64Array};
use datafusion::prelude::SessionContext;
use storage_core::catalog::{Catalog, CatalogConfig};
use storage_core::{Engine, EngineConfig, ObjectMeta, ObjectRecord};

async fn put(engine: &Engine, bucket: &str, key: &str, len: usize) {
    let mut writer = engine.body_writer();
    writer.write(Bytes::from(vec![1u8; len])).await.unwrap();
    let body = writer.finish().await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let meta = ObjectMeta {
        size_bytes: len as u64,
        etag: format!("{key}-{len}"),
        last_modified_ms: now,
        ..Default::default()
    };
    engine.put_object(ObjectRecord::new(bucket, key, meta), body).await.unwrap();
}

/// (bucket, key, size, etag, sequence_number) of every inventory row, via SQL.
async fn inventory_by_sql(catalog: &Catalog) -> Vec<(String, String, u64, String, u64)> {
    let ctx = SessionContext::new();
    quarry_sql::register_catalog(&ctx, catalog).await.unwrap();
    let batches = ctx
        .sql("SELECT bucket, key, size, etag, sequence_number FROM inventory ORDER BY bucket, key")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut rows = Vec::new();
    for batch in batches {
        let text = |i: usize| batch.column(i).as_any().downcast_ref::<StringArray>().unwrap().clone();
        let number = |i: usize| batch.column(i).as_any().downcast_ref::<UInt64Array>().unwrap().clone();
        let (buckets, keys, sizes, etags, lsns) = (text(0), text(1), number(2), text(3), number(4));
        for r in 0..batch.num_rows() {
            rows.push((
                buckets.value(r).to_owned(),
                keys.value(r).to_owned(),
                sizes.value(r),
                etags.value(r).to_owned(),
                lsns.value(r),
            ));
        }
    }
    rows
}

fn inventory_by_catalog(catalog: &Catalog) -> Vec<(String, String, u64, String, u64)> {
    catalog.inventory().unwrap().into_values().map(|r| (r.bucket, r.key, r.size, r.etag, r.sequence_number)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_inventory_view_is_the_latest_state_without_deleted_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.disk_reserve_bytes = 0;
    config.catalog = Some(CatalogConfig { flush_interval_ms: 3_600_000, ..Default::default() });
    let engine = Engine::open(config).unwrap();
    for bucket in ["alpha", "beta"] {
        engine.create_bucket(bucket, 1).await.unwrap();
    }
    let catalog = engine.catalog().unwrap().clone();
    assert!(inventory_by_sql(&catalog).await.is_empty(), "an empty catalog gives an empty inventory");
    for round in 0..4usize {
        for i in 0..25usize {
            let bucket = if i % 2 == 0 { "alpha" } else { "beta" };
            put(&engine, bucket, &format!("k{i:02}"), 100 * round + i).await;
        }
        for i in (round..25).step_by(4) {
            let bucket = if i % 2 == 0 { "alpha" } else { "beta" };
            engine.delete_object(bucket, &format!("k{i:02}")).await.unwrap();
        }
        // A key deleted and then written again is live.
        put(&engine, "alpha", "k00", 7).await;
        engine.flush_catalog().unwrap();
        let by_catalog = inventory_by_catalog(&catalog);
        assert!(!by_catalog.is_empty());
        assert_eq!(inventory_by_sql(&catalog).await, by_catalog, "round {round}: SQL inventory == catalog inventory");
    }
    let before = inventory_by_sql(&catalog).await;
    catalog.compact().unwrap();
    assert_eq!(inventory_by_sql(&catalog).await, before, "SQL inventory after catalog compaction");

    // After compaction: a base, then overwrites, deletes of base keys and of new keys,
    // and a base key deleted then written again, in deltas and tombstones.
    for round in 0..3usize {
        put(&engine, "beta", &format!("k{:02}", 2 * round + 1), 1000 + round).await;
        put(&engine, "alpha", &format!("new{round}"), 5).await;
        put(&engine, "alpha", &format!("new{round}"), 6).await;
        engine.delete_object("alpha", &format!("k{:02}", 4 * round + 2)).await.unwrap();
        if round > 0 {
            engine.delete_object("alpha", &format!("new{}", round - 1)).await.unwrap();
        }
        engine.delete_object("beta", "k03").await.unwrap();
        put(&engine, "beta", "k03", 33 + round).await;
        engine.flush_catalog().unwrap();
        let by_catalog = inventory_by_catalog(&catalog);
        assert_eq!(inventory_by_sql(&catalog).await, by_catalog, "base + changes round {round}: SQL == catalog");
    }
    catalog.compact().unwrap();
    assert_eq!(inventory_by_sql(&catalog).await, inventory_by_catalog(&catalog), "after the second compaction");

    // The journal is queryable too.
    let ctx = SessionContext::new();
    quarry_sql::register_catalog(&ctx, &catalog).await.unwrap();
    let counts = ctx
        .sql("SELECT record_type, count(*) AS n FROM journal GROUP BY record_type ORDER BY record_type")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let rows: usize = counts.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 2, "journal has CREATE and DELETE rows");
}

/// Catalog files written before the tag and lock columns existed still read, through
/// SQL and through the catalog, with those columns null.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_files_older_than_the_tag_and_lock_columns_read_with_them_null() {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.catalog = Some(CatalogConfig { flush_interval_ms: 3_600_000, ..Default::default() });
    let engine = Engine::open(config).unwrap();
    engine.create_bucket("b", 1).await.unwrap();
    put(&engine, "b", "old", 3).await;
    engine.flush_catalog().unwrap();
    let catalog = engine.catalog().unwrap();
    // Rewrite every file without its last four columns, as the previous release wrote it.
    for name in catalog.files() {
        let path = catalog.dir().join(&name);
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap();
        let batches: Vec<_> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        let width = batches[0].num_columns();
        if !batches[0].schema().fields().iter().any(|f| f.name() == "tags") {
            continue; // tombstones have no such columns
        }
        let old: Vec<_> = batches.iter().map(|b| b.project(&(0..width - 4).collect::<Vec<_>>()).unwrap()).collect();
        let mut writer = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), old[0].schema(), None).unwrap();
        for batch in &old {
            writer.write(batch).unwrap();
        }
        writer.close().unwrap();
    }
    put(&engine, "b", "new", 4).await;
    engine.flush_catalog().unwrap();

    let ctx = SessionContext::new();
    quarry_sql::register_catalog(&ctx, catalog).await.unwrap();
    let sql = "SELECT key, tags IS NULL AS no_tags, object_lock_legal_hold IS NULL AS no_hold FROM inventory \
               ORDER BY key";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
    let expected = "+-----+---------+---------+\n\
                    | key | no_tags | no_hold |\n\
                    +-----+---------+---------+\n\
                    | new | false   | false   |\n\
                    | old | true    | true    |\n\
                    +-----+---------+---------+";
    assert_eq!(text, expected, "old rows read with null tags and lock; new rows carry them");
    let journal = ctx.sql("SELECT count(*) FROM journal WHERE tags IS NULL").await.unwrap().collect().await.unwrap();
    let journal = datafusion::arrow::util::pretty::pretty_format_batches(&journal).unwrap().to_string();
    assert!(journal.contains("| 1 "), "one journal row (the old one) without tags: {journal}");
    let rows = catalog.inventory().unwrap();
    assert_eq!(rows[&("b".to_owned(), "old".to_owned())].tags, None);
    engine.compact_catalog().unwrap();
    assert_eq!(catalog.inventory().unwrap(), rows, "catalog compaction reads the old file and keeps its rows");
}

//! The SQL endpoint's queries: `inventory` and `journal` (only the caller's buckets),
//! object contents through the table functions `read_parquet`, `read_csv` and
//! `read_json` over `s3://bucket/prefix/` URLs, the result streamed in the asked format
//! under the configured time and memory limits.

use crate::catalog_tables::register_scoped_catalog;
use crate::output::{ResultEncoder, ResultFormat};
use crate::session::{QueryLimits, new_context, read_only};
use crate::store::BucketScope;
use bytes::Bytes;
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::file_format::options::JsonReadOptions;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::error::DataFusionError;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
pub use quarry_sql_text::sources::MAX_SQL_BYTES;
use quarry_sql_text::sources::{CheckedQuery, Source, SourceFunction, check_query};
pub use quarry_sql_text::{QueryError, QueryErrorKind};
use std::time::{Duration, Instant};
use storage_core::Engine;

/// A running query: its content type and its encoded result, streamed.
pub struct QueryResult {
    pub content_type: &'static str,
    pub body: BoxStream<'static, Result<Bytes, QueryError>>,
    /// When the query's time limit ends: the result must be delivered by then, read by the
    /// client or not.
    pub deadline: Instant,
}

/// Plans and starts `sql` for a caller who may read the buckets in `scope`. Errors up to
/// the first batch (bad SQL, access, limits hit before any row) are returned here; a
/// later failure ends the body stream with an error.
pub async fn run_query(
    engine: &Engine,
    scope: BucketScope,
    sql: &str,
    format: ResultFormat,
    limits: &QueryLimits,
) -> Result<QueryResult, QueryError> {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(limits.timeout_ms);
    let CheckedQuery { statement, sources } = check_query(sql, &scope)?;

    // Acknowledged writes are in the log; put them in the catalog before reading it.
    let flusher = engine.clone();
    tokio::task::spawn_blocking(move || flusher.flush_catalog()).await.map_err(internal)?.map_err(|e| {
        QueryError::new(QueryErrorKind::Internal, format!("bringing the catalog up to date failed: {e}"))
    })?;

    let ctx = new_context(engine, scope.clone(), limits, None, false, None).map_err(internal)?;
    // Held until the result is sent: catalog compaction keeps these files until then.
    let mut catalog_snapshot = None;
    if let Some(catalog) = engine.catalog() {
        let full = new_context(engine, BucketScope::All, limits, None, false, None).map_err(internal)?;
        catalog_snapshot = Some(register_scoped_catalog(&ctx, &full, catalog, &scope).await.map_err(query_error)?);
    }
    // Planning reads the sources' footers and the first batch reads their data: a reader
    // that panics on a malformed object fails this query, not the connection.
    let unreadable =
        |panic: String| QueryError::new(QueryErrorKind::InvalidQuery, format!("a source could not be read: {panic}"));
    let timed_out = || {
        QueryError::new(
            QueryErrorKind::Timeout,
            format!("the query ran longer than its limit of {} ms and was cancelled", limits.timeout_ms),
        )
    };
    // Planning the client's SQL is CPU work whose cost the client chooses (thousands of
    // columns take seconds): it runs on a blocking thread, driven there by `block_on` on
    // this runtime's handle (its I/O and timers still run on the runtime), so the workers
    // keep serving other requests. The query's deadline covers it: at the deadline the
    // client gets QueryTimeout; the thread's async waits stop there too, while a CPU-bound
    // step in progress (it cannot be interrupted) runs to its end and its result is dropped.
    let runtime = tokio::runtime::Handle::current();
    let plan_ctx = ctx.clone();
    let planning = tokio::task::spawn_blocking(move || {
        runtime.block_on(tokio::time::timeout_at(
            deadline.into(),
            crate::unwind::catching(async move {
                for source in &sources {
                    register_source(&plan_ctx, source).await?;
                }
                // The checked statement itself is planned (not its text: see `CheckedQuery`).
                let statement = datafusion::sql::parser::Statement::Statement(Box::new(statement));
                let plan = plan_ctx.state().statement_to_plan(statement).await.map_err(query_error)?;
                read_only().verify_plan(&plan).map_err(query_error)?;
                let frame = plan_ctx.execute_logical_plan(plan).await.map_err(query_error)?;
                let schema = frame.schema().inner().clone();
                let batches = frame.execute_stream().await.map_err(query_error)?;
                Ok::<_, QueryError>((schema, batches))
            }),
        ))
    });
    let (schema, mut batches) = match tokio::time::timeout_at(deadline.into(), planning).await {
        Err(_) | Ok(Ok(Err(_))) => return Err(timed_out()),
        Ok(Err(e)) => return Err(internal(e)),
        Ok(Ok(Ok(planned))) => planned.map_err(unreadable)??,
    };
    // The first batch before the answer: most failures show up by then.
    let first = crate::unwind::catching(next_before(&mut batches, deadline, limits)).await.map_err(unreadable)??;
    let mut encoder = ResultEncoder::new(format, &schema).map_err(internal)?;
    let head = match &first {
        Some(batch) => encoder.write(batch).map_err(internal)?,
        None => Vec::new(),
    };
    let limits = limits.clone();
    let rest =
        futures::stream::unfold((Some(batches), Some(encoder), first.is_none()), move |(batches, encoder, done)| {
            let schema = schema.clone();
            let limits = limits.clone();
            let _pinned = &catalog_snapshot;
            async move {
                let mut batches = batches?;
                let mut encoder = encoder?;
                if !done {
                    match next_before(&mut batches, deadline, &limits).await {
                        Ok(Some(batch)) => {
                            let bytes = encoder.write(&batch).map_err(internal);
                            return Some((bytes.map(Bytes::from), (Some(batches), Some(encoder), false)));
                        }
                        Ok(None) => {}
                        Err(e) => return Some((Err(e), (None, None, true))),
                    }
                }
                let tail = encoder.finish(&schema).map(Bytes::from).map_err(internal);
                Some((tail, (None, None, true)))
            }
        });
    let body = futures::stream::once(async move { Ok(Bytes::from(head)) })
        .chain(rest)
        .filter(|chunk| futures::future::ready(!matches!(chunk, Ok(bytes) if bytes.is_empty())))
        .boxed();
    Ok(QueryResult { content_type: format.content_type(), body, deadline })
}

/// The next batch, unless the deadline passes first (dropping the stream cancels the
/// query's work).
async fn next_before(
    batches: &mut datafusion::physical_plan::SendableRecordBatchStream,
    deadline: Instant,
    limits: &QueryLimits,
) -> Result<Option<datafusion::arrow::array::RecordBatch>, QueryError> {
    match tokio::time::timeout_at(deadline.into(), batches.next()).await {
        Err(_) => Err(QueryError::new(
            QueryErrorKind::Timeout,
            format!("the query ran longer than its limit of {} ms and was cancelled", limits.timeout_ms),
        )),
        Ok(None) => Ok(None),
        Ok(Some(Ok(batch))) => Ok(Some(batch)),
        Ok(Some(Err(e))) => Err(query_error_with(e, limits)),
    }
}

/// Registers a source's objects as a table: the one object the URL names, or every
/// object under it when it ends with `/` (those with the format's usual extension).
/// Under a prefix laid out Hive-style (`year=2024/month=01/part.parquet`), the keys
/// are also columns, as strings, and a filter on them skips the other directories.
async fn register_source(ctx: &SessionContext, source: &Source) -> Result<(), QueryError> {
    let url = source.url.as_str();
    let in_context = |e: DataFusionError| match query_error(e) {
        QueryError { kind: QueryErrorKind::InvalidQuery, message } => {
            QueryError::new(QueryErrorKind::InvalidQuery, format!("reading {url}: {message}"))
        }
        other => other,
    };
    let (extension, partition_columns) = if url.ends_with('/') {
        let extension = source.function.file_extension();
        (extension, hive_partition_columns(ctx, url, extension).await.map_err(in_context)?)
    } else {
        ("", Vec::new())
    };
    let table_partition_cols: Vec<(String, DataType)> =
        partition_columns.into_iter().map(|name| (name, DataType::Utf8)).collect();
    let frame = match source.function {
        SourceFunction::Parquet => {
            ctx.read_parquet(
                url,
                ParquetReadOptions { file_extension: extension, table_partition_cols, ..Default::default() },
            )
            .await
        }
        SourceFunction::Csv => {
            ctx.read_csv(url, CsvReadOptions { file_extension: extension, table_partition_cols, ..Default::default() })
                .await
        }
        SourceFunction::Json => {
            let options = JsonReadOptions { file_extension: extension, table_partition_cols, ..Default::default() };
            ctx.read_json(url, options).await
        }
    }
    .map_err(in_context)?;
    ctx.register_table(source.table.as_str(), frame.into_view()).map_err(internal)?;
    Ok(())
}

/// The Hive partition keys of the objects under `prefix_url`: the directory names
/// between the prefix and each object, when every one is `key=value` and every object
/// has the same keys in the same order. Anything else (objects at different depths,
/// plain directories) has none, so every object is still read: DataFusion would skip
/// an object whose path does not match the partition columns.
async fn hive_partition_columns(
    ctx: &SessionContext,
    prefix_url: &str,
    extension: &str,
) -> datafusion::error::Result<Vec<String>> {
    let table_url = ListingTableUrl::parse(prefix_url)?;
    let store = ctx.runtime_env().object_store(&table_url)?;
    let state = ctx.state();
    let mut objects = table_url.list_all_files(&state, store.as_ref(), extension).await?;
    let mut common_keys: Option<Vec<String>> = None;
    while let Some(object) = objects.try_next().await? {
        let Some(parts) = table_url.strip_prefix(&object.location) else {
            return Ok(Vec::new());
        };
        let mut parts: Vec<&str> = parts.collect();
        parts.pop(); // the object's own name
        let keys: Option<Vec<String>> =
            parts.iter().map(|part| part.split_once('=').map(|(key, _)| key.to_owned())).collect();
        match (keys, &common_keys) {
            (Some(keys), None) if !keys.is_empty() => common_keys = Some(keys),
            (Some(keys), Some(common)) if keys == *common => {}
            _ => return Ok(Vec::new()),
        }
    }
    Ok(common_keys.unwrap_or_default())
}

fn query_error(e: DataFusionError) -> QueryError {
    query_error_with(e, &QueryLimits::default())
}

fn query_error_with(e: DataFusionError, limits: &QueryLimits) -> QueryError {
    let message = e.to_string();
    match e.find_root() {
        DataFusionError::ResourcesExhausted(_) => QueryError::new(
            QueryErrorKind::MemoryLimit,
            format!(
                "the query needs more than its memory limit of {} bytes, or than what is left of the {} bytes \
                 all queries share: {message}",
                limits.memory_bytes,
                limits.budget.bytes()
            ),
        ),
        // The caller's access decision refused an object (BucketStore).
        DataFusionError::ObjectStore(e) if matches!(e.as_ref(), object_store::Error::PermissionDenied { .. }) => {
            QueryError::new(QueryErrorKind::AccessDenied, message)
        }
        DataFusionError::ObjectStore(_) | DataFusionError::IoError(_) | DataFusionError::Internal(_) => {
            QueryError::new(QueryErrorKind::Internal, message)
        }
        _ => QueryError::new(QueryErrorKind::InvalidQuery, message),
    }
}

fn internal(e: impl std::fmt::Display) -> QueryError {
    QueryError::new(QueryErrorKind::Internal, e.to_string())
}

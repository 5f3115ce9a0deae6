//! The SQL endpoint's query text: one statement, within the shape bounds, whose table
//! functions (`read_parquet('s3://bucket/prefix/')`, `read_csv`, `read_json`) name only
//! buckets the caller may read, each replaced by a table of its own for the planner.

use crate::shape::ShapeError;
use crate::{BucketScope, QueryError, QueryErrorKind};
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, Ident, Statement, TableAlias, TableFactor, Value, VisitMut, VisitorMut,
};
use std::ops::ControlFlow;

/// The longest SQL text accepted.
pub const MAX_SQL_BYTES: usize = 1024 * 1024;
/// Most table-function sources in one query.
pub const MAX_SOURCES: usize = 64;

/// A query checked for a caller: the statement to plan, and the sources it reads.
///
/// The statement itself is planned, never its text: sqlparser does not print every AST
/// back as SQL that parses to the same AST (`t x (c dt('s3://b/'))` prints the string
/// unquoted), and what was checked must be what runs.
#[derive(Debug, Clone)]
pub struct CheckedQuery {
    /// The statement with every table function replaced by its source's table.
    pub statement: Statement,
    pub sources: Vec<Source>,
}

/// Checks `sql` for a caller who may read the buckets in `scope`: its size and shape,
/// one statement, EXPLAIN only for callers who may read everything, and table functions
/// that name readable buckets. Nothing here touches data.
pub fn check_query(sql: &str, scope: &BucketScope) -> Result<CheckedQuery, QueryError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(QueryError::new(
            QueryErrorKind::InvalidQuery,
            format!("the SQL is longer than {MAX_SQL_BYTES} bytes"),
        ));
    }
    let mut statements = crate::shape::parse_bounded(sql).map_err(|e| match e {
        ShapeError::Syntax(e) => QueryError::new(QueryErrorKind::InvalidQuery, format!("SQL error: {e}")),
        ShapeError::TooComplex(e) => QueryError::new(QueryErrorKind::InvalidQuery, format!("query too complex: {e}")),
    })?;
    if statements.len() != 1 {
        return Err(QueryError::new(QueryErrorKind::InvalidQuery, "send exactly one SQL statement per request"));
    }
    check_statement(statements.remove(0), scope)
}

/// A table function call in the query, replaced by a table of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The table that stands for the call in [`CheckedQuery::sql`].
    pub table: String,
    pub function: SourceFunction,
    /// `s3://bucket/key` (one object) or `s3://bucket/prefix/` (every object under it).
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFunction {
    Parquet,
    Csv,
    Json,
}

impl SourceFunction {
    /// The objects read under a prefix: those with the format's usual extension.
    pub fn file_extension(self) -> &'static str {
        match self {
            SourceFunction::Parquet => ".parquet",
            SourceFunction::Csv => ".csv",
            SourceFunction::Json => ".json",
        }
    }

    fn named(name: &str) -> Option<SourceFunction> {
        match name.to_ascii_lowercase().as_str() {
            "read_parquet" => Some(SourceFunction::Parquet),
            "read_csv" => Some(SourceFunction::Csv),
            "read_json" | "read_ndjson" => Some(SourceFunction::Json),
            _ => None,
        }
    }
}

/// Checks one parsed statement for a caller (EXPLAIN, table functions) and replaces each
/// `read_parquet('s3://bucket/prefix/')` (and `read_csv`, `read_json`) in it by a table
/// name, checking the caller may read the bucket.
pub fn check_statement(mut statement: Statement, scope: &BucketScope) -> Result<CheckedQuery, QueryError> {
    // A plan shows the catalog's local file paths, and EXPLAIN ANALYZE's pruning counts
    // tell what other buckets hold: only keys that may read everything get them.
    let explains = matches!(statement, Statement::Explain { .. } | Statement::ExplainTable { .. });
    if explains && !matches!(scope, BucketScope::All) {
        return Err(QueryError::new(QueryErrorKind::AccessDenied, "EXPLAIN is only for admin keys"));
    }
    let mut finder = SourceFinder { sources: Vec::new(), scope, error: None };
    let _ = statement.visit(&mut finder);
    if let Some(e) = finder.error {
        return Err(e);
    }
    Ok(CheckedQuery { statement, sources: finder.sources })
}

struct SourceFinder<'a> {
    sources: Vec<Source>,
    scope: &'a BucketScope,
    error: Option<QueryError>,
}

impl VisitorMut for SourceFinder<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, args: args @ Some(_), alias, .. } = factor else {
            return ControlFlow::Continue(());
        };
        let function_name = name.to_string();
        let Some(function) = SourceFunction::named(&function_name) else {
            return ControlFlow::Continue(());
        };
        match self.source(function, &args.as_ref().expect("matched Some").args) {
            Ok(source) => {
                *name = vec![Ident::with_quote('"', source.table.clone())].into();
                *args = None;
                // Columns are named after the function, not the hidden table: avg(read_parquet.x).
                if alias.is_none() {
                    *alias = Some(TableAlias {
                        explicit: false,
                        name: Ident::new(function_name.to_ascii_lowercase()),
                        columns: vec![],
                        at: None,
                    });
                }
                self.sources.push(source);
                ControlFlow::Continue(())
            }
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

impl SourceFinder<'_> {
    fn source(&self, function: SourceFunction, args: &[FunctionArg]) -> Result<Source, QueryError> {
        let invalid = |m: String| QueryError::new(QueryErrorKind::InvalidQuery, m);
        if self.sources.len() >= MAX_SOURCES {
            return Err(invalid(format!("a query may read at most {MAX_SOURCES} table functions")));
        }
        let url = match args {
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(value)))] => match &value.value {
                Value::SingleQuotedString(url) => url.clone(),
                _ => return Err(invalid("the table function takes one string: 's3://bucket/prefix/'".into())),
            },
            _ => return Err(invalid("the table function takes one string: 's3://bucket/prefix/'".into())),
        };
        let bucket = url
            .strip_prefix("s3://")
            .map(|rest| rest.split('/').next().unwrap_or_default())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid(format!("{url} is not an s3://bucket/prefix URL")))?;
        if !self.scope.allows(bucket) {
            return Err(QueryError::new(QueryErrorKind::AccessDenied, format!("access denied to bucket {bucket}")));
        }
        Ok(Source { table: format!("__quarry_source_{}", self.sources.len() + 1), function, url })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited() -> BucketScope {
        BucketScope::Only(["data".to_owned()].into())
    }

    #[test]
    fn table_functions_become_tables_of_their_own() {
        let sql = "SELECT * FROM read_parquet('s3://data/a/') JOIN READ_CSV('s3://data/b.csv') ON true";
        let checked = check_query(sql, &limited()).unwrap();
        let functions: Vec<_> =
            checked.sources.iter().map(|s| (s.table.as_str(), s.function, s.url.as_str())).collect();
        assert_eq!(
            functions,
            [
                ("__quarry_source_1", SourceFunction::Parquet, "s3://data/a/"),
                ("__quarry_source_2", SourceFunction::Csv, "s3://data/b.csv")
            ]
        );
        assert!(check_statement(checked.statement, &BucketScope::All).unwrap().sources.is_empty());
    }

    #[test]
    fn a_limited_caller_reads_only_its_buckets_and_gets_no_plans() {
        for sql in [
            "SELECT * FROM read_parquet('s3://other/a/')",
            "SELECT * FROM (SELECT * FROM read_json('s3://other/x.json')) t",
            "WITH t AS (SELECT 1) SELECT * FROM t, read_csv('s3://other/')",
            "EXPLAIN SELECT 1",
        ] {
            let error = check_query(sql, &limited()).unwrap_err();
            assert_eq!(error.kind, QueryErrorKind::AccessDenied, "{sql}: {error}");
            assert!(check_query(sql, &BucketScope::All).is_ok(), "{sql}");
        }
    }

    #[test]
    fn malformed_requests_are_invalid_queries() {
        let too_many = vec!["SELECT * FROM read_csv('s3://data/x')"; MAX_SOURCES + 1].join(" UNION ALL ");
        let too_long = format!("SELECT '{}'", "x".repeat(MAX_SQL_BYTES));
        for sql in [
            "SELECT 1; SELECT 2",
            "SELECT * FROM read_parquet('file:///etc/passwd')",
            "SELECT * FROM read_parquet('s3:///x')",
            "SELECT * FROM read_parquet('s3://data/', 'x')",
            "SELECT * FROM read_parquet(1)",
            too_many.as_str(),
            too_long.as_str(),
        ] {
            let error = check_query(sql, &BucketScope::All).unwrap_err();
            assert_eq!(error.kind, QueryErrorKind::InvalidQuery, "{:.80}: {error}", sql);
        }
    }
}

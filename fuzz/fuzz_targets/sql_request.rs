//! Fuzzes the SQL endpoint's request check, `sources::check_query`: size and shape
//! bounds, one statement, EXPLAIN only for admin scopes, table functions only over
//! buckets the caller may read, each replaced by a table of its own.
//!
//! Input: the first byte picks the caller's scope (even: every bucket; odd: only
//! `data` and `logs`); the rest is the SQL text.
//!
//! The check may not panic, hang or over-allocate. A query it accepts must name only
//! readable buckets, be no EXPLAIN for a limited caller, and its checked statement (what
//! the planner gets) must hold no table function any more: the planner never sees a
//! `read_*` call the check did not.

#![no_main]

use libfuzzer_sys::fuzz_target;
use quarry_sql_text::BucketScope;
use quarry_sql_text::sources::{check_query, check_statement};
use sqlparser::ast::Statement;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, text)) = data.split_first() else { return };
    let Ok(sql) = std::str::from_utf8(text) else { return };
    let scope =
        if mode % 2 == 0 { BucketScope::All } else { BucketScope::Only(["data".to_owned(), "logs".to_owned()].into()) };

    let Ok(checked) = check_query(sql, &scope) else { return };
    for source in &checked.sources {
        let bucket = source.url.strip_prefix("s3://").and_then(|rest| rest.split('/').next());
        let bucket = bucket.unwrap_or_else(|| panic!("{sql:?}: source URL {:?} is not s3://", source.url));
        assert!(scope.allows(bucket), "{sql:?}: scope {scope:?} reads bucket {bucket:?}");
    }
    if matches!(scope, BucketScope::Only(_)) {
        let explains = matches!(checked.statement, Statement::Explain { .. } | Statement::ExplainTable { .. });
        assert!(!explains, "{sql:?}: a limited caller got EXPLAIN");
    }
    match check_statement(checked.statement.clone(), &BucketScope::All) {
        Ok(again) => {
            assert!(again.sources.is_empty(), "{sql:?}: the checked statement still reads {:?}", again.sources)
        }
        Err(e) => panic!("{sql:?} was accepted, but its checked statement is refused: {e}"),
    }
});

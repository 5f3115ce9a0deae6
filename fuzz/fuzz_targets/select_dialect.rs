//! Fuzzes the S3 Select dialect: `SelectQuery::parse` (FROM path, shape bounds, one
//! SELECT from S3Object) and `resolve` (column references against an object's columns).
//!
//! Input: the first byte picks how many of [`COLUMNS`] the object has (low 3 bits) and
//! whether a missing column is NULL (bit 3, as for JSON); the rest is the SQL text.
//!
//! Neither step may panic, hang or over-allocate, and a query they accept must come out
//! as one statement that parses again within the shape bounds: that text is what
//! DataFusion plans.

#![no_main]

use libfuzzer_sys::fuzz_target;
use quarry_sql_text::dialect::SelectQuery;
use quarry_sql_text::shape;

/// Column names as a CSV header could give them: mixed case, a space, a quote, positional.
const COLUMNS: [&str; 7] = ["name", "Age", "city", "Name", "first name", "a\"b", "_2"];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, text)) = data.split_first() else { return };
    let Ok(sql) = std::str::from_utf8(text) else { return };
    let column_count = usize::from(mode & 0b111);
    let missing_is_null = mode & 0b1000 != 0;
    let columns: Vec<String> = COLUMNS[..column_count].iter().map(|c| c.to_string()).collect();

    let Ok(query) = SelectQuery::parse(sql) else { return };
    let Ok(resolved) = query.resolve(&columns, missing_is_null) else { return };
    match shape::parse_bounded(&resolved) {
        Ok(statements) => {
            assert_eq!(statements.len(), 1, "{sql:?} became {} statements: {resolved:?}", statements.len())
        }
        Err(e) => panic!("{sql:?} was accepted, but its rewrite {resolved:?} does not parse again: {e}"),
    }
});

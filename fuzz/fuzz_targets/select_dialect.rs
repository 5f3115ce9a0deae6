//! Fuzzes the S3 Select dialect: `SelectQuery::parse` (FROM path, shape bounds, one
//! SELECT from S3Object) and `resolve_statement` (column references against an object's
//! columns).
//!
//! Input: the first byte picks how many of [`COLUMNS`] the object has (low 3 bits) and
//! whether a missing column is NULL (bit 3, as for JSON); the rest is the SQL text.
//!
//! Neither step may panic, hang or over-allocate (nor may printing the result, as the
//! server's logs and tests do). The resolved statement is what DataFusion plans; its text
//! is not required to parse again: sqlparser does not print every AST faithfully, which
//! is why the server plans ASTs, never their printed text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use quarry_sql_text::dialect::SelectQuery;

/// Column names as a CSV header could give them: mixed case, a space, a quote, positional.
const COLUMNS: [&str; 7] = ["name", "Age", "city", "Name", "first name", "a\"b", "_2"];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, text)) = data.split_first() else { return };
    let Ok(sql) = std::str::from_utf8(text) else { return };
    let column_count = usize::from(mode & 0b111);
    let missing_is_null = mode & 0b1000 != 0;
    let columns: Vec<String> = COLUMNS[..column_count].iter().map(|c| c.to_string()).collect();

    let Ok(query) = SelectQuery::parse(sql) else { return };
    let Ok(statement) = query.resolve_statement(&columns, missing_is_null) else { return };
    let _ = statement.to_string();
});

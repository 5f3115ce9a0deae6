//! The S3 Select SQL dialect, rewritten into the SQL DataFusion plans:
//!
//! * `FROM S3Object [AS] s` becomes the table `s3object` (the alias is kept);
//! * column references are resolved against the object's columns the way S3 Select
//!   does: unquoted names case-insensitively (`s.name` finds the header `Name`), quoted
//!   names exactly (`s."Name"`), and `_1`, `_2`, ... by position;
//! * select items that are not plain column references are named `_1`, `_2`, ... by
//!   position, as S3 Select names them in JSON output (`SELECT count(*)` → `{"_1":3}`).

use crate::select::SelectError;
use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectNamePart, SelectItem, SetExpr, Statement, TableFactor, Value, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// The one table an S3 Select query reads.
pub const TABLE: &str = "s3object";

/// A parsed S3 Select query, checked to be one SELECT from `S3Object`.
pub struct SelectQuery {
    statement: Statement,
    /// The name the query refers to the table by: its alias, or `S3Object`.
    qualifier: String,
}

impl SelectQuery {
    pub fn parse(sql: &str) -> Result<SelectQuery, SelectError> {
        let mut statements = Parser::parse_sql(&GenericDialect {}, sql)
            .map_err(|e| SelectError::new("ParseUnexpectedToken", format!("the SQL expression does not parse: {e}")))?;
        if statements.len() != 1 {
            return Err(SelectError::new("UnsupportedSqlStructure", "the SQL expression must be exactly one SELECT"));
        }
        let mut statement = statements.remove(0);
        let Statement::Query(query) = &mut statement else {
            return Err(SelectError::new("UnsupportedSqlOperation", "only SELECT is supported"));
        };
        let SetExpr::Select(select) = query.body.as_mut() else {
            return Err(SelectError::new(
                "UnsupportedSqlStructure",
                "only a plain SELECT ... FROM S3Object is supported",
            ));
        };
        if select.from.len() != 1 || !select.from[0].joins.is_empty() {
            return Err(SelectError::new("UnsupportedSqlStructure", "the query must read exactly one table: S3Object"));
        }
        let TableFactor::Table { name, alias, args: None, .. } = &mut select.from[0].relation else {
            return Err(SelectError::new("InvalidDataSource", "the query must read FROM S3Object"));
        };
        let is_s3object =
            matches!(name.0.as_slice(), [ObjectNamePart::Identifier(id)] if id.value.eq_ignore_ascii_case(TABLE));
        if !is_s3object {
            return Err(SelectError::new(
                "InvalidDataSource",
                format!("unknown data source {name}: the query must read FROM S3Object"),
            ));
        }
        *name = vec![Ident::new(TABLE)].into();
        let qualifier = alias.as_ref().map_or_else(|| TABLE.to_owned(), |a| a.name.value.clone());
        Ok(SelectQuery { statement, qualifier })
    }

    /// The query as DataFusion SQL, with column references resolved against `columns`.
    /// With `missing_is_null` (JSON, whose records need not share fields, or an object
    /// with no records at all), `s.x` naming no column is NULL, as S3 Select's MISSING.
    pub fn resolve(mut self, columns: &[String], missing_is_null: bool) -> Result<String, SelectError> {
        let qualifier = self.qualifier.clone();
        let is_qualifier =
            |id: &Ident| id.value.eq_ignore_ascii_case(&qualifier) || id.value.eq_ignore_ascii_case(TABLE);
        name_unnamed_items(&mut self.statement, |expr| match expr {
            Expr::Identifier(_) => Some(false),
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 && is_qualifier(&parts[0]) => {
                Some(missing_is_null && matches!(find_column(&parts[1], columns, true), Ok(None)))
            }
            Expr::CompoundIdentifier(_) => Some(false),
            _ => None,
        });
        let flow = visit_expressions_mut(&mut self.statement, |expr| {
            let result = match expr {
                Expr::Identifier(id) => resolve_column(id, columns, false).map(|_| ()),
                Expr::CompoundIdentifier(parts) if parts.len() >= 2 && is_qualifier(&parts[0]) => {
                    parts[0] = Ident::new(qualifier.clone());
                    let (column, fields) = parts[1..].split_first_mut().expect("two parts at least");
                    // Nested JSON fields keep the case they are written in.
                    fields.iter_mut().for_each(|f| f.quote_style = Some('"'));
                    match resolve_column(column, columns, missing_is_null) {
                        Ok(false) if missing_is_null => {
                            *expr = Expr::value(Value::Null);
                            Ok(())
                        }
                        other => other.map(|_| ()),
                    }
                }
                _ => Ok(()),
            };
            match result {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(e),
            }
        });
        if let ControlFlow::Break(e) = flow {
            return Err(e);
        }
        Ok(self.statement.to_string())
    }
}

/// The column `id` names: by exact name, by name ignoring case unless quoted, or `_N`.
/// `_N` past the last column is an error, unless missing columns are NULL.
fn find_column<'a>(
    id: &Ident,
    columns: &'a [String],
    missing_is_null: bool,
) -> Result<Option<&'a String>, SelectError> {
    let quoted = id.quote_style.is_some();
    let found = columns
        .iter()
        .find(|c| **c == id.value)
        .or_else(|| if quoted { None } else { columns.iter().find(|c| c.eq_ignore_ascii_case(&id.value)) });
    if found.is_some() {
        return Ok(found);
    }
    match positional(&id.value) {
        Some(n) if n >= 1 && n <= columns.len() => Ok(Some(&columns[n - 1])),
        Some(_) if missing_is_null => Ok(None),
        Some(n) => Err(SelectError::new(
            "InvalidColumnIndex",
            format!("column _{n} does not exist: the object has {} columns", columns.len()),
        )),
        None => Ok(None),
    }
}

/// Points `id` at the column it names, if it names one (answers whether it did).
fn resolve_column(id: &mut Ident, columns: &[String], missing_is_null: bool) -> Result<bool, SelectError> {
    match find_column(id, columns, missing_is_null)? {
        Some(name) => {
            *id = Ident::with_quote('"', name.clone());
            Ok(true)
        }
        None => Ok(false),
    }
}

fn positional(name: &str) -> Option<usize> {
    name.strip_prefix('_')
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
}

/// Names select items as S3 Select does: an expression gets `_N` by position; a column
/// reference keeps its name (`is_column` answers Some(is missing) for column references,
/// None for other expressions; a missing one, about to become NULL, is named after itself).
fn name_unnamed_items(statement: &mut Statement, is_column: impl Fn(&Expr) -> Option<bool>) {
    let Statement::Query(query) = statement else { return };
    let SetExpr::Select(select) = query.body.as_mut() else { return };
    for (i, item) in select.projection.iter_mut().enumerate() {
        let SelectItem::UnnamedExpr(expr) = item else { continue };
        let alias = match (is_column(expr), &*expr) {
            (Some(false), _) => continue,
            (Some(true), Expr::CompoundIdentifier(parts)) => parts.last().expect("compound").value.clone(),
            _ => format!("_{}", i + 1),
        };
        let expr = std::mem::replace(expr, Expr::value(Value::Null));
        *item = SelectItem::ExprWithAlias { expr, alias: Ident::with_quote('"', alias) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(sql: &str, columns: &[&str]) -> Result<String, SelectError> {
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        SelectQuery::parse(sql)?.resolve(&columns, false)
    }

    #[test]
    fn columns_resolve_by_name_case_and_position() {
        let sql = rewrite("SELECT s.name, s._2, s.\"Age\" FROM S3Object s WHERE s._1 = 'x'", &["Name", "City", "Age"])
            .unwrap();
        assert_eq!(sql, "SELECT s.\"Name\", s.\"City\", s.\"Age\" FROM s3object s WHERE s.\"Name\" = 'x'");
    }

    #[test]
    fn unaliased_and_unqualified_names_resolve() {
        let sql = rewrite("select _1, count(*) from s3object where S3Object._2 > '3'", &["_1", "_2"]).unwrap();
        assert_eq!(sql, "SELECT \"_1\", count(*) AS \"_2\" FROM s3object WHERE s3object.\"_2\" > '3'");
    }

    #[test]
    fn errors_have_s3_select_codes() {
        assert_eq!(rewrite("SELEC * FROM S3Object", &["a"]).unwrap_err().code, "ParseUnexpectedToken");
        assert_eq!(rewrite("SELECT * FROM other", &["a"]).unwrap_err().code, "InvalidDataSource");
        assert_eq!(rewrite("SELECT s._3 FROM S3Object s", &["a", "b"]).unwrap_err().code, "InvalidColumnIndex");
        assert_eq!(rewrite("DELETE FROM S3Object", &["a"]).unwrap_err().code, "UnsupportedSqlOperation");
        assert_eq!(
            rewrite("SELECT * FROM S3Object a, S3Object b", &["a"]).unwrap_err().code,
            "UnsupportedSqlStructure"
        );
    }

    #[test]
    fn a_quoted_name_is_exact() {
        let sql = rewrite("SELECT s.\"name\" FROM S3Object s", &["Name"]).unwrap();
        assert_eq!(sql, "SELECT s.\"name\" FROM s3object s");
    }

    #[test]
    fn missing_fields_are_null_when_asked() {
        let columns = vec!["a".to_owned()];
        let sql = SelectQuery::parse("SELECT s.a, s.b FROM S3Object s WHERE s.b > 1")
            .unwrap()
            .resolve(&columns, true)
            .unwrap();
        assert_eq!(sql, "SELECT s.\"a\", NULL AS \"b\" FROM s3object s WHERE NULL > 1");
        let strict = SelectQuery::parse("SELECT s.b FROM S3Object s").unwrap().resolve(&columns, false).unwrap();
        assert_eq!(strict, "SELECT s.b FROM s3object s", "left for the planner to report");
    }
}

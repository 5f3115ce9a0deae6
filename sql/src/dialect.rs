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
    Expr, Ident, ObjectNamePart, SelectItem, SetExpr, Statement, TableFactor, visit_expressions_mut,
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
    pub fn resolve(mut self, columns: &[String]) -> Result<String, SelectError> {
        let qualifier = self.qualifier.clone();
        let is_qualifier =
            |id: &Ident| id.value.eq_ignore_ascii_case(&qualifier) || id.value.eq_ignore_ascii_case(TABLE);
        let flow = visit_expressions_mut(&mut self.statement, |expr| {
            let result = match expr {
                Expr::Identifier(id) => resolve_column(id, columns),
                Expr::CompoundIdentifier(parts) if parts.len() >= 2 && is_qualifier(&parts[0]) => {
                    parts[0] = Ident::new(qualifier.clone());
                    let (column, fields) = parts[1..].split_first_mut().expect("two parts at least");
                    // Nested JSON fields keep the case they are written in.
                    fields.iter_mut().for_each(|f| f.quote_style = Some('"'));
                    resolve_column(column, columns)
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
        name_unnamed_items(&mut self.statement);
        Ok(self.statement.to_string())
    }
}

/// Points `id` at the column it names, if it names one; `_N` out of range is an error.
fn resolve_column(id: &mut Ident, columns: &[String]) -> Result<(), SelectError> {
    let quoted = id.quote_style.is_some();
    let found = columns
        .iter()
        .find(|c| **c == id.value)
        .or_else(|| if quoted { None } else { columns.iter().find(|c| c.eq_ignore_ascii_case(&id.value)) });
    let name = match found {
        Some(name) => name.clone(),
        None => match positional(&id.value) {
            Some(n) if n >= 1 && n <= columns.len() => columns[n - 1].clone(),
            Some(n) => {
                return Err(SelectError::new(
                    "InvalidColumnIndex",
                    format!("column _{n} does not exist: the object has {} columns", columns.len()),
                ));
            }
            None => return Ok(()),
        },
    };
    *id = Ident::with_quote('"', name);
    Ok(())
}

fn positional(name: &str) -> Option<usize> {
    name.strip_prefix('_')
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
}

fn name_unnamed_items(statement: &mut Statement) {
    let Statement::Query(query) = statement else { return };
    let SetExpr::Select(select) = query.body.as_mut() else { return };
    for (i, item) in select.projection.iter_mut().enumerate() {
        if let SelectItem::UnnamedExpr(expr) = item
            && !matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
        {
            let expr = std::mem::replace(expr, Expr::value(datafusion::sql::sqlparser::ast::Value::Null));
            *item = SelectItem::ExprWithAlias { expr, alias: Ident::with_quote('"', format!("_{}", i + 1)) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(sql: &str, columns: &[&str]) -> Result<String, SelectError> {
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        SelectQuery::parse(sql)?.resolve(&columns)
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
}

//! The S3 Select SQL dialect, rewritten into the SQL DataFusion plans:
//!
//! * `FROM S3Object [AS] s` becomes the table `s3object` (the alias is kept); a JSON
//!   path after it (`S3Object[*].Records[*]`) is taken out, for the decoder to apply
//!   (see [`crate::json_path`]), and `IS [NOT] MISSING` becomes `IS [NOT] NULL`;
//! * column references are resolved against the object's columns the way S3 Select
//!   does: unquoted names case-insensitively (`s.name` finds the header `Name`), quoted
//!   names exactly (`s."Name"`), and `_1`, `_2`, ... by position;
//! * select items that are not plain column references are named `_1`, `_2`, ... by
//!   position, as S3 Select names them in JSON output (`SELECT count(*)` → `{"_1":3}`).

use crate::SelectError;
use crate::json_path::{FromPath, Step};
use crate::shape::ShapeError;
use sqlparser::ast::{
    AccessExpr, BinaryOperator, Expr, Ident, ObjectNamePart, SelectItem, SetExpr, Statement, Subscript, TableAlias,
    TableFactor, Value, visit_expressions_mut,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};
use std::ops::ControlFlow;

/// S3 Select's limit on the length of the SQL expression.
pub const MAX_EXPRESSION_BYTES: usize = 256 * 1024;

/// The one table an S3 Select query reads.
pub const TABLE: &str = "s3object";

/// A parsed S3 Select query, checked to be one SELECT from `S3Object`.
pub struct SelectQuery {
    statement: Statement,
    /// The name the query refers to the table by: its alias, or `S3Object`.
    qualifier: Ident,
    /// The JSON path after `S3Object[*]`, if any: which values of the object are records.
    pub from_path: Option<FromPath>,
}

impl SelectQuery {
    pub fn parse(sql: &str) -> Result<SelectQuery, SelectError> {
        let (sql, path_steps) = take_from_path(sql)?;
        if sql.len() > MAX_EXPRESSION_BYTES {
            return Err(SelectError::new(
                "ExpressionTooLong",
                format!("the SQL expression is longer than {MAX_EXPRESSION_BYTES} bytes"),
            ));
        }
        let mut statements = crate::shape::parse_bounded(&sql).map_err(|e| match e {
            ShapeError::Syntax(e) => {
                SelectError::new("ParseUnexpectedToken", format!("the SQL expression does not parse: {e}"))
            }
            ShapeError::TooComplex(e) => SelectError::new("UnsupportedSqlStructure", e),
        })?;
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
        let mut from_path = None;
        if !path_steps.is_empty() {
            // The row goes by its alias, else the path's last name, else `_1`.
            let row_name =
                alias.as_ref().map_or_else(|| FromPath::default_row_name(&path_steps), |a| a.name.value.clone());
            if alias.is_none() {
                *alias = Some(TableAlias {
                    explicit: true,
                    name: Ident::with_quote('"', row_name.clone()),
                    columns: vec![],
                    at: None,
                });
            }
            from_path = Some(FromPath { steps: path_steps, row_name });
        }
        let qualifier = alias.as_ref().map_or_else(|| Ident::new(TABLE), |a| a.name.clone());
        Ok(SelectQuery { statement, qualifier, from_path })
    }

    /// The query as DataFusion SQL, with column references resolved against `columns`.
    /// With `missing_is_null` (JSON, whose records need not share fields, or an object
    /// with no records at all), `s.x` naming no column is NULL, as S3 Select's MISSING.
    pub fn resolve(self, columns: &[String], missing_is_null: bool) -> Result<String, SelectError> {
        self.resolve_statement(columns, missing_is_null).map(|statement| statement.to_string())
    }

    /// [`SelectQuery::resolve`], as the statement: what is planned (sqlparser does not
    /// print every AST back as SQL that parses to the same AST).
    pub fn resolve_statement(mut self, columns: &[String], missing_is_null: bool) -> Result<Statement, SelectError> {
        let qualifier = self.qualifier.clone();
        let is_qualifier =
            |id: &Ident| id.value.eq_ignore_ascii_case(&qualifier.value) || id.value.eq_ignore_ascii_case(TABLE);
        normalize_field_access(&mut self.statement);
        name_unnamed_items(&mut self.statement, |expr| match expr {
            Expr::Identifier(_) => Some(false),
            Expr::CompoundFieldAccess { access_chain, .. } => last_field(access_chain).map(|_| true),
            Expr::CompoundIdentifier(parts) if parts.len() > 2 && is_qualifier(&parts[0]) => Some(true),
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
                    parts[0] = qualifier.clone();
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
                // `s.missing[0].x`: the missing column (now NULL) has no elements either.
                Expr::CompoundFieldAccess { root, .. } if matches!(&**root, Expr::Value(v) if v.value == Value::Null) =>
                {
                    *expr = Expr::value(Value::Null);
                    Ok(())
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
        Ok(self.statement)
    }
}

/// S3 Select's `s.list[0].field`, made DataFusion's: the names before the first index
/// become one compound name (resolved like `s.a.b`), indexes count from 0 (DataFusion's
/// from 1), and names after an index keep their case, as nested JSON fields do.
fn normalize_field_access(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        let Expr::CompoundFieldAccess { root, access_chain } = expr else {
            return ControlFlow::<()>::Continue(());
        };
        let mut names = match root.as_ref() {
            Expr::Identifier(id) => vec![id.clone()],
            Expr::CompoundIdentifier(ids) => ids.clone(),
            _ => return ControlFlow::Continue(()),
        };
        let leading = access_chain.iter().take_while(|a| matches!(a, AccessExpr::Dot(Expr::Identifier(_)))).count();
        for access in access_chain.drain(..leading) {
            if let AccessExpr::Dot(Expr::Identifier(id)) = access {
                names.push(id);
            }
        }
        **root = if names.len() == 1 { Expr::Identifier(names.remove(0)) } else { Expr::CompoundIdentifier(names) };
        for access in access_chain.iter_mut() {
            match access {
                // DataFusion takes a field after an index as a string subscript: `[1]['x']`.
                AccessExpr::Dot(Expr::Identifier(id)) => *access = field_subscript(&id.value),
                AccessExpr::Subscript(Subscript::Index { index }) => {
                    *index = one_based(std::mem::replace(index, Expr::value(Value::Null)))
                }
                _ => {}
            }
        }
        if access_chain.is_empty() {
            let root = std::mem::replace(&mut **root, Expr::value(Value::Null));
            *expr = root;
        }
        ControlFlow::Continue(())
    });
}

fn field_subscript(name: &str) -> AccessExpr {
    AccessExpr::Subscript(Subscript::Index { index: Expr::value(Value::SingleQuotedString(name.to_owned())) })
}

/// The field an access chain ends with (`s.list[0].x` is `x`), if it ends with one.
fn last_field(access_chain: &[AccessExpr]) -> Option<&str> {
    match access_chain.last()? {
        AccessExpr::Subscript(Subscript::Index { index: Expr::Value(v) }) => match &v.value {
            Value::SingleQuotedString(name) => Some(name),
            _ => None,
        },
        _ => None,
    }
}

/// A 0-based S3 Select index as DataFusion's 1-based one.
fn one_based(index: Expr) -> Expr {
    if let Expr::Value(v) = &index
        && let Value::Number(n, long) = &v.value
        && let Ok(n) = n.parse::<u64>()
    {
        return Expr::value(Value::Number((n + 1).to_string(), *long));
    }
    Expr::BinaryOp {
        left: Box::new(Expr::Nested(Box::new(index))),
        op: BinaryOperator::Plus,
        right: Box::new(Expr::value(Value::Number("1".to_owned(), false))),
    }
}

/// Takes the JSON path out of `FROM S3Object[*].path` (answering the SQL without it, and
/// the path's steps; none for plain `S3Object` or `S3Object[*]`), and turns
/// `IS [NOT] MISSING` into `IS [NOT] NULL`.
fn take_from_path(sql: &str) -> Result<(String, Vec<Step>), SelectError> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| SelectError::new("ParseUnexpectedToken", format!("the SQL expression does not parse: {e}")))?;
    let is_word = |token: &Token, word: &str| matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word));
    // The last two significant (non-whitespace) tokens before the current one.
    let (mut previous, mut before_previous): (Option<&Token>, Option<&Token>) = (None, None);
    let mut out = String::with_capacity(sql.len());
    let mut steps = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        i += 1;
        let is_missing_test = previous.is_some_and(|p| is_word(p, "IS"))
            || (previous.is_some_and(|p| is_word(p, "NOT")) && before_previous.is_some_and(|p| is_word(p, "IS")));
        let after_from = previous.is_some_and(|p| matches!(p, Token::Word(w) if w.keyword == Keyword::FROM));
        if !matches!(token, Token::Whitespace(_)) {
            (previous, before_previous) = (Some(token), previous);
        }
        if is_word(token, "MISSING") && is_missing_test {
            out.push_str("NULL");
            continue;
        }
        out.push_str(&token.to_string());
        if after_from && is_word(token, TABLE) && steps.is_empty() {
            let (path, used) = path_steps(&tokens[i..])?;
            i += used;
            match path.split_first() {
                None => {}
                Some((Step::EveryElement, rest)) => steps = rest.to_vec(),
                Some(_) => {
                    return Err(SelectError::new(
                        "InvalidDataSource",
                        "a path after S3Object starts with the wildcard: FROM S3Object[*].path",
                    ));
                }
            }
        }
    }
    Ok((out, steps))
}

/// The path steps at the start of `tokens` (`[*]`, `[n]`, `['name']`, `.name`, `.*`),
/// and how many tokens they took.
fn path_steps(tokens: &[Token]) -> Result<(Vec<Step>, usize), SelectError> {
    let invalid = |what: &str| SelectError::new("InvalidDataSource", format!("the path after S3Object has {what}"));
    let mut steps = Vec::new();
    let mut i = 0;
    loop {
        match tokens.get(i..) {
            Some([Token::LBracket, inner, Token::RBracket, ..]) => {
                steps.push(match inner {
                    Token::Mul => Step::EveryElement,
                    Token::Number(n, false) => {
                        Step::Element(n.parse().map_err(|_| invalid("an index that is no number"))?)
                    }
                    Token::SingleQuotedString(name) => Step::Field { name: name.clone(), exact: true },
                    _ => return Err(invalid(&format!("[{inner}]"))),
                });
                i += 3;
            }
            Some([Token::Period, Token::Mul, ..]) => {
                steps.push(Step::EveryField);
                i += 2;
            }
            Some([Token::Period, Token::Word(word), ..]) => {
                steps.push(Step::Field { name: word.value.clone(), exact: word.quote_style.is_some() });
                i += 2;
            }
            Some([Token::Period, ..] | [Token::LBracket, ..]) => return Err(invalid("a step it cannot read")),
            _ => return Ok((steps, i)),
        }
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
/// reference keeps its name. `is_column` answers None for other expressions, and for
/// column references whether they need naming after their last part: a missing one,
/// about to become NULL, and a nested field (`s.a.b` is `b`, as in S3).
fn name_unnamed_items(statement: &mut Statement, is_column: impl Fn(&Expr) -> Option<bool>) {
    let Statement::Query(query) = statement else { return };
    let SetExpr::Select(select) = query.body.as_mut() else { return };
    for (i, item) in select.projection.iter_mut().enumerate() {
        let SelectItem::UnnamedExpr(expr) = item else { continue };
        let alias = match (is_column(expr), &*expr) {
            (Some(false), _) => continue,
            (Some(true), Expr::CompoundIdentifier(parts)) => parts.last().expect("compound").value.clone(),
            (Some(true), Expr::CompoundFieldAccess { access_chain, .. }) => {
                last_field(access_chain).map_or_else(|| format!("_{}", i + 1), str::to_owned)
            }
            _ => format!("_{}", i + 1),
        };
        let expr = std::mem::replace(expr, Expr::value(Value::Null));
        *item = SelectItem::ExprWithAlias { expr, alias: Ident::with_quote('"', alias) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn a_json_path_after_s3object_is_taken_out_and_names_the_row() {
        let query = SelectQuery::parse("SELECT id FROM S3Object[*].Rules[*].id WHERE id IS NOT MISSING").unwrap();
        let path = query.from_path.clone().expect("a path");
        let field = |name: &str| Step::Field { name: name.into(), exact: false };
        assert_eq!(path.steps, vec![field("Rules"), Step::EveryElement, field("id")]);
        assert_eq!(path.row_name, "id");
        assert_eq!(
            query.resolve(&["id".to_owned()], true).unwrap(),
            "SELECT \"id\" FROM s3object AS \"id\" WHERE \"id\" IS NOT NULL"
        );

        let query = SelectQuery::parse("select r.name from s3object[*]['Books'][0].* as r").unwrap();
        let path = query.from_path.clone().expect("a path");
        let books = Step::Field { name: "Books".into(), exact: true };
        assert_eq!(path.steps, vec![books, Step::Element(0), Step::EveryField]);
        assert_eq!(path.row_name, "r");
        assert_eq!(query.resolve(&["name".to_owned()], true).unwrap(), "SELECT r.\"name\" FROM s3object AS r");

        let query = SelectQuery::parse("SELECT _1.price FROM S3Object[*].books[*]").unwrap();
        assert_eq!(query.from_path.as_ref().map(|p| p.row_name.as_str()), Some("_1"));
        assert_eq!(
            query.resolve(&["price".to_owned()], true).unwrap(),
            "SELECT \"_1\".\"price\" FROM s3object AS \"_1\"",
            "the row's name keeps its quotes"
        );

        for plain in ["SELECT * FROM S3Object", "SELECT * FROM S3Object[*] s", "SELECT 'S3Object[*].x' FROM S3Object"] {
            assert!(SelectQuery::parse(plain).unwrap().from_path.is_none(), "{plain}: no path");
        }
        for bad in [
            "SELECT * FROM S3Object.a",
            "SELECT * FROM S3Object[*].a[x]",
            "SELECT * FROM S3Object[*].a[-1]",
            "SELECT * FROM S3Object[*].a[99999999999999999999999]",
        ] {
            assert_eq!(SelectQuery::parse(bad).err().map(|e| e.code), Some("InvalidDataSource"), "{bad}");
        }
    }

    /// Every S3 Select error code the dialect answers with.
    const DIALECT_CODES: &[&str] = &[
        "ParseUnexpectedToken",
        "UnsupportedSqlStructure",
        "UnsupportedSqlOperation",
        "InvalidDataSource",
        "InvalidColumnIndex",
    ];

    /// SQL-ish text: the words, brackets and quotes the FROM path and MISSING rewriting
    /// look at, in any order (often right after `FROM S3Object`), and now and then any
    /// character at all.
    fn sqlish() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            8 => prop::sample::select(vec![
                "SELECT ", "FROM ", "S3Object", "s3object", "[", "]", "*", ".", "'", "\"", "IS ", "NOT ", "MISSING",
                " ", "s", "s.", "_1", "0", "7", "-1", "99999999999999999999999", "a", "\"A\"", "['k']", "WHERE ",
                "AS ", ",", "(", ")", "count(*)", "LIMIT 1", "--", "/*", "*/", "\n", "[*]", "[0]", ".*", ".a",
                "[99999999999999999999999]", "[x]", "[-1]", "[]", "['']",
            ])
            .prop_map(str::to_owned),
            1 => any::<char>().prop_map(String::from),
        ];
        let start = prop::sample::select(vec!["", "SELECT s.a FROM S3Object", "SELECT * FROM S3Object[*]"]);
        (start, prop::collection::vec(piece, 0..40)).prop_map(|(start, pieces)| format!("{start}{}", pieces.concat()))
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z][a-zA-Z0-9_]{0,8}"
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (name(), any::<bool>()).prop_map(|(name, exact)| Step::Field { name, exact }),
            (0usize..1000).prop_map(Step::Element),
            Just(Step::EveryElement),
            Just(Step::EveryField),
        ]
    }

    /// A step as a query writes it (an exact name either way S3 allows).
    fn written(step: &Step, quote_with_brackets: bool) -> String {
        match step {
            Step::Field { name, exact: false } => format!(".{name}"),
            Step::Field { name, exact: true } if quote_with_brackets => format!("['{name}']"),
            Step::Field { name, exact: true } => format!(".\"{name}\""),
            Step::Element(n) => format!("[{n}]"),
            Step::EveryElement => "[*]".to_owned(),
            Step::EveryField => ".*".to_owned(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn any_text_is_a_query_or_an_s3_select_error_never_a_panic(sql in sqlish()) {
            match SelectQuery::parse(&sql) {
                Ok(query) => {
                    if let Err(e) = query.resolve(&["a".to_owned(), "_1".to_owned()], true) {
                        prop_assert!(!e.code.is_empty() && !e.message.is_empty(), "{sql:?}: {e:?}");
                    }
                }
                Err(e) => prop_assert!(DIALECT_CODES.contains(&e.code), "{sql:?}: unexpected code in {e:?}"),
            }
        }

        #[test]
        fn a_written_path_is_read_back_step_for_step(
            steps in prop::collection::vec(step(), 1..8),
            quote_with_brackets in any::<bool>(),
            alias in prop::option::of("r[a-z0-9]{0,4}"),
        ) {
            let path: String = steps.iter().map(|s| written(s, quote_with_brackets)).collect();
            let alias_sql = alias.as_ref().map(|a| format!(" AS {a}")).unwrap_or_default();
            let sql = format!("SELECT * FROM S3Object[*]{path}{alias_sql} WHERE 'S3Object[*].x' IS NOT MISSING");
            let query = SelectQuery::parse(&sql).map_err(|e| TestCaseError::fail(format!("{sql}: {e}")))?;
            let from_path = query.from_path.clone().expect("a path");
            prop_assert_eq!(&from_path.steps, &steps, "{}", sql);
            let row_name = alias.unwrap_or_else(|| FromPath::default_row_name(&steps));
            prop_assert_eq!(&from_path.row_name, &row_name, "{}", sql);
            let resolved = query.resolve(&["a".to_owned()], true).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(resolved.ends_with("WHERE 'S3Object[*].x' IS NOT NULL"), "{sql} became {resolved}");
        }
    }

    #[test]
    fn list_elements_count_from_zero_and_are_named_after_their_field() {
        let columns = vec!["name".to_owned(), "projects".to_owned()];
        let sql = SelectQuery::parse(
            "SELECT s.projects[0].project_name, s.projects[1] FROM S3Object s WHERE s.Projects[0].Done",
        )
        .unwrap()
        .resolve(&columns, true)
        .unwrap();
        assert_eq!(
            sql,
            "SELECT s.\"projects\"[1]['project_name'] AS \"project_name\", s.\"projects\"[2] AS \"_2\" FROM s3object s \
             WHERE s.\"projects\"[1]['Done']"
        );
        let missing =
            SelectQuery::parse("SELECT s.nothing[0].x FROM S3Object s").unwrap().resolve(&columns, true).unwrap();
        assert_eq!(missing, "SELECT NULL AS \"x\" FROM s3object s");
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

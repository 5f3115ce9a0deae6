//! Bounds on the shape of client SQL, enforced before anything recursive sees it.
//!
//! The parser, the AST's `Drop`, `Display`, visitors and DataFusion's planner all recurse
//! once per level of expression nesting. A 1.4 KB `SELECT 1+1+…` is 700 levels deep and
//! overflowed a 2 MiB worker stack, killing the process; about 48 nested parentheses put
//! sqlparser's backtracking near its recursion limit, where parsing takes minutes. So:
//!
//! 1. the text is tokenized (iterative) and refused past [`MAX_SQL_TOKENS`] tokens or
//!    [`MAX_NESTING_DEPTH`] nested brackets;
//! 2. it is parsed on a thread of its own with a [`PARSE_STACK_BYTES`] stack, where the
//!    expression depth is measured by a visitor that stops at [`MAX_EXPRESSION_DEPTH`];
//!    an AST that is too deep is refused and dropped there, on the large stack;
//! 3. the parser's work is budgeted: sqlparser backtracks, and some short texts make it
//!    retry exponentially often (each `.name` before a failing `[`, or nested `POSITION(`,
//!    doubles the work or more: 75 bytes took a minute). Every expression it starts counts
//!    against [`PARSE_STEPS_PER_TOKEN`] per token; past the budget the parse stops.
//!
//! Only ASTs within these bounds reach the rest of the crate and DataFusion.

use sqlparser::ast::{Expr, Statement, Visit, Visitor};
use sqlparser::dialect::{Dialect, GenericDialect};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};
use std::any::TypeId;
use std::cell::Cell;
use std::ops::ControlFlow;

/// Tokens one query may have (a 10,000-value IN list is about 20,000).
pub const MAX_SQL_TOKENS: usize = 100_000;
/// Brackets nested inside each other: function calls, CASTs, subqueries, lists. The parser
/// slows down exponentially close to its own limit of 50.
pub const MAX_NESTING_DEPTH: usize = 32;
/// Levels of nested expressions, a chain of binary operators counting one per operator.
pub const MAX_EXPRESSION_DEPTH: usize = 256;
/// Expressions the parser may start per significant token (a query needs a few), and
/// at least [`MIN_PARSE_STEPS`]: what bounds sqlparser's backtracking.
pub const PARSE_STEPS_PER_TOKEN: usize = 16;
const MIN_PARSE_STEPS: usize = 10_000;
/// The stack of the parsing thread: enough to parse and drop [`MAX_SQL_TOKENS`] tokens
/// of any shape (about 100 bytes per level when an AST is dropped).
const PARSE_STACK_BYTES: usize = 128 * 1024 * 1024;

/// Why a query's text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    /// The text does not tokenize or parse: the parser's message.
    Syntax(String),
    /// The text is beyond one of the bounds above.
    TooComplex(String),
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShapeError::Syntax(message) | ShapeError::TooComplex(message) => f.write_str(message),
        }
    }
}

/// Parses `sql` (GenericDialect) into statements, refusing text beyond the bounds above.
pub fn parse_bounded(sql: &str) -> Result<Vec<Statement>, ShapeError> {
    let tokens = check_tokens(sql)?;
    let steps = tokens.saturating_mul(PARSE_STEPS_PER_TOKEN).max(MIN_PARSE_STEPS);
    let sql = sql.to_owned();
    let parser = std::thread::Builder::new()
        .name("quarry-sql-parse".into())
        .stack_size(PARSE_STACK_BYTES)
        .spawn(move || {
            let dialect = BudgetedDialect { generic: GenericDialect {}, steps_left: Cell::new(steps) };
            let parsed = Parser::parse_sql(&dialect, &sql);
            if dialect.steps_left.get() == 0 {
                return Err(ShapeError::TooComplex(format!(
                    "the query is too complex to parse: it took more than {steps} parser steps"
                )));
            }
            let statements = parsed.map_err(|e| ShapeError::Syntax(e.to_string()))?;
            for statement in &statements {
                check_expression_depth(statement)?;
            }
            Ok(statements)
        })
        .map_err(|e| ShapeError::Syntax(format!("cannot start the SQL parser: {e}")))?;
    parser.join().unwrap_or_else(|_| Err(ShapeError::Syntax("the SQL parser failed".into())))
}

/// Counts tokens and bracket nesting without building anything recursive; returns the
/// number of significant tokens.
fn check_tokens(sql: &str) -> Result<usize, ShapeError> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().map_err(|e| ShapeError::Syntax(e.to_string()))?;
    let significant = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))).count();
    if significant > MAX_SQL_TOKENS {
        return Err(ShapeError::TooComplex(format!(
            "the query has {significant} tokens; at most {MAX_SQL_TOKENS} are allowed"
        )));
    }
    let mut depth = 0usize;
    for token in &tokens {
        match token {
            Token::LParen | Token::LBracket | Token::LBrace => {
                depth += 1;
                if depth > MAX_NESTING_DEPTH {
                    return Err(ShapeError::TooComplex(format!(
                        "the query nests brackets more than {MAX_NESTING_DEPTH} deep"
                    )));
                }
            }
            Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(significant)
}

/// sqlparser's GenericDialect, counting the expressions the parser starts: once
/// `steps_left` reaches zero every further one fails with `RecursionLimitExceeded`, the
/// one error sqlparser's backtracking does not swallow, so the parse ends at once.
#[derive(Debug)]
struct BudgetedDialect {
    generic: GenericDialect,
    steps_left: Cell<usize>,
}

/// The `Dialect` methods GenericDialect overrides (sqlparser 0.62), passed through.
macro_rules! like_generic {
    ($($name:ident),* $(,)?) => {
        $(fn $name(&self) -> bool {
            self.generic.$name()
        })*
    };
}

impl Dialect for BudgetedDialect {
    /// The parser asks `dialect_of!(... GenericDialect)` in places: it is one.
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    fn parse_prefix(&self, _parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        match self.steps_left.get() {
            0 => Some(Err(ParserError::RecursionLimitExceeded)),
            left => {
                self.steps_left.set(left - 1);
                None // GenericDialect's own: parse as usual
            }
        }
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.generic.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        self.generic.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.generic.is_identifier_part(ch)
    }

    like_generic!(
        supports_unicode_string_literal,
        supports_partition_by_after_order_by,
        supports_array_join_syntax,
        supports_group_by_expr,
        supports_group_by_with_modifier,
        supports_left_associative_joins_without_parens,
        supports_connect_by,
        supports_match_recognize,
        supports_pipe_operator,
        supports_start_transaction_modifier,
        supports_window_function_null_treatment_arg,
        supports_dictionary_syntax,
        supports_window_clause_named_window_reference,
        supports_parenthesized_set_variables,
        supports_select_wildcard_except,
        support_map_literal_syntax,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_extract_comma_syntax,
        supports_create_view_comment_syntax,
        supports_parens_around_table_factor,
        supports_values_as_table_factor,
        supports_create_index_with_clause,
        supports_explain_with_utility_options,
        supports_limit_comma,
        supports_update_order_by,
        supports_from_first_select,
        supports_projection_trailing_commas,
        supports_asc_desc_in_column_definition,
        supports_try_convert,
        supports_bitwise_shift_operators,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_assignment_operator,
        supports_struct_literal,
        supports_empty_projections,
        supports_nested_comments,
        supports_multiline_comment_hints,
        supports_user_host_grantee,
        supports_string_escape_constant,
        supports_array_typedef_with_brackets,
        supports_match_against,
        supports_set_names,
        supports_comma_separated_set_assignments,
        supports_filter_during_aggregation,
        supports_select_wildcard_exclude,
        supports_data_type_signed_suffix,
        supports_interval_options,
        supports_quote_delimited_string,
        supports_select_wildcard_replace,
        supports_select_wildcard_ilike,
        supports_select_wildcard_rename,
        supports_optimize_table,
        supports_install,
        supports_detach,
        supports_prewhere,
        supports_with_fill,
        supports_limit_by,
        supports_interpolate,
        supports_settings,
        supports_select_format,
        supports_comment_optimizer_hint,
        supports_constraint_keyword_without_name,
        supports_key_column_option,
        supports_comma_separated_trim,
        supports_cte_without_as,
        supports_select_item_multi_column_alias,
        supports_xml_expressions,
    );
}

/// Refuses a statement whose expressions nest deeper than [`MAX_EXPRESSION_DEPTH`]. The
/// walk stops at the limit, so its own recursion is bounded too.
fn check_expression_depth(statement: &Statement) -> Result<(), ShapeError> {
    struct Depth {
        current: usize,
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
            self.current += 1;
            if self.current > MAX_EXPRESSION_DEPTH { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        }
        fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
            self.current -= 1;
            ControlFlow::Continue(())
        }
    }
    match statement.visit(&mut Depth { current: 0 }) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(ShapeError::TooComplex(format!(
            "the query nests expressions more than {MAX_EXPRESSION_DEPTH} deep (a chain of operators counts one \
             level per operator)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(terms: usize) -> String {
        format!("SELECT {}", vec!["1"; terms].join("+"))
    }

    fn nested_casts(depth: usize) -> String {
        format!("SELECT {}x{} FROM t", "CAST(".repeat(depth), " AS INT)".repeat(depth))
    }

    fn too_complex(result: Result<Vec<Statement>, ShapeError>) -> bool {
        matches!(result, Err(ShapeError::TooComplex(_)))
    }

    #[test]
    fn chains_are_bounded_by_expression_depth() {
        assert!(parse_bounded(&chain(MAX_EXPRESSION_DEPTH - 1)).is_ok());
        assert!(too_complex(parse_bounded(&chain(MAX_EXPRESSION_DEPTH + 1))));
        assert!(too_complex(parse_bounded(&chain(700))));
    }

    #[test]
    fn nesting_is_bounded_before_parsing() {
        assert!(parse_bounded(&nested_casts(MAX_NESTING_DEPTH)).is_ok());
        assert!(too_complex(parse_bounded(&nested_casts(MAX_NESTING_DEPTH + 1))));
        assert!(too_complex(parse_bounded(&nested_casts(300))));
        let parens = format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(too_complex(parse_bounded(&parens)));
    }

    /// Texts on which sqlparser backtracks exponentially: each took from seconds to
    /// minutes before the parser's work was budgeted (found by the select_dialect fuzz
    /// target). Each must now be refused at once.
    #[test]
    fn backtracking_is_cut_off_by_the_step_budget() {
        let cases = [
            format!("SELECT {}", "s.x.y[".repeat(12)),
            format!("SELECT {}+{}", "s.x.y[".repeat(12), "]".repeat(12)),
            format!("SELECT {}", "s.a.b.c.d[".repeat(8)),
            format!("SELECT {}+{}", "POSITION(".repeat(16), " IN s)".repeat(16)),
            format!("SELECT {}+{}", "CAST(".repeat(MAX_NESTING_DEPTH), " AS INT)".repeat(MAX_NESTING_DEPTH)),
            format!("SELECT {}", "s.x.y[CAST(".repeat(10)),
        ];
        for sql in &cases {
            let started = std::time::Instant::now();
            let result = parse_bounded(sql);
            let took = started.elapsed();
            assert!(result.is_err(), "{sql}: parsed");
            assert!(took < std::time::Duration::from_secs(2), "{sql}: took {took:?} to refuse");
        }
        let budget_spent = parse_bounded(&cases[0]).unwrap_err();
        assert!(
            matches!(budget_spent, ShapeError::TooComplex(ref m) if m.contains("parser steps")),
            "{budget_spent:?}"
        );
    }

    /// The budgeted dialect parses what GenericDialect parses, to the same AST.
    #[test]
    fn the_budget_changes_nothing_for_ordinary_queries() {
        for sql in [
            "SELECT s.name, s.Age FROM S3Object s WHERE CAST(s.Age AS INT) > 30 ORDER BY 1 LIMIT 5",
            "SELECT a.b.c[1].d, x['k'], {'a': 1}, [1, 2][1], POSITION('a' IN s), SUBSTRING(s FROM 2 FOR 3) FROM t",
            "WITH t AS (SELECT * FROM read_parquet('s3://b/p/')) SELECT count(*) FILTER (WHERE x > 1) FROM t GROUP BY ALL",
            "SELECT * EXCLUDE (a) FROM t1 JOIN t2 USING (id) WHERE x IN (SELECT y FROM t3) AND z ILIKE '%a'",
            "SELECT t.* REPLACE (1 AS a), 1 << 2, e'\\n', DATE '2026-01-01' + INTERVAL '1' DAY FROM t",
            "EXPLAIN ANALYZE SELECT key FROM inventory WHERE size_bytes > 1073741824",
        ] {
            let expected = Parser::parse_sql(&GenericDialect {}, sql).expect("GenericDialect parses it");
            let budgeted = parse_bounded(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert_eq!(budgeted, expected, "{sql}");
        }
    }

    #[test]
    fn a_megabyte_of_operators_is_refused_without_recursion() {
        // About 500,000 tokens: refused by the count, before any parse.
        let sql = chain(250_000);
        assert!(sql.len() < 1 << 20);
        assert!(too_complex(parse_bounded(&sql)));
        // Just under the token limit: parsed and dropped on the parsing thread.
        assert!(too_complex(parse_bounded(&chain(MAX_SQL_TOKENS / 2 - 1))));
    }

    #[test]
    fn syntax_errors_stay_syntax_errors() {
        assert!(matches!(parse_bounded("SELEC 1"), Err(ShapeError::Syntax(_))));
        assert!(matches!(parse_bounded("SELECT 'open"), Err(ShapeError::Syntax(_))));
        assert_eq!(parse_bounded("SELECT a, count(*) FROM t WHERE b IN (1, 2, 3) GROUP BY a").unwrap().len(), 1);
    }
}

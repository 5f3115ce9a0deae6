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
//!    an AST that is too deep is refused and dropped there, on the large stack.
//!
//! Only ASTs within these bounds reach the rest of the crate and DataFusion.

use sqlparser::ast::{Expr, Statement, Visit, Visitor};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};
use std::ops::ControlFlow;

/// Tokens one query may have (a 10,000-value IN list is about 20,000).
pub const MAX_SQL_TOKENS: usize = 100_000;
/// Brackets nested inside each other: function calls, CASTs, subqueries, lists. The parser
/// slows down exponentially close to its own limit of 50.
pub const MAX_NESTING_DEPTH: usize = 32;
/// Levels of nested expressions, a chain of binary operators counting one per operator.
pub const MAX_EXPRESSION_DEPTH: usize = 256;
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
    check_tokens(sql)?;
    let sql = sql.to_owned();
    let parser = std::thread::Builder::new()
        .name("quarry-sql-parse".into())
        .stack_size(PARSE_STACK_BYTES)
        .spawn(move || {
            let statements =
                Parser::parse_sql(&GenericDialect {}, &sql).map_err(|e| ShapeError::Syntax(e.to_string()))?;
            for statement in &statements {
                check_expression_depth(statement)?;
            }
            Ok(statements)
        })
        .map_err(|e| ShapeError::Syntax(format!("cannot start the SQL parser: {e}")))?;
    parser.join().unwrap_or_else(|_| Err(ShapeError::Syntax("the SQL parser failed".into())))
}

/// Counts tokens and bracket nesting without building anything recursive.
fn check_tokens(sql: &str) -> Result<(), ShapeError> {
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
    Ok(())
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

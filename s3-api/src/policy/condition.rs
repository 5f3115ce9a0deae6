//! A statement's Condition block: operators over condition keys.
//!
//! All operators of a block must hold, and within one all keys; a key holds when any
//! of the request's values matches any of the policy's (negated operators: none does).
//! A key the request lacks fails a positive operator and passes a negated one, unless
//! the operator ends in `IfExists` (then it passes either way); `Null` tests presence.
//! `ForAllValues:` / `ForAnyValue:` qualify multivalued keys as IAM defines them.

use super::{MalformedPolicy, glob, malformed, strings};
use ipnet::IpNet;
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    IpAddress,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantifier {
    /// A single-valued key (or any value matching, for multivalued ones).
    Plain,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone)]
pub(super) struct Condition {
    test: Test,
    negated: bool,
    if_exists: bool,
    quantifier: Quantifier,
    /// Lowercase: condition keys are case-insensitive.
    key: String,
    values: Vec<String>,
}

/// Keys that identify callers: an Allow to everyone pinned by one of them is not public.
const CALLER_KEYS: &[&str] =
    &["aws:sourceip", "aws:sourcevpc", "aws:sourcevpce", "aws:sourceaccount", "aws:principalaccount"];

pub(super) fn parse(value: &Value) -> Result<Vec<Condition>, MalformedPolicy> {
    let Value::Object(operators) = value else {
        return Err(malformed("Condition must be a JSON object"));
    };
    let mut out = Vec::new();
    for (operator, keys) in operators {
        let (test, negated, if_exists, quantifier) = operator_of(operator)?;
        let Value::Object(keys) = keys else {
            return Err(malformed(format!("Condition {operator} must map keys to values")));
        };
        for (key, values) in keys {
            let values = match values {
                Value::Bool(b) => vec![b.to_string()],
                Value::Number(n) => vec![n.to_string()],
                other => strings(other, "Condition values")?,
            };
            for v in &values {
                check_value(test, v)
                    .map_err(|why| malformed(format!("Invalid Condition value {v:?} for {operator}: {why}")))?;
            }
            out.push(Condition { test, negated, if_exists, quantifier, key: key.to_ascii_lowercase(), values });
        }
    }
    Ok(out)
}

fn operator_of(name: &str) -> Result<(Test, bool, bool, Quantifier), MalformedPolicy> {
    let (quantifier, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
        (Quantifier::ForAnyValue, rest)
    } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
        (Quantifier::ForAllValues, rest)
    } else {
        (Quantifier::Plain, name)
    };
    let (rest, if_exists) = match rest.strip_suffix("IfExists") {
        Some(base) if base != "Null" => (base, true),
        _ => (rest, false),
    };
    let (test, negated) = match rest {
        "StringEquals" => (Test::StringEquals, false),
        "StringNotEquals" => (Test::StringEquals, true),
        "StringEqualsIgnoreCase" => (Test::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Test::StringEqualsIgnoreCase, true),
        "StringLike" | "ArnLike" | "ArnEquals" => (Test::StringLike, false),
        "StringNotLike" | "ArnNotLike" | "ArnNotEquals" => (Test::StringLike, true),
        "NumericEquals" => (Test::NumericEquals, false),
        "NumericNotEquals" => (Test::NumericEquals, true),
        "NumericLessThan" => (Test::NumericLessThan, false),
        "NumericLessThanEquals" => (Test::NumericLessThanEquals, false),
        "NumericGreaterThan" => (Test::NumericGreaterThan, false),
        "NumericGreaterThanEquals" => (Test::NumericGreaterThanEquals, false),
        "DateEquals" => (Test::DateEquals, false),
        "DateNotEquals" => (Test::DateEquals, true),
        "DateLessThan" => (Test::DateLessThan, false),
        "DateLessThanEquals" => (Test::DateLessThanEquals, false),
        "DateGreaterThan" => (Test::DateGreaterThan, false),
        "DateGreaterThanEquals" => (Test::DateGreaterThanEquals, false),
        "Bool" => (Test::Bool, false),
        "IpAddress" => (Test::IpAddress, false),
        "NotIpAddress" => (Test::IpAddress, true),
        "Null" => (Test::Null, false),
        _ => return Err(malformed(format!("Invalid Condition type: {name}"))),
    };
    Ok((test, negated, if_exists, quantifier))
}

/// A policy value the operator can use (checked once, at PutBucketPolicy).
fn check_value(test: Test, value: &str) -> Result<(), &'static str> {
    let ok = match test {
        Test::NumericEquals
        | Test::NumericLessThan
        | Test::NumericLessThanEquals
        | Test::NumericGreaterThan
        | Test::NumericGreaterThanEquals => number(value).is_some(),
        Test::DateEquals
        | Test::DateLessThan
        | Test::DateLessThanEquals
        | Test::DateGreaterThan
        | Test::DateGreaterThanEquals => date(value).is_some(),
        Test::Bool | Test::Null => matches!(value.to_ascii_lowercase().as_str(), "true" | "false"),
        Test::IpAddress => network(value).is_some(),
        Test::StringEquals | Test::StringEqualsIgnoreCase | Test::StringLike => !value.contains("${"),
    };
    if ok { Ok(()) } else { Err("not a value this operator compares") }
}

fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// ISO 8601 (RFC 3339) or seconds since the epoch, as IAM takes dates.
fn date(text: &str) -> Option<i128> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(at.unix_timestamp_nanos() / 1_000_000);
    }
    text.parse::<i64>().ok().map(|secs| i128::from(secs) * 1000)
}

/// A CIDR range, or one address.
fn network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>().ok().or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

impl Condition {
    pub(super) fn restricts_callers(&self) -> bool {
        !self.negated && CALLER_KEYS.contains(&self.key.as_str())
    }

    pub(super) fn holds(&self, context: &HashMap<String, Vec<String>>) -> bool {
        let request = context.get(&self.key).filter(|v| !v.is_empty());
        if self.test == Test::Null {
            let wants_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            return request.is_none() == wants_absent;
        }
        let Some(request) = request else {
            // ForAllValues over no values holds (vacuously), as in IAM.
            return self.if_exists || self.negated || self.quantifier == Quantifier::ForAllValues;
        };
        let matches = |value: &str| self.values.iter().any(|wanted| self.compare(value, wanted));
        let positive = match self.quantifier {
            Quantifier::Plain | Quantifier::ForAnyValue => request.iter().any(|v| matches(v)),
            Quantifier::ForAllValues => request.iter().all(|v| matches(v)),
        };
        positive != self.negated
    }

    fn compare(&self, request: &str, wanted: &str) -> bool {
        let numbers = || number(request).zip(number(wanted));
        let dates = || date(request).zip(date(wanted));
        match self.test {
            Test::StringEquals => request == wanted,
            Test::StringEqualsIgnoreCase => request.to_lowercase() == wanted.to_lowercase(),
            Test::StringLike => glob(wanted, request, true),
            Test::NumericEquals => numbers().is_some_and(|(r, w)| r == w),
            Test::NumericLessThan => numbers().is_some_and(|(r, w)| r < w),
            Test::NumericLessThanEquals => numbers().is_some_and(|(r, w)| r <= w),
            Test::NumericGreaterThan => numbers().is_some_and(|(r, w)| r > w),
            Test::NumericGreaterThanEquals => numbers().is_some_and(|(r, w)| r >= w),
            Test::DateEquals => dates().is_some_and(|(r, w)| r == w),
            Test::DateLessThan => dates().is_some_and(|(r, w)| r < w),
            Test::DateLessThanEquals => dates().is_some_and(|(r, w)| r <= w),
            Test::DateGreaterThan => dates().is_some_and(|(r, w)| r > w),
            Test::DateGreaterThanEquals => dates().is_some_and(|(r, w)| r >= w),
            Test::Bool => request.eq_ignore_ascii_case(wanted),
            Test::IpAddress => {
                request.parse::<IpAddr>().ok().zip(network(wanted)).is_some_and(|(ip, net)| net.contains(&ip))
            }
            Test::Null => unreachable!("Null is decided before values are compared"),
        }
    }
}

//! The IAM policy language, as S3 bucket policies use it: parsing with S3's checks
//! (MalformedPolicy), and the decision of one document for one request.
//!
//! This module knows nothing of S3 requests or of Quarry's users: the caller describes
//! the request ([`Request`]) and combines the decisions of every policy that applies
//! (`crate::access`): an explicit Deny anywhere wins, then any Allow.
//!
//! Not supported (refused as MalformedPolicy, never ignored): policy variables such
//! as `${aws:username}` in resources, and principals other than `*`, `AWS` and
//! `CanonicalUser` (a `Service` principal names no Quarry user, so it matches nothing).

mod condition;

use condition::Condition;
use serde_json::Value;
use std::collections::HashMap;

/// S3's limit on a bucket policy document.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;
/// A bound on the work one document can ask for, whatever its size.
const MAX_STATEMENTS: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedPolicy(pub String);

fn malformed(message: impl Into<String>) -> MalformedPolicy {
    MalformedPolicy(message.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// What one document says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A Deny statement applies: nothing else can allow the request.
    Deny,
    /// An Allow statement applies and no Deny does.
    Allow,
    /// No statement applies.
    NotApplicable,
}

/// Who is asking, as policies name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    /// A user: the strings a policy's `AWS` principal may name them by (the user name,
    /// `arn:aws:iam::<name>:root`) and their canonical id (`CanonicalUser`).
    User {
        aws_names: Vec<String>,
        canonical_id: String,
    },
}

/// One request, as a policy sees it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub caller: &'a Caller,
    /// "s3:GetObject", ...
    pub action: &'a str,
    /// "arn:aws:s3:::bucket" or "arn:aws:s3:::bucket/key"
    pub resource: &'a str,
    /// Condition keys, lowercase ("aws:sourceip", "s3:prefix"), with their values; a
    /// key absent from the request is absent here.
    pub context: &'a HashMap<String, Vec<String>>,
}

/// A list of patterns (`*` and `?` wildcards), or the negation of one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Patterns {
    Of(Vec<String>),
    Not(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Principals {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous included.
    Everyone,
    Named {
        aws: Vec<String>,
        canonical: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PrincipalMatch {
    Of(Principals),
    Not(Principals),
}

#[derive(Debug, Clone)]
struct Statement {
    effect: Effect,
    principal: PrincipalMatch,
    actions: Patterns,
    resources: Patterns,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

impl Policy {
    /// Parses and checks a bucket policy of `bucket`: every resource must be the bucket
    /// or objects in it, as S3 requires.
    pub fn parse(text: &str, bucket: &str) -> Result<Policy, MalformedPolicy> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(malformed(format!("Policies must be at most {MAX_POLICY_BYTES} bytes")));
        }
        let document: Value =
            serde_json::from_str(text).map_err(|e| malformed(format!("Policies must be valid JSON: {e}")))?;
        let Value::Object(document) = document else {
            return Err(malformed("A policy must be a JSON object"));
        };
        for (name, value) in &document {
            match name.as_str() {
                "Version" if matches!(value.as_str(), Some("2012-10-17" | "2008-10-17")) => {}
                "Version" => return Err(malformed("The policy's Version must be 2012-10-17 or 2008-10-17")),
                "Id" if value.is_string() => {}
                "Statement" => {}
                other => return Err(malformed(format!("Unknown field {other}"))),
            }
        }
        let statements = match document.get("Statement") {
            Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => return Err(malformed("Missing required field Statement")),
        };
        if statements.is_empty() || statements.len() > MAX_STATEMENTS {
            return Err(malformed(format!("A policy holds 1 to {MAX_STATEMENTS} statements")));
        }
        let statements = statements.into_iter().map(|s| statement(s, bucket)).collect::<Result<_, _>>()?;
        Ok(Policy { statements })
    }

    pub fn evaluate(&self, request: &Request<'_>) -> Decision {
        let mut decision = Decision::NotApplicable;
        for statement in &self.statements {
            if statement.applies(request) {
                match statement.effect {
                    Effect::Deny => return Decision::Deny,
                    Effect::Allow => decision = Decision::Allow,
                }
            }
        }
        decision
    }

    /// GetBucketPolicyStatus: whether the policy grants anyone access. As S3 judges it,
    /// an Allow to everyone is not public when a condition pins it to fixed values of
    /// keys that identify callers (source IP ranges, source VPCs, accounts).
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|s| {
            s.effect == Effect::Allow
                && s.principal == PrincipalMatch::Of(Principals::Everyone)
                && !s.conditions.iter().any(Condition::restricts_callers)
        })
    }
}

impl Statement {
    fn applies(&self, request: &Request<'_>) -> bool {
        let principal = match &self.principal {
            PrincipalMatch::Of(p) => p.names(request.caller),
            PrincipalMatch::Not(p) => !p.names(request.caller),
        };
        principal
            && self.actions.matches(request.action, false)
            && self.resources.matches(request.resource, true)
            && self.conditions.iter().all(|c| c.holds(request.context))
    }
}

impl Principals {
    fn names(&self, caller: &Caller) -> bool {
        match (self, caller) {
            (Principals::Everyone, _) => true,
            (Principals::Named { .. }, Caller::Anonymous) => false,
            (Principals::Named { aws, canonical }, Caller::User { aws_names, canonical_id }) => {
                aws.iter().any(|p| p == "*" || aws_names.contains(p)) || canonical.contains(canonical_id)
            }
        }
    }
}

impl Patterns {
    fn matches(&self, value: &str, case_sensitive: bool) -> bool {
        let any = |patterns: &[String]| patterns.iter().any(|p| glob(p, value, case_sensitive));
        match self {
            Patterns::Of(patterns) => any(patterns),
            Patterns::Not(patterns) => !any(patterns),
        }
    }
}

/// `*` (any run) and `?` (any one character) wildcards. Greedy with one backtrack
/// point: linear in practice, O(pattern × value) at worst.
pub(crate) fn glob(pattern: &str, value: &str, case_sensitive: bool) -> bool {
    let fold = |c: char| if case_sensitive { c } else { c.to_ascii_lowercase() };
    let p: Vec<char> = pattern.chars().map(fold).collect();
    let v: Vec<char> = value.chars().map(fold).collect();
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((star_pi, star_vi)) = star {
            pi = star_pi + 1;
            vi = star_vi + 1;
            star = Some((star_pi, star_vi + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A string or a list of strings (the policy language allows both everywhere).
fn strings(value: &Value, what: &str) -> Result<Vec<String>, MalformedPolicy> {
    let list = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| malformed(format!("{what} must be strings"))))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(malformed(format!("{what} must be a string or a list of strings"))),
    };
    if list.is_empty() {
        return Err(malformed(format!("{what} must not be empty")));
    }
    Ok(list)
}

fn statement(value: &Value, bucket: &str) -> Result<Statement, MalformedPolicy> {
    let Value::Object(fields) = value else {
        return Err(malformed("A statement must be a JSON object"));
    };
    for name in fields.keys() {
        if !matches!(
            name.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(malformed(format!("Unknown field {name}")));
        }
    }
    let effect = match fields.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err(malformed("Invalid effect: a statement's Effect is Allow or Deny")),
    };
    let principal = match (fields.get("Principal"), fields.get("NotPrincipal")) {
        (Some(p), None) => PrincipalMatch::Of(principals(p)?),
        // As in IAM: NotPrincipal only narrows a Deny; an Allow to "everyone but" is refused.
        (None, Some(_)) if effect == Effect::Allow => {
            return Err(malformed("Invalid principal in policy: NotPrincipal is only allowed with Effect Deny"));
        }
        (None, Some(p)) => PrincipalMatch::Not(principals(p)?),
        _ => return Err(malformed("Missing required field Principal: a statement names Principal or NotPrincipal")),
    };
    let actions = match (fields.get("Action"), fields.get("NotAction")) {
        (Some(a), None) => Patterns::Of(strings(a, "Action")?),
        (None, Some(a)) => Patterns::Not(strings(a, "NotAction")?),
        _ => return Err(malformed("Missing required field Action: a statement names Action or NotAction")),
    };
    let (Patterns::Of(list) | Patterns::Not(list)) = &actions;
    for action in list {
        if !(action == "*" || action.len() > 3 && action[..3].eq_ignore_ascii_case("s3:")) {
            return Err(malformed(format!("Policy has invalid action: {action}")));
        }
    }
    let resources = match (fields.get("Resource"), fields.get("NotResource")) {
        (Some(r), None) => Patterns::Of(strings(r, "Resource")?),
        (None, Some(r)) => Patterns::Not(strings(r, "NotResource")?),
        _ => return Err(malformed("Missing required field Resource: a statement names Resource or NotResource")),
    };
    let (Patterns::Of(list) | Patterns::Not(list)) = &resources;
    for resource in list {
        if !resource_in_bucket(resource, bucket) {
            return Err(malformed(format!("Policy has invalid resource: {resource}")));
        }
    }
    let conditions = match fields.get("Condition") {
        None => Vec::new(),
        Some(c) => condition::parse(c)?,
    };
    Ok(Statement { effect, principal, actions, resources, conditions })
}

/// Whether a bucket policy's resource names `bucket` or objects in it (wildcards that
/// could reach another bucket are refused, as S3 does).
fn resource_in_bucket(resource: &str, bucket: &str) -> bool {
    if resource.contains("${") {
        return false;
    }
    let Some(rest) = resource.strip_prefix("arn:aws:s3:::") else { return false };
    let (named, _) = rest.split_once('/').unwrap_or((rest, ""));
    named == bucket || (named.contains(['*', '?']) && glob(named, bucket, true))
}

fn principals(value: &Value) -> Result<Principals, MalformedPolicy> {
    match value {
        Value::String(s) if s == "*" => Ok(Principals::Everyone),
        Value::Object(kinds) => {
            let (mut aws, mut canonical) = (Vec::new(), Vec::new());
            for (kind, names) in kinds {
                let names = strings(names, "Principal")?;
                match kind.as_str() {
                    "AWS" if names.iter().any(|n| n == "*") => return Ok(Principals::Everyone),
                    "AWS" => aws.extend(names),
                    "CanonicalUser" => canonical.extend(names),
                    // A service principal names no Quarry user: it matches no request.
                    "Service" if names.iter().all(|n| n.ends_with(".amazonaws.com")) => {}
                    _ => return Err(malformed(format!("Invalid principal in policy: {kind}"))),
                }
            }
            Ok(Principals::Named { aws, canonical })
        }
        _ => Err(malformed("Invalid principal in policy: Principal is \"*\" or an object")),
    }
}

#[cfg(test)]
mod tests;

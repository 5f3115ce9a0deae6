//! (policy, request, expected decision) tables, the checks PutBucketPolicy makes, and a
//! property: an applicable Deny always wins, wherever it sits in the document.

use super::*;
use proptest::prelude::*;

fn alice() -> Caller {
    Caller::User { aws_names: vec!["alice".into(), "arn:aws:iam::alice:root".into()], canonical_id: "c0ffee".into() }
}

fn bob() -> Caller {
    Caller::User { aws_names: vec!["bob".into(), "arn:aws:iam::bob:root".into()], canonical_id: "b0b".into() }
}

fn context(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        out.entry(k.to_ascii_lowercase()).or_default().push((*v).to_owned());
    }
    out
}

fn decide(policy: &str, caller: &Caller, action: &str, resource: &str, ctx: &[(&str, &str)]) -> Decision {
    let policy = Policy::parse(policy, "b").unwrap_or_else(|e| panic!("policy refused: {e}\n{policy}"));
    let context = context(ctx);
    policy.evaluate(&Request { caller, action, resource, context: &context })
}

fn one(effect: &str, principal: &str, action: &str, resource: &str, condition: &str) -> String {
    let condition = if condition.is_empty() { String::new() } else { format!(r#","Condition":{condition}"#) };
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}","Principal":{principal},"Action":{action},"Resource":{resource}{condition}}}]}}"#
    )
}

use Decision::{Allow, Deny, NotApplicable as Silent};

#[test]
fn principals_actions_and_resources() {
    let public_get = one("Allow", r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/public/*""#, "");
    let cases: &[(&str, Caller, &str, &str, Decision)] = &[
        ("anonymous GET under the prefix", Caller::Anonymous, "s3:GetObject", "arn:aws:s3:::b/public/x", Allow),
        ("a user too", alice(), "s3:GetObject", "arn:aws:s3:::b/public/a/b", Allow),
        ("outside the prefix", Caller::Anonymous, "s3:GetObject", "arn:aws:s3:::b/private/x", Silent),
        ("another action", Caller::Anonymous, "s3:PutObject", "arn:aws:s3:::b/public/x", Silent),
        ("action names ignore case", Caller::Anonymous, "S3:GETOBJECT", "arn:aws:s3:::b/public/x", Allow),
        ("resources do not", Caller::Anonymous, "s3:GetObject", "arn:aws:s3:::b/PUBLIC/x", Silent),
    ];
    for (what, caller, action, resource, expected) in cases {
        assert_eq!(decide(&public_get, caller, action, resource, &[]), *expected, "{what}");
    }

    let only_alice = one("Allow", r#"{"AWS":["arn:aws:iam::alice:root"]}"#, r#""s3:*""#, r#""arn:aws:s3:::b/*""#, "");
    assert_eq!(decide(&only_alice, &alice(), "s3:DeleteObject", "arn:aws:s3:::b/k", &[]), Allow);
    assert_eq!(decide(&only_alice, &bob(), "s3:DeleteObject", "arn:aws:s3:::b/k", &[]), Silent);
    assert_eq!(decide(&only_alice, &Caller::Anonymous, "s3:GetObject", "arn:aws:s3:::b/k", &[]), Silent);
    assert_eq!(decide(&only_alice, &alice(), "s3:ListBucket", "arn:aws:s3:::b", &[]), Silent, "b/* is not b");
    let canonical = one("Allow", r#"{"CanonicalUser":"b0b"}"#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, "");
    assert_eq!(decide(&canonical, &bob(), "s3:GetObject", "arn:aws:s3:::b/k", &[]), Allow);
    assert_eq!(decide(&canonical, &alice(), "s3:GetObject", "arn:aws:s3:::b/k", &[]), Silent);

    // Deny DELETE to everyone but alice: NotPrincipal.
    let deny_others = r#"{"Statement":[
        {"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]},
        {"Effect":"Deny","NotPrincipal":{"AWS":"alice"},"Action":"s3:DeleteObject*","Resource":"arn:aws:s3:::b/*"}]}"#;
    assert_eq!(decide(deny_others, &alice(), "s3:DeleteObject", "arn:aws:s3:::b/k", &[]), Allow);
    assert_eq!(decide(deny_others, &bob(), "s3:DeleteObject", "arn:aws:s3:::b/k", &[]), Deny);
    assert_eq!(decide(deny_others, &Caller::Anonymous, "s3:DeleteObjectVersion", "arn:aws:s3:::b/k", &[]), Deny);
    assert_eq!(decide(deny_others, &bob(), "s3:GetObject", "arn:aws:s3:::b/k", &[]), Allow);

    let not_action = one("Deny", r#""*""#, r#"["s3:Get*","s3:List*"]"#, r#""arn:aws:s3:::b/*""#, "")
        .replace("\"Action\"", "\"NotAction\"");
    assert_eq!(decide(&not_action, &bob(), "s3:PutObject", "arn:aws:s3:::b/k", &[]), Deny);
    assert_eq!(decide(&not_action, &bob(), "s3:GetObject", "arn:aws:s3:::b/k", &[]), Silent);
    let not_resource = one("Deny", r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/open/*""#, "")
        .replace("\"Resource\"", "\"NotResource\"");
    assert_eq!(decide(&not_resource, &bob(), "s3:GetObject", "arn:aws:s3:::b/closed", &[]), Deny);
    assert_eq!(decide(&not_resource, &bob(), "s3:GetObject", "arn:aws:s3:::b/open/x", &[]), Silent);
}

/// (condition block, what it shows, the request's condition keys, expected decision)
type ConditionCase = (&'static str, &'static str, &'static [(&'static str, &'static str)], Decision);

#[test]
fn conditions() {
    let allow_if =
        |condition: &str| one("Allow", r#""*""#, r#""s3:*""#, r#"["arn:aws:s3:::b","arn:aws:s3:::b/*"]"#, condition);
    let list = "s3:ListBucket";
    let bucket = "arn:aws:s3:::b";
    let cases: &[ConditionCase] = &[
        (r#"{"StringEquals":{"s3:prefix":"home/"}}"#, "prefix equal", &[("s3:prefix", "home/")], Allow),
        (r#"{"StringEquals":{"s3:prefix":"home/"}}"#, "prefix other", &[("s3:prefix", "other/")], Silent),
        (r#"{"StringEquals":{"s3:prefix":"home/"}}"#, "no prefix: a positive test fails", &[], Silent),
        (r#"{"StringNotEquals":{"s3:prefix":"home/"}}"#, "no prefix: a negated test holds", &[], Allow),
        (r#"{"StringEqualsIfExists":{"s3:prefix":"home/"}}"#, "IfExists without the key", &[], Allow),
        (r#"{"StringEqualsIfExists":{"s3:prefix":"home/"}}"#, "IfExists with another", &[("s3:prefix", "x")], Silent),
        (r#"{"StringLike":{"s3:prefix":["home/*","pub?"]}}"#, "like, any value", &[("s3:prefix", "pubs")], Allow),
        (r#"{"StringNotLike":{"s3:prefix":"home/*"}}"#, "not like", &[("s3:prefix", "home/a")], Silent),
        (
            r#"{"StringEqualsIgnoreCase":{"s3:x-amz-acl":"PUBLIC-READ"}}"#,
            "ignore case",
            &[("s3:x-amz-acl", "public-read")],
            Allow,
        ),
        (r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#, "max-keys 10", &[("s3:max-keys", "10")], Allow),
        (r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#, "max-keys 11", &[("s3:max-keys", "11")], Silent),
        (r#"{"NumericGreaterThan":{"s3:max-keys":5}}"#, "a JSON number", &[("s3:max-keys", "6")], Allow),
        (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, "not a number", &[("s3:max-keys", "ten")], Silent),
        (r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#, "inside the range", &[("aws:sourceip", "10.1.2.3")], Allow),
        (r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#, "outside", &[("aws:sourceip", "11.1.2.3")], Silent),
        (r#"{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","::1"]}}"#, "not in", &[("aws:sourceip", "::1")], Silent),
        (r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#, "IPv6", &[("aws:sourceip", "2001:db8::5")], Allow),
        (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, "over TLS", &[("aws:securetransport", "true")], Allow),
        (r#"{"Bool":{"aws:SecureTransport":true}}"#, "plain HTTP", &[("aws:securetransport", "false")], Silent),
        (
            r#"{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}"#,
            "after",
            &[("aws:currenttime", "2026-12-05T00:00:00Z")],
            Allow,
        ),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}"#,
            "before",
            &[("aws:currenttime", "2026-12-05T00:00:00Z")],
            Silent,
        ),
        (
            r#"{"DateLessThan":{"aws:EpochTime":"1600000000"}}"#,
            "epoch seconds",
            &[("aws:epochtime", "1500000000")],
            Allow,
        ),
        (r#"{"Null":{"s3:x-amz-acl":"true"}}"#, "Null: absent", &[], Allow),
        (r#"{"Null":{"s3:x-amz-acl":"true"}}"#, "Null: present", &[("s3:x-amz-acl", "private")], Silent),
        (r#"{"Null":{"s3:x-amz-acl":"false"}}"#, "Null false: present", &[("s3:x-amz-acl", "private")], Allow),
        (r#"{"StringEquals":{"s3:prefix":"a","s3:delimiter":"/"}}"#, "keys AND", &[("s3:prefix", "a")], Silent),
        (
            r#"{"StringEquals":{"s3:prefix":"a"},"StringLike":{"s3:delimiter":"*"}}"#,
            "operators AND",
            &[("s3:prefix", "a"), ("s3:delimiter", "/")],
            Allow,
        ),
        (r#"{"StringEquals":{"S3:PREFIX":"a"}}"#, "keys ignore case", &[("s3:prefix", "a")], Allow),
        (
            r#"{"ForAllValues:StringEquals":{"s3:RequestObjectTagKeys":["a","b"]}}"#,
            "all values in the set",
            &[("s3:requestobjecttagkeys", "a"), ("s3:requestobjecttagkeys", "b")],
            Allow,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"s3:RequestObjectTagKeys":["a"]}}"#,
            "one outside the set",
            &[("s3:requestobjecttagkeys", "a"), ("s3:requestobjecttagkeys", "c")],
            Silent,
        ),
        (
            r#"{"ForAnyValue:StringEquals":{"s3:RequestObjectTagKeys":["c"]}}"#,
            "any value",
            &[("s3:requestobjecttagkeys", "a"), ("s3:requestobjecttagkeys", "c")],
            Allow,
        ),
        (
            r#"{"StringEquals":{"s3:ExistingObjectTag/security":"public"}}"#,
            "an object's tag",
            &[("s3:existingobjecttag/security", "public")],
            Allow,
        ),
    ];
    for (condition, what, ctx, expected) in cases {
        assert_eq!(
            decide(&allow_if(condition), &bob(), list, bucket, ctx),
            *expected,
            "{what}: {condition} with {ctx:?}"
        );
    }
}

#[test]
fn put_bucket_policy_refuses_malformed_documents() {
    let ok = one("Allow", r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, "");
    assert!(Policy::parse(&ok, "b").is_ok());
    let cases: Vec<(&str, String)> = vec![
        ("not JSON", "{".into()),
        ("not an object", "[]".into()),
        ("no statement", r#"{"Version":"2012-10-17"}"#.into()),
        ("empty statement list", r#"{"Statement":[]}"#.into()),
        ("unknown version", ok.replace("2012-10-17", "2020-01-01")),
        ("unknown top-level field", ok.replacen('{', r#"{"Extra":1,"#, 1)),
        ("unknown statement field", ok.replace(r#""Effect""#, r#""Bogus":1,"Effect""#)),
        ("bad effect", ok.replace("Allow", "Permit")),
        ("no principal", ok.replace(r#""Principal":"*","#, "")),
        ("a bad principal", ok.replace(r#""Principal":"*""#, r#""Principal":"someone""#)),
        ("an Allow with NotPrincipal", ok.replace(r#""Principal":"*""#, r#""NotPrincipal":{"AWS":"bob"}"#)),
        ("a federated principal", ok.replace(r#""Principal":"*""#, r#""Principal":{"Federated":"x"}"#)),
        ("no action", ok.replace(r#""Action":"s3:GetObject","#, "")),
        ("a non-S3 action", ok.replace("s3:GetObject", "iam:CreateUser")),
        ("no resource", ok.replace(r#","Resource":"arn:aws:s3:::b/*""#, "")),
        ("another bucket", ok.replace("arn:aws:s3:::b/*", "arn:aws:s3:::other/*")),
        ("not an S3 ARN", ok.replace("arn:aws:s3:::b/*", "b/*")),
        ("a policy variable", ok.replace("b/*", "b/${aws:username}/*")),
        (
            "an unknown operator",
            one("Allow", r#""*""#, r#""s3:*""#, r#""arn:aws:s3:::b""#, r#"{"StringSortOf":{"s3:prefix":"a"}}"#),
        ),
        (
            "a bad number",
            one("Allow", r#""*""#, r#""s3:*""#, r#""arn:aws:s3:::b""#, r#"{"NumericEquals":{"s3:max-keys":"ten"}}"#),
        ),
        (
            "a bad date",
            one("Allow", r#""*""#, r#""s3:*""#, r#""arn:aws:s3:::b""#, r#"{"DateEquals":{"aws:CurrentTime":"soon"}}"#),
        ),
        (
            "a bad network",
            one(
                "Allow",
                r#""*""#,
                r#""s3:*""#,
                r#""arn:aws:s3:::b""#,
                r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/99"}}"#,
            ),
        ),
        ("too large", format!(r#"{{"Id":"{}","Statement":[]}}"#, "x".repeat(MAX_POLICY_BYTES))),
    ];
    for (what, text) in cases {
        assert!(Policy::parse(&text, "b").is_err(), "{what} must be MalformedPolicy: {text}");
    }
    // A wildcard bucket that covers this bucket is fine; one that cannot is not.
    assert!(Policy::parse(&ok.replace("arn:aws:s3:::b/*", "arn:aws:s3:::*"), "b").is_ok());
    assert!(Policy::parse(&ok.replace("arn:aws:s3:::b/*", "arn:aws:s3:::c*"), "b").is_err());
}

#[test]
fn policy_status_is_public_only_for_unconditioned_allows_to_everyone() {
    let public = one("Allow", r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, "");
    assert!(Policy::parse(&public, "b").unwrap().is_public());
    let named = one("Allow", r#"{"AWS":"alice"}"#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, "");
    assert!(!Policy::parse(&named, "b").unwrap().is_public());
    let by_ip = one(
        "Allow",
        r#""*""#,
        r#""s3:GetObject""#,
        r#""arn:aws:s3:::b/*""#,
        r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
    );
    assert!(!Policy::parse(&by_ip, "b").unwrap().is_public());
    let deny = one("Deny", r#""*""#, r#""s3:GetObject""#, r#""arn:aws:s3:::b/*""#, "");
    assert!(!Policy::parse(&deny, "b").unwrap().is_public());
}

#[test]
fn glob_wildcards() {
    for (pattern, value, expected) in [
        ("*", "", true),
        ("a*c", "abbbc", true),
        ("a*c", "abbb", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
        ("ü*", "über", true),
    ] {
        assert_eq!(glob(pattern, value, true), expected, "{pattern} ~ {value}");
    }
}

fn statement_json(effect: &str, action: &str, key_prefix: &str) -> String {
    format!(r#"{{"Effect":"{effect}","Principal":"*","Action":"{action}","Resource":"arn:aws:s3:::b/{key_prefix}*"}}"#)
}

proptest! {
    /// Whatever Allows a document holds, and in whatever order, a Deny that applies to
    /// the request decides it.
    #[test]
    fn an_applicable_deny_always_wins(
        allows in proptest::collection::vec((prop::sample::select(vec!["s3:*", "s3:Get*", "s3:GetObject", "*"]), "[a-c]{0,2}"), 0..6),
        deny_action in prop::sample::select(vec!["s3:*", "s3:Get*", "s3:GetObject", "*", "s3:G?tObject"]),
        deny_prefix in "[a-c]{0,2}",
        deny_at in 0usize..7,
        key in "[a-c]{2,4}",
    ) {
        let mut statements: Vec<String> = allows.iter().map(|(a, p)| statement_json("Allow", a, p)).collect();
        statements.insert(deny_at.min(statements.len()), statement_json("Deny", deny_action, &deny_prefix));
        let text = format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, statements.join(","));
        let policy = Policy::parse(&text, "b").unwrap();
        let resource = format!("arn:aws:s3:::b/{key}");
        let context = HashMap::new();
        let decision = policy.evaluate(&Request { caller: &alice(), action: "s3:GetObject", resource: &resource, context: &context });
        if key.starts_with(&deny_prefix) {
            prop_assert_eq!(decision, Decision::Deny);
        } else {
            prop_assert_ne!(decision, Decision::Deny);
        }
    }
}

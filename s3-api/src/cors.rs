//! Put/Get/DeleteBucketCors, and which of a bucket's CORS rules answers a browser's
//! request. The HTTP front (`server/src/http.rs`) answers preflights (OPTIONS) and adds
//! the `Access-Control-*` headers to answers; the rules are S3's:
//! * a rule matches when one of its origins matches the request's `Origin` (at most one
//!   `*` in an origin, standing for any run of characters), one of its methods is the
//!   method asked for (a preflight's `Access-Control-Request-Method`, else the
//!   request's own), and, for a preflight, every header it names in
//!   `Access-Control-Request-Headers` is allowed by the rule's `AllowedHeader`s;
//! * the first matching rule answers.

use crate::QuarryS3;
use crate::error::engine_error;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use storage_core::CorsRule;

/// S3's limits on a CORS configuration.
const MAX_RULES: usize = 100;
const MAX_CONFIGURATION_BYTES: usize = 64 * 1024;
const MAX_RULE_ID_BYTES: usize = 255;
const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

fn no_configuration() -> s3s::S3Error {
    crate::error::custom(
        "NoSuchCORSConfiguration",
        http::StatusCode::NOT_FOUND,
        "The CORS configuration does not exist",
    )
}

/// The rules of a PutBucketCors, checked as S3 checks them.
fn rules_of(configuration: CORSConfiguration) -> S3Result<Vec<CorsRule>> {
    let rules = configuration.cors_rules;
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(s3_error!(MalformedXML, "A CORS configuration holds 1 to {MAX_RULES} rules"));
    }
    let mut total_bytes = 0;
    let mut out = Vec::with_capacity(rules.len());
    for rule in rules {
        if rule.allowed_methods.is_empty() || rule.allowed_origins.is_empty() {
            return Err(s3_error!(MalformedXML, "Each CORS rule needs an AllowedMethod and an AllowedOrigin"));
        }
        if let Some(method) = rule.allowed_methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
            return Err(s3_error!(
                InvalidRequest,
                "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            ));
        }
        if let Some(origin) = rule.allowed_origins.iter().find(|o| o.matches('*').count() > 1) {
            return Err(s3_error!(InvalidRequest, "AllowedOrigin \"{origin}\" can not have more than one wildcard."));
        }
        let allowed_headers = rule.allowed_headers.unwrap_or_default();
        if let Some(header) = allowed_headers.iter().find(|h| h.matches('*').count() > 1) {
            return Err(s3_error!(InvalidRequest, "AllowedHeader \"{header}\" can not have more than one wildcard."));
        }
        if rule.id.as_ref().is_some_and(|id| id.len() > MAX_RULE_ID_BYTES) {
            return Err(s3_error!(InvalidArgument, "A CORS rule's ID is at most {MAX_RULE_ID_BYTES} characters"));
        }
        if rule.max_age_seconds.is_some_and(|s| s < 0) {
            return Err(s3_error!(InvalidArgument, "MaxAgeSeconds must not be negative"));
        }
        let expose_headers = rule.expose_headers.unwrap_or_default();
        let strings =
            rule.allowed_methods.iter().chain(&rule.allowed_origins).chain(&allowed_headers).chain(&expose_headers);
        total_bytes += strings.map(|s| s.len() + 32).sum::<usize>() + rule.id.as_ref().map_or(0, String::len);
        if total_bytes > MAX_CONFIGURATION_BYTES {
            return Err(s3_error!(
                InvalidRequest,
                "The CORS configuration may be at most {MAX_CONFIGURATION_BYTES} bytes"
            ));
        }
        out.push(CorsRule {
            id: rule.id,
            allowed_methods: rule.allowed_methods,
            allowed_origins: rule.allowed_origins,
            allowed_headers,
            expose_headers,
            max_age_seconds: rule.max_age_seconds,
        });
    }
    Ok(out)
}

pub async fn put_bucket_cors(
    s3: &QuarryS3,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let input = req.input;
    s3.require_bucket(&input.bucket)?;
    let rules = rules_of(input.cors_configuration)?;
    s3.engine.set_bucket_cors(&input.bucket, Some(rules)).await.map_err(engine_error)?;
    Ok(S3Response::new(PutBucketCorsOutput::default()))
}

pub async fn get_bucket_cors(
    s3: &QuarryS3,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let bucket = s3.require_bucket(&req.input.bucket)?;
    let rules = bucket.cors.ok_or_else(no_configuration)?;
    let non_empty = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let cors_rules = rules
        .into_iter()
        .map(|r| CORSRule {
            allowed_headers: non_empty(r.allowed_headers),
            allowed_methods: r.allowed_methods,
            allowed_origins: r.allowed_origins,
            expose_headers: non_empty(r.expose_headers),
            id: r.id,
            max_age_seconds: r.max_age_seconds,
        })
        .collect();
    Ok(S3Response::new(GetBucketCorsOutput { cors_rules: Some(cors_rules) }))
}

pub async fn delete_bucket_cors(
    s3: &QuarryS3,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    s3.require_bucket(&req.input.bucket)?;
    s3.engine.set_bucket_cors(&req.input.bucket, None).await.map_err(engine_error)?;
    Ok(S3Response::new(DeleteBucketCorsOutput::default()))
}

/// Does `pattern` (at most one `*`, standing for any run of characters) match `value`?
fn wildcard_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| if ignore_case { a.eq_ignore_ascii_case(b) } else { a == b };
    match pattern.split_once('*') {
        None => eq(pattern, value),
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.is_char_boundary(prefix.len())
                && value.is_char_boundary(value.len() - suffix.len())
                && eq(&value[..prefix.len()], prefix)
                && eq(&value[value.len() - suffix.len()..], suffix)
        }
    }
}

/// The first rule that lets `origin` use `method`, sending `request_headers` (a
/// preflight's `Access-Control-Request-Headers`, lower-cased).
pub fn matching_rule<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    request_headers: &[String],
) -> Option<&'a CorsRule> {
    rules.iter().find(|rule| {
        rule.allowed_origins.iter().any(|o| wildcard_match(o, origin, false))
            && rule.allowed_methods.iter().any(|m| m == method)
            && request_headers.iter().all(|h| rule.allowed_headers.iter().any(|a| wildcard_match(a, h, true)))
    })
}

/// The `Access-Control-*` headers a matching rule gives an answer (`preflight_headers`:
/// the headers a preflight asked for, which it allows).
pub fn response_headers(rule: &CorsRule, origin: &str, preflight_headers: Option<&[String]>) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    put("access-control-allow-origin", if any_origin { "*".into() } else { origin.to_owned() });
    if !any_origin {
        put("access-control-allow-credentials", "true".into());
    }
    put("access-control-allow-methods", rule.allowed_methods.join(", "));
    if let Some(asked) = preflight_headers.filter(|h| !h.is_empty()) {
        put("access-control-allow-headers", asked.join(", "));
    }
    if !rule.expose_headers.is_empty() {
        put("access-control-expose-headers", rule.expose_headers.join(", "));
    }
    if let Some(seconds) = rule.max_age_seconds {
        put("access-control-max-age", seconds.to_string());
    }
    put("vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method".into());
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            id: None,
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            expose_headers: Vec::new(),
            max_age_seconds: None,
        }
    }

    #[test]
    fn origins_match_with_one_wildcard_and_methods_and_headers_must_be_allowed() {
        let rules =
            [rule(&["*suffix", "start*end", "prefix*"], &["GET"], &[]), rule(&["*.put"], &["PUT"], &["x-amz-*"])];
        for (origin, method, matches) in [
            ("foo.suffix", "GET", true),
            ("startend", "GET", true),
            ("start12end", "GET", true),
            ("0start12end", "GET", false),
            ("prefix.x", "GET", true),
            ("bla.prefix", "GET", false),
            ("foo.suffix", "PUT", false),
            ("foo.put", "PUT", true),
            ("foo.put", "GET", false),
        ] {
            assert_eq!(matching_rule(&rules, origin, method, &[]).is_some(), matches, "{origin} {method}");
        }
        let asked = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matching_rule(&rules, "a.put", "PUT", &asked(&["x-amz-meta-a", "x-amz-date"])).is_some());
        assert!(matching_rule(&rules, "a.put", "PUT", &asked(&["content-type"])).is_none(), "a header not allowed");
        assert!(matching_rule(&rules, "foo.suffix", "GET", &asked(&["x-amz-date"])).is_none(), "no header allowed");
    }

    #[test]
    fn a_wildcard_origin_is_answered_with_a_star_and_no_credentials() {
        let headers = response_headers(&rule(&["*"], &["GET", "PUT"], &[]), "https://a.example", None);
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert_eq!(headers["access-control-allow-methods"], "GET, PUT");
        assert!(!headers.contains_key("access-control-allow-credentials"));
        let headers = response_headers(&rule(&["https://*.example"], &["GET"], &[]), "https://a.example", None);
        assert_eq!(headers["access-control-allow-origin"], "https://a.example");
        assert_eq!(headers["access-control-allow-credentials"], "true");
    }
}

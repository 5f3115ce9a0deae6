//! Virtual-hosted-style addressing: which bucket a `Host` header names.
//!
//! `<bucket>.<domain>` names a bucket for each configured domain; every other host (an IP
//! address, the domain itself, a name under no configured domain) is path-style. s3s's own
//! `SingleDomain`/`MultiDomain` read any unknown hostname as a bucket name, which would
//! turn `PUT /key` sent to `quarry.internal` into a request on bucket `quarry.internal`.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// At most this many `--domain`s (each one is compared on every request).
pub const MAX_DOMAINS: usize = 16;
/// DNS's limit for a whole name.
const MAX_DOMAIN_LEN_BYTES: usize = 253;

#[derive(Debug, Clone)]
pub struct DomainHost {
    /// Lowercase, no port, no leading or trailing dot.
    domains: Vec<String>,
}

impl DomainHost {
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(domains: I) -> Result<DomainHost, String> {
        let mut parsed = Vec::new();
        for domain in domains {
            let domain = domain.as_ref().trim().trim_matches('.').to_ascii_lowercase();
            if domain.is_empty() {
                continue;
            }
            let valid_labels = domain
                .split('.')
                .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            if domain.len() > MAX_DOMAIN_LEN_BYTES || !valid_labels {
                return Err(format!("invalid domain {domain:?}: expected a host name such as s3.example.com"));
            }
            if !parsed.contains(&domain) {
                parsed.push(domain);
            }
        }
        if parsed.len() > MAX_DOMAINS {
            return Err(format!("at most {MAX_DOMAINS} domains may be configured, got {}", parsed.len()));
        }
        // The longest domain first, so `s3.example.com` wins over `example.com`.
        parsed.sort_by_key(|d| std::cmp::Reverse(d.len()));
        Ok(DomainHost { domains: parsed })
    }

    /// The bucket a `Host` header value names, if it is virtual-hosted style.
    pub fn bucket_of<'a>(&self, host: &'a str) -> Option<&'a str> {
        let name = strip_port(host).trim_end_matches('.');
        // A configured domain itself is the path-style endpoint, even when it lies
        // under another configured domain (`s3.example.com` and `example.com`).
        if self.domains.iter().any(|domain| domain.eq_ignore_ascii_case(name)) {
            return None;
        }
        self.domains.iter().find_map(|domain| {
            let prefix_len = name.len().checked_sub(domain.len() + 1)?;
            if !name.is_char_boundary(prefix_len) {
                return None;
            }
            let (bucket, rest) = name.split_at(prefix_len);
            let matches = rest.strip_prefix('.').is_some_and(|d| d.eq_ignore_ascii_case(domain));
            (matches && !bucket.is_empty()).then_some(bucket)
        })
    }
}

/// `name:port` → `name`; an IPv6 literal (`[::1]:9000`) is left alone.
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

impl S3Host for DomainHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket_of(host) {
            // Bucket names are lowercase; a client may send the host in any case.
            Some(bucket) => VirtualHost::new(host).with_bucket(bucket.to_ascii_lowercase()),
            // No bucket: s3s parses the path as path-style.
            None => VirtualHost::new(host),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_only_under_configured_domains() {
        let host = DomainHost::new(["localhost", "s3.example.com", "example.com"]).unwrap();
        let cases = [
            ("photos.localhost:9000", Some("photos")),
            ("photos.localhost", Some("photos")),
            ("Photos.LOCALHOST.", Some("Photos")),
            ("my.dotted.bucket.s3.example.com", Some("my.dotted.bucket")),
            ("b.example.com:443", Some("b")),
            ("localhost:9000", None),
            ("s3.example.com", None),
            ("quarry.internal:9000", None),
            ("photoslocalhost:9000", None),
            ("127.0.0.1:9000", None),
            ("[::1]:9000", None),
            (".localhost", None),
        ];
        for (header, want) in cases {
            assert_eq!(host.bucket_of(header), want, "Host: {header}");
        }
    }

    #[test]
    fn invalid_domains_are_refused() {
        for bad in ["exa mple.com", "a..b", "x/y", "host:9000"] {
            assert!(DomainHost::new([bad]).is_err(), "{bad:?} should be refused");
        }
        assert!(DomainHost::new((0..=MAX_DOMAINS).map(|i| format!("d{i}.example"))).is_err());
    }
}

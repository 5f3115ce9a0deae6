//! What S3 documents of a POST Object (browser upload) form and s3s does not do:
//! * the fields `acl` (a canned ACL) and `tagging` (a Tagging XML document): s3s reads
//!   only `x-amz-acl` and the URL-encoded `x-amz-tagging`. The HTTP front reads them
//!   from the form and hands them over as a request extension ([`PostFormFields`]); they
//!   stay in the form, so s3s checks the policy's conditions on them under their own
//!   names, and they become the upload's `x-amz-acl` / `x-amz-tagging` here, before
//!   the access decision (which sees them as `s3:x-amz-acl` and request tags);
//! * the policy's `expiration` must be an ISO 8601 UTC date-time, as S3 requires
//!   (s3s takes any RFC 3339 text, e.g. with a space for the `T` and an offset).

use s3s::dto::{ObjectCannedACL, PostObjectInput, Tagging};
use s3s::{S3Request, S3Result, s3_error};

/// The form fields s3s does not read, as the HTTP front found them (values as sent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PostFormFields {
    /// `acl`: a canned ACL.
    pub acl: Option<String>,
    /// `tagging`: a `<Tagging><TagSet>...` document.
    pub tagging: Option<String>,
}

/// Sets `req`'s ACL and tags from the fields the front found. A form giving one both
/// ways (`acl` and `x-amz-acl`, `tagging` and `x-amz-tagging`) is refused: which one
/// counts would be a guess.
pub(crate) fn fill_in(req: &mut S3Request<PostObjectInput>) -> S3Result<()> {
    let Some(fields) = req.extensions.remove::<PostFormFields>() else { return Ok(()) };
    if let Some(acl) = fields.acl {
        if req.input.acl.is_some() {
            return Err(s3_error!(InvalidArgument, "A POST form may give either acl or x-amz-acl, not both"));
        }
        req.input.acl = Some(ObjectCannedACL::from(acl));
    }
    if let Some(document) = fields.tagging {
        if req.input.tagging.is_some() {
            return Err(s3_error!(InvalidArgument, "A POST form may give either tagging or x-amz-tagging, not both"));
        }
        req.input.tagging = Some(tagging_as_header(&document)?);
    }
    Ok(())
}

/// A Tagging document as the `x-amz-tagging` header would give the same tags (checked
/// against S3's limits here, and again where the header is read).
fn tagging_as_header(document: &str) -> S3Result<String> {
    use s3s::xml::Deserialize;
    let mut d = s3s::xml::Deserializer::new(document.as_bytes());
    let tagging = Tagging::deserialize(&mut d)
        .and_then(|t| d.expect_eof().map(|()| t))
        .map_err(|_| s3_error!(MalformedXML, "The tagging field must be a Tagging XML document"))?;
    let pairs =
        tagging.tag_set.into_iter().map(|tag| (tag.key.unwrap_or_default(), tag.value.unwrap_or_default())).collect();
    let tags = crate::tagging::validate(pairs, crate::tagging::MAX_OBJECT_TAGS)?;
    let encoded: Vec<String> =
        tags.iter().map(|(k, v)| format!("{}={}", urlencoding::encode(k), urlencoding::encode(v))).collect();
    Ok(encoded.join("&"))
}

/// Why a POST policy's `expiration` is not the ISO 8601 UTC date-time S3 requires
/// (`2007-12-01T12:00:00.000Z`), if it is not. `policy_base64` is the form's `policy`
/// field; a policy that is not base64-encoded JSON is left to s3s, which refuses it.
pub fn policy_expiration_error(policy_base64: &str) -> Option<String> {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::STANDARD.decode(policy_base64.trim()).ok()?;
    let policy: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let text = match policy.get("expiration") {
        Some(serde_json::Value::String(text)) => text.as_str(),
        Some(other) => return Some(format!("Invalid Policy: Invalid 'expiration' value: '{other}'")),
        None => return None, // s3s refuses a policy without one
    };
    let utc_form = text.len() > 10 && text.as_bytes()[10] == b'T' && text.ends_with('Z');
    let parses = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok();
    (!(utc_form && parses)).then(|| format!("Invalid Policy: Invalid 'expiration' value: '{text}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagging_document_becomes_the_header_form_within_s3s_limits() {
        let document = "<Tagging><TagSet><Tag><Key>0</Key><Value>a b&amp;c</Value></Tag>\
                        <Tag><Key>1</Key><Value>1</Value></Tag></TagSet></Tagging>";
        let header = tagging_as_header(document).unwrap();
        assert_eq!(header, "0=a%20b%26c&1=1");
        assert_eq!(crate::tagging::from_header(Some(&header)).unwrap().get("0").map(String::as_str), Some("a b&c"));
        let refused = tagging_as_header("<Tagging><TagSet>").unwrap_err();
        assert_eq!(refused.code(), &s3s::S3ErrorCode::MalformedXML, "a broken document");
        let eleven: String = (0..11).map(|i| format!("<Tag><Key>{i}</Key><Value>v</Value></Tag>")).collect();
        let refused = tagging_as_header(&format!("<Tagging><TagSet>{eleven}</TagSet></Tagging>")).unwrap_err();
        assert_eq!(refused.code(), &s3s::S3ErrorCode::InvalidTag, "11 tags");
    }

    #[test]
    fn a_policy_expiration_must_be_an_iso_8601_utc_date_time() {
        use base64::Engine as _;
        let policy = |expiration: &str| {
            base64::engine::general_purpose::STANDARD
                .encode(format!(r#"{{"expiration":{expiration},"conditions":[]}}"#))
        };
        for good in [r#""2030-01-01T00:00:00Z""#, r#""2030-01-01T00:00:00.000Z""#] {
            assert_eq!(policy_expiration_error(&policy(good)), None, "{good}");
        }
        for bad in [
            r#""2030-01-01 00:00:00.123456+00:00""#, // Python's str(datetime)
            r#""2030-01-01T00:00:00+01:00""#,
            r#""2030-01-01""#,
            r#""tomorrow""#,
            "12345",
        ] {
            assert!(policy_expiration_error(&policy(bad)).is_some(), "{bad} should be refused");
        }
        assert_eq!(policy_expiration_error("not base64!"), None, "left to s3s");
    }
}

//! Completes S3 error documents: s3s writes Code and, when the error has one, Message;
//! AWS also always sends Resource and RequestId, and clients print Message (the aws
//! cli shows "Unknown" without it).

use bytes::Bytes;

/// Error documents are small; a larger body is passed on untouched.
pub const MAX_ERROR_DOCUMENT_BYTES: usize = 16 * 1024;

/// The error document with Message, Resource and RequestId filled in; None if `body`
/// is not an S3 error document.
pub fn complete(body: &[u8], status: http::StatusCode, resource: &str, request_id: &str) -> Option<Bytes> {
    let text = std::str::from_utf8(body).ok()?;
    let code = tag(text, "Code")?;
    let message = tag(text, "Message")
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| escape(default_message(code, status)));
    let mut out = String::with_capacity(text.len() + resource.len() + 128);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>");
    for (name, value) in [("Code", code.to_owned()), ("Message", message)] {
        out.push_str(&format!("<{name}>{value}</{name}>"));
    }
    // Elements s3s or our operations added (e.g. Key, BucketName) are kept.
    if let Some(inner) = tag(text, "Error") {
        let mut rest = inner;
        while let Some(start) = rest.find('<') {
            let Some(name_end) = rest[start + 1..].find('>') else { break };
            let name = &rest[start + 1..start + 1 + name_end];
            let close = format!("</{name}>");
            let Some(end) = rest.find(&close) else { break };
            if !matches!(name, "Code" | "Message" | "Resource" | "RequestId") {
                out.push_str(&rest[start..end + close.len()]);
            }
            rest = &rest[end + close.len()..];
        }
    }
    out.push_str(&format!(
        "<Resource>{}</Resource><RequestId>{}</RequestId></Error>",
        escape(resource),
        escape(request_id)
    ));
    Some(Bytes::from(out))
}

/// A browser upload whose form breaks its policy's conditions: s3s answers 400
/// InvalidPolicyDocument (its messages start or end as below; the SigV4 signing fields
/// `x-amz-date`, `-credential`, `-algorithm` must each have an `eq` condition with the
/// form's value), S3 answers 403 AccessDenied "Invalid according to Policy". A policy
/// document that does not parse stays 400.
pub fn post_policy_refusal(status: http::StatusCode, body: Bytes) -> (http::StatusCode, Bytes) {
    const CONDITION_FAILURES: [&str; 2] = ["Policy condition ", "Bucket in form field "];
    const SIGNING_FIELD_FAILURE: &str = " does not match policy";
    let Some(text) = std::str::from_utf8(&body).ok() else { return (status, body) };
    let (Some("InvalidPolicyDocument"), Some(message)) = (tag(text, "Code"), tag(text, "Message")) else {
        return (status, body);
    };
    let condition_failed =
        CONDITION_FAILURES.iter().any(|p| message.starts_with(p)) || message.ends_with(SIGNING_FIELD_FAILURE);
    if status != http::StatusCode::BAD_REQUEST || !condition_failed {
        return (status, body);
    }
    let refused = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
         <Message>Invalid according to Policy: {message}</Message></Error>"
    );
    (http::StatusCode::FORBIDDEN, Bytes::from(refused))
}

fn tag<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    Some(&text[start..end])
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// AWS's wording for the codes s3s answers without a message.
fn default_message(code: &str, status: http::StatusCode) -> &'static str {
    match code {
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        }
        "InvalidBucketName" => "The specified bucket is not valid.",
        "InvalidAccessKeyId" => "The AWS Access Key Id you provided does not exist in our records.",
        "AccessDenied" => "Access Denied",
        "NoSuchBucket" => "The specified bucket does not exist",
        "NoSuchKey" => "The specified key does not exist.",
        "InvalidURI" => "Couldn't parse the specified URI.",
        "KeyTooLongError" => "Your key is too long",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "NotImplemented" => "A header you provided implies functionality that is not implemented.",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "IncompleteBody" => "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        "RequestTimeTooSkewed" => "The difference between the request time and the current time is too large.",
        "AuthorizationHeaderMalformed" => "The authorization header is malformed.",
        "MalformedXML" => "The XML you provided was not well-formed or did not validate against our published schema.",
        "InvalidArgument" => "Invalid Argument",
        "InvalidRequest" => "Invalid Request",
        "EntityTooLarge" => "Your proposed upload exceeds the maximum allowed size",
        "InternalError" => "We encountered an internal error. Please try again.",
        _ => status.canonical_reason().unwrap_or("Error"),
    }
}

/// S3's answer to a client that stopped sending its request body.
pub fn request_timeout(resource: &str, request_id: &str) -> Bytes {
    Bytes::from(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>RequestTimeout</Code><Message>Your socket connection \
         to the server was not read from or written to within the timeout period. Idle connections will be \
         closed.</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
        escape(resource),
        escape(request_id)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_in_message_resource_and_request_id() {
        let body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code></Error>";
        let done = complete(body, http::StatusCode::FORBIDDEN, "/b/k&x", "ID1").unwrap();
        let done = std::str::from_utf8(&done).unwrap();
        assert!(done.contains("<Code>SignatureDoesNotMatch</Code><Message>The request signature"), "{done}");
        assert!(done.ends_with("<Resource>/b/k&amp;x</Resource><RequestId>ID1</RequestId></Error>"), "{done}");
    }

    #[test]
    fn keeps_message_and_extra_elements() {
        let body =
            b"<Error><Code>NoSuchKey</Code><Message>gone</Message><Key>k</Key><RequestId>old</RequestId></Error>";
        let done = complete(body, http::StatusCode::NOT_FOUND, "/b/k", "NEW").unwrap();
        let done = std::str::from_utf8(&done).unwrap();
        assert!(
            done.contains("<Message>gone</Message><Key>k</Key><Resource>/b/k</Resource><RequestId>NEW</RequestId>")
        );
        assert!(!done.contains("old"), "{done}");
    }

    #[test]
    fn other_bodies_are_left_alone() {
        assert!(complete(b"plain text", http::StatusCode::BAD_REQUEST, "/", "X").is_none());
    }

    fn refusal(message: &str) -> (http::StatusCode, String) {
        let body = format!("<Error><Code>InvalidPolicyDocument</Code><Message>{message}</Message></Error>");
        let (status, body) = post_policy_refusal(http::StatusCode::BAD_REQUEST, Bytes::from(body));
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn broken_conditions_are_access_denied_and_a_broken_policy_stays_400() {
        for message in [
            "Policy condition 'eq' for field 'acl' failed: expected 'private', got 'public-read'",
            "Bucket in form field 'a' does not match bucket in URL 'b'",
            "x-amz-date does not match policy",
        ] {
            let (status, body) = refusal(message);
            assert_eq!(status, http::StatusCode::FORBIDDEN, "{message}: {body}");
            assert!(body.contains("<Code>AccessDenied</Code>"), "{message}: {body}");
        }
        let (status, body) = refusal("failed to parse POST policy");
        assert_eq!(status, http::StatusCode::BAD_REQUEST, "an unparseable policy: {body}");
    }
}

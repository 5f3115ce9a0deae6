//! GetObjectAttributes answers the ETag without quotes on S3 (unlike every other
//! response), and clients compare it as such; s3s always quotes an ETag in XML.

use bytes::Bytes;

/// Whether `uri` asks for GetObjectAttributes (`GET /bucket/key?attributes`).
pub fn is_attributes_request(method: &http::Method, uri: &http::Uri) -> bool {
    method == http::Method::GET
        && uri.query().is_some_and(|q| q.split('&').any(|pair| pair.split('=').next() == Some("attributes")))
}

/// The response body with its top-level ETag unquoted. The document has at most one
/// ETag element (parts carry none); anything else is returned unchanged.
pub fn unquote(body: &[u8]) -> Option<Bytes> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<ETag>\"")?;
    let value_start = start + "<ETag>\"".len();
    let value_len = text[value_start..].find("\"</ETag>")?;
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..start]);
    out.push_str("<ETag>");
    out.push_str(&text[value_start..value_start + value_len]);
    out.push_str("</ETag>");
    out.push_str(&text[value_start + value_len + "\"</ETag>".len()..]);
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_loses_its_quotes_and_nothing_else_changes() {
        let body = br#"<GetObjectAttributesResponse><ETag>"abc-2"</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesResponse>"#;
        let out = unquote(body).unwrap();
        assert_eq!(
            &out[..],
            br#"<GetObjectAttributesResponse><ETag>abc-2</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesResponse>"#
        );
        assert_eq!(
            unquote(b"<GetObjectAttributesResponse><ObjectSize>3</ObjectSize></GetObjectAttributesResponse>"),
            None
        );
    }

    #[test]
    fn only_the_attributes_query_is_recognised() {
        let get = http::Method::GET;
        assert!(is_attributes_request(&get, &"/b/k?attributes".parse().unwrap()));
        assert!(is_attributes_request(&get, &"/b/k?versionId=1&attributes=".parse().unwrap()));
        assert!(!is_attributes_request(&get, &"/b/k?attributesx".parse().unwrap()));
        assert!(!is_attributes_request(&get, &"/b/k".parse().unwrap()));
        assert!(!is_attributes_request(&http::Method::PUT, &"/b/k?attributes".parse().unwrap()));
    }
}

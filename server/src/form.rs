//! The fields of a POST Object form, read before s3s parses it, for what s3s does not
//! do: refusing a form that names a key or policy but carries no signature (S3 answers
//! 400 InvalidArgument), `${filename}` in the key, which S3 replaces with the uploaded
//! file's name before it checks the policy's conditions, and the values of the fields
//! s3s does not read (`acl`, `tagging`) and of the policy (its expiration's form).
//!
//! Only the fields before the file are read (S3 ignores fields after it); the file's
//! bytes are never looked at. A form this cannot read is handed on unchanged.

use bytes::Bytes;
use std::ops::Range;

/// The `boundary` parameter of a `multipart/form-data` Content-Type.
pub fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.trim().split_once('=')?;
        name.eq_ignore_ascii_case("boundary").then(|| value.trim_matches('"').to_owned())
    })
}

/// The fields of a form up to its file.
#[derive(Debug, Default)]
pub struct Fields {
    /// Lower-cased names of the fields before the file, and where their values are.
    fields: Vec<(String, Range<usize>)>,
    /// Where the `key` field's value is in the form.
    key: Option<Range<usize>>,
    /// The file part's filename.
    filename: Option<String>,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|at| at + from)
}

/// `name="..."` in a Content-Disposition header.
fn parameter(header: &str, name: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|param| {
        let (n, v) = param.trim().split_once('=')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The fields of `form` up to its file part (None: not a form this can read).
pub fn read_fields(form: &[u8], boundary: &str) -> Option<Fields> {
    let delimiter = format!("--{boundary}");
    let mut at = find(form, delimiter.as_bytes(), 0)? + delimiter.len();
    let mut fields = Fields::default();
    loop {
        if form.get(at..at + 2)? == b"--" {
            return Some(fields); // the closing delimiter
        }
        at = find(form, b"\r\n", at)? + 2;
        let headers_end = find(form, b"\r\n\r\n", at)?;
        let headers = std::str::from_utf8(&form[at..headers_end]).ok()?;
        let disposition = headers.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
        let name = parameter(disposition, "name")?.to_ascii_lowercase();
        let value_start = headers_end + 4;
        // The file is the field named `file` (clients such as Python's requests give
        // every field a filename).
        if name == "file" {
            fields.filename = parameter(disposition, "filename");
            return Some(fields);
        }
        let value_end = find(form, format!("\r\n{delimiter}").as_bytes(), value_start)?;
        if name == "key" {
            fields.key = Some(value_start..value_end);
        }
        fields.fields.push((name, value_start..value_end));
        at = value_end + 2 + delimiter.len();
    }
}

impl Fields {
    fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(n, _)| n == name)
    }

    /// The value of the first field named `name` (lower-case), if it is text.
    pub fn value<'a>(&self, form: &'a [u8], name: &str) -> Option<&'a str> {
        let (_, range) = self.fields.iter().find(|(n, _)| n == name)?;
        std::str::from_utf8(form.get(range.clone())?).ok()
    }

    /// The form carries an SSE-C key.
    pub fn has_customer_key(&self) -> bool {
        self.has("x-amz-server-side-encryption-customer-algorithm")
            || self.has("x-amz-server-side-encryption-customer-key")
    }

    /// The signature field a form that names an access key or a policy lacks.
    pub fn missing_signature(&self) -> Option<&'static str> {
        let sigv4 = self.has("x-amz-credential") || self.has("x-amz-algorithm");
        let signs = sigv4 || self.has("awsaccesskeyid") || self.has("policy");
        match (signs, sigv4) {
            (true, true) if !self.has("x-amz-signature") => Some("X-Amz-Signature"),
            (true, false) if !self.has("signature") => Some("Signature"),
            _ => None,
        }
    }

    /// The form with `${filename}` in its key replaced by the file's name.
    pub fn with_filename_in_key(&self, form: &Bytes) -> Bytes {
        let (Some(key), Some(filename)) = (&self.key, &self.filename) else { return form.clone() };
        let Ok(value) = std::str::from_utf8(&form[key.clone()]) else { return form.clone() };
        if !value.contains("${filename}") {
            return form.clone();
        }
        // Browsers send the name only; some send a path.
        let name = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
        let mut out = Vec::with_capacity(form.len() + name.len());
        out.extend_from_slice(&form[..key.start]);
        out.extend_from_slice(value.replace("${filename}", name).as_bytes());
        out.extend_from_slice(&form[key.end..]);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)], filename: &str) -> Bytes {
        let mut out = String::new();
        for (name, value) in fields {
            // As Python's requests sends them: every field with a filename.
            out.push_str(&format!(
                "--B\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        out.push_str(&format!(
            "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\r\n--B not the end\r\n--B--\r\n"
        ));
        Bytes::from(out)
    }

    #[test]
    fn the_key_takes_the_file_name_and_the_file_is_left_alone() {
        let original = form(&[("key", "uploads/${filename}"), ("acl", "private")], "C:\\docs\\a.txt");
        let fields = read_fields(&original, "B").unwrap();
        let rewritten = fields.with_filename_in_key(&original);
        let text = String::from_utf8(rewritten.to_vec()).unwrap();
        assert!(text.contains("\r\n\r\nuploads/a.txt\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n--B not the end\r\n--B--\r\n"), "the file's bytes: {text}");
        let plain = form(&[("key", "k")], "a.txt");
        assert_eq!(read_fields(&plain, "B").unwrap().with_filename_in_key(&plain), plain);
    }

    #[test]
    fn a_form_naming_a_key_or_policy_must_be_signed() {
        let fields = |f: &[(&str, &str)]| read_fields(&form(f, "a"), "B").unwrap();
        assert_eq!(fields(&[("key", "k")]).missing_signature(), None, "anonymous");
        assert_eq!(fields(&[("key", "k"), ("policy", "p")]).missing_signature(), Some("Signature"));
        assert_eq!(fields(&[("AWSAccessKeyId", "a"), ("policy", "p"), ("signature", "s")]).missing_signature(), None);
        assert_eq!(fields(&[("x-amz-credential", "c"), ("policy", "p")]).missing_signature(), Some("X-Amz-Signature"));
        assert_eq!(fields(&[("x-amz-credential", "c"), ("x-amz-signature", "s")]).missing_signature(), None);
        assert!(read_fields(b"not a form", "B").is_none());
    }

    #[test]
    fn field_values_are_read_up_to_the_file() {
        let original = form(&[("Key", "k"), ("tagging", "<Tagging/>"), ("acl", "public-read")], "a.txt");
        let fields = read_fields(&original, "B").unwrap();
        assert_eq!(fields.value(&original, "tagging"), Some("<Tagging/>"));
        assert_eq!(fields.value(&original, "acl"), Some("public-read"));
        assert_eq!(fields.value(&original, "key"), Some("k"), "names are matched lower-cased");
        assert_eq!(fields.value(&original, "policy"), None);
        assert_eq!(boundary_of("multipart/form-data; boundary=\"xyz\"").as_deref(), Some("xyz"));
    }
}

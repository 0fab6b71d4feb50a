//! `file:` URIs and paths. The protocol names documents by URI; the compiler and the stdlib
//! cache speak paths. Only what editors send for local files is handled: `file://` with an
//! empty or `localhost` authority and percent-encoded bytes.

use std::path::{Path, PathBuf};

use lsp_types::Uri;

/// The path of a `file:` URI, `None` for any other scheme (`untitled:` buffers).
pub fn to_path(uri: &Uri) -> Option<PathBuf> {
    let rest = uri.as_str().strip_prefix("file://")?;
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return None;
    }
    // A query or fragment is not part of the path.
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    Some(PathBuf::from(std::ffi::OsString::from(decode(rest)?)))
}

/// The `file:` URI of an absolute path.
pub fn from_path(path: &Path) -> Option<Uri> {
    use std::os::unix::ffi::OsStrExt;
    let mut text = String::from("file://");
    for &b in path.as_os_str().as_bytes() {
        // RFC 3986 unreserved characters and `/` stay as they are; everything else is escaped,
        // which is always valid (VS Code escapes a little less, and compares decoded URIs).
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            text.push(char::from(b));
        } else {
            text.push_str(&format!("%{b:02X}"));
        }
    }
    text.parse().ok()
}

/// Percent-decodes a URI path. The bytes need not be UTF-8: a Unix path is bytes.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // Paths that are not UTF-8 cannot be shown in messages anyway; decode lossily.
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// A short name for messages: the path relative to the workspace root when it is inside it
/// (what `guardc check` run from there would print), else the full path; the URI itself for a
/// buffer that is not a file.
pub fn display_name(uri: &Uri, root: Option<&Path>) -> String {
    match to_path(uri) {
        Some(path) => root
            .and_then(|root| path.strip_prefix(root).ok())
            .unwrap_or(&path)
            .display()
            .to_string(),
        None => uri.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_through_uris() {
        let path = Path::new("/home/a b/policies/é#1.grd");
        let uri = from_path(path).expect("uri");
        assert_eq!(uri.as_str(), "file:///home/a%20b/policies/%C3%A9%231.grd");
        assert_eq!(to_path(&uri).as_deref(), Some(path));
        let vscode: Uri = "file:///home/x/p%3A.grd".parse().expect("uri");
        assert_eq!(to_path(&vscode), Some(PathBuf::from("/home/x/p:.grd")));
        let untitled: Uri = "untitled:Untitled-1".parse().expect("uri");
        assert_eq!(to_path(&untitled), None);
        assert_eq!(display_name(&untitled, None), "untitled:Untitled-1");
        assert_eq!(
            display_name(&uri, Some(Path::new("/home/a b"))),
            "policies/é#1.grd"
        );
    }
}

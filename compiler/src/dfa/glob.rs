//! Glob syntax for path and command-line patterns.
//!
//! [`Mode::Path`] (globs over absolute paths):
//! - `*` matches any run of bytes other than `/`, possibly empty;
//! - `?` matches exactly one byte other than `/`;
//! - `**` must be a whole component (preceded by `/` or the start of the
//!   pattern, followed by `/` or the end). Followed by `/` it matches zero or
//!   more whole components, i.e. the empty string or any byte string ending
//!   in `/`: `/a/**/b` matches `/a/b`, `/a/x/b`, `/a/x/y/b` (and `/a//b`).
//!   At the end of the pattern it matches any byte string, possibly empty and
//!   possibly containing `/`: `/a/**` matches `/a/`, `/a/x`, `/a/x/y`, but not
//!   `/a`. Any other `**` (e.g. `/a/**.txt`) is an error;
//! - `\x` matches the byte(s) of `x` literally (for any character `x`);
//! - every other byte matches itself. `?` and `*` work on bytes, not on
//!   UTF-8 characters.
//! - The pattern must be absolute: it starts with `/` or with a `**`
//!   component.
//!
//! [`Mode::Text`] (command lines): `*` matches any run of bytes, `?` exactly
//! one byte, `\x` escapes `x`, everything else is literal. A pattern without
//! metacharacters matches exactly itself.

use thiserror::Error;

/// How a pattern's metacharacters are interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Glob over an absolute path (see the module documentation).
    Path,
    /// Glob over arbitrary text such as a command line.
    Text,
}

/// One element of a parsed glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlobItem {
    /// This byte.
    Byte(u8),
    /// `?`: one byte; not `/` unless `cross_slash`.
    One { cross_slash: bool },
    /// `*` (or a trailing `**` with `cross_slash`): any run of bytes, possibly
    /// empty; without `/` unless `cross_slash`.
    Run { cross_slash: bool },
    /// `**/` in a path: the empty string or any byte string ending in `/`.
    Dirs,
}

/// A syntax error in a glob, at byte `offset` of the pattern text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind} at byte {offset}")]
pub struct GlobError {
    pub offset: usize,
    pub kind: GlobErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum GlobErrorKind {
    #[error("pattern ends with an unfinished escape `\\`")]
    TrailingBackslash,
    #[error("`**` must be a whole path component")]
    PartialGlobstar,
    #[error("path pattern must be absolute (start with `/` or `**/`)")]
    NotAbsolute,
}

/// Parses `text` as a glob in `mode`.
pub fn parse_glob(text: &str, mode: Mode) -> Result<Vec<GlobItem>, GlobError> {
    let bytes = text.as_bytes();
    let mut items = Vec::with_capacity(bytes.len());
    let path = mode == Mode::Path;
    let err = |offset, kind| GlobError { offset, kind };
    if path && !(bytes.first() == Some(&b'/') || bytes.starts_with(b"**")) {
        return Err(err(0, GlobErrorKind::NotAbsolute));
    }
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let Some(&next) = bytes.get(i + 1) else {
                    return Err(err(i, GlobErrorKind::TrailingBackslash));
                };
                items.push(GlobItem::Byte(next));
                i += 2;
            }
            b'?' => {
                items.push(GlobItem::One { cross_slash: !path });
                i += 1;
            }
            b'*' if path && bytes.get(i + 1) == Some(&b'*') => {
                let after_slash =
                    i == 0 || matches!(items.last(), Some(GlobItem::Byte(b'/') | GlobItem::Dirs));
                match bytes.get(i + 2) {
                    _ if !after_slash => return Err(err(i, GlobErrorKind::PartialGlobstar)),
                    None => {
                        items.push(GlobItem::Run { cross_slash: true });
                        i += 2;
                    }
                    Some(b'/') => {
                        items.push(GlobItem::Dirs);
                        i += 3;
                    }
                    Some(_) => return Err(err(i, GlobErrorKind::PartialGlobstar)),
                }
            }
            b'*' => {
                // In text mode `**` is the same language as `*`.
                if path || items.last() != Some(&GlobItem::Run { cross_slash: true }) {
                    items.push(GlobItem::Run { cross_slash: !path });
                }
                i += 1;
            }
            b => {
                items.push(GlobItem::Byte(b));
                i += 1;
            }
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::GlobItem::*;
    use super::*;

    fn e(offset: usize, kind: GlobErrorKind) -> Result<Vec<GlobItem>, GlobError> {
        Err(GlobError { offset, kind })
    }

    #[test]
    fn parses_path_globs() {
        assert_eq!(
            parse_glob("/a/**/b?*", Mode::Path),
            Ok(vec![
                Byte(b'/'),
                Byte(b'a'),
                Byte(b'/'),
                Dirs,
                Byte(b'b'),
                One { cross_slash: false },
                Run { cross_slash: false },
            ])
        );
        assert_eq!(
            parse_glob("/a/**", Mode::Path),
            Ok(vec![
                Byte(b'/'),
                Byte(b'a'),
                Byte(b'/'),
                Run { cross_slash: true }
            ])
        );
        assert_eq!(parse_glob("**/x", Mode::Path), Ok(vec![Dirs, Byte(b'x')]));
        assert_eq!(
            parse_glob("/**/**/", Mode::Path),
            Ok(vec![Byte(b'/'), Dirs, Dirs])
        );
        assert_eq!(
            parse_glob("**", Mode::Path),
            Ok(vec![Run { cross_slash: true }])
        );
        assert_eq!(
            parse_glob(r"/\*\\\?", Mode::Path),
            Ok(vec![Byte(b'/'), Byte(b'*'), Byte(b'\\'), Byte(b'?')])
        );
        assert_eq!(parse_glob(r"/\**", Mode::Path).map(|v| v.len()), Ok(3));
    }

    #[test]
    fn path_errors_have_offsets() {
        assert_eq!(
            parse_glob("/a/b\\", Mode::Path),
            e(4, GlobErrorKind::TrailingBackslash)
        );
        assert_eq!(
            parse_glob("/a/**.txt", Mode::Path),
            e(3, GlobErrorKind::PartialGlobstar)
        );
        assert_eq!(
            parse_glob("/a/x**", Mode::Path),
            e(4, GlobErrorKind::PartialGlobstar)
        );
        assert_eq!(
            parse_glob("/a/***", Mode::Path),
            e(3, GlobErrorKind::PartialGlobstar)
        );
        assert_eq!(
            parse_glob("etc/passwd", Mode::Path),
            e(0, GlobErrorKind::NotAbsolute)
        );
        assert_eq!(parse_glob("", Mode::Path), e(0, GlobErrorKind::NotAbsolute));
        assert_eq!(
            parse_glob("*/x", Mode::Path),
            e(0, GlobErrorKind::NotAbsolute)
        );
    }

    #[test]
    fn parses_text_globs() {
        assert_eq!(
            parse_glob("py ?**", Mode::Text),
            Ok(vec![
                Byte(b'p'),
                Byte(b'y'),
                Byte(b' '),
                One { cross_slash: true },
                Run { cross_slash: true },
            ])
        );
        assert_eq!(parse_glob("", Mode::Text), Ok(vec![]));
        assert_eq!(
            parse_glob("a\\", Mode::Text),
            e(1, GlobErrorKind::TrailingBackslash)
        );
        assert_eq!(parse_glob("x/**.y", Mode::Text).map(|v| v.len()), Ok(5));
    }
}

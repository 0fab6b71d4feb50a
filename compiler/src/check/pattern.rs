//! Path pattern validation.

use super::Checker;
use crate::checked::{MAX_PATTERN_LEN, PathPattern};
use crate::diag::{Diagnostic, codes};
use crate::syntax::ast;

impl Checker<'_> {
    /// Validates one path pattern. At most one error per kind of problem is
    /// reported for a pattern, so `/a//b//c` does not produce a wall of text.
    pub(super) fn pattern(&mut self, pattern: &ast::Pattern) -> Option<PathPattern> {
        let text = pattern.text.as_str();
        let before = self.diagnostics.len();
        if text.len() > MAX_PATTERN_LEN {
            self.error(
                Diagnostic::error(
                    codes::PATTERN_TOO_LONG,
                    format!(
                        "path pattern is {} bytes long, more than the limit of {MAX_PATTERN_LEN}",
                        text.len()
                    ),
                    pattern.span,
                    "pattern too long",
                )
                .with_help("the kernel does not handle paths longer than 4095 bytes"),
            );
        }
        if let Some(i) = text.find('\0') {
            self.error(Diagnostic::error(
                codes::NUL_IN_PATTERN,
                "path pattern contains a NUL character",
                pattern.span_of(i..i + 1),
                "NUL character",
            ));
        }
        if text.is_empty() {
            self.error(
                Diagnostic::error(
                    codes::RELATIVE_PATTERN,
                    "empty path pattern",
                    pattern.span,
                    "empty",
                )
                .with_help("write an absolute path pattern, e.g. `/mnt/secrets/*`"),
            );
            return None;
        }
        if !text.starts_with('/') {
            self.error(
                Diagnostic::error(
                    codes::RELATIVE_PATTERN,
                    format!("path pattern `{text}` is not absolute"),
                    pattern.span,
                    "does not start with `/`",
                )
                .with_help(format!(
                    "write the full path, e.g. `/{}`",
                    text.trim_start_matches("./")
                )),
            );
            return None;
        }
        if text == "/" {
            self.error(
                Diagnostic::error(
                    codes::TRAILING_SLASH,
                    "the pattern `/` names the root directory, not a file",
                    pattern.span,
                    "the root directory",
                )
                .with_help("to guard every file, write `/**`"),
            );
            return None;
        }
        if let Some(body) = text.strip_suffix('/') {
            self.error(
                Diagnostic::error(
                    codes::TRAILING_SLASH,
                    format!("path pattern `{text}` ends with `/`"),
                    pattern.span_of(body.len()..text.len()),
                    "trailing `/`",
                )
                .with_help(format!(
                    "patterns name files: to guard everything below this directory, write `{body}/**`"
                )),
            );
        }
        self.components(pattern);
        (self.diagnostics.len() == before).then(|| PathPattern {
            text: pattern.text.clone(),
            span: pattern.span,
        })
    }

    fn components(&mut self, pattern: &ast::Pattern) {
        let text = pattern.text.as_str();
        let body = text.strip_suffix('/').unwrap_or(text);
        let (mut empty, mut dots, mut globstar) = (false, false, false);
        // Offsets are tracked so each error points at its component.
        let mut offset = 1;
        for component in body.get(1..).unwrap_or_default().split('/') {
            let span = pattern.span_of(offset..offset + component.len());
            if component.is_empty() && !empty {
                empty = true;
                self.error(
                    Diagnostic::error(
                        codes::EMPTY_COMPONENT,
                        format!("path pattern `{text}` has an empty component"),
                        pattern.span_of(offset - 1..offset + 1),
                        "`//` here",
                    )
                    .with_help(
                        "paths are matched in canonical form, which never has `//`; remove one `/`",
                    ),
                );
            } else if matches!(component, "." | "..") && !dots {
                dots = true;
                self.error(
                    Diagnostic::error(
                        codes::DOT_COMPONENT,
                        format!("path pattern `{text}` contains a `{component}` component"),
                        span,
                        format!("`{component}` here"),
                    )
                    .with_help(
                        "paths are matched in canonical form, which never has `.` or `..`; write the path without them",
                    ),
                );
            } else if component.contains("**") && component != "**" && !globstar {
                globstar = true;
                self.error(
                    Diagnostic::error(
                        codes::MISPLACED_GLOBSTAR,
                        "`**` must be a whole path component",
                        span,
                        format!("`**` inside `{component}`"),
                    )
                    .with_help(
                        "write `/dir/**` to match at any depth, or `*` to match within one component",
                    ),
                );
            }
            offset += component.len() + 1;
        }
    }
}

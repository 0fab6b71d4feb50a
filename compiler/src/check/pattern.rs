//! Path pattern validation.
//!
//! Free functions returning diagnostics rather than reporting them, so the
//! caller can say where a pattern from a list is used, and in which file
//! the list is written.

use crate::checked::{MAX_PATTERN_LEN, Operation};
use crate::diag::{Diagnostic, codes};
use crate::syntax::ast;

/// What the pattern is for; decides the help for a relative one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Context {
    /// An object of a rule with this operation.
    Object(Operation),
    /// An argument of `exe(…)`.
    Exe,
}

/// The problems of the path pattern `text`, written as `lit`. `exact` says
/// whether `text` is `lit.text`, so offsets map onto the source; otherwise
/// (a program name turned into `/**/NAME`) errors point at the whole
/// literal. At most one error per kind of problem is reported for a
/// pattern, so `/a//b//c` does not produce a wall of text.
pub(super) fn path_problems(
    text: &str,
    lit: &ast::Literal,
    exact: bool,
    context: Context,
) -> Vec<Diagnostic> {
    let span_of = |range: std::ops::Range<usize>| {
        if exact { lit.span_of(range) } else { lit.span }
    };
    let mut out = Vec::new();
    if text.len() > MAX_PATTERN_LEN {
        out.push(
            Diagnostic::error(
                codes::PATTERN_TOO_LONG,
                format!(
                    "path pattern is {} bytes long, more than the limit of {MAX_PATTERN_LEN}",
                    text.len()
                ),
                lit.span,
                "pattern too long",
            )
            .with_help("the kernel does not handle paths longer than 4095 bytes"),
        );
    }
    if let Some(i) = text.find('\0') {
        out.push(Diagnostic::error(
            codes::NUL_IN_PATTERN,
            "path pattern contains a NUL character",
            span_of(i..i + 1),
            "NUL character",
        ));
    }
    if text.is_empty() {
        out.push(
            Diagnostic::error(
                codes::RELATIVE_PATTERN,
                "empty path pattern",
                lit.span,
                "empty",
            )
            .with_help("write an absolute path pattern, e.g. `/mnt/secrets/*`"),
        );
        return out;
    }
    if !text.starts_with('/') {
        out.push(
            Diagnostic::error(
                codes::RELATIVE_PATTERN,
                format!("path pattern `{text}` is not absolute"),
                lit.span,
                "does not start with `/`",
            )
            .with_help(relative_help(text, context)),
        );
        return out;
    }
    if text == "/" {
        out.push(
            Diagnostic::error(
                codes::TRAILING_SLASH,
                "the pattern `/` names the root directory, not a file",
                lit.span,
                "the root directory",
            )
            .with_help("to guard every file, write `/**`"),
        );
        return out;
    }
    if let Some(body) = text.strip_suffix('/') {
        out.push(
            Diagnostic::error(
                codes::TRAILING_SLASH,
                format!("path pattern `{text}` ends with `/`"),
                span_of(body.len()..text.len()),
                "trailing `/`",
            )
            .with_help(format!(
                "patterns name files: to guard everything below this directory, write `{body}/**`"
            )),
        );
    }
    if ends_with_escape(text) {
        out.push(
            Diagnostic::error(
                codes::UNFINISHED_ESCAPE,
                format!("path pattern `{text}` ends with an unfinished escape `\\`"),
                span_of(text.len() - 1..text.len()),
                "escapes nothing",
            )
            .with_help("in a pattern `\\` escapes the next character; remove it, or write `\\\\` for a literal backslash"),
        );
    }
    components(text, &span_of, &mut out);
    out
}

fn relative_help(text: &str, context: Context) -> String {
    let looks_like_program = !text.contains('/') && !text.contains(char::is_whitespace);
    match context {
        Context::Object(Operation::Exec) => format!(
            "an `exec` rule names a program without `/` (`\"curl\"`: any executable named `curl`) or an absolute path pattern, e.g. `/{}`",
            text.trim_start_matches("./")
        ),
        Context::Object(_) if looks_like_program => format!(
            "to guard running the program `{text}`, write a rule `guard exec \"{text}\" allow …`; to guard a file, write its full path"
        ),
        Context::Exe if looks_like_program => format!(
            "`exe` matches the executable's full path: write `\"/**/{text}\"` for any program named `{text}`, or use `name(\"{text}\")`"
        ),
        _ => format!(
            "write the full path, e.g. `/{}`",
            text.trim_start_matches("./")
        ),
    }
}

/// Whether the pattern ends with a `\` that escapes nothing.
fn ends_with_escape(text: &str) -> bool {
    let mut escaped = false;
    for b in text.bytes() {
        escaped = !escaped && b == b'\\';
    }
    escaped
}

fn components(
    text: &str,
    span_of: &dyn Fn(std::ops::Range<usize>) -> crate::span::Span,
    out: &mut Vec<Diagnostic>,
) {
    let body = text.strip_suffix('/').unwrap_or(text);
    let (mut empty, mut dots, mut globstar) = (false, false, false);
    // Offsets are tracked so each error points at its component.
    let mut offset = 1;
    for component in body.get(1..).unwrap_or_default().split('/') {
        let span = span_of(offset..offset + component.len());
        if component.is_empty() && !empty {
            empty = true;
            out.push(
                Diagnostic::error(
                    codes::EMPTY_COMPONENT,
                    format!("path pattern `{text}` has an empty component"),
                    span_of(offset - 1..offset + 1),
                    "`//` here",
                )
                .with_help(
                    "paths are matched in canonical form, which never has `//`; remove one `/`",
                ),
            );
        } else if matches!(component, "." | "..") && !dots {
            dots = true;
            out.push(
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
            out.push(
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

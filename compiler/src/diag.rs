//! Diagnostics as data, and their two renderings.
//!
//! Every stage reports problems as [`Diagnostic`] values; nothing is turned
//! into text until [`render_diagnostics`] (for people) or [`render_json`]
//! (for editors and CI) is called at the very end.
//!
//! Message style (after cedar's style guide): messages are lowercase and do
//! not end with a period; anything the user wrote is quoted in backticks;
//! the message says what is wrong, the primary label says where, and `help`
//! says how to fix it.

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;
use serde_json::json;

use crate::span::{LineIndex, Span};

/// Stable error codes. INVARIANT: a code is never reused for a different
/// problem; the book's error index and editor integrations key on them.
pub mod codes {
    /// A character that cannot start any token.
    pub const UNEXPECTED_CHAR: &str = "E0001";
    /// A string literal without a closing quote on its line.
    pub const UNTERMINATED_STRING: &str = "E0002";
    /// An unknown escape sequence in a string literal.
    pub const INVALID_ESCAPE: &str = "E0003";
    /// The file is not UTF-8.
    pub const INVALID_UTF8: &str = "E0004";
    /// `'text'` instead of `"text"`.
    pub const SINGLE_QUOTED_STRING: &str = "E0005";
    /// A token the grammar does not allow at this point.
    pub const UNEXPECTED_TOKEN: &str = "E0100";
    /// The file ends in the middle of a rule.
    pub const UNEXPECTED_EOF: &str = "E0101";
    /// Any other parser failure (should not happen with error recovery).
    pub const SYNTAX: &str = "E0102";
    /// A rule whose condition exceeds the operator limit.
    pub const CONDITION_TOO_COMPLEX: &str = "E0103";
    /// The file contains no rule.
    pub const EMPTY_POLICY: &str = "E0200";
    /// A path pattern that does not start with `/`.
    pub const RELATIVE_PATTERN: &str = "E0201";
    /// A path pattern with an empty component (`//`).
    pub const EMPTY_COMPONENT: &str = "E0202";
    /// A path pattern with a `.` or `..` component.
    pub const DOT_COMPONENT: &str = "E0203";
    /// `**` used inside a component instead of as a whole one.
    pub const MISPLACED_GLOBSTAR: &str = "E0204";
    /// A path pattern ending with `/` (including `/` itself).
    pub const TRAILING_SLASH: &str = "E0205";
    /// A path pattern longer than the kernel's `PATH_MAX - 1`.
    pub const PATTERN_TOO_LONG: &str = "E0206";
    /// A NUL character in a path pattern.
    pub const NUL_IN_PATTERN: &str = "E0207";
    /// A call to a function that does not exist.
    pub const UNKNOWN_FUNCTION: &str = "E0300";
    /// A call with the wrong number of arguments.
    pub const WRONG_ARITY: &str = "E0301";
    /// A name where a string is expected, or the other way round.
    pub const WRONG_ARGUMENT_KIND: &str = "E0302";
    /// An `ancestor` selector other than `pid1` or `any`.
    pub const UNKNOWN_SELECTOR: &str = "E0303";
    /// `ancestor(…, "")`.
    pub const EMPTY_CMDLINE: &str = "E0304";
    /// A command line longer than the runtime can compare.
    pub const CMDLINE_TOO_LONG: &str = "E0305";
    /// An alert priority that is not one of Falco's eight.
    pub const UNKNOWN_PRIORITY: &str = "E0400";
    /// `%field` naming a field that does not exist.
    pub const UNKNOWN_FIELD: &str = "E0401";
    /// A `%` followed by neither a field name nor another `%`.
    pub const LONE_PERCENT: &str = "E0402";
    /// `alert "message"` without a priority.
    pub const MESSAGE_WITHOUT_PRIORITY: &str = "E0403";
    /// The policy is valid but does not fit the kernel tables (too many identities, rules
    /// per path, subject alternatives, DFA states).
    pub const TABLE_LIMIT: &str = "E0500";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub primary: (Span, String),
    pub secondary: Vec<(Span, String)>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary: (span, label.into()),
            secondary: Vec::new(),
            help: None,
        }
    }

    pub fn with_secondary(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.secondary.push((span, label.into()));
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Sets `help` to "did you mean `x`?" when a suggestion exists.
    pub fn with_suggestion(self, suggestion: Option<&str>) -> Diagnostic {
        match suggestion {
            Some(s) => self.with_help(format!("did you mean `{s}`?")),
            None => self,
        }
    }
}

/// The candidate closest to `name` by edit distance, if it is close enough
/// to be a plausible typo. Case is ignored so `PID1` suggests `pid1`.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&name, &c.to_lowercase()), c))
        .filter(|&(d, c)| d <= (c.chars().count() / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Joins words for a message: `a`, `a or b`, `a, b or c`.
pub fn list(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Shrinks a span so it lies inside `source` and on character boundaries.
/// Rendering must never fail, even for a span from a different revision of
/// the file.
fn clamp(source: &str, span: Span) -> Span {
    let fit = |mut i: usize| {
        i = i.min(source.len());
        while !source.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = fit(span.start);
    Span::new(start, fit(span.end).max(start))
}

/// Renders diagnostics the way the terminal shows them: header with code,
/// `file:line:column`, the underlined source, and `help:`.
pub fn render_diagnostics(
    file_name: &str,
    source: &str,
    diagnostics: &[Diagnostic],
    color: bool,
) -> String {
    let file = SimpleFile::new(file_name, source);
    let config = term::Config::default();
    let mut out = String::new();
    for diagnostic in diagnostics {
        let cs_diag = to_codespan(source, diagnostic);
        let rendered = if color {
            let mut buffer = term::termcolor::Buffer::ansi();
            term::emit_to_write_style(&mut buffer, &config, &file, &cs_diag)
                .map(|()| String::from_utf8_lossy(buffer.as_slice()).into_owned())
        } else {
            term::emit_into_string(&config, &file, &cs_diag)
        };
        match rendered {
            Ok(text) => out.push_str(&text),
            // Only reachable if `clamp` is wrong; still show the message.
            Err(_) => out.push_str(&format!(
                "{}[{}]: {}\n",
                diagnostic.severity.as_str(),
                diagnostic.code,
                diagnostic.message
            )),
        }
    }
    out
}

fn to_codespan(source: &str, d: &Diagnostic) -> cs::Diagnostic<()> {
    let severity = match d.severity {
        Severity::Error => cs::Severity::Error,
        Severity::Warning => cs::Severity::Warning,
    };
    let mut labels =
        vec![cs::Label::primary((), clamp(source, d.primary.0).range()).with_message(&d.primary.1)];
    labels.extend(d.secondary.iter().map(|(span, label)| {
        cs::Label::secondary((), clamp(source, *span).range()).with_message(label)
    }));
    cs::Diagnostic::new(severity)
        .with_code(d.code)
        .with_message(&d.message)
        .with_labels(labels)
        .with_notes(d.help.iter().map(|h| format!("help: {h}")).collect())
}

/// Renders one JSON object per diagnostic, one per line, for editors and
/// CI. Lines and columns are 1-based; columns count characters.
pub fn render_json(file_name: &str, source: &str, diagnostics: &[Diagnostic]) -> String {
    let index = LineIndex::new(source);
    let location = |span: Span| {
        let span = clamp(source, span);
        let (start_line, start_column) = index.line_column(span.start);
        let (end_line, end_column) = index.line_column(span.end);
        json!({
            "byte_start": span.start,
            "byte_end": span.end,
            "line_start": start_line,
            "column_start": start_column,
            "line_end": end_line,
            "column_end": end_column,
        })
    };
    let label = |span: Span, message: &str, primary: bool| {
        let mut object = location(span);
        object["message"] = json!(message);
        object["primary"] = json!(primary);
        object
    };
    let mut out = String::new();
    for d in diagnostics {
        let mut labels = vec![label(d.primary.0, &d.primary.1, true)];
        labels.extend(d.secondary.iter().map(|(s, m)| label(*s, m, false)));
        let mut object = location(d.primary.0);
        object["file"] = json!(file_name);
        object["severity"] = json!(d.severity.as_str());
        object["code"] = json!(d.code);
        object["message"] = json!(d.message);
        object["labels"] = json!(labels);
        object["help"] = json!(d.help);
        out.push_str(&object.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_need_to_be_close() {
        assert_eq!(suggest("ancester", ["ancestor"]), Some("ancestor"));
        assert_eq!(suggest("PID1", ["pid1", "any"]), Some("pid1"));
        assert_eq!(suggest("parent", ["ancestor"]), None);
        assert_eq!(suggest("x", ["any"]), None);
    }

    #[test]
    fn clamp_stays_on_char_boundaries() {
        assert_eq!(clamp("é", Span::new(1, 9)), Span::new(0, 2));
        assert_eq!(clamp("ab", Span::new(5, 1)), Span::new(2, 2));
    }
}

//! Diagnostics as data, and their two renderings.
//!
//! Every stage reports problems as [`Diagnostic`] values; nothing is turned
//! into text until [`render_diagnostics`] (for people) or [`render_json`]
//! (for editors and CI) is called at the very end.
//!
//! Each label names its [`File`]: [`File::Main`], the file the renderers
//! are given, or another file (an imported module) carried with its text,
//! so a diagnostic renders without a separate file database and one
//! diagnostic may point into several files. Warnings are diagnostics with
//! [`Severity::Warning`] and `W` codes.
//!
//! Message style (after cedar's style guide): messages are lowercase and do
//! not end with a period; anything the user wrote is quoted in backticks;
//! the message says what is wrong, the primary label says where, and `help`
//! says how to fix it.

use std::sync::Arc;

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFiles;
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
    /// A path pattern ending with a `\` that escapes nothing.
    pub const UNFINISHED_ESCAPE: &str = "E0208";
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
    /// `uid(N)` with N outside `0..=4294967294`.
    pub const INVALID_UID: &str = "E0306";
    /// A `name(…)` process name that is empty, longer than 15 bytes or
    /// contains `/`.
    pub const INVALID_PROCESS_NAME: &str = "E0307";
    /// A `cmdline(…)` glob ending in an unfinished `\` escape.
    pub const INVALID_CMDLINE_GLOB: &str = "E0308";
    /// A `cgroup(…)` path that is not absolute or has empty, `.` or `..` components.
    pub const INVALID_CGROUP: &str = "E0310";
    /// A `container(…)`, `k8s_namespace(…)` or `pod_label(…)` argument that no container,
    /// namespace or label can have.
    pub const INVALID_SCOPE: &str = "E0311";
    /// A `user(…)` name that no user can have.
    pub const INVALID_USER: &str = "E0312";
    /// A condition that grows past [`crate::checked::MAX_SUBJECT_NODES`]
    /// once its macros are expanded.
    pub const SUBJECT_TOO_COMPLEX: &str = "E0309";
    /// An alert priority that is not one of Falco's eight.
    pub const UNKNOWN_PRIORITY: &str = "E0400";
    /// `%field` naming a field that does not exist.
    pub const UNKNOWN_FIELD: &str = "E0401";
    /// A `%` followed by neither a field name nor another `%`.
    pub const LONE_PERCENT: &str = "E0402";
    /// `alert "message"` without a priority.
    pub const MESSAGE_WITHOUT_PRIORITY: &str = "E0403";
    /// A tag that is empty or a path pattern.
    pub const INVALID_TAG: &str = "E0404";
    /// `rule ""`.
    pub const EMPTY_RULE_NAME: &str = "E0405";
    /// The policy is valid but does not fit the kernel tables (too many identities, rules
    /// per path, subject alternatives, DFA states).
    pub const TABLE_LIMIT: &str = "E0500";
    /// A name that is neither a list nor a macro in scope.
    pub const UNKNOWN_NAME: &str = "E0600";
    /// A name defined twice in one file (imported names included).
    pub const REDEFINED_NAME: &str = "E0601";
    /// A name used above its definition in the same file.
    pub const USED_BEFORE_DEFINITION: &str = "E0602";
    /// Lists or macros defined in terms of themselves.
    pub const DEFINITION_CYCLE: &str = "E0603";
    /// A list where a condition is expected, or a macro where a list is.
    pub const WRONG_KIND_OF_NAME: &str = "E0604";
    /// A definition whose name is reserved (`tty`) or not a plain name.
    pub const INVALID_NAME: &str = "E0605";
    /// `import "NAME"` of a module that does not exist.
    pub const UNKNOWN_MODULE: &str = "E0606";
    /// An `import` after another item.
    pub const IMPORT_NOT_FIRST: &str = "E0607";
    /// Modules that import each other.
    pub const IMPORT_CYCLE: &str = "E0608";
    /// A `guard` rule inside an imported module.
    pub const RULE_IN_MODULE: &str = "E0609";
    /// The same module imported twice by one file.
    pub const DUPLICATE_IMPORT: &str = "E0610";
    /// A list that is empty once expanded, used where items are needed.
    pub const EMPTY_LIST: &str = "E0611";
    /// A module that exists but cannot be read.
    pub const UNREADABLE_MODULE: &str = "E0612";

    /// Warning: a `list` or `macro` of the checked file that nothing uses.
    pub const UNUSED_DEFINITION: &str = "W0001";
    /// Warning: `<secret dir>/*`, which misses the files of a Kubernetes
    /// secret volume (they live under `<dir>/..<timestamp>/`).
    pub const ATOMIC_WRITER: &str = "W0002";
    /// Warning: an `import` none of whose names the checked file uses.
    pub const UNUSED_IMPORT: &str = "W0003";
    /// Warning (lowering): a rule whose condition always holds, so it never fires.
    pub const NEVER_FIRES: &str = "W0101";
    /// Warning (lowering): enforcing rules that share files and an operation with different
    /// conditions.
    pub const OVERLAPPING_RULES: &str = "W0102";
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

/// A source file other than the one being checked: an imported module.
/// Cheap to clone; diagnostics carry it so they can be rendered without a
/// separate file database.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceFile(Arc<SourceText>);

#[derive(PartialEq, Eq)]
struct SourceText {
    name: String,
    text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile(Arc::new(SourceText {
            name: name.into(),
            text: text.into(),
        }))
    }

    /// The name shown in messages, e.g. `stdlib/k8s.grd`.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn text(&self) -> &str {
        &self.0.text
    }
}

impl std::fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceFile({:?})", self.name())
    }
}

/// The file a label points into.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum File {
    /// The file being checked: the one the renderers are given.
    #[default]
    Main,
    /// Another file, with its text.
    Other(SourceFile),
}

impl File {
    /// The name to show, given the main file's name.
    pub fn name<'a>(&'a self, main: &'a str) -> &'a str {
        match self {
            File::Main => main,
            File::Other(file) => file.name(),
        }
    }

    /// The text spans index into, given the main file's text.
    pub fn text<'a>(&'a self, main: &'a str) -> &'a str {
        match self {
            File::Main => main,
            File::Other(file) => file.text(),
        }
    }
}

/// A span with its file and what to say about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub file: File,
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error pointing into the file being checked.
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
            primary: Label {
                file: File::Main,
                span,
                message: label.into(),
            },
            secondary: Vec::new(),
            help: None,
        }
    }

    /// A warning pointing into the file being checked.
    pub fn warning(
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message, span, label)
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Adds a label in the same file as the primary one is created in (see
    /// [`Diagnostic::in_file`]).
    pub fn with_secondary(self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.with_secondary_in(File::Main, span, label)
    }

    /// Adds a label in `file`.
    pub fn with_secondary_in(
        mut self,
        file: File,
        span: Span,
        label: impl Into<String>,
    ) -> Diagnostic {
        self.secondary.push(Label {
            file,
            span,
            message: label.into(),
        });
        self
    }

    /// Moves every label that points into [`File::Main`] into `file`, so a
    /// pass can report against "its" file without knowing which one it is.
    /// Labels already pointing into another file stay where they are.
    pub fn in_file(mut self, file: &File) -> Diagnostic {
        if *file != File::Main {
            for label in std::iter::once(&mut self.primary).chain(&mut self.secondary) {
                if label.file == File::Main {
                    label.file = file.clone();
                }
            }
        }
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

    /// A key ordering diagnostics for display: the checked file first, in
    /// file order, then other files by name.
    pub fn sort_key(&self) -> (bool, String, Span) {
        match &self.primary.file {
            File::Main => (false, String::new(), self.primary.span),
            File::Other(f) => (true, f.name().to_string(), self.primary.span),
        }
    }
}

/// Sorts diagnostics for display: imported files first (their problems usually explain the
/// rest), by name, then the checked file, each in file order. The sort is stable, so
/// diagnostics at one place keep the order they were found in.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| {
        let (other_file, name, span) = d.sort_key();
        (!other_file, name, span)
    });
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
/// `file:line:column`, the underlined source, and `help:`. Labels in
/// [`File::Main`] are shown against `file_name` and `source`; others
/// against the file they carry.
pub fn render_diagnostics(
    file_name: &str,
    source: &str,
    diagnostics: &[Diagnostic],
    color: bool,
) -> String {
    let mut files = SimpleFiles::new();
    let main = files.add(file_name, source);
    // Every other file any label points into, added once.
    let mut others: Vec<(&SourceFile, usize)> = Vec::new();
    for label in diagnostics
        .iter()
        .flat_map(|d| std::iter::once(&d.primary).chain(&d.secondary))
    {
        if let File::Other(f) = &label.file
            && !others.iter().any(|(g, _)| *g == f)
        {
            others.push((f, files.add(f.name(), f.text())));
        }
    }
    let id_of = |file: &File| match file {
        File::Main => main,
        File::Other(f) => others
            .iter()
            .find(|(g, _)| *g == f)
            .map_or(main, |&(_, id)| id),
    };
    let config = term::Config::default();
    let mut out = String::new();
    for diagnostic in diagnostics {
        let cs_diag = to_codespan(source, diagnostic, &id_of);
        let rendered = if color {
            let mut buffer = term::termcolor::Buffer::ansi();
            term::emit_to_write_style(&mut buffer, &config, &files, &cs_diag)
                .map(|()| String::from_utf8_lossy(buffer.as_slice()).into_owned())
        } else {
            term::emit_into_string(&config, &files, &cs_diag)
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

fn to_codespan(
    source: &str,
    d: &Diagnostic,
    id_of: &impl Fn(&File) -> usize,
) -> cs::Diagnostic<usize> {
    let severity = match d.severity {
        Severity::Error => cs::Severity::Error,
        Severity::Warning => cs::Severity::Warning,
    };
    let label = |style, label: &Label| {
        let range = clamp(label.file.text(source), label.span).range();
        cs::Label::new(style, id_of(&label.file), range).with_message(&label.message)
    };
    let mut labels = vec![label(cs::LabelStyle::Primary, &d.primary)];
    labels.extend(
        d.secondary
            .iter()
            .map(|l| label(cs::LabelStyle::Secondary, l)),
    );
    cs::Diagnostic::new(severity)
        .with_code(d.code)
        .with_message(&d.message)
        .with_labels(labels)
        .with_notes(d.help.iter().map(|h| format!("help: {h}")).collect())
}

/// Renders one JSON object per diagnostic, one per line, for editors and
/// CI. Lines and columns are 1-based; columns count characters. The
/// top-level position and `file` are the primary label's; every label also
/// names its file.
pub fn render_json(file_name: &str, source: &str, diagnostics: &[Diagnostic]) -> String {
    let main_index = LineIndex::new(source);
    let location = |file: &File, span: Span| {
        let text = file.text(source);
        let other;
        let index = match file {
            File::Main => &main_index,
            File::Other(_) => {
                other = LineIndex::new(text);
                &other
            }
        };
        let span = clamp(text, span);
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
    let label = |label: &Label, primary: bool| {
        let mut object = location(&label.file, label.span);
        object["file"] = json!(label.file.name(file_name));
        object["message"] = json!(label.message);
        object["primary"] = json!(primary);
        object
    };
    let mut out = String::new();
    for d in diagnostics {
        let mut labels = vec![label(&d.primary, true)];
        labels.extend(d.secondary.iter().map(|l| label(l, false)));
        let mut object = location(&d.primary.file, d.primary.span);
        object["file"] = json!(d.primary.file.name(file_name));
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

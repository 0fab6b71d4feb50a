//! The compiler's diagnostics as the protocol's.
//!
//! Same code, severity and range as `guardc check`; the primary label's text and `help` follow
//! the message on lines of their own, as the terminal shows them under the source, and
//! secondary labels become related information. A diagnostic about an imported module (its
//! primary label in the module) is shown on the `import` that brought the module in, with
//! the place in the module as related information: everything `guardc check` reports about a
//! file appears in that file.

use lsp_types::{
    DiagnosticRelatedInformation, DiagnosticSeverity, DiagnosticTag, Location, NumberOrString,
    Range, Uri,
};

use super::documents::{Encoding, Lines};
use super::stdlib::Library;
use super::uri;
use crate::diag::{Diagnostic, File, Label, Severity, SourceFile, codes};
use crate::span::Span;
use crate::syntax::lexer::{self, Token};

/// The document the diagnostics are about.
pub struct Target<'a> {
    pub uri: &'a Uri,
    pub text: &'a str,
    pub lines: &'a Lines,
    pub encoding: Encoding,
}

pub fn convert(
    diagnostics: &[Diagnostic],
    target: &Target<'_>,
    library: &Library,
) -> Vec<lsp_types::Diagnostic> {
    diagnostics
        .iter()
        .map(|d| one(d, target, library))
        .collect()
}

fn one(d: &Diagnostic, target: &Target<'_>, library: &Library) -> lsp_types::Diagnostic {
    let mut message = d.message.clone();
    let mut related = Vec::new();
    let range = match &d.primary.file {
        File::Main => target.lines.range(target.text, d.primary.span),
        File::Other(file) => {
            // Say where, since the range shown is the import's.
            let index = diag_position(file.text(), d.primary.span);
            message = format!("{}:{}:{}: {message}", file.name(), index.0, index.1);
            related.extend(location(&d.primary, target, library).map(|location| {
                DiagnosticRelatedInformation {
                    location,
                    message: d.primary.message.clone(),
                }
            }));
            import_range(file, target)
        }
    };
    if !d.primary.message.is_empty() {
        message.push('\n');
        message.push_str(&d.primary.message);
    }
    if let Some(help) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(help);
    }
    related.extend(d.secondary.iter().filter_map(|label| {
        Some(DiagnosticRelatedInformation {
            location: location(label, target, library)?,
            message: label.message.clone(),
        })
    }));
    let unused = [codes::UNUSED_DEFINITION, codes::UNUSED_IMPORT].contains(&d.code);
    lsp_types::Diagnostic {
        range,
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.to_string())),
        code_description: None,
        source: Some("guardc".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        // Editors fade unused code.
        tags: unused.then(|| vec![DiagnosticTag::UNNECESSARY]),
        data: None,
    }
}

/// Where a label points, as a location the editor can open.
fn location(label: &Label, target: &Target<'_>, library: &Library) -> Option<Location> {
    match &label.file {
        File::Main => Some(Location::new(
            target.uri.clone(),
            target.lines.range(target.text, label.span),
        )),
        File::Other(file) => {
            let path = library.path_of_file(file)?;
            let lines = Lines::new(file.text(), target.encoding);
            Some(Location::new(
                uri::from_path(&path)?,
                lines.range(file.text(), label.span),
            ))
        }
    }
}

/// The `import` of the module `file` is, or the start of the document if the module came in
/// through another one.
fn import_range(file: &SourceFile, target: &Target<'_>) -> Range {
    let stem = std::path::Path::new(file.name())
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let (tokens, _) = lexer::lex(target.text);
    let span = tokens
        .windows(2)
        .find_map(|pair| match pair {
            [(start, Token::Import, _), (_, Token::Str(module), end)] if module == stem => {
                Some(Span::new(*start, *end))
            }
            _ => None,
        })
        .unwrap_or_default();
    target.lines.range(target.text, span)
}

/// 1-based line and column, as the terminal and `--message-format json` print them.
fn diag_position(text: &str, span: Span) -> (u32, u32) {
    crate::span::LineIndex::new(text).line_column(span.start)
}

//! The front end's entry points: source text in, checked policy or
//! diagnostics out.

use crate::check;
use crate::checked;
use crate::diag::{Diagnostic, codes};
use crate::span::Span;
use crate::syntax::parser;

/// Parses and checks a policy file, reporting every error found.
///
/// `file_name` is only used in messages; the caller renders the returned
/// diagnostics with [`crate::diag::render_diagnostics`] or
/// [`crate::diag::render_json`] against the same `source`.
///
/// A file that is not UTF-8 should be decoded lossily
/// (`String::from_utf8_lossy`) and passed in anyway: every U+FFFD
/// replacement character is reported as invalid UTF-8, with its location.
pub fn check_source(file_name: &str, source: &str) -> Result<checked::Policy, Vec<Diagnostic>> {
    let (ast, mut diagnostics) = parser::parse(source);
    match check::check(&ast, source) {
        Ok(policy) if diagnostics.is_empty() => {
            if policy.rules.is_empty() {
                return Err(vec![empty_policy(file_name, source)]);
            }
            return Ok(policy);
        }
        Ok(_) => {}
        Err(errors) => diagnostics.extend(errors),
    }
    // Syntax and check errors interleave in file order.
    diagnostics.sort_by_key(|d| d.primary.0);
    Err(diagnostics)
}

/// A file without rules. Only reported when nothing failed to parse:
/// a file whose every rule is broken is not empty, just wrong.
fn empty_policy(file_name: &str, source: &str) -> Diagnostic {
    // Point at the end of the file, where a rule would go.
    let end = source.len();
    Diagnostic::error(
        codes::EMPTY_POLICY,
        "the policy has no rules",
        Span::new(end, end),
        format!("`{file_name}` contains no `guard` rule"),
    )
    .with_help(
        "a rule looks like `guard /mnt/secrets/* allow ancestor(pid1, \"python app.py\") else kill`",
    )
}

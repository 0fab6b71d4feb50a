//! The front end's entry points: source text in, checked policy or
//! diagnostics out, with `import`s resolved against the standard library.
//!
//! The standard library (`stdlib/*.grd`) is embedded in the compiler at
//! build time (see `build.rs`), so `guardc` behaves the same from any
//! directory; [`Options::stdlib_dir`] replaces it with a directory.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::check::{self, Modules};
use crate::checked;
use crate::diag::{self, Diagnostic, File, SourceFile, codes};
use crate::span::{LineIndex, Span};
use crate::syntax::lexer::{self, Token};
use crate::syntax::{ast, parser};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/stdlib.rs"));
}

/// How to run the front end.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Take `import`ed modules from `DIR/NAME.grd` instead of the standard
    /// library embedded in the compiler. Messages name such files by this
    /// path, e.g. `my-stdlib/k8s.grd`.
    pub stdlib_dir: Option<PathBuf>,
}

/// Parses and checks a policy file, reporting every error found, with the
/// embedded standard library.
///
/// `file_name` is only used in messages; the caller renders the returned
/// diagnostics with [`crate::diag::render_diagnostics`] or
/// [`crate::diag::render_json`] against the same `source` (diagnostics in
/// imported modules carry their own file). On success, warnings are in
/// [`checked::Policy::warnings`]; on failure, the diagnostics include the
/// warnings too.
///
/// A file that is not UTF-8 should be decoded lossily
/// (`String::from_utf8_lossy`) and passed in anyway: every U+FFFD
/// replacement character is reported as invalid UTF-8, with its location.
pub fn check_source(file_name: &str, source: &str) -> Result<checked::Policy, Vec<Diagnostic>> {
    check_source_with(file_name, source, &Options::default())
}

/// [`check_source`] with options.
pub fn check_source_with(
    file_name: &str,
    source: &str,
    options: &Options,
) -> Result<checked::Policy, Vec<Diagnostic>> {
    let (ast, syntax) = parser::parse(source);
    let lines = LineIndex::new(source);
    let mut modules = Stdlib::new(options);
    let outcome = check::check_policy(&ast, &lines, &mut modules, !syntax.is_empty());
    let mut errors = syntax;
    errors.extend(without_lost_uses(outcome.errors, source, &ast));
    let mut warnings = outcome.warnings;
    if errors.is_empty() && outcome.rules.is_empty() {
        errors.push(empty_policy(file_name, source));
        // Without rules everything is unused: saying so adds nothing.
        warnings.retain(|w| ![codes::UNUSED_DEFINITION, codes::UNUSED_IMPORT].contains(&w.code));
    }
    if errors.is_empty() {
        return Ok(checked::Policy {
            rules: outcome.rules,
            warnings,
        });
    }
    errors.extend(warnings);
    Err(sorted(errors))
}

/// Check errors without those reporting, as unknown, a use of a `list` or
/// `macro` definition lost to a syntax error. The parser recovers by
/// skipping to the next item, so such a definition never reaches the
/// checker; the syntax error is what to fix, and the uses are fine once it
/// is. Only the checked file's own definitions are looked for.
fn without_lost_uses(errors: Vec<Diagnostic>, source: &str, ast: &ast::Policy) -> Vec<Diagnostic> {
    // Nothing to drop: no need to lex the file again.
    if !errors.iter().any(|d| d.code == codes::UNKNOWN_NAME) {
        return errors;
    }
    let lost = lost_definitions(source, ast);
    if lost.is_empty() {
        return errors;
    }
    errors
        .into_iter()
        .filter(|d| !is_use_of(d, source, &lost))
        .collect()
}

/// The names of the `list` and `macro` definitions that did not parse:
/// each `list NAME` or `macro NAME` outside every item that did.
fn lost_definitions<'s>(source: &'s str, ast: &ast::Policy) -> HashSet<&'s str> {
    let parsed: Vec<Span> = ast.items.iter().map(ast::Item::span).collect();
    let (tokens, _) = lexer::lex(source);
    tokens
        .windows(2)
        .filter_map(|pair| match pair {
            [
                (start, Token::List | Token::Macro, _),
                (_, Token::Ident(name), _),
            ] if !parsed.iter().any(|s| s.start <= *start && *start < s.end) => Some(*name),
            _ => None,
        })
        .collect()
}

/// Whether `d` reports a use of one of `names` in the checked file as unknown.
fn is_use_of(d: &Diagnostic, source: &str, names: &HashSet<&str>) -> bool {
    d.code == codes::UNKNOWN_NAME
        && d.primary.file == File::Main
        && source
            .get(d.primary.span.range())
            .is_some_and(|used| names.contains(used))
}

/// Checks a file as a module of the standard library would be checked when
/// imported: lists and macros only, no warnings about unused definitions.
/// `Ok` holds its warnings.
pub fn check_module(source: &str, options: &Options) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
    let (ast, mut errors) = parser::parse(source);
    let mut modules = Stdlib::new(options);
    let outcome = check::check_module(&ast, &mut modules);
    errors.extend(without_lost_uses(outcome.errors, source, &ast));
    if errors.is_empty() {
        return Ok(outcome.warnings);
    }
    errors.extend(outcome.warnings);
    Err(sorted(errors))
}

/// The names of the embedded standard library's modules.
pub fn stdlib_modules() -> Vec<&'static str> {
    embedded::STDLIB.iter().map(|(name, _)| *name).collect()
}

/// The modules `import` can name with these options, sorted: the embedded standard library's,
/// or those of [`Options::stdlib_dir`].
pub fn module_names(options: &Options) -> Vec<String> {
    Stdlib::new(options).names()
}

/// The module `import "NAME"` loads with these options, as the checker gets it (named as in
/// messages, e.g. `stdlib/k8s.grd`): `Ok(None)` if there is none, `Err` if it cannot be read.
pub fn module_source(name: &str, options: &Options) -> Result<Option<SourceFile>, String> {
    Stdlib::new(options).load(name)
}

/// In display order (see [`diag::sort`]); syntax and check errors interleave.
fn sorted(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diag::sort(&mut diagnostics);
    diagnostics
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

/// Modules from the embedded standard library or a directory.
struct Stdlib {
    dir: Option<PathBuf>,
}

impl Stdlib {
    fn new(options: &Options) -> Stdlib {
        Stdlib {
            dir: options.stdlib_dir.clone(),
        }
    }
}

impl Modules for Stdlib {
    fn names(&self) -> Vec<String> {
        let Some(dir) = &self.dir else {
            return stdlib_modules().into_iter().map(String::from).collect();
        };
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "grd"))
                    .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn load(&mut self, name: &str) -> Result<Option<SourceFile>, String> {
        let Some(dir) = &self.dir else {
            return Ok(embedded::STDLIB
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(n, bytes)| {
                    SourceFile::new(
                        format!("stdlib/{n}.grd"),
                        String::from_utf8_lossy(bytes).into_owned(),
                    )
                }));
        };
        // Only names listed in the directory: `import "../x"` cannot
        // reach outside it.
        if !self.names().iter().any(|n| n == name) {
            return Ok(None);
        }
        let path = dir.join(format!("{name}.grd"));
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(SourceFile::new(
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ))),
            Err(e) => Err(e.to_string()),
        }
    }
}

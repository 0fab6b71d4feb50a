//! The checker: [`ast::Policy`] to [`checked::Policy`].
//!
//! It resolves names (functions, selectors, priorities, message fields)
//! into enums and validates path patterns and limits. It reports every
//! problem it finds rather than stopping at the first: a rule with errors
//! is still checked to the end, then left out of the result.
//!
//! Conditions are checked here; path patterns in `check/pattern.rs`, alert
//! clauses in `check/alert.rs`.

mod alert;
mod pattern;

use crate::checked::{self, Enforce, MAX_CMDLINE_LEN, Subject, Which};
use crate::diag::{Diagnostic, codes, suggest};
use crate::span::LineIndex;
use crate::syntax::ast;

/// The functions a condition may call.
const FUNCTIONS: [&str; 1] = ["ancestor"];
const ANCESTOR_EXAMPLE: &str = "ancestor(pid1, \"python app.py\")";

/// Checks every rule. `source` is the text the AST was parsed from (for
/// line numbers). An empty `policy` is accepted here: whether that is an
/// error depends on whether rules were lost to syntax errors, which only
/// the caller knows.
pub fn check(policy: &ast::Policy, source: &str) -> Result<checked::Policy, Vec<Diagnostic>> {
    let mut checker = Checker {
        lines: LineIndex::new(source),
        diagnostics: Vec::new(),
    };
    let rules: Vec<_> = policy
        .rules
        .iter()
        .filter_map(|rule| checker.rule(rule))
        .collect();
    if checker.diagnostics.is_empty() {
        Ok(checked::Policy { rules })
    } else {
        Err(checker.diagnostics)
    }
}

struct Checker<'src> {
    lines: LineIndex<'src>,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn rule(&mut self, rule: &ast::Rule) -> Option<checked::Rule> {
        // Each part is checked even if an earlier one failed, so all of a
        // rule's errors are reported together.
        let patterns: Vec<_> = rule.patterns.iter().map(|p| self.pattern(p)).collect();
        let subject = self.subject(&rule.subject);
        let enforce = rule.otherwise.enforce.map(|e| match e.kind {
            ast::EnforceKind::Kill => Enforce::Kill,
            ast::EnforceKind::Deny => Enforce::Deny,
        });
        let enforce = enforce.unwrap_or(Enforce::None);
        let alert = self.alert(rule.otherwise.alert.as_ref(), enforce);

        let patterns = patterns.into_iter().collect::<Option<Vec<_>>>()?;
        let (subject, alert) = (subject?, alert?);
        let sources: Vec<&str> = rule.patterns.iter().map(|p| p.source.as_str()).collect();
        let (line, column) = self.lines.line_column(rule.keyword.start);
        Some(checked::Rule {
            name: format!("guard {}", sources.join(" ")),
            span: rule.span,
            line,
            column,
            patterns,
            subject,
            enforce,
            alert,
        })
    }

    fn subject(&mut self, expr: &ast::Expr) -> Option<Subject> {
        match &expr.kind {
            ast::ExprKind::Call(call) => self.call(call),
            ast::ExprKind::Paren(inner) => self.subject(inner),
            ast::ExprKind::Not(inner) => Some(Subject::Not(Box::new(self.subject(inner)?))),
            ast::ExprKind::And(a, b) | ast::ExprKind::Or(a, b) => {
                // Both sides first: a mistake on the left must not hide one
                // on the right.
                let (a, b) = (self.subject(a), self.subject(b));
                let (a, b) = (Box::new(a?), Box::new(b?));
                Some(match expr.kind {
                    ast::ExprKind::And(..) => Subject::And(a, b),
                    _ => Subject::Or(a, b),
                })
            }
        }
    }

    fn call(&mut self, call: &ast::Call) -> Option<Subject> {
        let name = call.function.name.as_str();
        if !FUNCTIONS.contains(&name) {
            let suggestion = suggest(name, FUNCTIONS);
            let diagnostic = Diagnostic::error(
                codes::UNKNOWN_FUNCTION,
                format!("unknown function `{name}`"),
                call.function.span,
                "not a known function",
            );
            self.error(match suggestion {
                Some(_) => diagnostic.with_suggestion(suggestion),
                None => diagnostic.with_help(format!(
                    "the only function is `ancestor`, e.g. `{ANCESTOR_EXAMPLE}`"
                )),
            });
            return None;
        }
        self.ancestor(call)
    }

    /// `ancestor(WHICH, CMDLINE)`.
    fn ancestor(&mut self, call: &ast::Call) -> Option<Subject> {
        let [which, cmdline] = call.args.as_slice() else {
            let n = call.args.len();
            let given = match n {
                1 => "1 was given".to_string(),
                n => format!("{n} were given"),
            };
            self.error(
                Diagnostic::error(
                    codes::WRONG_ARITY,
                    format!("`ancestor` takes 2 arguments but {given}"),
                    call.span,
                    format!("expected 2 arguments, found {n}"),
                )
                .with_help(format!(
                    "write `{ANCESTOR_EXAMPLE}` or `ancestor(any, \"…\")`"
                )),
            );
            return None;
        };
        match (which, cmdline) {
            // Both the wrong way round: say so once, not twice.
            (ast::Arg::Str(s), ast::Arg::Ident(i)) => {
                self.error(
                    Diagnostic::error(
                        codes::WRONG_ARGUMENT_KIND,
                        "the arguments of `ancestor` are in the wrong order",
                        s.span,
                        "expected `pid1` or `any` here",
                    )
                    .with_secondary(i.span, "expected a command line string here")
                    .with_help(format!("write `ancestor({}, \"{}\")`", i.name, s.raw)),
                );
                None
            }
            (which, cmdline) => {
                let which = self.which(which);
                let cmdline = self.cmdline(cmdline);
                Some(Subject::Ancestor {
                    which: which?,
                    cmdline: cmdline?,
                    span: call.span,
                })
            }
        }
    }

    fn which(&mut self, arg: &ast::Arg) -> Option<Which> {
        let names = Which::ALL.map(Which::as_str);
        match arg {
            ast::Arg::Ident(ident) => {
                let found = Which::ALL.into_iter().find(|w| w.as_str() == ident.name);
                if found.is_none() {
                    self.error(
                        Diagnostic::error(
                            codes::UNKNOWN_SELECTOR,
                            format!("unknown ancestor selector `{}`", ident.name),
                            ident.span,
                            "expected `pid1` or `any`",
                        )
                        .with_help(match suggest(&ident.name, names) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => "the selectors are `pid1` (the ancestor with PID 1) and `any` (any ancestor)".to_string(),
                        }),
                    );
                }
                found
            }
            ast::Arg::Str(lit) => {
                self.error(
                    Diagnostic::error(
                        codes::WRONG_ARGUMENT_KIND,
                        "the first argument of `ancestor` must be `pid1` or `any`, not a string",
                        lit.span,
                        "expected `pid1` or `any`",
                    )
                    .with_help("remove the quotes: the selector is a name"),
                );
                None
            }
        }
    }

    fn cmdline(&mut self, arg: &ast::Arg) -> Option<String> {
        let lit = match arg {
            ast::Arg::Str(lit) => lit,
            ast::Arg::Ident(ident) => {
                self.error(
                    Diagnostic::error(
                        codes::WRONG_ARGUMENT_KIND,
                        format!(
                            "the second argument of `ancestor` must be a command line string, not the name `{}`",
                            ident.name
                        ),
                        ident.span,
                        "expected a string",
                    )
                    .with_help(format!("quote the command line: `\"{}\"`", ident.name)),
                );
                return None;
            }
        };
        if lit.value.is_empty() {
            self.error(
                Diagnostic::error(
                    codes::EMPTY_CMDLINE,
                    "the command line is empty",
                    lit.span,
                    "empty command line",
                )
                .with_help(
                    "write the full command line, argv joined by spaces, e.g. `\"python app.py\"`",
                ),
            );
            return None;
        }
        if lit.value.len() > MAX_CMDLINE_LEN {
            self.error(
                Diagnostic::error(
                    codes::CMDLINE_TOO_LONG,
                    format!(
                        "the command line is {} bytes long, more than the limit of {MAX_CMDLINE_LEN}",
                        lit.value.len()
                    ),
                    lit.span,
                    "too long",
                )
                .with_help(format!(
                    "`ancestor` compares at most {MAX_CMDLINE_LEN} bytes of a command line"
                )),
            );
            return None;
        }
        Some(lit.value.clone())
    }
}

//! The checker: [`ast::Policy`] to [`checked::Policy`].
//!
//! Names go through typed stages. The syntax tree holds raw names; the
//! checker resolves each one, in file order, against a scope of definitions
//! (this file's lists and macros above the use, plus what its imports
//! define) into an [`Arena`] of resolved lists and macros, and finally
//! expands them into the checked form, which holds no names at all. So an
//! unresolved name cannot reach lowering.
//!
//! It reports every problem it finds rather than stopping at the first: an
//! item with errors is still checked to the end, then left out of the
//! result. A definition with errors is kept in scope as "broken", so its
//! uses fail quietly instead of repeating the error.
//!
//! Layout: items and the session here; names and definitions in
//! `check/names.rs`, definition cycles in `check/cycles.rs`, imports in
//! `check/imports.rs`, conditions in `check/subject.rs`, objects and list
//! expansion in `check/objects.rs`, path patterns in `check/pattern.rs`,
//! alert clauses, tags and rule names in `check/alert.rs`.

mod alert;
mod cycles;
mod imports;
mod names;
mod objects;
mod pattern;
mod scope;
mod subject;

use std::collections::{HashMap, HashSet};

use crate::checked::{self, Enforce};
use crate::diag::{Diagnostic, File, codes};
use crate::span::{LineIndex, Span};
use crate::syntax::ast;

pub use imports::Modules;
pub use names::BUILTIN_CONDITIONS;
use names::{Arena, Def};
pub use subject::FUNCTIONS;

/// What checking one file produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The rules without errors (empty for a module).
    pub rules: Vec<checked::Rule>,
    /// Errors, in this file and in the modules it imports.
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// Checks a policy file. `lines` indexes the text the AST was parsed from.
/// `syntax_errors` says whether items were lost to syntax errors: unused
/// definitions are then not reported, since the lost items may have used
/// them (nor are they when there are other errors). Modules are loaded
/// from `modules` as `import`s name them.
pub fn check_policy(
    policy: &ast::Policy,
    lines: &LineIndex<'_>,
    modules: &mut dyn Modules,
    syntax_errors: bool,
) -> Outcome {
    let mut session = Session::new(modules);
    let rules = {
        let mut checker = Checker::new(&mut session, File::Main, Some(lines));
        let rules = checker.items(&policy.items);
        // With errors, "unused" is unreliable: a misspelt use, or one in
        // an item lost to a syntax error, looks like no use.
        if !syntax_errors && checker.error_count() == 0 {
            checker.unused();
            checker.unused_imports();
        }
        rules
    };
    session.finish(rules)
}

/// Checks a file as an importable module (lists and macros only), as if it
/// were imported: no warnings for unused definitions.
pub fn check_module(policy: &ast::Policy, modules: &mut dyn Modules) -> Outcome {
    let mut session = Session::new(modules);
    Checker::new(&mut session, File::Main, None)
        .module()
        .items(&policy.items);
    session.finish(Vec::new())
}

/// State shared by the checks of the user's file and of every module it
/// imports, directly or not.
struct Session<'m> {
    modules: &'m mut dyn Modules,
    arena: Arena,
    /// Modules already checked: their exported definitions (`None` if the
    /// module could not be loaded at all).
    loaded: HashMap<String, Option<Vec<(String, Def)>>>,
    /// The chain of modules being checked, for cycle detection.
    loading: Vec<String>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl<'m> Session<'m> {
    fn new(modules: &'m mut dyn Modules) -> Session<'m> {
        Session {
            modules,
            arena: Arena::default(),
            loaded: HashMap::new(),
            loading: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn finish(self, rules: Vec<checked::Rule>) -> Outcome {
        Outcome {
            rules,
            errors: tidy(self.errors),
            warnings: tidy(self.warnings),
        }
    }
}

/// Sorts diagnostics (imported files first, then the checked file, each
/// in file order) and drops exact repeats: a list item is validated at
/// every use of its list.
fn tidy(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diagnostics.sort_by_key(|d| {
        let (main_file, name, span) = d.sort_key();
        (!main_file, name, span)
    });
    let mut seen = HashSet::new();
    diagnostics.retain(|d| seen.insert(format!("{d:?}")));
    diagnostics
}

/// Checks one file.
struct Checker<'a, 'm> {
    session: &'a mut Session<'m>,
    /// The file being checked; diagnostics are moved into it.
    file: File,
    /// `Some` for the user's file, which alone may contain rules.
    lines: Option<&'a LineIndex<'a>>,
    /// Whether this file is an imported module.
    module: bool,
    /// Every name visible at this point of the file.
    scope: HashMap<String, Def>,
    /// This file's definitions not reached yet, by name: the span of the
    /// name and whether it is a list.
    pending: HashMap<String, (Span, bool)>,
    /// Names defined in terms of themselves (already reported), with the
    /// number of their cycle.
    cyclic: HashMap<String, usize>,
    /// This file's definitions in order, for unused-definition warnings.
    own: Vec<(String, Span, bool)>,
    used: HashSet<String>,
    /// Modules imported by this file, with the `import` span.
    imported: Vec<(String, Span)>,
    /// An import failed, so unknown names may be its: do not report them.
    incomplete: bool,
    /// The span of the first item that is not an import.
    first_item: Option<Span>,
}

impl<'a, 'm> Checker<'a, 'm> {
    fn new(
        session: &'a mut Session<'m>,
        file: File,
        lines: Option<&'a LineIndex<'a>>,
    ) -> Checker<'a, 'm> {
        Checker {
            session,
            file,
            lines,
            module: false,
            scope: HashMap::new(),
            pending: HashMap::new(),
            cyclic: HashMap::new(),
            own: Vec::new(),
            used: HashSet::new(),
            imported: Vec::new(),
            incomplete: false,
            first_item: None,
        }
    }

    fn module(mut self) -> Self {
        self.module = true;
        self
    }

    fn error(&mut self, diagnostic: Diagnostic) {
        self.session.errors.push(diagnostic.in_file(&self.file));
    }

    fn warn(&mut self, diagnostic: Diagnostic) {
        self.session.warnings.push(diagnostic.in_file(&self.file));
    }

    fn error_count(&self) -> usize {
        self.session.errors.len()
    }

    /// Checks every item in order; returns the rules without errors.
    fn items(&mut self, items: &[ast::Item]) -> Vec<checked::Rule> {
        self.collect_definitions(items);
        let mut rules = Vec::new();
        for item in items {
            match item {
                ast::Item::Import(import) => self.import(import),
                ast::Item::List(list) => self.list_definition(list),
                ast::Item::Macro(definition) => self.macro_definition(definition),
                ast::Item::Rule(rule) => rules.extend(self.rule_item(rule)),
            }
            if !matches!(item, ast::Item::Import(_)) {
                self.first_item.get_or_insert(item.span());
            }
        }
        rules
    }

    fn rule_item(&mut self, rule: &ast::Rule) -> Option<checked::Rule> {
        match self.lines {
            Some(lines) if !self.module => self.rule(rule, lines),
            _ => {
                self.error(
                    Diagnostic::error(
                        codes::RULE_IN_MODULE,
                        "an imported module cannot contain rules",
                        rule.keyword,
                        "a rule in a module",
                    )
                    .with_help(
                        "modules define lists and macros only; write the rule in the policy that imports the module",
                    ),
                );
                None
            }
        }
    }

    fn rule(&mut self, rule: &ast::Rule, lines: &LineIndex<'_>) -> Option<checked::Rule> {
        // Each part is checked even if an earlier one failed, so all of a
        // rule's errors are reported together.
        let operation = match rule.operation.map(|o| o.kind) {
            None | Some(ast::OperationKind::Open) => checked::Operation::Open,
            Some(ast::OperationKind::Read) => checked::Operation::Read,
            Some(ast::OperationKind::Write) => checked::Operation::Write,
            Some(ast::OperationKind::Exec) => checked::Operation::Exec,
        };
        let objects = self.objects(&rule.objects, operation);
        let subject = self.rule_subject(&rule.subject);
        let enforce = rule.otherwise.enforce.map(|e| match e.kind {
            ast::EnforceKind::Kill => Enforce::Kill,
            ast::EnforceKind::Deny => Enforce::Deny,
        });
        let enforce = enforce.unwrap_or(Enforce::None);
        let alert = self.alert(rule.otherwise.alert.as_ref(), enforce);
        let tags = self.tags(rule.tags.as_ref());
        let name = self.rule_name(rule);

        let (objects, subject, alert) = (objects?, subject?, alert?);
        let (tags, name) = (tags?, name?);
        let (line, column) = lines.line_column(rule.keyword.start);
        Some(checked::Rule {
            name,
            span: rule.span,
            line,
            column,
            operation,
            objects,
            subject,
            enforce,
            alert,
            tags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No modules at all.
    pub(super) struct NoModules;

    impl Modules for NoModules {
        fn names(&self) -> Vec<String> {
            Vec::new()
        }

        fn load(&mut self, _: &str) -> Result<Option<crate::diag::SourceFile>, String> {
            Ok(None)
        }
    }

    fn check(source: &str) -> Outcome {
        let (ast, diagnostics) = crate::syntax::parser::parse(source);
        assert_eq!(diagnostics, []);
        check_policy(&ast, &LineIndex::new(source), &mut NoModules, false)
    }

    fn codes(diagnostics: &[Diagnostic]) -> Vec<&'static str> {
        diagnostics.iter().map(|d| d.code).collect()
    }

    #[test]
    fn lists_and_macros_expand() {
        let out = check(
            "list a = [/x/*, \"/y\"]\nlist b = [a, /z, /x/*]\nmacro m = tty\nmacro n = m or uid(0)\n\
             guard b allow not n else kill",
        );
        assert_eq!(codes(&out.errors), [""; 0]);
        let rule = &out.rules[0];
        let objects: Vec<&str> = rule.objects.iter().map(|o| o.pattern.as_str()).collect();
        assert_eq!(objects, ["/x/*", "/y", "/z"]);
        assert_eq!(rule.subject.to_string(), "not (tty or uid(0))");
        assert_eq!(rule.name, "guard b");
    }

    #[test]
    fn names_must_be_defined_before_use_and_once() {
        let out = check(
            "guard l allow m else kill\nlist l = [/a]\nmacro m = tty\nlist l = [/b]\nmacro tty = tty",
        );
        assert_eq!(
            codes(&out.errors),
            [
                codes::USED_BEFORE_DEFINITION,
                codes::USED_BEFORE_DEFINITION,
                codes::REDEFINED_NAME,
                codes::INVALID_NAME
            ]
        );
    }

    #[test]
    fn cycles_are_reported_once() {
        let out = check("list a = [b]\nlist b = [a]\nlist c = [c]\nguard a allow tty else kill");
        assert_eq!(
            codes(&out.errors),
            [codes::DEFINITION_CYCLE, codes::DEFINITION_CYCLE]
        );
    }

    #[test]
    fn unused_definitions_warn() {
        let out = check("list a = [/a]\nmacro m = tty\nguard /b allow tty else kill");
        assert_eq!(
            codes(&out.warnings),
            [codes::UNUSED_DEFINITION, codes::UNUSED_DEFINITION]
        );
    }
}

//! Definitions and name resolution: `list` and `macro` items, the scope,
//! and the resolved forms names turn into.
//!
//! Resolved definitions live in an [`Arena`] and refer to each other by
//! index, never by pointer: a chain of 100 000 lists, each naming the
//! previous one, must neither overflow the stack when dropped nor cost
//! quadratic memory. Lists are expanded only where they are used
//! ([`Checker::expand_list`]), iteratively.

use std::collections::HashSet;

use super::Checker;
use crate::checked::{MAX_SUBJECT_NODES, Subject};
use crate::diag::{Diagnostic, File, codes, list, suggest};
use crate::span::Span;
use crate::syntax::ast;

/// Built-in conditions written as a bare name; no definition may take
/// these names.
pub const BUILTIN_CONDITIONS: [&str; 3] = ["tty", "entered", "nobody"];

#[derive(Default)]
pub(super) struct Arena {
    pub lists: Vec<ListDef>,
    pub macros: Vec<MacroDef>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct ListId(usize);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct MacroId(usize);

pub(super) struct ListDef {
    /// The file the list is written in.
    pub file: File,
    pub items: Vec<ListItem>,
}

pub(super) enum ListItem {
    Literal(ast::Literal),
    /// Another list, spliced in.
    Splice(ListId),
}

pub(super) struct MacroDef {
    /// The file the macro is written in.
    pub file: File,
    pub body: Cond,
    pub measure: Measure,
}

/// How big a condition is once expanded: its nodes, and how deeply
/// expansion recurses (macro uses included: `macro b = a` adds a level but
/// no node). Both saturate.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Measure {
    pub size: usize,
    pub depth: usize,
}

impl Measure {
    pub fn too_big(self) -> bool {
        self.size > MAX_SUBJECT_NODES || self.depth > MAX_SUBJECT_NODES
    }
}

/// A resolved condition: atoms are checked, macros are referred to.
pub(super) enum Cond {
    /// A checked atom; its span points into the file of the definition
    /// or rule it is written in.
    Atom(Subject),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    /// A macro, used at `span`.
    Macro(MacroId, Span),
}

/// What a name in scope stands for.
#[derive(Clone, Debug)]
pub(super) struct Def {
    pub kind: DefKind,
    /// Where the name is defined.
    pub file: File,
    pub span: Span,
    /// For an imported name: the module and the `import` in this file.
    pub via: Option<(String, Span)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DefKind {
    List(ListId),
    Macro(MacroId),
    /// A definition with errors (already reported); `true` for a list.
    Broken(bool),
}

impl DefKind {
    fn is_list(self) -> bool {
        matches!(self, DefKind::List(_) | DefKind::Broken(true))
    }
}

fn kind_word(is_list: bool) -> &'static str {
    if is_list { "list" } else { "macro" }
}

impl Cond {
    /// Size and depth once every macro is expanded. Recursion is bounded
    /// by the parser's operator limit: a macro use is not followed.
    pub fn measure(&self, arena: &Arena) -> Measure {
        let node = |size: usize, depth: usize| Measure {
            size: size.saturating_add(1),
            depth: depth.saturating_add(1),
        };
        match self {
            Cond::Atom(_) => node(0, 0),
            Cond::Not(a) => {
                let a = a.measure(arena);
                node(a.size, a.depth)
            }
            Cond::And(a, b) | Cond::Or(a, b) => {
                let (a, b) = (a.measure(arena), b.measure(arena));
                node(a.size.saturating_add(b.size), a.depth.max(b.depth))
            }
            Cond::Macro(id, _) => {
                let m = arena
                    .macros
                    .get(id.0)
                    .map(|m| m.measure)
                    .unwrap_or_default();
                Measure {
                    size: m.size,
                    depth: m.depth.saturating_add(1),
                }
            }
        }
    }

    /// Expands into the checked form. `at` is the span every atom gets,
    /// once expansion has left the checked file (see the invariant of
    /// [`crate::checked::Policy`]); `None` keeps atoms' own spans.
    ///
    /// Recursion depth is bounded by the depth of the [`Measure`], which
    /// the caller has checked against [`MAX_SUBJECT_NODES`].
    pub fn expand(&self, arena: &Arena, at: Option<Span>) -> Subject {
        let expand = |c: &Cond| Box::new(c.expand(arena, at));
        match self {
            Cond::Atom(atom) => match at {
                Some(span) => with_span(atom.clone(), span),
                None => atom.clone(),
            },
            Cond::And(a, b) => Subject::And(expand(a), expand(b)),
            Cond::Or(a, b) => Subject::Or(expand(a), expand(b)),
            Cond::Not(a) => Subject::Not(expand(a)),
            Cond::Macro(id, span) => match arena.macros.get(id.0) {
                Some(m) => {
                    let at = at.or((m.file != File::Main).then_some(*span));
                    m.body.expand(arena, at)
                }
                // Unreachable: ids come from the arena.
                None => Subject::Tty { span: *span },
            },
        }
    }
}

fn with_span(atom: Subject, at: Span) -> Subject {
    match atom {
        Subject::Ancestor { which, cmdline, .. } => Subject::Ancestor {
            which,
            cmdline,
            span: at,
        },
        Subject::Image { which, cmdline, .. } => Subject::Image {
            which,
            cmdline,
            span: at,
        },
        Subject::Cmdline { pattern, .. } => Subject::Cmdline { pattern, span: at },
        Subject::Name { names, .. } => Subject::Name { names, span: at },
        Subject::Exe { patterns, .. } => Subject::Exe { patterns, span: at },
        Subject::AncestorExe {
            which, patterns, ..
        } => Subject::AncestorExe {
            which,
            patterns,
            span: at,
        },
        Subject::Uid { uid, .. } => Subject::Uid { uid, span: at },
        Subject::Tty { .. } => Subject::Tty { span: at },
        Subject::Entered { .. } => Subject::Entered { span: at },
        Subject::Nobody { .. } => Subject::Nobody { span: at },
        Subject::User { name, .. } => Subject::User { name, span: at },
        Subject::Scope { scope, .. } => Subject::Scope { scope, span: at },
        other => other,
    }
}

/// How a name is being used.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    List,
    Macro,
}

impl Checker<'_, '_> {
    /// Records this file's definitions up front, so a use above a
    /// definition can be told apart from an unknown name, and reports
    /// definitions in terms of themselves.
    pub(super) fn collect_definitions(&mut self, items: &[ast::Item]) {
        let mut definitions = Vec::new();
        for item in items {
            let (name, is_list) = match item {
                ast::Item::List(l) => (&l.name, true),
                ast::Item::Macro(m) => (&m.name, false),
                _ => continue,
            };
            // Reserved names are refused at the definition, and `tty` in a
            // body is the built-in, not a reference.
            let reserved = BUILTIN_CONDITIONS.contains(&name.name.as_str());
            if !reserved && !self.pending.contains_key(&name.name) {
                self.pending.insert(name.name.clone(), (name.span, is_list));
                definitions.push(item);
            }
        }
        self.report_cycles(&definitions);
    }

    /// `list NAME = [ITEM, …]`: each item is a literal or a list defined
    /// above. Items are not validated here: what they must be (paths,
    /// process names) depends on where the list is used.
    pub(super) fn list_definition(&mut self, definition: &ast::List) {
        let name = &definition.name;
        let before = self.error_count();
        let defined_ok = self.check_new_name(name, true);
        let mut items = Vec::with_capacity(definition.items.len());
        // A reference can fail quietly (to a broken definition): the list
        // is then broken too, not shorter.
        let mut failed = false;
        for item in &definition.items {
            match item {
                ast::Value::Literal(literal) => items.push(ListItem::Literal(literal.clone())),
                ast::Value::Name(reference) => match self.resolve_list(reference, Some(&name.name))
                {
                    Some(id) => items.push(ListItem::Splice(id)),
                    None => failed = true,
                },
            }
        }
        self.pending.remove(&name.name);
        if !defined_ok {
            return;
        }
        let ok = !failed && self.error_count() == before;
        let kind = if ok && !self.cyclic.contains_key(&name.name) {
            let arena = &mut self.session.arena;
            arena.lists.push(ListDef {
                file: self.file.clone(),
                items,
            });
            DefKind::List(ListId(arena.lists.len() - 1))
        } else {
            DefKind::Broken(true)
        };
        self.define(name, kind);
    }

    /// `macro NAME = CONDITION`
    pub(super) fn macro_definition(&mut self, definition: &ast::Macro) {
        let name = &definition.name;
        let defined_ok = self.check_new_name(name, false);
        let body = self.condition(&definition.body, Some(&name.name));
        self.pending.remove(&name.name);
        if !defined_ok {
            return;
        }
        let kind = match body {
            Some(_) if self.cyclic.contains_key(&name.name) => DefKind::Broken(false),
            Some(body) => {
                let measure = body.measure(&self.session.arena);
                if measure.too_big() {
                    self.too_complex(name.span, &format!("macro `{}`", name.name));
                    DefKind::Broken(false)
                } else {
                    let arena = &mut self.session.arena;
                    arena.macros.push(MacroDef {
                        file: self.file.clone(),
                        body,
                        measure,
                    });
                    DefKind::Macro(MacroId(arena.macros.len() - 1))
                }
            }
            None => DefKind::Broken(false),
        };
        self.define(name, kind);
    }

    pub(super) fn too_complex(&mut self, span: Span, what: &str) {
        self.error(
            Diagnostic::error(
                codes::SUBJECT_TOO_COMPLEX,
                format!(
                    "{what} is too complex: more than {MAX_SUBJECT_NODES} conditions, or macros nested more than {MAX_SUBJECT_NODES} deep, once expanded"
                ),
                span,
                "too complex once expanded",
            )
            .with_help("simplify the condition, or split the rule into several rules"),
        );
    }

    /// Reports a definition's name if it is reserved or already taken;
    /// `false` if it must not enter the scope.
    fn check_new_name(&mut self, name: &ast::Ident, is_list: bool) -> bool {
        let what = kind_word(is_list);
        if BUILTIN_CONDITIONS.contains(&name.name.as_str()) {
            self.error(
                Diagnostic::error(
                    codes::INVALID_NAME,
                    format!(
                        "`{}` is a built-in condition and cannot be redefined",
                        name.name
                    ),
                    name.span,
                    "reserved name",
                )
                .with_help(format!("give the {what} another name")),
            );
            return false;
        }
        if name.name.contains('.') {
            self.error(
                Diagnostic::error(
                    codes::INVALID_NAME,
                    format!("`{}` is not a valid {what} name", name.name),
                    name.span,
                    "contains `.`",
                )
                .with_help("names are made of letters, digits and `_`"),
            );
            return false;
        }
        let Some(existing) = self.scope.get(&name.name).cloned() else {
            return true;
        };
        let mut diagnostic = Diagnostic::error(
            codes::REDEFINED_NAME,
            format!("`{}` is defined twice", name.name),
            name.span,
            format!("`{}` redefined here", name.name),
        );
        diagnostic = match &existing.via {
            None => diagnostic.with_secondary(existing.span, "first defined here"),
            Some((module, import)) => diagnostic
                .with_secondary_in(
                    existing.file.clone(),
                    existing.span,
                    format!("defined here, in module `{module}`"),
                )
                .with_secondary(*import, "imported here"),
        };
        self.error(diagnostic.with_help(format!(
            "a name is defined once per file, imported names included; rename this {what}"
        )));
        false
    }

    fn define(&mut self, name: &ast::Ident, kind: DefKind) {
        self.own
            .push((name.name.clone(), name.span, kind.is_list()));
        self.scope.insert(
            name.name.clone(),
            Def {
                kind,
                file: self.file.clone(),
                span: name.span,
                via: None,
            },
        );
    }

    /// Resolves a name used as a list. `inside` is the definition being
    /// checked, if any (for cycles). `None` after reporting why not, or
    /// quietly for a broken definition.
    pub(super) fn resolve_list(
        &mut self,
        name: &ast::Ident,
        inside: Option<&str>,
    ) -> Option<ListId> {
        match self.resolve(name, Want::List, inside)? {
            DefKind::List(id) => Some(id),
            _ => None,
        }
    }

    /// Finds what `name` stands for, reporting unknown names, names used
    /// above their definition, and names of the wrong kind.
    pub(super) fn resolve(
        &mut self,
        name: &ast::Ident,
        want: Want,
        inside: Option<&str>,
    ) -> Option<DefKind> {
        if let Some(def) = self.scope.get(&name.name) {
            let kind = def.kind;
            self.used.insert(name.name.clone());
            if kind.is_list() == (want == Want::List) {
                return Some(kind);
            }
            let (def_file, def_span) = (def.file.clone(), def.span);
            self.wrong_kind(name, kind.is_list(), def_file, def_span);
            return None;
        }
        if let Some(&(span, is_list)) = self.pending.get(&name.name) {
            self.used.insert(name.name.clone());
            let cycle = self.cyclic.get(&name.name);
            if cycle.is_some() && inside.and_then(|i| self.cyclic.get(i)) == cycle {
                return None; // Reported as a cycle.
            }
            self.error(
                Diagnostic::error(
                    codes::USED_BEFORE_DEFINITION,
                    format!(
                        "{} `{}` is used before its definition",
                        kind_word(is_list),
                        name.name
                    ),
                    name.span,
                    "used here",
                )
                .with_secondary(span, "defined here, further down")
                .with_help(format!(
                    "names must be defined before they are used: move the definition of `{}` above this use",
                    name.name
                )),
            );
            return None;
        }
        if !self.incomplete {
            self.unknown(name, want);
        }
        None
    }

    fn wrong_kind(&mut self, name: &ast::Ident, is_list: bool, file: File, span: Span) {
        let (what, wanted) = if is_list {
            ("list", "a condition")
        } else {
            ("macro", "a list")
        };
        let help = if is_list {
            format!(
                "to test the process name against the list, write `name({0})`; to test the executable's path, `exe({0})`",
                name.name
            )
        } else {
            "a macro is a condition: use it after `allow`, or in another macro".to_string()
        };
        self.error(
            Diagnostic::error(
                codes::WRONG_KIND_OF_NAME,
                format!("`{}` is a {what}, not {wanted}", name.name),
                name.span,
                format!("expected {wanted}"),
            )
            .with_secondary_in(file, span, format!("`{}` is defined here", name.name))
            .with_help(help),
        );
    }

    fn unknown(&mut self, name: &ast::Ident, want: Want) {
        let mut candidates: Vec<&str> = self
            .scope
            .iter()
            .filter(|(_, def)| def.kind.is_list() == (want == Want::List))
            .map(|(n, _)| n.as_str())
            .collect();
        if want == Want::Macro {
            candidates.extend(BUILTIN_CONDITIONS);
        }
        candidates.sort_unstable();
        let suggestion = suggest(&name.name, candidates.iter().copied());
        let (message, label, fallback) = match want {
            Want::List => (
                format!("unknown list `{}`", name.name),
                "not a list defined above",
                "define it first: `list NAME = [ITEM, …]`, or import the module that defines it"
                    .to_string(),
            ),
            Want::Macro => (
                format!("unknown condition `{}`", name.name),
                "not a macro or built-in condition",
                format!(
                    "a condition is a call such as `ancestor(pid1, \"python app.py\")`, {}, or a macro defined above",
                    list(&BUILTIN_CONDITIONS.map(|b| format!("`{b}`")), "or")
                ),
            ),
        };
        let diagnostic = Diagnostic::error(codes::UNKNOWN_NAME, message, name.span, label);
        self.error(match suggestion {
            Some(_) => diagnostic.with_suggestion(suggestion),
            None => diagnostic.with_help(fallback),
        });
    }

    /// Warns about this file's definitions nothing used.
    pub(super) fn unused(&mut self) {
        let own = std::mem::take(&mut self.own);
        for (name, span, is_list) in own {
            if self.used.contains(&name) {
                continue;
            }
            let what = kind_word(is_list);
            self.warn(
                Diagnostic::warning(
                    codes::UNUSED_DEFINITION,
                    format!("{what} `{name}` is never used"),
                    span,
                    "defined here but never used",
                )
                .with_help(format!("remove the {what}, or use it in a rule")),
            );
        }
    }

    /// The items of a list, lists spliced in, in order, each list at most
    /// once (so expansion is linear, whatever the nesting), with the file
    /// each item is written in.
    pub(super) fn expand_list(&self, id: ListId) -> Vec<(ast::Literal, File)> {
        let arena = &self.session.arena;
        let mut out = Vec::new();
        let mut seen = HashSet::from([id]);
        let mut stack = vec![(id, 0usize)];
        while let Some((list, index)) = stack.pop() {
            let Some(def) = arena.lists.get(list.0) else {
                continue;
            };
            let Some(item) = def.items.get(index) else {
                continue;
            };
            stack.push((list, index + 1));
            match item {
                ListItem::Literal(literal) => out.push((literal.clone(), def.file.clone())),
                ListItem::Splice(inner) => {
                    if seen.insert(*inner) {
                        stack.push((*inner, 0));
                    }
                }
            }
        }
        out
    }
}

//! `import "NAME"`: loading, checking and bringing in a module's names.
//!
//! A module is checked once per session, the first time it is imported;
//! its errors point into it. It exports its own lists and macros, not what
//! it imports itself. Modules are found through [`Modules`], so the checker
//! does no I/O of its own and tests can supply modules from memory.

use super::names::Def;
use super::{Checker, Session};
use crate::diag::{Diagnostic, File, SourceFile, codes, list, suggest};
use crate::span::Span;
use crate::syntax::{ast, parser};

/// Where imported modules come from.
pub trait Modules {
    /// The names of the available modules (for suggestions).
    fn names(&self) -> Vec<String>;
    /// The module named `name`: `Ok(None)` if there is none, `Err` with a
    /// reason if it exists but cannot be read.
    fn load(&mut self, name: &str) -> Result<Option<SourceFile>, String>;
}

/// Why a module brought no names.
enum Failure {
    /// Reported where it happened (inside the module, or a cycle).
    Reported,
    Missing,
    Unreadable(String),
}

impl Checker<'_, '_> {
    pub(super) fn import(&mut self, import: &ast::Import) {
        let name = import.module.value.as_str();
        if let Some(first) = self.first_item {
            self.error(
                Diagnostic::error(
                    codes::IMPORT_NOT_FIRST,
                    format!("`import \"{name}\"` comes after other items"),
                    import.span,
                    "import after other items",
                )
                .with_secondary(first, "the first other item")
                .with_help("move every `import` to the top of the file"),
            );
        }
        if let Some(&(_, earlier)) = self.imported.iter().find(|(m, _)| m == name) {
            self.error(
                Diagnostic::error(
                    codes::DUPLICATE_IMPORT,
                    format!("module `{name}` is imported twice"),
                    import.span,
                    "imported again here",
                )
                .with_secondary(earlier, "first imported here")
                .with_help("remove this `import`"),
            );
            return;
        }
        self.imported.push((name.to_string(), import.span));
        let exports = match self.session.load(name, import.span, &self.file) {
            Ok(exports) => exports,
            Err(failure) => {
                self.incomplete = true;
                self.import_failed(import, failure);
                return;
            }
        };
        for (defined, def) in exports {
            self.bring_in(&defined, def, name, import.span);
        }
    }

    /// Warns about imports none of whose names this file uses. One used
    /// name is enough: a module is imported whole, so a partly used import
    /// cannot be narrowed.
    pub(super) fn unused_imports(&mut self) {
        let imported = std::mem::take(&mut self.imported);
        for (module, span) in &imported {
            let used = self.scope.iter().any(|(name, def)| {
                def.via.as_ref().is_some_and(|(m, _)| m == module) && self.used.contains(name)
            });
            if used {
                continue;
            }
            self.warn(
                Diagnostic::warning(
                    codes::UNUSED_IMPORT,
                    format!("nothing from module `{module}` is used"),
                    *span,
                    "imported here but never used",
                )
                .with_help("remove the import"),
            );
        }
        self.imported = imported;
    }

    fn import_failed(&mut self, import: &ast::Import, failure: Failure) {
        let name = import.module.value.as_str();
        let span = import.module.span;
        match failure {
            Failure::Reported => {}
            Failure::Missing => {
                let available = self.session.modules.names();
                let suggestion = suggest(name, available.iter().map(String::as_str));
                let diagnostic = Diagnostic::error(
                    codes::UNKNOWN_MODULE,
                    format!("unknown module `{name}`"),
                    span,
                    "no such module",
                );
                let help = match (suggestion, available.as_slice()) {
                    (Some(s), _) => format!("did you mean `{s}`?"),
                    (None, []) => "there are no modules in the standard library".to_string(),
                    (None, names) => format!(
                        "the modules are {}",
                        list(
                            &names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>(),
                            "and"
                        )
                    ),
                };
                self.error(diagnostic.with_help(help));
            }
            Failure::Unreadable(reason) => self.error(Diagnostic::error(
                codes::UNREADABLE_MODULE,
                format!("cannot read module `{name}`: {reason}"),
                span,
                "cannot be read",
            )),
        }
    }

    /// Adds an imported name to the scope, unless this file already has
    /// it (from an earlier import: a conflict between modules).
    fn bring_in(&mut self, name: &str, def: Def, module: &str, import: Span) {
        if let Some(existing) = self.scope.get(name) {
            let (file, span) = (existing.file.clone(), existing.span);
            let other = existing.via.as_ref().map_or("", |(m, _)| m.as_str());
            self.error(
                Diagnostic::error(
                    codes::REDEFINED_NAME,
                    format!("`{name}` is defined by both module `{other}` and module `{module}`"),
                    import,
                    format!("`{module}` defines `{name}` again"),
                )
                .with_secondary_in(file, span, format!("defined here, in module `{other}`"))
                .with_secondary_in(
                    def.file.clone(),
                    def.span,
                    format!("defined here, in module `{module}`"),
                )
                .with_help("a name is defined once per file, imported names included"),
            );
            return;
        }
        self.scope.insert(
            name.to_string(),
            Def {
                via: Some((module.to_string(), import)),
                ..def
            },
        );
    }
}

impl Session<'_> {
    /// Loads and checks a module (once), returning its own definitions.
    /// `importer` is the file whose `import` (at `span`) asks for it.
    fn load(
        &mut self,
        name: &str,
        span: Span,
        importer: &File,
    ) -> Result<Vec<(String, Def)>, Failure> {
        if let Some(position) = self.loading.iter().position(|m| m == name) {
            let mut chain: Vec<String> = self.loading[position..]
                .iter()
                .map(|m| format!("`{m}`"))
                .collect();
            chain.push(format!("`{name}`"));
            self.errors.push(
                Diagnostic::error(
                    codes::IMPORT_CYCLE,
                    format!("modules import each other: {}", chain.join(" → ")),
                    span,
                    "this import closes the cycle",
                )
                .with_help("a module cannot import itself, even indirectly; move the shared definitions into a third module")
                .in_file(importer),
            );
            return Err(Failure::Reported);
        }
        if let Some(loaded) = self.loaded.get(name) {
            return loaded.clone().ok_or(Failure::Reported);
        }
        let file = match self.modules.load(name) {
            Ok(Some(file)) => file,
            Ok(None) => return Err(Failure::Missing),
            Err(reason) => return Err(Failure::Unreadable(reason)),
        };
        let (ast, syntax) = parser::parse(file.text());
        let file_ref = File::Other(file);
        self.errors
            .extend(syntax.into_iter().map(|d| d.in_file(&file_ref)));
        self.loading.push(name.to_string());
        let exports = {
            let mut checker = Checker::new(self, file_ref, None).module();
            checker.items(&ast.items);
            let mut own: Vec<(String, Def)> = checker
                .scope
                .into_iter()
                .filter(|(_, def)| def.via.is_none())
                .collect();
            own.sort_by(|a, b| a.0.cmp(&b.0));
            own
        };
        self.loading.pop();
        self.loaded.insert(name.to_string(), Some(exports.clone()));
        Ok(exports)
    }
}

//! A rule's objects: what it guards. Lists are expanded here, and each
//! item is validated for the use it is put to.

use std::collections::HashSet;

use super::Checker;
use super::pattern::{Context, path_problems};
use super::subject::Item;
use crate::checked::{Object, Operation};
use crate::diag::{Diagnostic, File, codes};
use crate::syntax::ast;

/// Directories Kubernetes mounts secrets into (see [`atomic_writer_dir`]).
const SECRET_DIRS: [&str; 3] = ["/mnt/secrets", "/run/secrets", "/var/run/secrets"];

impl Checker<'_, '_> {
    /// The items of the list `name`, with their files, for validation at
    /// this use. Reports an unknown list, or a list that is empty.
    pub(super) fn list_items(
        &mut self,
        name: &ast::Ident,
        inside: Option<&str>,
    ) -> Option<Vec<Item>> {
        let id = self.resolve_list(name, inside)?;
        let items: Vec<Item> = self
            .expand_list(id)
            .into_iter()
            .map(|(literal, file)| Item {
                literal,
                file,
                via: Some(name.span),
            })
            .collect();
        if items.is_empty() {
            self.error(
                Diagnostic::error(
                    codes::EMPTY_LIST,
                    format!("list `{}` is empty", name.name),
                    name.span,
                    "expands to no items",
                )
                .with_help("add items to the list, or remove this use"),
            );
            return None;
        }
        Some(items)
    }

    /// Validates and expands a rule's objects, in order, duplicates removed.
    pub(super) fn objects(
        &mut self,
        values: &[ast::Value],
        operation: Operation,
    ) -> Option<Vec<Object>> {
        let before = self.error_count();
        let mut items = Vec::new();
        // A broken list fails quietly (its error is reported where it is
        // defined), but the rule must still fail.
        let mut failed = false;
        for value in values {
            match value {
                ast::Value::Literal(literal) => items.push(Item {
                    literal: literal.clone(),
                    file: self.file.clone(),
                    via: None,
                }),
                ast::Value::Name(name) => match self.list_items(name, None) {
                    Some(list) => items.extend(list),
                    None => failed = true,
                },
            }
        }
        let mut objects: Vec<Object> = Vec::new();
        let mut seen = HashSet::new();
        // W0002 once per list use, with how many more of its patterns have the problem: a
        // generated list of thousands would otherwise print thousands of copies (each
        // rendering the list's source line).
        let mut atomic: Vec<(Option<crate::span::Span>, usize, String, usize)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some((pattern, atomic_dir)) = self.object(item, operation) else {
                continue;
            };
            if let Some(dir) = atomic_dir {
                let same_use = item
                    .via
                    .and_then(|v| atomic.iter_mut().find(|a| a.0 == Some(v)));
                match same_use {
                    Some(first) => first.3 += 1,
                    None => atomic.push((item.via, i, dir, 0)),
                }
            }
            if !seen.insert(pattern.clone()) {
                continue;
            }
            // INVARIANT (checked::Policy): spans point into the checked file.
            let span = match (&item.file, item.via) {
                (File::Main, _) | (_, None) => item.literal.span,
                (_, Some(via)) => via,
            };
            objects.push(Object { pattern, span });
        }
        for (_, i, dir, more) in atomic {
            self.atomic_writer_warning(&items[i], &dir, more);
        }
        (!failed && self.error_count() == before && !objects.is_empty()).then_some(objects)
    }

    /// One object: a path pattern, or for `exec` a program name, which
    /// stands for `/**/NAME`.
    /// With the pattern, the secret volume directory it lists only the direct children of
    /// (W0002).
    fn object(&mut self, item: &Item, operation: Operation) -> Option<(String, Option<String>)> {
        let lit = &item.literal;
        let program = operation == Operation::Exec
            && lit.is_quoted()
            && !lit.text.contains('/')
            && !lit.text.is_empty();
        let (pattern, problems) = if program {
            let pattern = format!("/**/{}", lit.text);
            let problems = path_problems(&pattern, lit, false, Context::Object(operation));
            (pattern, problems)
        } else {
            let problems = path_problems(&lit.text, lit, true, Context::Object(operation));
            (lit.text.clone(), problems)
        };
        if !problems.is_empty() {
            let used_as = if operation == Operation::Exec {
                "a program"
            } else {
                "a path pattern"
            };
            for d in problems {
                self.item_error(d, item, used_as);
            }
            return None;
        }
        let dir = (!program)
            .then(|| atomic_writer_dir(&pattern))
            .flatten()
            .map(str::to_owned);
        Some((pattern, dir))
    }

    /// W0002 for `item`; `more` other patterns of the same list use have the problem too.
    fn atomic_writer_warning(&mut self, item: &Item, dir: &str, more: usize) {
        let lit = &item.literal;
        let mut warning = Diagnostic::warning(
            codes::ATOMIC_WRITER,
            format!("`{}` does not match the files of a Kubernetes secret volume", lit.text),
            lit.span,
            format!("only direct children of `{dir}`"),
        )
        .with_help(format!(
            "Kubernetes' atomic writer keeps the files under `{dir}/..data/`, a symlink to a timestamped directory: \
             the file actually opened is `{dir}/..2024_01_01_00_00_00.000000000/KEY`, which `{dir}/*` does not match; \
             write `{dir}/**`"
        ))
        .in_file(&item.file);
        if let Some(via) = item.via {
            let label = match more {
                0 => "used as a path pattern here".to_string(),
                1 => "used as a path pattern here, with 1 more pattern like it".to_string(),
                n => format!("used as a path pattern here, with {n} more patterns like it"),
            };
            warning = warning.with_secondary(via, label);
        }
        self.warn(warning);
    }
}

/// For `DIR/*` where DIR looks like a mounted secret volume, `DIR`.
fn atomic_writer_dir(pattern: &str) -> Option<&str> {
    let dir = pattern.strip_suffix("/*")?;
    let secret = SECRET_DIRS.contains(&dir)
        || dir
            .split('/')
            .any(|component| component.to_ascii_lowercase().contains("secret"));
    (secret && !dir.is_empty()).then_some(dir)
}

/// `guard ` plus the operation as written and the objects' source text.
pub(super) fn default_rule_name(rule: &ast::Rule) -> String {
    let mut words: Vec<&str> = vec!["guard"];
    words.extend(rule.operation.map(|o| o.kind.as_str()));
    words.extend(rule.objects.iter().map(ast::Value::source));
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writer_directories() {
        assert_eq!(atomic_writer_dir("/mnt/secrets/*"), Some("/mnt/secrets"));
        assert_eq!(
            atomic_writer_dir("/etc/app-Secret/*"),
            Some("/etc/app-Secret")
        );
        assert_eq!(atomic_writer_dir("/mnt/secrets/**"), None);
        assert_eq!(atomic_writer_dir("/mnt/data/*"), None);
        assert_eq!(atomic_writer_dir("/secrets/*.key"), None);
    }
}

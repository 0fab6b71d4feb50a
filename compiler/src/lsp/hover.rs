//! Hover: what the name, function, field, priority or keyword under the cursor means.

use super::docs;
use super::stdlib::Library;
use super::symbols::{self, Named, Origin, Target};
use crate::checked::Priority;
use crate::span::Span;
use crate::syntax::parser;

/// Markdown about the thing at `offset`, and the span it covers.
pub fn hover(text: &str, offset: usize, library: &Library) -> Option<(String, Span)> {
    let (target, span) = symbols::target_at(text, offset)?;
    let markdown = match target {
        Target::Name(name) => {
            let (policy, _) = parser::parse(text);
            let scope = symbols::scope(text, &policy, library);
            match symbols::lookup(&scope, &name) {
                Some(named) => definition(named, text),
                // `name` without arguments: the checker says it needs some; say what it is.
                None => function(&name)?,
            }
        }
        Target::Function(name) => function(&name)?,
        Target::Builtin(name) => format!("```guard\n{name}\n```\n\n{}", docs::builtin(&name)?),
        Target::Selector(name) => docs::selector(&name)?.to_string(),
        Target::Priority(name) => docs::priority(Priority::from_name(&name)?),
        Target::Field(field) => format!("`%{}`: {}", field.as_str(), docs::field(field)),
        Target::Module(name) => module(&name, library)?,
        Target::Keyword(word) => docs::keyword(&word)?.to_string(),
    };
    Some((markdown, span))
}

fn function(name: &str) -> Option<String> {
    let (signature, doc) = docs::function(name)?;
    Some(format!("```guard\n{signature}\n```\n\n{doc}"))
}

/// The longest definition shown whole; longer ones are cut.
const MAX_LINES: usize = 12;

/// A list or macro: its definition, its comment, and where it is.
fn definition(named: &Named, document: &str) -> String {
    let source = named
        .text(document)
        .get(named.def.span.range())
        .unwrap_or_default();
    let mut shown: Vec<&str> = source.lines().take(MAX_LINES).collect();
    if source.lines().count() > MAX_LINES {
        shown.push("    …");
    }
    let mut out = format!("```guard\n{}\n```", shown.join("\n"));
    if !named.def.doc.is_empty() {
        out.push_str("\n\n");
        out.push_str(&named.def.doc);
    }
    if let Origin::Module { name, .. } = &named.origin {
        out.push_str(&format!("\n\n*{} from module `{name}`*", named.def.kind()));
    }
    out
}

/// A module: its description and what it defines.
fn module(name: &str, library: &Library) -> Option<String> {
    let file = library.source(name)?;
    let names = symbols::module_scope(name, library);
    let listed = |lists: bool| {
        let names: Vec<String> = names
            .iter()
            .filter(|n| n.def.is_list == lists)
            .map(|n| format!("`{}`", n.def.name))
            .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    Some(format!(
        "**module `{name}`** ({})\n\n{}\n\nLists: {}\n\nMacros: {}",
        file.name(),
        symbols::header_comment(file.text()),
        listed(true),
        listed(false)
    ))
}

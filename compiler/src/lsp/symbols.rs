//! Names and what the cursor is on, found in the syntax tree and the tokens.
//!
//! The editor features resolve names the way the checker does (a file's own lists and macros,
//! then those of the modules it imports), but syntactically: they must work on a file with
//! errors, where the checker has nothing to give, and they never change what it reports.
//! The parser recovers item by item, so a broken rule hides nothing else.

use crate::checked::Field;
use crate::diag::SourceFile;
use crate::span::Span;
use crate::syntax::ast;
use crate::syntax::lexer::{self, Spanned, Token};
use crate::syntax::parser;

use super::stdlib::Library;

/// A `list` or `macro` definition.
#[derive(Clone, Debug)]
pub struct Definition {
    pub name: String,
    pub is_list: bool,
    /// The name in the definition.
    pub name_span: Span,
    /// The whole definition.
    pub span: Span,
    /// Its comment: the `#` lines right above it.
    pub doc: String,
}

impl Definition {
    pub fn kind(&self) -> &'static str {
        if self.is_list { "list" } else { "macro" }
    }
}

/// Where a name in scope is defined.
#[derive(Clone, Debug)]
pub enum Origin {
    /// In the document itself.
    Here,
    /// In an imported module.
    Module { name: String, file: SourceFile },
}

/// A name in scope.
#[derive(Clone, Debug)]
pub struct Named {
    pub def: Definition,
    pub origin: Origin,
}

impl Named {
    /// The text its spans index into, given the document's.
    pub fn text<'a>(&'a self, document: &'a str) -> &'a str {
        match &self.origin {
            Origin::Here => document,
            Origin::Module { file, .. } => file.text(),
        }
    }
}

/// The definitions of a file, in order.
pub fn definitions(text: &str, policy: &ast::Policy) -> Vec<Definition> {
    policy
        .items
        .iter()
        .filter_map(|item| {
            let (name, is_list, span) = match item {
                ast::Item::List(l) => (&l.name, true, l.span),
                ast::Item::Macro(m) => (&m.name, false, m.span),
                _ => return None,
            };
            Some(Definition {
                name: name.name.clone(),
                is_list,
                name_span: name.span,
                span,
                doc: comment_above(text, span.start),
            })
        })
        .collect()
}

/// The modules a file imports, with the `import` items' spans.
pub fn imports(policy: &ast::Policy) -> Vec<(String, Span)> {
    policy
        .items
        .iter()
        .filter_map(|item| match item {
            ast::Item::Import(i) => Some((i.module.value.clone(), i.span)),
            _ => None,
        })
        .collect()
}

/// Every name visible in a document: its own definitions first, then its imports'. Each
/// module is parsed here; the standard library is a few hundred lines, so this stays well
/// under a millisecond.
pub fn scope(text: &str, policy: &ast::Policy, library: &Library) -> Vec<Named> {
    let mut out: Vec<Named> = definitions(text, policy)
        .into_iter()
        .map(|def| Named {
            def,
            origin: Origin::Here,
        })
        .collect();
    for (module, _) in imports(policy) {
        out.extend(module_scope(&module, library));
    }
    out
}

/// The definitions of one module.
pub fn module_scope(module: &str, library: &Library) -> Vec<Named> {
    let Some(file) = library.source(module) else {
        return Vec::new();
    };
    let (policy, _) = parser::parse(file.text());
    definitions(file.text(), &policy)
        .into_iter()
        .map(|def| Named {
            def,
            origin: Origin::Module {
                name: module.to_string(),
                file: file.clone(),
            },
        })
        .collect()
}

/// The first definition of `name` (the checker reports the others as redefinitions).
pub fn lookup<'a>(scope: &'a [Named], name: &str) -> Option<&'a Named> {
    scope.iter().find(|n| n.def.name == name)
}

/// The comment block right above `offset`'s line (no blank line between), without the `#`s.
pub fn comment_above(text: &str, offset: usize) -> String {
    let line_start = text
        .get(..offset)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    let mut lines: Vec<&str> = Vec::new();
    let mut end = line_start;
    while end > 0 {
        let start = text
            .get(..end - 1)
            .and_then(|t| t.rfind('\n'))
            .map_or(0, |i| i + 1);
        let line = text.get(start..end - 1).unwrap_or_default().trim();
        let Some(comment) = line.strip_prefix('#') else {
            break;
        };
        lines.push(comment.strip_prefix(' ').unwrap_or(comment));
        end = start;
    }
    lines.reverse();
    join_comment(&lines)
}

/// A file's leading comment block: a module's description.
pub fn header_comment(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| l.starts_with('#'))
        .map(|l| {
            let l = &l[1..];
            l.strip_prefix(' ').unwrap_or(l)
        })
        .collect();
    join_comment(&lines)
}

/// Comment lines as Markdown: lines of a paragraph joined, indented lines (examples) kept.
fn join_comment(lines: &[&str]) -> String {
    let mut out = String::new();
    for line in lines {
        if line.starts_with("    ") || line.is_empty() {
            out.push('\n');
        } else if !out.is_empty() && !out.ends_with('\n') {
            out.push(' ');
        }
        out.push_str(line);
    }
    out.trim().to_string()
}

/// What the cursor is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A list or macro: a use, or the name in its definition.
    Name(String),
    Function(String),
    Builtin(String),
    Selector(String),
    Priority(String),
    Field(Field),
    Module(String),
    Keyword(String),
}

/// The thing at `offset` and its span, from the tokens (so it works in broken items too).
pub fn target_at(text: &str, offset: usize) -> Option<(Target, Span)> {
    let (tokens, _) = lexer::lex(text);
    let index = token_at(&tokens, offset)?;
    let (start, token, end) = &tokens[index];
    let span = Span::new(*start, *end);
    let previous = index.checked_sub(1).map(|i| &tokens[i].1);
    let next = tokens.get(index + 1).map(|t| &t.1);
    let target = match token {
        Token::Str(value) => match previous {
            Some(Token::Import) => Target::Module(value.clone()),
            _ if is_message(&tokens, index) => {
                let (field, span) = field_at(text, span, offset)?;
                return Some((Target::Field(field), span));
            }
            _ => return None,
        },
        // `alert alert`: the second is the priority.
        Token::Alert if previous == Some(&Token::Alert) => Target::Priority("alert".into()),
        Token::Ident(name) => {
            let name = name.to_string();
            if previous == Some(&Token::Alert) {
                Target::Priority(name)
            } else if next == Some(&Token::LParen) {
                Target::Function(name)
            } else if is_first_argument_of(&tokens, index, &["ancestor", "image"]) {
                Target::Selector(name)
            } else if in_tags(&tokens, index) {
                return None;
            } else if super::docs::builtin(&name).is_some() {
                Target::Builtin(name)
            } else {
                Target::Name(name)
            }
        }
        t if t.is_keyword() => Target::Keyword(t.to_string()),
        _ => return None,
    };
    Some((target, span))
}

/// The token under the cursor: the one containing it, or else the one ending right at it
/// (the cursor just after a word).
pub fn token_at(tokens: &[Spanned<'_>], offset: usize) -> Option<usize> {
    let i = tokens.partition_point(|(_, _, end)| *end < offset);
    match tokens.get(i) {
        Some((start, _, end)) if *start <= offset && offset < *end => Some(i),
        Some((_, _, end)) if *end == offset => {
            // Between two tokens (`a b`, `pid1,`): the next one, unless it is punctuation.
            let punctuation = |t: &Token<'_>| {
                matches!(
                    t,
                    Token::LParen
                        | Token::RParen
                        | Token::LBracket
                        | Token::RBracket
                        | Token::Comma
                        | Token::Equals
                )
            };
            match tokens.get(i + 1) {
                Some((start, next, _)) if *start == offset && !punctuation(next) => Some(i + 1),
                _ => Some(i),
            }
        }
        _ => None,
    }
}

/// Whether token `index` is the first argument of a call to one of `functions`.
fn is_first_argument_of(tokens: &[Spanned<'_>], index: usize, functions: &[&str]) -> bool {
    index >= 2
        && tokens[index - 1].1 == Token::LParen
        && matches!(tokens[index - 2].1, Token::Ident(f) if functions.contains(&f))
}

/// Whether token `index` (a string) is an alert message: right after `alert` or its priority.
pub fn is_message(tokens: &[Spanned<'_>], index: usize) -> bool {
    match index.checked_sub(1).map(|i| &tokens[i].1) {
        Some(Token::Alert) => true,
        Some(Token::Ident(_)) => index >= 2 && tokens[index - 2].1 == Token::Alert,
        _ => false,
    }
}

/// Whether token `index` is inside `tags [ … ]`.
fn in_tags(tokens: &[Spanned<'_>], index: usize) -> bool {
    let before = &tokens[..index];
    let open = before
        .iter()
        .rposition(|(_, t, _)| !matches!(t, Token::Comma | Token::Ident(_) | Token::Str(_)));
    matches!(open, Some(i) if before[i].1 == Token::LBracket && i > 0 && before[i - 1].1 == Token::Tags)
}

/// The `%field` of a message string `string` that `offset` is on, with its span.
fn field_at(text: &str, string: Span, offset: usize) -> Option<(Field, Span)> {
    let raw = text.get(string.range())?;
    let at = offset.checked_sub(string.start)?;
    let bytes = raw.as_bytes();
    let mut i = 1; // After the opening quote.
    while i < bytes.len() {
        if bytes[i] == b'%' && bytes.get(i + 1) == Some(&b'%') {
            i += 2;
            continue;
        }
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let name_len = raw[i + 1..]
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.')
            .count();
        let name = raw[i + 1..i + 1 + name_len].trim_end_matches('.');
        let end = i + 1 + name.len();
        if i <= at && at <= end {
            let field = Field::from_name(name)?;
            return Some((field, Span::new(string.start + i, string.start + end)));
        }
        i = end.max(i + 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_above_definitions_are_their_documentation() {
        let text =
            "# header\n\n# Shells.\n# More.\n#\n#     example\nlist s = [\"sh\"]\nmacro m = tty\n";
        let (policy, _) = parser::parse(text);
        let defs = definitions(text, &policy);
        assert_eq!(defs[0].doc, "Shells. More.\n\n    example");
        assert_eq!(defs[1].doc, "");
        assert_eq!(header_comment(text), "header");
    }

    #[test]
    fn targets_know_their_context() {
        let text = "import \"k8s\"\nguard /a allow ancestor(pid1, \"x\") or m else alert critical \"%proc.name %% %fd.name.\" tags [m]";
        let at = |needle: &str, delta: usize| {
            let offset = text.find(needle).expect("needle") + delta;
            target_at(text, offset).map(|(t, _)| t)
        };
        assert_eq!(at("k8s", 1), Some(Target::Module("k8s".into())));
        assert_eq!(at("ancestor", 0), Some(Target::Function("ancestor".into())));
        assert_eq!(at("pid1", 4), Some(Target::Selector("pid1".into())));
        assert_eq!(at(" m ", 1), Some(Target::Name("m".into())));
        assert_eq!(at("critical", 2), Some(Target::Priority("critical".into())));
        assert_eq!(at("proc.name", 3), Some(Target::Field(Field::ProcName)));
        assert_eq!(at("fd.name", 7), Some(Target::Field(Field::FdName)));
        assert_eq!(at("%% ", 1), None);
        assert_eq!(at("[m]", 1), None);
        assert_eq!(at("guard", 0), Some(Target::Keyword("guard".into())));
    }
}

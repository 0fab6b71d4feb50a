//! Completion, in context: item keywords where an item may start, operations and lists after
//! `guard`, functions, built-in conditions and macros where a condition goes, `pid1`/`any` and
//! lists as arguments, `kill`/`deny`/`alert` after `else`, priorities after `alert`, alert
//! fields after `%` in a message, module names after `import`. Standard library names not yet
//! imported are offered too, with the `import` they need.
//!
//! The context comes from the tokens before the cursor, read by a small state machine over
//! the current item (the last `guard`, `rule`, `list`, `macro` or `import` before it): while
//! typing, the item is incomplete and the parser has nothing to say about it. Strings cannot
//! span lines, so whether the cursor is in a string or a comment is read off its line.

use super::docs;
use super::stdlib::Library;
use super::symbols::{self, Named, Origin};
use crate::check::{BUILTIN_CONDITIONS, FUNCTIONS};
use crate::checked::Field;
use crate::span::Span;
use crate::syntax::lexer::{self, Token};
use crate::syntax::{ast, parser};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Keyword,
    Function,
    Constant,
    List,
    Macro,
    Module,
    Field,
    Priority,
}

/// One proposal.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub label: String,
    pub kind: Kind,
    pub detail: Option<String>,
    pub documentation: Option<String>,
    /// What to insert instead of `replace`, with `$1`-style tab stops if `snippet`.
    pub insert: String,
    pub snippet: bool,
    pub replace: Span,
    /// A module to import for this name: the `import` line and where it goes.
    pub import: Option<(String, usize)>,
}

/// Where the cursor is, as far as completion cares.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Context {
    Nothing,
    /// Where an item may start.
    Item,
    /// After `import`: a module name, quoted.
    Module,
    /// Inside the string of an `import`.
    ModuleInString,
    /// After `rule "NAME"`.
    Guard,
    /// A rule's objects: `operation` if one may still come, `allow` once there is an object.
    Objects {
        operation: bool,
        allow: bool,
    },
    /// Items of a `list` definition.
    ListItem,
    /// A condition operand.
    Operand,
    /// After a complete operand: `and`, `or`, and what may end the condition.
    AfterOperand(Next),
    /// An argument of a call.
    Argument {
        function: String,
        index: usize,
    },
    Else,
    /// After `kill` or `deny`.
    Enforced,
    /// After `alert`.
    Alerted,
    /// After the priority or the message.
    AfterAlert,
    /// In an alert message, after `%`.
    Field,
}

pub fn complete(text: &str, offset: usize, library: &Library) -> Vec<Candidate> {
    let offset = floor_char_boundary(text, offset);
    let (context, replace) = context(text, offset);
    let mut out = Vec::new();
    let keywords = |out: &mut Vec<Candidate>, words: &[&str]| {
        out.extend(words.iter().map(|w| keyword(w, replace)));
    };
    match &context {
        Context::Nothing => {}
        Context::Item => keywords(&mut out, &ITEM_KEYWORDS),
        Context::Module | Context::ModuleInString => {
            let quoted = context == Context::Module;
            for name in library.names() {
                let insert = if quoted {
                    format!("\"{name}\"")
                } else {
                    name.clone()
                };
                out.push(Candidate {
                    label: name.clone(),
                    kind: Kind::Module,
                    detail: Some("standard library module".into()),
                    documentation: library
                        .source(&name)
                        .map(|f| symbols::header_comment(f.text())),
                    insert,
                    snippet: false,
                    replace,
                    import: None,
                });
            }
        }
        Context::Guard => keywords(&mut out, &["guard"]),
        Context::Objects { operation, allow } => {
            if *operation {
                keywords(&mut out, &["open", "read", "write", "exec"]);
            }
            names(&mut out, text, replace, library, true);
            if *allow {
                keywords(&mut out, &["allow"]);
            }
        }
        Context::ListItem => names(&mut out, text, replace, library, true),
        Context::Operand => {
            for f in FUNCTIONS {
                let (signature, doc) = docs::function(f).unwrap_or_default();
                out.push(Candidate {
                    label: f.to_string(),
                    kind: Kind::Function,
                    detail: Some(signature.to_string()),
                    documentation: Some(doc.to_string()),
                    insert: docs::function_snippet(f),
                    snippet: true,
                    replace,
                    import: None,
                });
            }
            for b in BUILTIN_CONDITIONS {
                out.push(Candidate {
                    kind: Kind::Constant,
                    detail: Some("built-in condition".into()),
                    documentation: docs::builtin(b).map(str::to_string),
                    ..keyword(b, replace)
                });
            }
            keywords(&mut out, &["not"]);
            names(&mut out, text, replace, library, false);
        }
        Context::AfterOperand(next) => {
            keywords(&mut out, &["and", "or"]);
            match next {
                Next::Else => keywords(&mut out, &["else"]),
                Next::Item => keywords(&mut out, &ITEM_KEYWORDS),
                Next::Close => {}
            }
        }
        Context::Argument { function, index } => {
            if ["ancestor", "image"].contains(&function.as_str()) {
                if *index == 0 {
                    for s in ["pid1", "any"] {
                        out.push(Candidate {
                            kind: Kind::Constant,
                            detail: Some("selector".into()),
                            documentation: docs::selector(s).map(str::to_string),
                            ..keyword(s, replace)
                        });
                    }
                } else if *index == 1 && function == "ancestor" {
                    // Besides a command line string: an ancestor's executable.
                    let (signature, doc) = docs::function("exe").unwrap_or_default();
                    out.push(Candidate {
                        label: "exe".to_string(),
                        kind: Kind::Function,
                        detail: Some(signature.to_string()),
                        documentation: Some(doc.to_string()),
                        insert: docs::function_snippet("exe"),
                        snippet: true,
                        replace,
                        import: None,
                    });
                }
            } else if LIST_FUNCTIONS.contains(&function.as_str()) {
                names(&mut out, text, replace, library, true);
            }
        }
        Context::Else => keywords(&mut out, &["kill", "deny", "alert"]),
        Context::Enforced => {
            keywords(&mut out, &["alert", "tags"]);
            keywords(&mut out, &ITEM_KEYWORDS);
        }
        Context::Alerted => {
            for (name, priority) in docs::priority_names() {
                out.push(Candidate {
                    kind: Kind::Priority,
                    detail: Some("priority".into()),
                    documentation: Some(docs::priority(priority)),
                    ..keyword(&name, replace)
                });
            }
            keywords(&mut out, &["tags"]);
            keywords(&mut out, &ITEM_KEYWORDS);
        }
        Context::AfterAlert => {
            keywords(&mut out, &["tags"]);
            keywords(&mut out, &ITEM_KEYWORDS);
        }
        Context::Field => {
            for field in Field::ALL {
                out.push(Candidate {
                    label: field.as_str().to_string(),
                    kind: Kind::Field,
                    detail: Some(format!("%{}", field.as_str())),
                    documentation: Some(docs::field(field).to_string()),
                    insert: field.as_str().to_string(),
                    snippet: false,
                    replace,
                    import: None,
                });
            }
        }
    }
    out
}

/// What may follow a complete operand besides `and` and `or`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// A rule's `else`.
    Else,
    /// A new item, after a macro's condition.
    Item,
    /// Only `)`: inside parentheses.
    Close,
}

const ITEM_KEYWORDS: [&str; 5] = ["guard", "rule", "list", "macro", "import"];

/// The functions whose arguments may be list names.
const LIST_FUNCTIONS: [&str; 6] = [
    "name",
    "exe",
    "user",
    "container",
    "k8s_namespace",
    "pod_label",
];

fn keyword(word: &str, replace: Span) -> Candidate {
    Candidate {
        label: word.to_string(),
        kind: Kind::Keyword,
        detail: None,
        documentation: docs::keyword(word).map(str::to_string),
        insert: word.to_string(),
        snippet: false,
        replace,
        import: None,
    }
}

/// The lists (or macros) usable at `replace`: the document's own defined above it, its
/// imports', and the standard library's others with the `import` they need.
fn names(out: &mut Vec<Candidate>, text: &str, replace: Span, library: &Library, lists: bool) {
    let (policy, _) = parser::parse(text);
    let scope = symbols::scope(text, &policy, library);
    let imported: Vec<String> = symbols::imports(&policy)
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    let mut seen: Vec<String> = Vec::new();
    let mut push = |named: &Named, import: Option<(String, usize)>| {
        if named.def.is_list != lists || seen.contains(&named.def.name) {
            return;
        }
        seen.push(named.def.name.clone());
        let detail = match &named.origin {
            Origin::Here => named.def.kind().to_string(),
            Origin::Module { name, .. } => format!("{} from module `{name}`", named.def.kind()),
        };
        out.push(Candidate {
            label: named.def.name.clone(),
            kind: if lists { Kind::List } else { Kind::Macro },
            detail: Some(detail),
            documentation: (!named.def.doc.is_empty()).then(|| named.def.doc.clone()),
            insert: named.def.name.clone(),
            snippet: false,
            replace,
            import,
        });
    };
    for named in &scope {
        // The checker wants a definition above its use (and not around it).
        if matches!(named.origin, Origin::Here) && named.def.span.end > replace.start {
            continue;
        }
        push(named, None);
    }
    let at = import_position(text, &policy);
    for module in library.names() {
        if imported.contains(&module) {
            continue;
        }
        for named in symbols::module_scope(&module, library) {
            push(&named, Some((format!("import \"{module}\"\n"), at)));
        }
    }
}

/// Where a new `import` goes: after the last one, or above the first item and the comment
/// right above it.
fn import_position(text: &str, policy: &ast::Policy) -> usize {
    let line_after = |offset: usize| {
        text.get(offset..)
            .and_then(|rest| rest.find('\n'))
            .map_or(text.len(), |i| offset + i + 1)
    };
    if let Some((_, span)) = symbols::imports(policy).last() {
        return line_after(span.end);
    }
    let Some(first) = policy.items.first() else {
        return text.len();
    };
    let mut at = text
        .get(..first.span().start)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    // Up over the comment lines right above the item.
    while at > 0 {
        let start = text
            .get(..at - 1)
            .and_then(|t| t.rfind('\n'))
            .map_or(0, |i| i + 1);
        if !text
            .get(start..at)
            .unwrap_or_default()
            .trim_start()
            .starts_with('#')
        {
            break;
        }
        at = start;
    }
    at
}

/// The context at `offset` and the span completion replaces (the word being typed).
fn context(text: &str, offset: usize) -> (Context, Span) {
    let line_start = text
        .get(..offset)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    let line = text.get(line_start..offset).unwrap_or_default();
    match line_state(line) {
        LineState::Comment => (Context::Nothing, Span::new(offset, offset)),
        LineState::String(start) => string_context(text, line_start + start, offset),
        LineState::Code => {
            let word = word_around(text, offset, |c| {
                c.is_ascii_alphanumeric() || c == '_' || c == '.'
            });
            // A path pattern or a number being typed: nothing to propose.
            let before = text.get(..word.start).and_then(|t| t.chars().next_back());
            let first = text.get(word.range()).and_then(|w| w.chars().next());
            if before.is_some_and(|c| !c.is_whitespace() && !"([,=".contains(c))
                || first.is_some_and(|c| c.is_ascii_digit())
            {
                return (Context::Nothing, word);
            }
            let (tokens, _) = lexer::lex(text.get(..word.start).unwrap_or_default());
            let tokens: Vec<Token<'_>> = tokens.into_iter().map(|(_, t, _)| t).collect();
            (code_context(&tokens), word)
        }
    }
}

enum LineState {
    Code,
    Comment,
    /// In a string that starts at this byte of the line.
    String(usize),
}

/// Whether the end of `line` (the text before the cursor on its line) is in code, a comment
/// or a string.
fn line_state(line: &str) -> LineState {
    let mut string: Option<usize> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match (string, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(_), '"') => string = None,
            (Some(_), _) => {}
            (None, '"') => string = Some(i),
            (None, '#') => return LineState::Comment,
            (None, _) => {}
        }
    }
    string.map_or(LineState::Code, LineState::String)
}

/// Completion inside a string starting at `start`: a module name, or an alert field.
fn string_context(text: &str, start: usize, offset: usize) -> (Context, Span) {
    let (tokens, _) = lexer::lex(text.get(..start).unwrap_or_default());
    let last = tokens.last().map(|t| &t.1);
    if last == Some(&Token::Import) {
        let word = word_around(text, offset, |c| {
            c.is_ascii_alphanumeric() || "_-".contains(c)
        });
        return (Context::ModuleInString, word);
    }
    let before_last = tokens.len().checked_sub(2).map(|i| &tokens[i].1);
    let message = matches!(
        (before_last, last),
        (_, Some(Token::Alert)) | (Some(Token::Alert), Some(Token::Ident(_)))
    );
    let word = word_around(text, offset, |c| {
        c.is_ascii_alphanumeric() || "_.".contains(c)
    });
    // `%` starts a field unless it is the second of `%%`: count the `%`s before the word.
    let percents = text
        .get(start..word.start)
        .unwrap_or_default()
        .chars()
        .rev()
        .take_while(|&c| c == '%')
        .count();
    if message && percents % 2 == 1 {
        (Context::Field, word)
    } else {
        (Context::Nothing, word)
    }
}

/// The span of the word around `offset` made of characters `is_word` accepts.
fn word_around(text: &str, offset: usize, is_word: impl Fn(char) -> bool) -> Span {
    let before = text.get(..offset).unwrap_or_default();
    let start = before
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_word(c))
        .last()
        .map_or(offset, |(i, _)| i);
    let after = text.get(offset..).unwrap_or_default();
    let end = offset
        + after
            .char_indices()
            .find(|&(_, c)| !is_word(c))
            .map_or(after.len(), |(i, _)| i);
    Span::new(start, end)
}

/// The context after `tokens`, from the last item's first token on.
fn code_context(tokens: &[Token<'_>]) -> Context {
    let start = tokens.iter().rposition(parser::starts_item);
    let Some(start) = start else {
        return Context::Item;
    };
    let item = &tokens[start..];
    match item {
        [Token::Import] => Context::Module,
        [Token::Import, Token::Str(_), ..] => Context::Item,
        [Token::Rule, Token::Str(_)] => Context::Guard,
        [
            Token::List,
            Token::Ident(_),
            Token::Equals,
            Token::LBracket,
            rest @ ..,
        ] => match rest.last() {
            None | Some(Token::Comma) => Context::ListItem,
            Some(Token::RBracket) => Context::Item,
            _ => Context::Nothing,
        },
        [Token::Macro, Token::Ident(_), Token::Equals, rest @ ..] => match condition(rest) {
            Some(Context::AfterOperand(Next::Else)) => Context::AfterOperand(Next::Item),
            Some(c) => c,
            None => Context::Nothing,
        },
        [Token::Guard, rest @ ..] => rule_context(rest),
        _ => Context::Nothing,
    }
}

/// Where in a rule the tokens after `guard` leave the cursor.
fn rule_context(tokens: &[Token<'_>]) -> Context {
    let operation = matches!(
        tokens.first(),
        Some(Token::Open | Token::Read | Token::Write | Token::Exec)
    );
    let objects_start = usize::from(operation);
    let Some(allow) = tokens.iter().position(|t| *t == Token::Allow) else {
        return Context::Objects {
            operation: tokens.is_empty(),
            allow: tokens.len() > objects_start,
        };
    };
    let after = &tokens[allow + 1..];
    // The condition ends at an `else` outside parentheses (there are none inside anyway).
    let Some(els) = after.iter().position(|t| *t == Token::Else) else {
        return condition(after).unwrap_or(Context::Nothing);
    };
    let tail = &after[els + 1..];
    if let Some(tags) = tail.iter().position(|t| *t == Token::Tags) {
        return match &tail[tags + 1..] {
            [Token::LBracket, .., Token::RBracket] => Context::Item,
            _ => Context::Nothing,
        };
    }
    match tail {
        [] => Context::Else,
        [Token::Kill | Token::Deny] => Context::Enforced,
        [Token::Kill | Token::Deny, Token::Alert] | [Token::Alert] => Context::Alerted,
        [
            ..,
            Token::Alert,
            Token::Ident(_) | Token::Alert | Token::Str(_),
        ]
        | [.., Token::Alert, Token::Ident(_), Token::Str(_)] => Context::AfterAlert,
        _ => Context::Nothing,
    }
}

/// The context after the tokens of a condition; `None` if they cannot start one.
fn condition(tokens: &[Token<'_>]) -> Option<Context> {
    // Open parentheses: a call's (function and argument index) or grouping (`None`).
    let mut open: Vec<Option<(String, usize)>> = Vec::new();
    let mut operand = true;
    let mut previous: Option<&Token<'_>> = None;
    for token in tokens {
        match token {
            Token::LParen => match previous {
                Some(Token::Ident(f)) => open.push(Some((f.to_string(), 0))),
                _ => open.push(None),
            },
            Token::RParen => {
                open.pop()?;
                operand = false;
            }
            Token::Comma => match open.last_mut() {
                Some(Some((_, index))) => *index += 1,
                _ => return None,
            },
            Token::And | Token::Or | Token::Not => operand = true,
            Token::Ident(_) if !matches!(open.last(), Some(Some(_))) => operand = false,
            _ => {}
        }
        previous = Some(token);
    }
    Some(match open.last() {
        Some(Some((function, index))) => Context::Argument {
            function: function.clone(),
            index: *index,
        },
        _ if operand => Context::Operand,
        Some(None) => Context::AfterOperand(Next::Close),
        None => Context::AfterOperand(Next::Else),
    })
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Context {
        let offset = text.find('|').expect("cursor");
        let text = text.replace('|', "");
        context(&text, offset).0
    }

    #[test]
    fn contexts() {
        assert_eq!(at("|"), Context::Item);
        assert_eq!(at("guard /a allow tty else kill\n|"), Context::Enforced);
        assert_eq!(at("import |"), Context::Module);
        assert_eq!(at("import \"k|"), Context::ModuleInString);
        assert_eq!(at("import \"k8s\"\ngu|"), Context::Item);
        assert_eq!(at("rule \"x\" |"), Context::Guard);
        assert_eq!(
            at("guard |"),
            Context::Objects {
                operation: true,
                allow: false
            }
        );
        assert_eq!(
            at("guard read |"),
            Context::Objects {
                operation: false,
                allow: false
            }
        );
        assert_eq!(
            at("guard read /a |"),
            Context::Objects {
                operation: false,
                allow: true
            }
        );
        assert_eq!(at("guard /a/|"), Context::Nothing);
        assert_eq!(at("guard /a allow |"), Context::Operand);
        assert_eq!(at("guard /a allow not (tty or a|"), Context::Operand);
        assert_eq!(
            at("guard /a allow tty |"),
            Context::AfterOperand(Next::Else)
        );
        assert_eq!(
            at("guard /a allow (tty |"),
            Context::AfterOperand(Next::Close)
        );
        assert_eq!(
            at("guard /a allow ancestor(|"),
            Context::Argument {
                function: "ancestor".into(),
                index: 0
            }
        );
        assert_eq!(
            at("guard /a allow name(\"sh\", s|"),
            Context::Argument {
                function: "name".into(),
                index: 1
            }
        );
        assert_eq!(at("guard /a allow tty else |"), Context::Else);
        assert_eq!(at("guard /a allow tty else kill alert |"), Context::Alerted);
        assert_eq!(at("guard /a allow tty else alert crit|"), Context::Alerted);
        assert_eq!(
            at("guard /a allow tty else alert critical |"),
            Context::AfterAlert
        );
        assert_eq!(
            at("guard /a allow tty else alert info \"%proc.|\""),
            Context::Field
        );
        assert_eq!(
            at("guard /a allow tty else alert info \"100%%|\""),
            Context::Nothing
        );
        assert_eq!(
            at("guard /a allow tty else alert info \"x\" tags [a, |"),
            Context::Nothing
        );
        assert_eq!(at("guard /a allow tty else kill tags [a] |"), Context::Item);
        assert_eq!(at("list l = [|"), Context::ListItem);
        assert_eq!(at("list l = [/a, |"), Context::ListItem);
        assert_eq!(at("macro m = |"), Context::Operand);
        assert_eq!(at("macro m = tty |"), Context::AfterOperand(Next::Item));
        assert_eq!(at("guard /a # allow |"), Context::Nothing);
        assert_eq!(at("guard /a allow uid(1|"), Context::Nothing);
    }

    #[test]
    fn imports_go_after_the_last_import_or_above_the_first_item() {
        let text = "# header\n\nimport \"net\"\n# doc\nguard /a allow tty else kill\n";
        let (policy, _) = parser::parse(text);
        assert_eq!(
            import_position(text, &policy),
            text.find("# doc").expect("doc")
        );
        let text = "# header\n\n# doc\nguard /a allow tty else kill\n";
        let (policy, _) = parser::parse(text);
        assert_eq!(
            import_position(text, &policy),
            text.find("# doc").expect("doc")
        );
    }
}

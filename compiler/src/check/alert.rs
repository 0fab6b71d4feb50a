//! Alert clauses (priorities, and the `%field` references of messages),
//! tags and rule names: what ends up in an alert.

use super::Checker;
use super::objects::default_rule_name;
use crate::checked::{Alert, Enforce, Field, MessagePart, Priority};
use crate::diag::{Diagnostic, codes, list, suggest};
use crate::syntax::ast;

impl Checker<'_, '_> {
    /// `tags [TAG, …]`: names or strings, duplicates removed, order kept.
    pub(super) fn tags(&mut self, tags: Option<&ast::Tags>) -> Option<Vec<String>> {
        let Some(tags) = tags else {
            return Some(Vec::new());
        };
        let before = self.error_count();
        let mut out: Vec<String> = Vec::new();
        for item in &tags.items {
            let tag = match item {
                ast::Value::Name(name) => name.name.clone(),
                ast::Value::Literal(lit) if !lit.is_quoted() => {
                    self.error(
                        Diagnostic::error(
                            codes::INVALID_TAG,
                            format!("the tag `{}` is a path pattern", lit.text),
                            lit.span,
                            "not a tag",
                        )
                        .with_help(format!(
                            "tags are names or strings: write `\"{}\"`",
                            lit.text
                        )),
                    );
                    continue;
                }
                ast::Value::Literal(lit) if lit.text.trim().is_empty() => {
                    self.error(Diagnostic::error(
                        codes::INVALID_TAG,
                        "empty tag",
                        lit.span,
                        "empty",
                    ));
                    continue;
                }
                ast::Value::Literal(lit) => lit.text.clone(),
            };
            if !out.contains(&tag) {
                out.push(tag);
            }
        }
        (self.error_count() == before).then_some(out)
    }

    /// `rule "NAME"`, or the default name.
    pub(super) fn rule_name(&mut self, rule: &ast::Rule) -> Option<String> {
        let Some(name) = &rule.name else {
            return Some(default_rule_name(rule));
        };
        if name.value.value.trim().is_empty() {
            self.error(
                Diagnostic::error(
                    codes::EMPTY_RULE_NAME,
                    "empty rule name",
                    name.value.span,
                    "empty",
                )
                .with_help(format!(
                    "name the rule, or remove `rule \"\"` to get the default name `{}`",
                    default_rule_name(rule)
                )),
            );
            return None;
        }
        Some(name.value.value.clone())
    }

    pub(super) fn alert(
        &mut self,
        clause: Option<&ast::AlertClause>,
        enforce: Enforce,
    ) -> Option<Alert> {
        let default_priority = match enforce {
            Enforce::Kill | Enforce::Deny => Priority::Critical,
            Enforce::None => Priority::Warning,
        };
        let Some(clause) = clause else {
            return Some(Alert {
                priority: default_priority,
                message: None,
                template: None,
                span: None,
            });
        };
        let priority = match &clause.priority {
            None => Some(default_priority),
            Some(ident) => self.priority(ident),
        };
        let template = match (&clause.priority, &clause.message) {
            (_, None) => Some(None),
            (None, Some(message)) => {
                self.error(
                    Diagnostic::error(
                        codes::MESSAGE_WITHOUT_PRIORITY,
                        "an alert message needs a priority before it",
                        message.span,
                        "message without a priority",
                    )
                    .with_help(format!(
                        "write a priority after `alert`, e.g. `alert {} {}`",
                        default_priority.as_str().to_lowercase(),
                        truncate(&format!("\"{}\"", message.raw))
                    )),
                );
                None
            }
            (Some(_), Some(message)) => self.message(message).map(Some),
        };
        Some(Alert {
            priority: priority?,
            message: clause.message.as_ref().map(|m| m.value.clone()),
            template: template?,
            span: Some(clause.span),
        })
    }

    fn priority(&mut self, ident: &ast::Ident) -> Option<Priority> {
        let priority = Priority::from_name(&ident.name);
        if priority.is_none() {
            let names = Priority::ALL.map(|p| p.as_str().to_lowercase());
            let suggestion = suggest(&ident.name, names.iter().map(String::as_str));
            self.error(
                Diagnostic::error(
                    codes::UNKNOWN_PRIORITY,
                    format!("unknown priority `{}`", ident.name),
                    ident.span,
                    "not a priority",
                )
                .with_help(match suggestion {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "the priorities are {}",
                        list(&names.map(|n| format!("`{n}`")), "and")
                    ),
                }),
            );
        }
        priority
    }

    /// Resolves the `%field` references of an alert message. Positions are
    /// taken from the raw source text, so an error underlines exactly the
    /// `%field` the user wrote; the template is built from the unescaped
    /// value. Both scans agree because no escape sequence contains `%` or a
    /// field-name character.
    fn message(&mut self, message: &ast::StrLit) -> Option<Vec<MessagePart>> {
        let before = self.error_count();
        // +1: the raw text starts after the opening quote.
        let span_of =
            |range: std::ops::Range<usize>| message.span.inner(range.start + 1..range.end + 1);
        for piece in scan_message(&message.raw) {
            match piece {
                Piece::Field(range) => {
                    let name = message
                        .raw
                        .get(range.start + 1..range.end)
                        .unwrap_or_default();
                    if Field::from_name(name).is_none() {
                        let fields = Field::ALL.map(Field::as_str);
                        self.error(
                            Diagnostic::error(
                                codes::UNKNOWN_FIELD,
                                format!("unknown field `%{name}` in alert message"),
                                span_of(range),
                                "unknown field",
                            )
                            .with_help(match suggest(name, fields) {
                                Some(s) => format!("did you mean `%{s}`?"),
                                None => format!(
                                    "the fields are {}; write `%%` for a literal `%`",
                                    list(&fields.map(|f| format!("`%{f}`")), "and")
                                ),
                            }),
                        );
                    }
                }
                Piece::LonePercent(at) => self.error(
                    Diagnostic::error(
                        codes::LONE_PERCENT,
                        "`%` in an alert message must be followed by a field name",
                        span_of(at..at + 1),
                        "lone `%`",
                    )
                    .with_help("write `%%` for a literal `%`, or a field such as `%proc.name`"),
                ),
                Piece::Text(_) | Piece::Percent => {}
            }
        }
        if self.error_count() != before {
            return None;
        }
        let value = &message.value;
        let mut parts: Vec<MessagePart> = Vec::new();
        let push_text = |parts: &mut Vec<MessagePart>, text: &str| match parts.last_mut() {
            Some(MessagePart::Text(last)) => last.push_str(text),
            _ => parts.push(MessagePart::Text(text.to_string())),
        };
        for piece in scan_message(value) {
            match piece {
                Piece::Text(range) => push_text(&mut parts, value.get(range).unwrap_or_default()),
                Piece::Percent => push_text(&mut parts, "%"),
                Piece::Field(range) => {
                    let name = value.get(range.start + 1..range.end).unwrap_or_default();
                    // Checked above on the raw text; the scans agree.
                    parts.extend(Field::from_name(name).map(MessagePart::Field));
                }
                Piece::LonePercent(_) => {}
            }
        }
        Some(parts)
    }
}

/// A piece of an alert message; ranges are byte ranges of the scanned text.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Text(std::ops::Range<usize>),
    /// `%%`
    Percent,
    /// `%name`, range including the `%`.
    Field(std::ops::Range<usize>),
    /// A `%` not followed by a name, at this offset.
    LonePercent(usize),
}

/// Splits a message into text, `%%` and `%field` pieces. A field name is
/// `[A-Za-z_][A-Za-z0-9_.]*` without trailing dots, so a sentence may end
/// right after a field ("… read %fd.name.").
fn scan_message(text: &str) -> Vec<Piece> {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let (mut i, mut text_start) = (0, 0);
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        if text_start < i {
            pieces.push(Piece::Text(text_start..i));
        }
        let name_len = match bytes.get(i + 1) {
            Some(b'%') => {
                pieces.push(Piece::Percent);
                i += 2;
                text_start = i;
                continue;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => bytes[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'.')
                .count(),
            _ => 0,
        };
        let name = &bytes[i + 1..i + 1 + name_len];
        let trailing_dots = name.iter().rev().take_while(|c| **c == b'.').count();
        let end = i + 1 + name_len - trailing_dots;
        if end == i + 1 {
            pieces.push(Piece::LonePercent(i));
        } else {
            pieces.push(Piece::Field(i..end));
        }
        i = end.max(i + 1);
        text_start = i;
    }
    if text_start < bytes.len() {
        pieces.push(Piece::Text(text_start..bytes.len()));
    }
    pieces
}

/// Shortens long user text quoted in a help message.
fn truncate(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}…\"", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::NoModules;
    use crate::check::{Checker, Session};
    use crate::diag::File;
    use crate::span::Span;

    #[test]
    fn scans_fields_percents_and_trailing_dots() {
        assert_eq!(
            scan_message("a %fd.name. b %% c %"),
            vec![
                Piece::Text(0..2),
                Piece::Field(2..10),
                Piece::Text(10..14),
                Piece::Percent,
                Piece::Text(16..19),
                Piece::LonePercent(19),
            ]
        );
        assert_eq!(
            scan_message("%1"),
            vec![Piece::LonePercent(0), Piece::Text(1..2)]
        );
    }

    #[test]
    fn priority_defaults_depend_on_enforcement() {
        let mut modules = NoModules;
        let mut session = Session::new(&mut modules);
        let mut checker = Checker::new(&mut session, File::Main, None);
        let alert = checker.alert(None, Enforce::Kill);
        assert_eq!(alert.map(|a| a.priority), Some(Priority::Critical));
        let clause = ast::AlertClause {
            priority: None,
            message: None,
            span: Span::default(),
        };
        let alert = checker.alert(Some(&clause), Enforce::None);
        assert_eq!(alert.map(|a| a.priority), Some(Priority::Warning));
    }
}

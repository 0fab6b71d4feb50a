//! `guardc fmt`: the canonical layout of a policy file.
//!
//! - one item per line group; a rule's `rule "NAME"` on its own line, then
//!   `guard … allow … else kill|deny` (from `allow` on, on a line of its
//!   own if the whole does not fit in [`MAX_WIDTH`] columns), then its
//!   alert clause (with `else` if there is no enforcement) and its tags, on
//!   lines indented by four spaces;
//! - single spaces between tokens, `, ` between list items and arguments;
//! - a list (or tag list) on one line if that line fits in
//!   [`MAX_WIDTH`] columns and no comment sits inside its brackets,
//!   otherwise one item per line with a trailing comma;
//! - comments kept: a comment after code stays at the end of the line
//!   that code lands on; a comment on its own line goes before the line
//!   holding the code that follows it; blank lines between items are
//!   kept, at most one.
//!
//! Formatting changes only layout, so the formatted file checks to the
//! same policy, and formatting is idempotent. Text is printed as written
//! (string escapes, path patterns, priority spelling, parentheses).

use crate::diag::Diagnostic;
use crate::span::Span;
use crate::syntax::ast;
use crate::syntax::{lexer, parser};

/// Lines longer than this split lists one item per line.
pub const MAX_WIDTH: usize = 100;
const INDENT: usize = 4;

/// The canonical form of `source`, or its syntax errors.
pub fn format_source(source: &str) -> Result<String, Vec<Diagnostic>> {
    let (policy, diagnostics) = parser::parse(source);
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    let comments = comments(source);
    let mut printer = Printer::default();
    for item in &policy.items {
        let inside = |span: Span| {
            comments
                .iter()
                .any(|c| span.start < c.span.start && c.span.start < span.end)
        };
        printer.item(item, &inside);
    }
    Ok(printer.render(source, &comments))
}

/// A `#` comment: its span (without the line break) and whether it is
/// alone on its line.
struct Comment {
    span: Span,
    text: String,
    own_line: bool,
}

/// The comments of a file that lexes without errors: whatever lies
/// between tokens and is not whitespace.
fn comments(source: &str) -> Vec<Comment> {
    let (tokens, _) = lexer::lex(source);
    let mut out = Vec::new();
    let mut gap_start = 0;
    let ends = tokens
        .iter()
        .map(|&(start, _, end)| (start, end))
        .chain([(source.len(), source.len())]);
    for (start, end) in ends {
        let mut at = gap_start;
        while let Some(offset) = source.get(at..start).and_then(|gap| gap.find('#')) {
            let begin = at + offset;
            let line_end = source
                .get(begin..start)
                .and_then(|rest| rest.find('\n'))
                .map_or(start, |n| begin + n);
            let line_start = source
                .get(..begin)
                .and_then(|s| s.rfind('\n'))
                .map_or(0, |n| n + 1);
            let own_line = source
                .get(line_start..begin)
                .is_some_and(|before| before.trim().is_empty());
            out.push(Comment {
                span: Span::new(begin, line_end),
                text: source
                    .get(begin..line_end)
                    .unwrap_or("#")
                    .trim_end()
                    .to_string(),
                own_line,
            });
            at = line_end;
        }
        gap_start = end;
    }
    out
}

/// An output line.
#[derive(Default)]
struct Line {
    indent: usize,
    text: String,
    /// For the first line of an item, the item.
    item: Option<Span>,
    /// Own-line comments printed before it (indices into the comments).
    leading: Vec<usize>,
    trailing: Vec<usize>,
}

#[derive(Default)]
struct Printer {
    lines: Vec<Line>,
    /// (source offset, line): code at that offset is printed on that line.
    anchors: Vec<(usize, usize)>,
}

impl Printer {
    fn line(&mut self, indent: usize, text: String, anchors: &[usize]) {
        let index = self.lines.len();
        self.anchors.extend(anchors.iter().map(|&a| (a, index)));
        self.lines.push(Line {
            indent,
            text,
            ..Line::default()
        });
    }

    fn item(&mut self, item: &ast::Item, inside: &dyn Fn(Span) -> bool) {
        let first = self.lines.len();
        match item {
            ast::Item::Import(import) => self.line(
                0,
                format!("import {}", string(&import.module)),
                &[import.span.start],
            ),
            ast::Item::List(list) => {
                let head = format!("list {} = ", list.name.name);
                self.bracketed(0, &head, &list.items, list.span, inside);
            }
            ast::Item::Macro(m) => self.line(
                0,
                format!("macro {} = {}", m.name.name, expr(&m.body)),
                &[m.span.start],
            ),
            ast::Item::Rule(rule) => self.rule(rule, inside),
        }
        if let Some(line) = self.lines.get_mut(first) {
            line.item = Some(item.span());
        }
    }

    fn rule(&mut self, rule: &ast::Rule, inside: &dyn Fn(Span) -> bool) {
        if let Some(name) = &rule.name {
            self.line(
                0,
                format!("rule {}", string(&name.value)),
                &[name.span.start],
            );
        }
        let mut head = vec!["guard".to_string()];
        head.extend(rule.operation.map(|o| o.kind.as_str().to_string()));
        head.extend(rule.objects.iter().map(|v| v.source().to_string()));
        let mut condition = vec!["allow".to_string(), expr(&rule.subject)];
        let otherwise = &rule.otherwise;
        let mut anchors = vec![rule.subject.span.start];
        if let Some(enforce) = otherwise.enforce {
            condition.push("else".to_string());
            condition.push(
                match enforce.kind {
                    ast::EnforceKind::Kill => "kill",
                    ast::EnforceKind::Deny => "deny",
                }
                .to_string(),
            );
            anchors.push(otherwise.span.start);
        }
        let (head, condition) = (head.join(" "), condition.join(" "));
        // A long rule puts its condition on a line of its own.
        if head.len() + 1 + condition.len() <= MAX_WIDTH {
            anchors.push(rule.keyword.start);
            self.line(0, format!("{head} {condition}"), &anchors);
        } else {
            self.line(0, head, &[rule.keyword.start]);
            self.line(INDENT, condition, &anchors);
        }
        if let Some(alert) = &otherwise.alert {
            let mut words = Vec::new();
            let mut anchors = vec![alert.span.start];
            if otherwise.enforce.is_none() {
                words.push("else".to_string());
                anchors.push(otherwise.span.start);
            }
            words.push("alert".to_string());
            words.extend(alert.priority.as_ref().map(|p| p.name.clone()));
            words.extend(alert.message.as_ref().map(string));
            self.line(INDENT, words.join(" "), &anchors);
        }
        if let Some(tags) = &rule.tags {
            self.bracketed(INDENT, "tags ", &tags.items, tags.span, inside);
        }
    }

    /// `HEAD[a, b]` on one line, or one item per line. `span` runs from
    /// the construct's first token to its closing `]`.
    fn bracketed(
        &mut self,
        indent: usize,
        head: &str,
        items: &[ast::Value],
        span: Span,
        inside: &dyn Fn(Span) -> bool,
    ) {
        let sources: Vec<&str> = items.iter().map(ast::Value::source).collect();
        let one_line = format!("{head}[{}]", sources.join(", "));
        let close = span.end.saturating_sub(1);
        if items.is_empty() || (indent + one_line.len() <= MAX_WIDTH && !inside(span)) {
            self.line(indent, one_line, &[span.start]);
            return;
        }
        self.line(indent, format!("{head}["), &[span.start]);
        for (item, source) in items.iter().zip(sources) {
            self.line(indent + INDENT, format!("{source},"), &[item.span().start]);
        }
        self.line(indent, "]".to_string(), &[close]);
    }

    /// Attaches comments to lines and prints everything.
    fn render(mut self, source: &str, comments: &[Comment]) -> String {
        self.anchors.sort_unstable();
        let mut at_end = Vec::new();
        for (i, comment) in comments.iter().enumerate() {
            let start = comment.span.start;
            if comment.own_line {
                // Before the line holding the code that follows.
                let next = self.anchors.partition_point(|&(a, _)| a < start);
                match self.anchors.get(next) {
                    Some(&(_, line)) => self.lines[line].leading.push(i),
                    None => at_end.push(i),
                }
            } else {
                // After the line holding the code before it.
                let before = self.anchors.partition_point(|&(a, _)| a < start);
                match before.checked_sub(1).and_then(|b| self.anchors.get(b)) {
                    Some(&(_, line)) => self.lines[line].trailing.push(i),
                    None => at_end.push(i),
                }
            }
        }
        let mut out = Output {
            text: String::new(),
            source,
            previous_end: None,
        };
        for line in &self.lines {
            let (top, moved): (Vec<usize>, Vec<usize>) = match line.item {
                Some(item) => line
                    .leading
                    .iter()
                    .partition(|&&c| comments[c].span.start < item.start),
                None => (Vec::new(), line.leading.clone()),
            };
            for &c in &top {
                out.top_level(comments[c].span);
                out.push(line.indent, &comments[c].text);
            }
            if let Some(item) = line.item {
                out.top_level(item);
            }
            for &c in &moved {
                out.push(line.indent, &comments[c].text);
            }
            let mut text = line.text.clone();
            for &c in &line.trailing {
                text.push(' ');
                text.push_str(&comments[c].text);
            }
            out.push(line.indent, &text);
        }
        for &c in &at_end {
            out.top_level(comments[c].span);
            out.push(0, &comments[c].text);
        }
        out.text
    }
}

struct Output<'s> {
    text: String,
    source: &'s str,
    /// The end of the previous top-level element (item or comment between
    /// items), to keep a blank line the source has after it.
    previous_end: Option<usize>,
}

impl Output<'_> {
    /// Starts a top-level element: a blank line first if the source has
    /// one between the previous element and this one.
    fn top_level(&mut self, span: Span) {
        if let Some(end) = self.previous_end
            && end <= span.start
            && self.source.get(end..span.start).is_some_and(has_blank_line)
        {
            self.text.push('\n');
        }
        self.previous_end = Some(self.previous_end.unwrap_or(0).max(span.end));
    }

    fn push(&mut self, indent: usize, text: &str) {
        self.text.extend(std::iter::repeat_n(' ', indent));
        self.text.push_str(text);
        self.text.push('\n');
    }
}

/// Whether `gap` (whitespace and comments) contains an empty line.
fn has_blank_line(gap: &str) -> bool {
    let mut lines = gap.split('\n');
    lines.next(); // The rest of the previous element's line.
    let mut lines: Vec<&str> = lines.collect();
    lines.pop(); // The start of the next element's line.
    lines.iter().any(|l| l.trim().is_empty())
}

fn string(lit: &ast::StrLit) -> String {
    format!("\"{}\"", lit.raw)
}

/// `NAME(ARG, …)`, a call among the arguments (`exe(…)` in `ancestor`) written the same way.
/// Recursion is bounded by the parser's operator limit (each call has a `(`).
fn call(call_: &ast::Call) -> String {
    let args: Vec<String> = call_
        .args
        .iter()
        .map(|a| match a {
            ast::Arg::Ident(i) => i.name.clone(),
            ast::Arg::Str(s) => string(s),
            ast::Arg::Path(p) => p.source.clone(),
            ast::Arg::Number(n) => n.text.clone(),
            ast::Arg::Call(inner) => call(inner),
        })
        .collect();
    format!("{}({})", call_.function.name, args.join(", "))
}

/// A condition as written, parentheses kept, single spaces. Recursion is
/// bounded by the parser's operator limit.
fn expr(e: &ast::Expr) -> String {
    match &e.kind {
        ast::ExprKind::Call(c) => call(c),
        ast::ExprKind::Name(n) => n.name.clone(),
        ast::ExprKind::And(a, b) => format!("{} and {}", expr(a), expr(b)),
        ast::ExprKind::Or(a, b) => format!("{} or {}", expr(a), expr(b)),
        ast::ExprKind::Not(a) => format!("not {}", expr(a)),
        ast::ExprKind::Paren(a) => format!("({})", expr(a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(source: &str) -> String {
        let once = format_source(source).expect("parses");
        assert_eq!(
            format_source(&once).expect("parses"),
            once,
            "not idempotent"
        );
        once
    }

    #[test]
    fn canonical_layout() {
        let source = "# head\n\n\nimport  \"k8s\"\nlist s=[ \"a\",/b ,c,]\nmacro m=(tty  or\n uid(0))and not x\n\
                      rule \"r\" guard read s /c allow m else kill alert critical \"msg\" tags [a,\"b\"]\n\
                      guard /d allow tty else alert # trailing\n# last\n";
        assert_eq!(
            fmt(source),
            "# head\n\nimport \"k8s\"\nlist s = [\"a\", /b, c]\nmacro m = (tty or uid(0)) and not x\n\
             rule \"r\"\nguard read s /c allow m else kill\n    alert critical \"msg\"\n    tags [a, \"b\"]\n\
             guard /d allow tty\n    else alert # trailing\n# last\n"
        );
    }

    #[test]
    fn long_lists_and_comments_inside_split() {
        let long: Vec<String> = (0..12)
            .map(|i| format!("/srv/some/long/path/{i}"))
            .collect();
        let source = format!(
            "list l = [{}]\nlist c = [/a, # why\n /b]\n",
            long.join(", ")
        );
        let out = fmt(&source);
        assert!(
            out.starts_with("list l = [\n    /srv/some/long/path/0,\n"),
            "{out}"
        );
        assert!(
            out.ends_with("list c = [\n    /a, # why\n    /b,\n]\n"),
            "{out}"
        );
    }

    #[test]
    fn long_rules_put_the_condition_on_its_own_line() {
        let subject = (0..8)
            .map(|i| format!("uid({i})"))
            .collect::<Vec<_>>()
            .join(" or ");
        let source =
            format!("guard read /srv/some/where/** /etc/other/place/* allow {subject} else kill\n");
        assert_eq!(
            fmt(&source),
            format!(
                "guard read /srv/some/where/** /etc/other/place/*\n    allow {subject} else kill\n"
            )
        );
    }

    #[test]
    fn comments_inside_items_move_before_them() {
        let source = "guard /a # one\n  # two\n  allow tty # three\n  else kill\n";
        assert_eq!(
            fmt(source),
            "# two\nguard /a allow tty else kill # one # three\n"
        );
    }

    #[test]
    fn calls_among_arguments_are_written_like_calls() {
        assert_eq!(
            fmt("guard /a allow ancestor( pid1 ,exe( /usr/bin/* ,\"/x y\" ,l ))else kill\n"),
            "guard /a allow ancestor(pid1, exe(/usr/bin/*, \"/x y\", l)) else kill\n"
        );
    }

    #[test]
    fn syntax_errors_are_refused() {
        assert!(format_source("guard /a allow").is_err());
        assert_eq!(fmt(""), "");
        assert_eq!(fmt("# only\n\n# comments"), "# only\n\n# comments\n");
    }
}

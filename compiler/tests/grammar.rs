//! The TextMate grammar (`grammar/guard.tmLanguage.json`) against the compiler's lexer: every
//! file in `policies/` and `stdlib/`, and a file of the rarer syntax, tokenized by the real
//! TextMate engine (`grammar/test/tokenize.mjs`, vscode-textmate + vscode-oniguruma under
//! Node), must give every token a scope, and the scope the lexer's token calls for: keywords,
//! strings, paths, comments, alert fields, priorities, functions, names.
//!
//! Also here, because it needs Node too: the VS Code extension's tests
//! (`editors/vscode/test/`), which run it against stand-ins for VS Code.
//!
//! Needs `node` and `npm ci --prefix grammar/test`. Outside CI a missing prerequisite skips
//! the test and says why; in CI (`CI=true`) it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use guard_compiler::check::{BUILTIN_CONDITIONS, FUNCTIONS};
use guard_compiler::checked::Priority;
use guard_compiler::syntax::lexer::{self, Token};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The syntax the shipped files do not use.
const RARE: &str = "# Everything else.\n\
import \"net\"\n\
list l = [/a/\\[x\\]/**/*.k?y, \"/q s/\\\"*\", x.y]\n\
guard deny /a allow ancestr(any, \"a\\tb\") or (uid(0) and not entered) else deny\n    \
alert alert \"100%% of %proc.name.\" tags [t, \"T1\"]\n\
guard write 'single' allow nobody or ancestor(pid1,exe(/usr/sbin/sshd, l)) else alert INFO\n\
guard exec \"curl\" allow tty else kill alert critical \"x\" @\n";

#[test]
fn textmate_grammar_scopes_match_the_lexer() {
    let Some(node) = prerequisites(true) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("guard-grammar-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let rare = dir.join("rare.grd");
    std::fs::write(&rare, RARE).expect("write");
    let mut files = Vec::new();
    for sub in ["policies", "stdlib"] {
        files.extend(grd_files(&root().join(sub)));
    }
    assert!(files.len() >= 6, "no policies found");
    files.push(rare);
    let expectations: Vec<Value> = files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("readable");
            json!({ "path": path, "expect": expectations(&text) })
        })
        .collect();
    let spec = dir.join("expectations.json");
    std::fs::write(&spec, json!({ "files": expectations }).to_string()).expect("write");
    let out = Command::new(node)
        .arg(root().join("grammar/test/tokenize.mjs"))
        .arg(&spec)
        .output()
        .expect("node runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
}

#[test]
fn vscode_extension_starts_guardc_lsp() {
    let Some(node) = prerequisites(false) else {
        return;
    };
    let out = Command::new(node)
        .args(["--test", "test/"])
        .current_dir(root().join("editors/vscode"))
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `node`, if it (and, with `packages`, what the grammar script needs) is here; `None` after
/// saying why not, outside CI.
fn prerequisites(packages: bool) -> Option<&'static str> {
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let installed = root().join("grammar/test/node_modules/vscode-textmate");
    let missing = if !node_ok {
        "`node` is not installed"
    } else if packages && !installed.exists() {
        "the TextMate engine is not installed (run `npm ci --prefix grammar/test`)"
    } else {
        return Some("node");
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("grammar test: {missing}");
    }
    eprintln!("skipped: {missing}");
    None
}

fn grd_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "grd"))
        .collect();
    v.sort();
    v
}

/// The scope (a prefix) each token of the lexer's should have, at its first character, and
/// those of comments and alert fields.
fn expectations(text: &str) -> Vec<Value> {
    let (tokens, _) = lexer::lex(text);
    let mut out = Vec::new();
    let mut expect = |at: usize, len: usize, scope: &str| {
        let (line, character) = utf16_position(text, at);
        out.push(json!({
            "line": line,
            "character": character,
            "scope": scope,
            "text": text.get(at..at + len).unwrap_or_default(),
        }));
    };
    let kind = |i: usize| tokens.get(i).map(|t| &t.1);
    let mut gap_start = 0;
    for (i, (start, token, end)) in tokens.iter().enumerate() {
        // A comment is whatever starts with `#` between tokens.
        if let Some(hash) = text.get(gap_start..*start).and_then(|g| g.find('#')) {
            expect(gap_start + hash, 1, "comment.line.number-sign.guard");
            // Several comment lines may sit in one gap.
            let gap = &text[gap_start..*start];
            for (offset, _) in gap.match_indices("\n").filter(|(o, _)| *o > hash) {
                if gap[offset + 1..].trim_start().starts_with('#') {
                    let h = offset + 1 + gap[offset + 1..].find('#').unwrap_or(0);
                    expect(gap_start + h, 1, "comment.line.number-sign.guard");
                }
            }
        }
        gap_start = *end;
        let previous = i.checked_sub(1).and_then(kind);
        let scope = match token {
            Token::Guard | Token::Allow | Token::Else => "keyword.control.guard",
            Token::Kill | Token::Deny => "keyword.control.action.guard",
            Token::Import => "keyword.control.import.guard",
            Token::Rule => "storage.type.rule.guard",
            Token::List | Token::Macro => "storage.type",
            Token::And | Token::Or | Token::Not => "keyword.operator.logical.guard",
            Token::Open | Token::Read | Token::Write | Token::Exec => {
                "keyword.other.operation.guard"
            }
            Token::Tags => "keyword.other.tags.guard",
            Token::Alert if previous == Some(&Token::Alert) => "constant.language.priority.guard",
            Token::Alert => "keyword.other.alert.guard",
            Token::LParen | Token::RParen | Token::LBracket | Token::RBracket | Token::Comma => {
                "punctuation"
            }
            Token::Equals => "keyword.operator.assignment.guard",
            Token::Path(_) => "string.unquoted.path.guard",
            Token::Number(_) => "constant.numeric",
            Token::Str(_) => {
                let message = matches!(previous, Some(Token::Alert))
                    || (matches!(previous, Some(Token::Ident(_)))
                        && i >= 2
                        && kind(i - 2) == Some(&Token::Alert));
                if message {
                    fields(text, *start, *end, &mut expect);
                }
                "string.quoted.double.guard"
            }
            Token::Ident(name) => {
                let next = kind(i + 1);
                let before = i.checked_sub(2).and_then(kind);
                if previous == Some(&Token::Alert) && Priority::from_name(name).is_some() {
                    "constant.language.priority.guard"
                } else if next == Some(&Token::LParen) && FUNCTIONS.contains(name) {
                    "support.function.guard"
                } else if next == Some(&Token::LParen) {
                    "variable.function.guard"
                } else if previous == Some(&Token::LParen)
                    && matches!(before, Some(Token::Ident("ancestor" | "image")))
                    && ["pid1", "any"].contains(name)
                {
                    "constant.language.selector.guard"
                } else if matches!(previous, Some(Token::List | Token::Macro)) {
                    "entity.name"
                } else if BUILTIN_CONDITIONS.contains(name) {
                    "constant.language.guard"
                } else {
                    "variable.other.guard"
                }
            }
            Token::Error => match text.get(*start..*end) {
                Some(t) if t.starts_with('\'') => "invalid.illegal.single-quoted.guard",
                _ => "invalid.illegal",
            },
        };
        expect(*start, end - start, scope);
    }
    out
}

/// The `%field`s of the message string at `start..end`.
fn fields(text: &str, start: usize, end: usize, expect: &mut impl FnMut(usize, usize, &str)) {
    let raw = text.get(start..end).unwrap_or_default().as_bytes();
    let mut i = 0;
    while i < raw.len() {
        match (raw[i], raw.get(i + 1)) {
            (b'%', Some(b'%')) => {
                expect(start + i, 2, "constant.character.escape.percent.guard");
                i += 2;
            }
            (b'%', Some(c)) if c.is_ascii_alphabetic() || *c == b'_' => {
                expect(start + i, 1, "variable.other.field.guard");
                i += 1;
            }
            _ => i += 1,
        }
    }
}

/// 0-based line and UTF-16 column of a byte offset, as JavaScript counts.
fn utf16_position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count();
    (line, text[line_start..offset].encode_utf16().count())
}

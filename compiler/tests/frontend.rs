//! Snapshot tests for the front end: one snapshot per file in
//! `tests/frontend/`, capturing exactly what a user would see (the rendered
//! diagnostics without color, then the JSON rendering), or the checked
//! policy for a file without errors.
//!
//! Files named `good_*` must check cleanly and `bad_*` must not, so a
//! snapshot can never silently flip from one to the other.
//!
//! To accept changed output: `INSTA_UPDATE=always cargo test -p guard-compiler
//! --test frontend`, then review the diff of `tests/snapshots/`.

use std::path::{Path, PathBuf};

use guard_compiler::checked::{self, MessagePart};
use guard_compiler::diag::{Diagnostic, render_diagnostics, render_json};
use guard_compiler::frontend::check_source;
use guard_compiler::span::Span;

fn inputs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/frontend");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/frontend exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "grd"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
}

/// What `guardc check` would print for this file.
fn run(file_name: &str, bytes: &[u8]) -> Result<String, String> {
    let render = |source: &str, diagnostics: &[Diagnostic]| {
        format!(
            "{}\n--- json ---\n{}",
            render_diagnostics(file_name, source, diagnostics, false),
            render_json(file_name, source, diagnostics)
        )
    };
    // Like the CLI: invalid UTF-8 is decoded lossily and then reported by
    // the front end, with its location.
    let text = String::from_utf8_lossy(bytes);
    let source = text.as_ref();
    match check_source(file_name, source) {
        Ok(policy) => Ok(describe(&policy)),
        Err(diagnostics) => Err(render(source, &diagnostics)),
    }
}

/// A compact, complete listing of a checked policy.
fn describe(policy: &checked::Policy) -> String {
    let mut out = String::new();
    for rule in &policy.rules {
        let span = |s: Span| format!("{}..{}", s.start, s.end);
        out += &format!(
            "rule `{}` at {}:{} ({})\n",
            rule.name,
            rule.line,
            rule.column,
            span(rule.span)
        );
        for p in &rule.patterns {
            out += &format!("  pattern {:?} ({})\n", p.text, span(p.span));
        }
        out += &format!("  subject {}\n", rule.subject);
        out += &format!("  enforce {:?}\n", rule.enforce);
        let alert = &rule.alert;
        out += &format!(
            "  alert {} ({})\n",
            alert.priority.as_str(),
            alert.span.map_or("implicit".to_string(), span)
        );
        if let Some(message) = &alert.message {
            out += &format!("    message {message:?}\n");
        }
        for part in alert.template.iter().flatten() {
            match part {
                MessagePart::Text(text) => out += &format!("      text {text:?}\n"),
                MessagePart::Field(field) => out += &format!("      field {}\n", field.as_str()),
            }
        }
    }
    out
}

#[test]
fn snapshots() {
    for path in inputs() {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 file name");
        let bytes = std::fs::read(&path).expect("readable input");
        let file_name = format!("{stem}.grd");
        let output = match run(&file_name, &bytes) {
            Ok(text) => {
                assert!(stem.starts_with("good_"), "{stem} should have failed");
                text
            }
            Err(text) => {
                assert!(
                    stem.starts_with("bad_"),
                    "{stem} should have passed:\n{text}"
                );
                text
            }
        };
        insta::with_settings!({
            input_file => &path,
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(stem, output);
        });
    }
}

/// A small deterministic PRNG (xorshift64*), so the fuzz test needs no
/// extra crates and every failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Byte ranges of the tokens of `source`, for token-level mutations.
fn token_ranges(source: &str) -> Vec<(usize, usize)> {
    guard_compiler::syntax::lexer::lex(source)
        .0
        .iter()
        .map(|&(start, _, end)| (start, end))
        .collect()
}

/// One random edit: delete, duplicate or swap tokens; delete, insert or
/// overwrite bytes; or truncate.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    const INTERESTING: &[&[u8]] = &[
        b"\"",
        b"'",
        b"\\",
        b"%",
        b"%%",
        b"(",
        b")",
        b",",
        b"/",
        b"//",
        b"**",
        b"*",
        b"?",
        b"#",
        b"\n",
        b"guard",
        b"allow",
        b"else",
        b"kill",
        b"deny",
        b"alert",
        b"and",
        b"or",
        b"not",
        b"ancestor",
        b"pid1",
        b"any",
        b".",
        b"..",
        b"\xc3\xa9",
        b"\xff",
        b"\x00",
        b" ",
    ];
    let mut out = input.to_vec();
    let tokens = std::str::from_utf8(input)
        .map(token_ranges)
        .unwrap_or_default();
    match rng.below(7) {
        0 if !tokens.is_empty() => {
            let (s, e) = tokens[rng.below(tokens.len())];
            out.drain(s..e);
        }
        1 if !tokens.is_empty() => {
            let (s, e) = tokens[rng.below(tokens.len())];
            let copy = out[s..e].to_vec();
            out.splice(e..e, [b" ".as_slice(), &copy].concat());
        }
        2 if tokens.len() >= 2 => {
            let (a, b) = (rng.below(tokens.len()), rng.below(tokens.len()));
            let ((s1, e1), (s2, e2)) = (tokens[a.min(b)], tokens[a.max(b)]);
            if e1 <= s2 {
                let mut swapped = out[..s1].to_vec();
                swapped.extend_from_slice(&out[s2..e2]);
                swapped.extend_from_slice(&out[e1..s2]);
                swapped.extend_from_slice(&out[s1..e1]);
                swapped.extend_from_slice(&out[e2..]);
                out = swapped;
            }
        }
        3 if !out.is_empty() => {
            let s = rng.below(out.len());
            let e = (s + 1 + rng.below(8)).min(out.len());
            out.drain(s..e);
        }
        4 => {
            let at = rng.below(out.len() + 1);
            let piece = INTERESTING[rng.below(INTERESTING.len())];
            out.splice(at..at, piece.iter().copied());
        }
        5 if !out.is_empty() => {
            let at = rng.below(out.len());
            out[at] = (rng.next() & 0xff) as u8;
        }
        _ => out.truncate(rng.below(out.len() + 1)),
    }
    out
}

/// Mutated good inputs must never panic the front end or the renderers,
/// and every diagnostic must point inside the text it is rendered against.
#[test]
fn mutated_inputs_never_panic() {
    let seeds: Vec<Vec<u8>> = inputs()
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("good_"))
        })
        .map(|p| std::fs::read(p).expect("readable input"))
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut failures = 0;
    for _ in 0..5000 {
        let mut input = seeds[rng.below(seeds.len())].clone();
        // Several edits in a row reach states one edit cannot.
        for _ in 0..1 + rng.below(4) {
            input = mutate(&mut rng, &input);
        }
        let text = String::from_utf8_lossy(&input).into_owned();
        let diagnostics = match check_source("fuzz.grd", &text) {
            Ok(policy) => {
                assert!(!policy.rules.is_empty());
                continue;
            }
            Err(diagnostics) => diagnostics,
        };
        assert!(!diagnostics.is_empty(), "an error without a diagnostic");
        failures += 1;
        for d in &diagnostics {
            for span in std::iter::once(&d.primary.0).chain(d.secondary.iter().map(|(s, _)| s)) {
                assert!(
                    span.start <= span.end
                        && text.is_char_boundary(span.start)
                        && text.is_char_boundary(span.end),
                    "bad span {span:?} in {d:?} for {text:?}"
                );
            }
        }
        render_diagnostics("fuzz.grd", &text, &diagnostics, true);
        render_json("fuzz.grd", &text, &diagnostics);
    }
    // The mutations must actually exercise the error paths.
    assert!(failures > 1000, "only {failures} mutated inputs failed");
}

/// Conditions are trees, and every pass over them recurses: absurdly deep
/// input must be refused with a diagnostic, not overflow the stack.
#[test]
fn deep_conditions_are_refused() {
    let call = "ancestor(any, \"x\")";
    let inputs = [
        format!("guard /a allow {}{call} else kill", "not ".repeat(100_000)),
        format!(
            "guard /a allow {} else kill",
            vec![call; 100_000].join(" or ")
        ),
        format!(
            "guard /a allow {}{call}{} else kill",
            "(".repeat(100_000),
            ")".repeat(100_000)
        ),
    ];
    for input in inputs {
        let result = check_source("deep.grd", &input);
        let diagnostics = result.expect_err("too deep");
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    }
}

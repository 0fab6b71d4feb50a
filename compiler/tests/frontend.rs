//! Snapshot tests for the front end: one snapshot per file in
//! `tests/frontend/`, capturing exactly what a user would see (the rendered
//! diagnostics without color, then the JSON rendering), or the checked
//! policy for a file without errors.
//!
//! Files named `good_*` must check cleanly and `bad_*` must not, so a
//! snapshot can never silently flip from one to the other. `import`s are
//! resolved against the small test modules in `tests/frontend/modules/`,
//! not the real standard library, which changes independently.
//!
//! To accept changed output: `INSTA_UPDATE=always cargo test -p guard-compiler
//! --test frontend`, then review the diff of `tests/snapshots/`.

use std::path::{Path, PathBuf};

use guard_compiler::checked::{self, MessagePart};
use guard_compiler::diag::{Diagnostic, render_diagnostics, render_json};
use guard_compiler::fmt::format_source;
use guard_compiler::frontend::{Options, check_module, check_source_with};
use guard_compiler::span::Span;

/// The test modules, by a relative path so snapshots name them the same
/// on every machine (cargo runs tests from the package directory).
fn options() -> Options {
    Options {
        stdlib_dir: Some(PathBuf::from("tests/frontend/modules")),
    }
}

fn check_source(file_name: &str, source: &str) -> Result<checked::Policy, Vec<Diagnostic>> {
    check_source_with(file_name, source, &options())
}

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

/// What the front end reports for this file: what `guardc check` prints
/// unless lowering adds to it (that is tested in `tests/cli.rs`).
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
        Ok(policy) if policy.warnings.is_empty() => Ok(describe(&policy)),
        Ok(policy) => Ok(format!(
            "{}\n--- warnings ---\n{}",
            describe(&policy),
            render(source, &policy.warnings)
        )),
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
        out += &format!("  operation {}\n", rule.operation.as_str());
        for o in &rule.objects {
            out += &format!("  object {:?} ({})\n", o.pattern, span(o.span));
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
        if !rule.tags.is_empty() {
            out += &format!("  tags {:?}\n", rule.tags);
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
        b"import",
        b"import \"k8s\"",
        b"import \"cycle_a\"",
        b"list",
        b"list l = [",
        b"macro",
        b"macro m = ",
        b"rule",
        b"rule \"r\"",
        b"open",
        b"read",
        b"write",
        b"exec",
        b"tags [",
        b"[",
        b"]",
        b"=",
        b"tty",
        b"image",
        b"cmdline",
        b"name",
        b"exe",
        b"uid",
        b"0",
        b"4294967295",
        b"shells",
        b"app",
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
    let (mut failures, mut formatted_inputs) = (0, 0);
    for _ in 0..5000 {
        let mut input = seeds[rng.below(seeds.len())].clone();
        // Several edits in a row reach states one edit cannot.
        for _ in 0..1 + rng.below(4) {
            input = mutate(&mut rng, &input);
        }
        let text = String::from_utf8_lossy(&input).into_owned();
        let result = check_source("fuzz.grd", &text);
        if let Ok(formatted) = format_source(&text) {
            formatted_inputs += 1;
            assert_eq!(
                format_source(&formatted).ok(),
                Some(formatted.clone()),
                "{text:?}"
            );
            assert_eq!(
                summary(&check_source("fuzz.grd", &formatted)),
                summary(&result),
                "{text:?} formatted as {formatted:?}"
            );
        }
        let diagnostics = match result {
            Ok(policy) => {
                assert!(!policy.rules.is_empty());
                assert!(policy.rules.iter().all(|r| !r.objects.is_empty()));
                assert!(policy.warnings.iter().all(|w| !w.is_error()));
                continue;
            }
            Err(diagnostics) => diagnostics,
        };
        assert!(
            diagnostics.iter().any(Diagnostic::is_error),
            "a failure without an error: {diagnostics:?}"
        );
        failures += 1;
        for d in &diagnostics {
            for label in std::iter::once(&d.primary).chain(&d.secondary) {
                let (span, file_text) = (label.span, label.file.text(&text));
                assert!(
                    span.start <= span.end
                        && span.end <= file_text.len()
                        && file_text.is_char_boundary(span.start)
                        && file_text.is_char_boundary(span.end),
                    "bad span {span:?} in {d:?} for {text:?}"
                );
            }
        }
        render_diagnostics("fuzz.grd", &text, &diagnostics, true);
        render_json("fuzz.grd", &text, &diagnostics);
    }
    // The mutations must actually exercise the error paths.
    assert!(failures > 1000, "only {failures} mutated inputs failed");
    assert!(
        formatted_inputs > 500,
        "only {formatted_inputs} mutated inputs parsed"
    );
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

/// `n` definitions, one per line, from `line(i)`, then `rest`.
fn generated(n: usize, line: impl Fn(usize) -> String, rest: &str) -> String {
    let mut text: String = (0..n).map(|i| line(i) + "\n").collect();
    text.push_str(rest);
    text
}

fn only_codes(result: Result<checked::Policy, Vec<Diagnostic>>) -> Vec<&'static str> {
    match result {
        Ok(policy) => policy.warnings.iter().map(|d| d.code).collect(),
        Err(diagnostics) => diagnostics.iter().map(|d| d.code).collect(),
    }
}

/// Lists and macros nest through names, which the parser's operator limit
/// does not see: long chains must neither overflow the stack (checking,
/// expanding, dropping) nor take quadratic time, and cycles of any length
/// are one error.
#[test]
fn long_chains_of_definitions() {
    const N: usize = 100_000;
    // A list chain, each adding an item: fine, every item once.
    let lists = generated(
        N,
        |i| match i {
            0 => "list l0 = [/f0]".to_string(),
            i => format!("list l{i} = [l{}, /f{i}, l0]", i - 1),
        },
        &format!("guard l{} allow tty else kill\n", N - 1),
    );
    let policy = check_source("chain.grd", &lists).expect("a long chain is fine");
    assert_eq!(policy.rules[0].objects.len(), N);

    // A ring of lists: one cycle error naming a few of them.
    let ring = generated(
        N,
        |i| format!("list r{i} = [r{}]", (i + 1) % N),
        "guard r0 allow tty else kill\n",
    );
    let diagnostics = check_source("ring.grd", &ring).expect_err("a cycle");
    assert_eq!(only_codes(Err(diagnostics.clone())), ["E0603"]);
    assert!(
        diagnostics[0].message.contains("others"),
        "{}",
        diagnostics[0].message
    );
    assert!(diagnostics[0].secondary.len() < 10);

    // Alias macros: no node each, but a level of expansion each.
    let aliases = generated(
        N,
        |i| match i {
            0 => "macro m0 = tty".to_string(),
            i => format!("macro m{i} = m{}", i - 1),
        },
        &format!("guard /a allow m{} else kill\n", N - 1),
    );
    assert_eq!(only_codes(check_source("alias.grd", &aliases)), ["E0309"]);

    // `not` chains grow linearly (a node and a macro level each); a chain
    // within the limit is fine.
    let nots = generated(
        500,
        |i| match i {
            0 => "macro n0 = tty".to_string(),
            i => format!("macro n{i} = not n{}", i - 1),
        },
        "guard /a allow n499 else kill\n",
    );
    let policy = check_source("nots.grd", &nots).expect("500 nodes is fine");
    assert_eq!(policy.rules[0].subject.size(), 500);

    // Doubling macros: 2^60 atoms once expanded, refused without expanding.
    let doubling = generated(
        60,
        |i| match i {
            0 => "macro d0 = tty or uid(0)".to_string(),
            i => format!("macro d{i} = d{0} and d{0}", i - 1),
        },
        "guard /a allow d59 else kill\n",
    );
    assert_eq!(
        only_codes(check_source("doubling.grd", &doubling)),
        ["E0309"]
    );

    // Doubling lists: each list spliced once, so expansion stays small.
    let lists = generated(
        60,
        |i| match i {
            0 => "list e0 = [/a, /b]".to_string(),
            i => format!("list e{i} = [e{0}, e{0}]", i - 1),
        },
        "guard e59 allow tty else kill\n",
    );
    let policy = check_source("lists.grd", &lists).expect("fine");
    assert_eq!(policy.rules[0].objects.len(), 2);
}

/// What a check produced, without positions (formatting moves code).
fn summary(result: &Result<checked::Policy, Vec<Diagnostic>>) -> String {
    let diagnostics = |ds: &[Diagnostic]| {
        ds.iter()
            .map(|d| format!("{} {} {:?}\n", d.code, d.message, d.help))
            .collect::<String>()
    };
    match result {
        Err(ds) => format!("errors:\n{}", diagnostics(ds)),
        Ok(policy) => {
            let mut out = String::new();
            for r in &policy.rules {
                let objects: Vec<&str> = r.objects.iter().map(|o| o.pattern.as_str()).collect();
                out += &format!(
                    "{:?} {} {objects:?} {} {:?} {} {:?} {:?} {:?}\n",
                    r.name,
                    r.operation.as_str(),
                    r.subject,
                    r.enforce,
                    r.alert.priority.as_str(),
                    r.alert.message,
                    r.alert.template,
                    r.tags
                );
            }
            out + &diagnostics(&policy.warnings)
        }
    }
}

fn grd_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "grd"));
    files.sort();
    files
}

/// `guardc fmt` is idempotent and changes only layout, on every test
/// input that parses and on the shipped standard library and policies
/// (which change independently: only these properties are asserted).
#[test]
fn formatting_is_idempotent_and_keeps_meaning() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("..");
    let stdlib = Options {
        stdlib_dir: Some(root.join("stdlib")),
    };
    let modules = manifest.join("tests/frontend/modules");
    let mut sets: Vec<(PathBuf, Options, bool)> = Vec::new();
    sets.extend(inputs().into_iter().map(|p| (p, options(), false)));
    sets.extend(
        grd_files(&modules)
            .into_iter()
            .map(|p| (p, options(), true)),
    );
    sets.extend(
        grd_files(&root.join("stdlib"))
            .into_iter()
            .map(|p| (p, stdlib.clone(), true)),
    );
    sets.extend(
        grd_files(&root.join("policies"))
            .into_iter()
            .map(|p| (p, stdlib.clone(), false)),
    );
    let mut formatted_any = 0;
    for (path, options, module) in sets {
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("readable")).into_owned();
        let check = |source: &str| -> Result<checked::Policy, Vec<Diagnostic>> {
            if module {
                check_module(source, &options).map(|warnings| checked::Policy {
                    rules: Vec::new(),
                    warnings,
                })
            } else {
                check_source_with("input.grd", source, &options)
            }
        };
        let Ok(formatted) = format_source(&text) else {
            continue; // Syntax errors: `fmt` refuses, as it should.
        };
        formatted_any += 1;
        let name = path.display();
        assert_eq!(
            format_source(&formatted).as_ref().ok(),
            Some(&formatted),
            "{name}: formatting is not idempotent"
        );
        assert_eq!(
            summary(&check(&formatted)),
            summary(&check(&text)),
            "{name}: formatting changed the meaning:\n{formatted}"
        );
    }
    assert!(formatted_any > 20, "only {formatted_any} files formatted");
}

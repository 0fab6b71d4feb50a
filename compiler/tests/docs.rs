//! Every policy the project shows a user compiles: the files in `policies/` and `stdlib/`, and
//! every ```grd block of the book and the README. A doc example that stops compiling fails here.

use std::path::{Path, PathBuf};

use guard_compiler::{codegen, diag, frontend};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compile(name: &str, source: &str) {
    match frontend::check_source(name, source) {
        Ok(policy) => {
            if let Err(e) = codegen::compile(&policy, name) {
                panic!("{name}: does not lower: {e}");
            }
        }
        Err(d) => panic!(
            "{name}:\n{}",
            diag::render_diagnostics(name, source, &d, false)
        ),
    }
}

/// The fenced blocks tagged `grd` in a markdown file, with their line numbers.
fn grd_blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match (&mut current, fence) {
            (None, true) if line.trim_start().trim_start_matches('`').trim() == "grd" => {
                current = Some((i + 1, String::new()));
            }
            (Some(_), true) => out.extend(current.take()),
            (Some((_, body)), false) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == ext));
    v.sort();
    v
}

#[test]
fn shipped_policies_compile() {
    let mut n = 0;
    for f in files(&root().join("policies"), "grd") {
        let source = std::fs::read_to_string(&f).expect("readable");
        compile(&f.display().to_string(), &source);
        n += 1;
    }
    // Standard library modules define lists and macros only: they are checked as imported.
    let options = frontend::Options {
        stdlib_dir: Some(root().join("stdlib")),
    };
    for f in files(&root().join("stdlib"), "grd") {
        let (name, source) = (
            f.display().to_string(),
            std::fs::read_to_string(&f).expect("readable"),
        );
        if let Err(d) = frontend::check_module(&source, &options) {
            panic!(
                "{name}:\n{}",
                diag::render_diagnostics(&name, &source, &d, false)
            );
        }
        n += 1;
    }
    assert!(n >= 1, "no policy files found");
}

#[test]
fn book_and_readme_examples_compile() {
    let mut docs = files(&root().join("book/src"), "md");
    docs.push(root().join("README.md"));
    let mut n = 0;
    for f in docs {
        let text = std::fs::read_to_string(&f).expect("readable");
        for (line, block) in grd_blocks(&text) {
            compile(&format!("{}:{line}", f.display()), &block);
            n += 1;
        }
    }
    assert!(n >= 4, "expected the book's examples, found {n}");
}

#[test]
fn block_extraction_finds_tagged_blocks_only() {
    let md = "text\n```grd\nguard /a allow ancestor(any, \"x\") else kill\n```\n```sh\nls\n```\n";
    let blocks = grd_blocks(md);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].0, 2);
    assert!(blocks[0].1.starts_with("guard /a"));
}

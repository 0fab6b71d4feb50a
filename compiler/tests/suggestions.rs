//! "Did you mean" for every kind of misspelt word the language has: names (lists, macros,
//! built-in conditions, names from an imported module), `%fields` of alert messages,
//! functions and priorities, plus selectors and modules. The snapshots show these too; this
//! file pins the requirement in one place, one misspelling per line, so a suggestion cannot be
//! lost in a snapshot update.

use std::path::PathBuf;

use guard_compiler::diag::Diagnostic;
use guard_compiler::frontend::{Options, check_source_with};

/// The front end's errors for `source`, with the test modules of `tests/frontend/modules/`.
fn errors(source: &str) -> Vec<Diagnostic> {
    let options = Options {
        stdlib_dir: Some(PathBuf::from("tests/frontend/modules")),
    };
    match check_source_with("t.grd", source, &options) {
        Ok(_) => panic!("{source:?} should fail"),
        Err(diagnostics) => diagnostics,
    }
}

/// The help of the only error with `code`.
fn help(source: &str, code: &str) -> Option<String> {
    let errors = errors(source);
    let with_code: Vec<&Diagnostic> = errors.iter().filter(|d| d.code == code).collect();
    match with_code.as_slice() {
        [only] => only.help.clone(),
        _ => panic!("expected one {code} for {source:?}, got {errors:#?}"),
    }
}

#[test]
fn misspellings_get_a_suggestion() {
    let cases = [
        // Names: a list, a macro, a built-in condition, a list from an imported module, a
        // list in `name(…)`.
        (
            "list shells = [\"sh\"]\nguard exec shels allow tty else kill",
            "E0600",
            "shells",
        ),
        (
            "macro app = ancestor(pid1, \"x\")\nguard /a allow ap else kill",
            "E0600",
            "app",
        ),
        ("guard /a allow tyy else kill", "E0600", "tty"),
        (
            "import \"k8s\"\nguard read secret_mount allow tty else kill",
            "E0600",
            "secret_mounts",
        ),
        (
            "list shells = [\"sh\"]\nguard /a allow name(shell) else kill",
            "E0600",
            "shells",
        ),
        // Fields of an alert message.
        (
            "guard /a allow tty else alert warning \"%fd.nam\"",
            "E0401",
            "%fd.name",
        ),
        (
            "guard /a allow tty else alert warning \"%proc.nme\"",
            "E0401",
            "%proc.name",
        ),
        // Functions.
        (
            "guard /a allow ancester(pid1, \"x\") else kill",
            "E0300",
            "ancestor",
        ),
        (
            "guard /a allow imag(pid1, \"x\") else kill",
            "E0300",
            "image",
        ),
        // Priorities.
        ("guard /a allow tty else alert critcal", "E0400", "critical"),
        (
            "guard /a allow tty else kill alert Warnig",
            "E0400",
            "warning",
        ),
        // Selectors and modules.
        (
            "guard /a allow ancestor(pidl, \"x\") else kill",
            "E0303",
            "pid1",
        ),
        (
            "import \"k8z\"\nguard /a allow tty else kill",
            "E0606",
            "k8s",
        ),
    ];
    for (source, code, suggestion) in cases {
        assert_eq!(
            help(source, code).as_deref(),
            Some(format!("did you mean `{suggestion}`?").as_str()),
            "{source:?}"
        );
    }
}

/// A word close to nothing gets general help, never a far-fetched suggestion.
#[test]
fn unrelated_words_get_no_suggestion() {
    let cases = [
        (
            "list shells = [\"sh\"]\nguard exec programs allow tty else kill",
            "E0600",
        ),
        ("guard /a allow sudo else kill", "E0600"),
        (
            "guard /a allow tty else alert warning \"%fd.sport\"",
            "E0401",
        ),
        ("guard /a allow parent(pid1, \"x\") else kill", "E0300"),
        ("guard /a allow tty else alert loud", "E0400"),
    ];
    for (source, code) in cases {
        let help = help(source, code);
        assert!(
            help.as_deref().is_some_and(|h| !h.contains("did you mean")),
            "{source:?}: {help:?}"
        );
    }
}

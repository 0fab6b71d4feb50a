//! Every error of a file in one run: the parser recovers at the next item after a syntax
//! error, and the checker checks every item that parsed, so a file with several broken rules
//! reports each of them, whatever kind of error each has.

use guard_compiler::frontend::check_source;
use guard_compiler::span::LineIndex;

/// The code and 1-based line of each diagnostic, in the order reported.
fn errors(source: &str) -> Vec<(&'static str, usize)> {
    let lines = LineIndex::new(source);
    match check_source("t.grd", source) {
        Ok(_) => panic!("{source:?} should fail"),
        Err(diagnostics) => diagnostics
            .iter()
            .map(|d| (d.code, lines.line_column(d.primary.span.start).0 as usize))
            .collect(),
    }
}

#[test]
fn syntax_errors_in_different_rules_are_all_reported() {
    let source = "guard /a ancestor(pid1, \"x\") else kill\n\
                  guard /ok allow tty else kill\n\
                  guard /b allow ancestor(pid1, \"x\") kill\n";
    assert_eq!(errors(source), [("E0100", 1), ("E0100", 3)]);
}

#[test]
fn check_errors_after_a_syntax_error_are_reported() {
    // A syntax error first, then rules that parse but do not check: each is checked.
    let source = "guard /a allow ancestor(pid1 \"x\") else kill\n\
                  guard /b allow ancester(pid1, \"x\") else kill\n\
                  guard \"relative\" allow uid(\"0\") else alert critcal\n";
    assert_eq!(
        errors(source),
        [
            ("E0100", 1),
            ("E0300", 2),
            ("E0201", 3),
            ("E0302", 3),
            ("E0400", 3)
        ]
    );
}

#[test]
fn check_errors_before_a_syntax_error_are_reported() {
    let source = "guard /a allow ancestor(pidl, \"x\") else kill\n\
                  guard /b allow tty else\n\
                  guard /c allow tty else alert warning \"%fd.nam\"\n";
    assert_eq!(errors(source), [("E0303", 1), ("E0100", 3), ("E0401", 3)]);
}

#[test]
fn lexical_syntax_and_check_errors_together() {
    let source = "guard /a allow ancestor(pid1, 'x') else kill\n\
                  guard /b allow ancestor(pid1, \"x\") or or tty else kill\n\
                  guard /c//d allow tty else kill\n";
    assert_eq!(errors(source), [("E0005", 1), ("E0100", 2), ("E0202", 3)]);
}

/// A definition lost to a syntax error is not also reported as unknown at each use: the
/// syntax error is the one thing to fix.
#[test]
fn uses_of_a_lost_definition_are_not_unknown() {
    let source = "list mounts = [/mnt/a /mnt/b]\n\
                  macro app = ancestor(pid1 \"x\")\n\
                  guard read mounts allow app else kill\n\
                  guard /c allow ap else kill\n";
    // `ap` is still unknown: nothing called `ap` was lost.
    assert_eq!(errors(source), [("E0100", 1), ("E0100", 2), ("E0600", 4)]);
}

//! Reads the markers and libtest's lines off the guest's console and says what passed.

use std::path::Path;
use std::time::Duration;

use super::image::MARKER;
use super::qemu::Run;
use super::{BINARY_TIMEOUT_SECS, Planned};

/// One test executable's run, as the console tells it.
#[derive(Debug, Default)]
pub struct Binary {
    pub name: String,
    pub exit: Option<i32>,
    pub secs: Option<u64>,
    /// `test NAME ... ok|FAILED|ignored` lines.
    pub tests: Vec<String>,
    /// libtest's `test result:` lines.
    pub results: Vec<String>,
    pub passed: u64,
    pub failed: u64,
    /// The test that had started but not finished when the console ended.
    pub running: Option<String>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub kernel: Option<String>,
    pub lsm: Option<String>,
    pub btf: Option<bool>,
    pub binaries: Vec<Binary>,
    pub done: bool,
    pub errors: Vec<String>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn parse(lines: &[String]) -> Report {
        let mut r = Report::default();
        // A test whose `test NAME ... ` line has no outcome yet.
        let mut pending: Option<String> = None;
        for line in lines {
            if let Some(i) = line.find(MARKER) {
                let rest = line[i + MARKER.len()..].trim();
                let (word, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                let rest = rest.trim();
                match word {
                    "kernel" => r.kernel = Some(rest.to_string()),
                    "lsm" => r.lsm = Some(rest.to_string()),
                    "btf" => r.btf = Some(rest == "yes"),
                    "begin" => r.binaries.push(Binary {
                        name: rest.to_string(),
                        ..Binary::default()
                    }),
                    "end" => {
                        let mut fields = rest.split_whitespace();
                        let name = fields.next().unwrap_or_default();
                        let open = r
                            .binaries
                            .iter_mut()
                            .rev()
                            .find(|b| b.name == name && b.exit.is_none());
                        if let Some(b) = open {
                            for f in fields {
                                if let Some(v) = f.strip_prefix("exit=") {
                                    b.exit = v.parse().ok();
                                } else if let Some(v) = f.strip_prefix("secs=") {
                                    b.secs = v.parse().ok();
                                }
                            }
                            // An unparsable exit status is still an end, and not a success.
                            b.exit.get_or_insert(-1);
                        }
                    }
                    "done" => r.done = true,
                    "error" => r.errors.push(rest.to_string()),
                    "note" => r.notes.push(rest.to_string()),
                    _ => {}
                }
                continue;
            }
            let Some(b) = r.binaries.last_mut().filter(|b| b.exit.is_none()) else {
                continue;
            };
            if let Some(i) = line.find("test result:") {
                let result = &line[i..];
                b.passed += count(result, "passed");
                b.failed += count(result, "failed");
                b.results.push(result.to_string());
                pending = None;
            } else if let Some(name) = line
                .strip_prefix("test ")
                .and_then(|l| l.split_once(" ... "))
                .map(|(name, _)| name)
            {
                match outcome(line) {
                    Some(_) => b.tests.push(line.clone()),
                    // The test's children wrote to the console before libtest wrote the
                    // outcome (their output is not captured): it comes on a later line.
                    None => pending = Some(name.to_string()),
                }
            } else if let Some(name) = &pending
                && let Some(o) = outcome(line)
            {
                b.tests.push(format!("test {name} ... {o}"));
                pending = None;
            }
        }
        if let Some(b) = r.binaries.last_mut().filter(|b| b.exit.is_none()) {
            b.running = pending;
        }
        r
    }

    /// The LSMs the guest kernel runs, from `/sys/kernel/security/lsm`.
    fn bpf_lsm_active(&self) -> bool {
        self.lsm
            .as_deref()
            .is_some_and(|l| l.split(',').any(|m| m.trim() == "bpf"))
    }

    /// Prints the summary; true when everything passed.
    /// `tests`: the planned executables are libtest binaries (not a `--run` command), so at
    /// least one test must have run.
    pub fn print(
        &self,
        planned: &[Planned],
        tests: bool,
        run: &Run,
        log: &Path,
        total: Duration,
    ) -> bool {
        let mut problems = Vec::new();
        println!("== vm-test: summary");
        match &self.kernel {
            Some(k) => println!(
                "guest kernel {k}; BTF at /sys/kernel/btf/vmlinux: {}",
                match self.btf {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "?",
                }
            ),
            None => problems.push("the guest never reached stage 2 (no kernel marker)".into()),
        }
        if self.btf == Some(false) {
            problems.push("the guest kernel exposes no BTF".to_string());
        }
        match &self.lsm {
            Some(l) if self.bpf_lsm_active() => println!("guest LSMs: {l} (BPF LSM active)"),
            Some(l) => {
                println!("guest LSMs: {l} (BPF LSM NOT active)");
                problems.push(format!("BPF LSM is not active in the guest (lsm: {l})"));
            }
            None => {}
        }
        for n in &self.notes {
            println!("note: {n}");
        }
        for e in &self.errors {
            problems.push(format!("the guest failed: {e}"));
        }
        let (mut passed, mut failed) = (0, 0);
        for p in planned {
            let Some(b) = self.binaries.iter().find(|b| b.name == p.name) else {
                println!("MISSING {}: never started", p.name);
                problems.push(format!("{}: never started in the guest", p.name));
                failed += 1;
                continue;
            };
            let verdict = match b.exit {
                Some(0) => "PASS",
                Some(_) => "FAIL",
                None => "CUT",
            };
            let how = match (b.exit, b.secs) {
                (Some(e), Some(s)) => format!("exit {e}, {s} s"),
                (Some(e), None) => format!("exit {e}"),
                (None, _) => match &b.running {
                    Some(t) => format!("no end marker; it was running `{t}`"),
                    None => "no end marker".to_string(),
                },
            };
            println!("{verdict} {} ({how})", b.name);
            for t in &b.tests {
                println!("    {t}");
            }
            for t in &b.results {
                println!("    {t}");
            }
            passed += b.passed;
            failed += b.failed;
            match b.exit {
                Some(0) => {}
                Some(code) => {
                    let why = match code {
                        124 | 137 => format!(
                            " (killed by `timeout` after {BINARY_TIMEOUT_SECS} s in the guest?)"
                        ),
                        _ => String::new(),
                    };
                    problems.push(format!("{}: exit status {code}{why}", b.name));
                    if b.failed == 0 {
                        failed += 1;
                    }
                }
                None => {
                    problems.push(format!(
                        "{}: no end marker (the VM crashed, hung or timed out while it ran)",
                        b.name
                    ));
                    if b.failed == 0 {
                        failed += 1;
                    }
                }
            }
        }
        if run.timed_out {
            problems.push(format!(
                "the VM timed out after {} s",
                run.elapsed.as_secs()
            ));
        } else if !self.done {
            problems.push(format!(
                "the guest's console has no `done` marker (QEMU exited: {})",
                run.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "?".into())
            ));
        }
        if tests && passed + failed == 0 && problems.is_empty() {
            problems.push("no test ran (does --filter match any test?)".into());
        }
        println!(
            "VM: boot to stage 2 {}, whole VM {:.0} s; vm-test wall time {:.0} s (build included); console log {}",
            run.boot
                .map(|b| format!("{:.0} s", b.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
            run.elapsed.as_secs_f64(),
            total.as_secs_f64(),
            log.display()
        );
        for p in &problems {
            println!("problem: {p}");
        }
        println!("vm-test: {passed} passed, {failed} failed");
        problems.is_empty()
    }
}

/// libtest's outcome at the end of `line`: `ok`, `FAILED` or `ignored[, reason]`.
fn outcome(line: &str) -> Option<&str> {
    let line = line.trim_end();
    for o in ["ok", "FAILED"] {
        if line == o || line.ends_with(&format!(" {o}")) {
            return Some(o);
        }
    }
    line.find("ignored")
        .filter(|&i| i == 0 || line[..i].ends_with(' '))
        .map(|i| &line[i..])
}

/// `N` in "...; N what; ..." of a libtest result line.
fn count(result: &str, what: &str) -> u64 {
    result
        .split([';', '.'])
        .filter_map(|part| {
            let mut w = part.split_whitespace();
            match (w.next(), w.next()) {
                (Some(n), Some(word)) if word == what => n.parse::<u64>().ok(),
                _ => None,
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn markers_and_libtest_lines_are_read_off_the_console() {
        let console = lines(
            "\
[    1.0] some kernel line
@@guard-vm@@ kernel 6.1.0-56-amd64
@@guard-vm@@ lsm lockdown,capability,landlock,bpf
@@guard-vm@@ btf yes
@@guard-vm@@ begin guard-tests/secrets_scenario

running 1 test
test attacker_is_killed ... ok

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 30.02s

@@guard-vm@@ end guard-tests/secrets_scenario exit=0 secs=31
@@guard-vm@@ begin guard-tests/paths
test a ... ok
test b ... error: cannot read `x`: No such file
FAILED
test c ... ignored, needs root
[   50.1] random: noise @@guard-vm@@ end guard-tests/paths exit=101 secs=20
@@guard-vm@@ done",
        );
        let r = Report::parse(&console);
        assert_eq!(r.kernel.as_deref(), Some("6.1.0-56-amd64"));
        assert!(r.bpf_lsm_active());
        assert_eq!(r.btf, Some(true));
        assert!(r.done);
        assert_eq!(r.binaries.len(), 2);
        let s = &r.binaries[0];
        assert_eq!(
            (s.exit, s.secs, s.passed, s.failed),
            (Some(0), Some(31), 1, 0)
        );
        assert_eq!(s.tests, vec!["test attacker_is_killed ... ok"]);
        assert_eq!(s.results.len(), 1);
        let p = &r.binaries[1];
        assert_eq!(p.exit, Some(101));
        assert_eq!(
            p.tests,
            vec![
                "test a ... ok",
                "test b ... FAILED",
                "test c ... ignored, needs root"
            ]
        );
        assert!(p.results.is_empty());
    }

    #[test]
    fn a_cut_console_leaves_the_binary_open() {
        let r = Report::parse(&lines(
            "@@guard-vm@@ lsm capability,landlock\n@@guard-vm@@ begin x\ntest a ... ok",
        ));
        assert!(!r.bpf_lsm_active());
        assert_eq!(r.binaries[0].exit, None);
        assert_eq!(r.binaries[0].running, None);
        let r = Report::parse(&lines("@@guard-vm@@ begin x\ntest a ... ok\ntest b ... "));
        assert_eq!(r.binaries[0].running.as_deref(), Some("b"));
        assert!(!r.done);
    }

    #[test]
    fn libtest_counts() {
        let l = "test result: FAILED. 3 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.00s";
        assert_eq!(count(l, "passed"), 3);
        assert_eq!(count(l, "failed"), 2);
        assert_eq!(count(l, "ignored"), 1);
    }
}

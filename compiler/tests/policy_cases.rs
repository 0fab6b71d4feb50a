//! `guardc test`, run as CI runs it: every shipped policy's cases pass on its compiled object,
//! the article's attack list among them, and a wrong case fails saying what happened, which
//! rule decided it and where that rule is.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn guardc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardc"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("guardc runs")
}

/// A directory removed when the test ends, passed or not.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("guardc-cases-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).expect("write");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_shipped_policy_passes_its_cases() {
    let out = guardc(&root(), &["test", "policies/"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let (summary, cases) = lines.split_last().expect("a summary line");
    assert!(cases.iter().all(|l| l.starts_with("ok     ")), "{stdout}");
    assert_eq!(*summary, format!("{} passed, 0 failed", cases.len()));
    // Every policy in policies/ ships cases.
    for entry in std::fs::read_dir(root().join("policies")).expect("policies/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "grd") {
            let name = format!("policies/{}:", path.file_name().unwrap().to_string_lossy());
            assert!(
                cases.iter().any(|l| l.contains(&name)),
                "no case for {name}\n{stdout}"
            );
        }
    }
    // The article's attack list, against both policies that protect the secret.
    for policy in ["secrets.grd", "mirecloud.grd"] {
        for attack in ["cat", "head", "dd", "awk", "sed", "sh -c", "python3 -c"] {
            assert!(
                cases
                    .iter()
                    .any(|l| l.contains(policy) && l.contains(&format!("attack: {attack}"))),
                "{policy}: no `{attack}` attack\n{stdout}"
            );
        }
    }
}

const POLICY: &str = "guard /mnt/secrets/* allow ancestor(pid1, \"python app.py\") else kill\n";

#[test]
fn a_wrong_case_fails_with_what_happened_and_the_rule_that_decided() {
    let dir = TempDir::new("wrong");
    dir.write("p.grd", POLICY);
    dir.write(
        "p.cases.toml",
        r#"
[[case]]
name = "the app reads"
expect = "allow"
process = [{ name = "app", pid1 = true, cmdline = "python app.py" }]
open = { process = "app", path = "/mnt/secrets/key", mode = "read" }

[[case]]
name = "cat from kubectl exec is allowed (wrong)"
expect = "allow"
process = [
    { name = "app", pid1 = true, cmdline = "python app.py" },
    { name = "cat", entered = "app", user = "nobody", cmdline = "cat /mnt/secrets/key" },
]
open = { process = "cat", path = "/mnt/secrets/key", mode = "read" }
"#,
    );
    let out = guardc(&dir.0, &["test", "."]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let expected = "\
ok     ./p.grd: the app reads
FAILED ./p.grd: cat from kubectl exec is allowed (wrong) (./p.cases.toml:8)
    expected: allow
    actual:   kill
    decided by rule \"guard /mnt/secrets/*\" (./p.grd:1:1), killed: proc.name=\"cat\" \
proc.cmdline=\"cat /mnt/secrets/key\" proc.pname=\"nsenter\" user.name=\"nobody\" \
user.uid=\"65534\" fd.name=\"/mnt/secrets/key\"
    process `cat` held before the operation: entered from outside
1 passed, 1 failed
";
    assert_eq!(stdout, expected);
}

#[test]
fn a_case_expecting_a_kill_that_does_not_happen_says_what_the_process_held() {
    let dir = TempDir::new("held");
    dir.write("p.grd", POLICY);
    dir.write(
        "p.cases.toml",
        r#"
[[case]]
name = "the app is killed (wrong)"
expect = "kill"
process = [{ name = "app", pid1 = true, cmdline = "python app.py" }]
open = { process = "app", path = "/mnt/secrets/key", mode = "read" }
"#,
    );
    let out = guardc(&dir.0, &["test", "p.grd"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "    expected: kill\n    actual:   allow\n    no rule refused it (no event)\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "held before the operation: self [\"python app.py\"], ancestor [\"python app.py\"], \
             pid1 [\"python app.py\"], image(pid1) [\"python app.py\"], pid 1 of its namespace"
        ),
        "{stdout}"
    );
}

#[test]
fn errors_in_a_case_file_name_the_line_and_column() {
    let dir = TempDir::new("errors");
    dir.write("p.grd", POLICY);
    for (text, message) in [
        (
            "[[case]]\nname = \"x\"\nexpect = \"allow\"\nopen = { process = \"ghost\", path = \"/a\", mode = \"read\" }\n",
            "p.cases.toml:4:20: no process `ghost` before this point",
        ),
        (
            "[[case]]\nname = \"x\"\nexpect = \"sometimes\"\nprocess = [{ name = \"a\", cmdline = \"a\" }]\nexec = { process = \"a\", cmdline = \"b\" }\n",
            "p.cases.toml:3:10: expect `sometimes`",
        ),
        (
            "[[case]]\nname = \"x\"\nexpect = \"allow\"\nprocess = [{ name = \"a\", cmdline = \"a\", pid = 3 }]\n",
            "p.cases.toml:4:",
        ),
        ("[[case]\n", "p.cases.toml:1:"),
        (
            "[[case]]\nname = \"x\"\nexpect = \"allow\"\nprocess = [{ name = \"a\", cmdline = \"a\" }]\nopen = { process = \"a\", path = \"relative\", mode = \"read\" }\n",
            "p.cases.toml:5:32: `relative` is not an absolute path",
        ),
        (
            "[[case]]\nname = \"x\"\nexpect = \"allow\"\nprocess = [{ name = \"a\", cmdline = \"a\", user = \"mallory\" }]\nexec = { process = \"a\", cmdline = \"b\" }\n",
            "p.cases.toml:4:48: unknown user `mallory`",
        ),
    ] {
        dir.write("p.cases.toml", text);
        let out = guardc(&dir.0, &["test", "p.cases.toml"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}\n{stdout}");
        assert!(
            stdout.starts_with("FAILED p.grd: the case file\n    "),
            "{stdout}"
        );
        assert!(
            stdout.contains(message),
            "{text}\nwanted {message}\n{stdout}"
        );
        assert!(stdout.ends_with("0 passed, 1 failed\n"), "{stdout}");
    }
}

#[test]
fn paths_without_cases_are_errors() {
    let dir = TempDir::new("paths");
    dir.write("p.grd", POLICY);
    let out = guardc(&dir.0, &["test", "."]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no policy with a case file"), "{stderr}");
    let out = guardc(&dir.0, &["test", "p.grd"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`p.grd` has no case file `p.cases.toml`"),
        "{stderr}"
    );
}

/// The fenced blocks of a markdown file tagged `tag`, in order.
fn blocks(text: &str, tag: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut current, fence) {
            (None, Some(t)) if t.trim() == tag => current = Some(String::new()),
            (Some(_), Some(_)) => out.extend(current.take()),
            (Some(body), None) => {
                body.push_str(line);
                body.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// The book's example (`book/src/testing-policies.md`): its policy and case file, run, print
/// exactly the output the page shows.
#[test]
fn the_book_example_prints_what_the_book_shows() {
    let page = std::fs::read_to_string(root().join("book/src/testing-policies.md"))
        .expect("the testing page");
    let policy = &blocks(&page, "grd")[0];
    let cases = &blocks(&page, "toml")[0];
    let shown = &blocks(&page, "text")[0];
    let dir = TempDir::new("book");
    dir.write("secrets.grd", policy);
    dir.write("secrets.cases.toml", cases);
    let out = guardc(&dir.0, &["test", "secrets.grd"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), *shown);
    assert_eq!(out.status.code(), Some(1));
    // The policy compiles without a warning: the page shows guardc's whole output.
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// `user("name")` is resolved from the case file's users, as guard-run resolves it from the
/// node's user database; a name the case file does not know fails the policy's cases.
#[test]
fn users_of_the_policy_come_from_the_case_file() {
    let dir = TempDir::new("users");
    dir.write(
        "p.grd",
        "guard /srv/data/** allow user(\"appuser\") else kill\n",
    );
    let cases = r#"
[[case]]
name = "appuser reads"
expect = "allow"
process = [{ name = "a", user = "appuser", cmdline = "cat /srv/data/x" }]
open = { process = "a", path = "/srv/data/x", mode = "read" }

[[case]]
name = "uid 1001 does not"
expect = "kill"
process = [{ name = "a", uid = 1001, cmdline = "cat /srv/data/x" }]
open = { process = "a", path = "/srv/data/x", mode = "read" }

[[case.alert]]
rule = "guard /srv/data/**"
fields = { "user.uid" = 1001 }
"#;
    dir.write("p.cases.toml", &format!("[users]\nappuser = 1000\n{cases}"));
    let out = guardc(&dir.0, &["test", "p.grd"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.ends_with("2 passed, 0 failed\n"), "{stdout}");
    // Without the table, `user = "appuser"` is unknown...
    dir.write("p.cases.toml", cases);
    let stdout = String::from_utf8_lossy(&guardc(&dir.0, &["test", "p.grd"]).stdout).into_owned();
    assert!(stdout.contains("unknown user `appuser`"), "{stdout}");
    // ... and a policy user the case file does not know fails every case of the policy.
    dir.write(
        "p.cases.toml",
        &cases.replace("user = \"appuser\"", "uid = 1000"),
    );
    let out = guardc(&dir.0, &["test", "p.grd"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(
        stdout,
        "FAILED p.grd: the policy names user `appuser`, which the case file does not know: add \
         it to its `[users]` table (2 case(s) not run)\n0 passed, 2 failed\n"
    );
}

/// Scopes: a case places its processes in cgroups and containers, and the scope bits
/// guard-run would write for them go to the kernel's cgroup map, where the programs look.
#[test]
fn scopes_hold_for_the_processes_the_case_places_in_them() {
    let dir = TempDir::new("scopes");
    dir.write(
        "p.grd",
        "guard /srv/data/** allow container(\"db\", \"0123456789ab\") or k8s_namespace(\"prod\") \
         or pod_label(\"app=web\") or cgroup(\"/system.slice/backup.service\") else kill\n",
    );
    let case = |name: &str, expect: &str, process: &str| {
        format!(
            "[[case]]\nname = \"{name}\"\nexpect = \"{expect}\"\nprocess = [{process}, \
             {{ name = \"x\", entered = \"p\", cmdline = \"cat /srv/data/f\" }}]\n\
             open = {{ process = \"x\", path = \"/srv/data/f\", mode = \"read\" }}\n\n"
        )
    };
    let pid1 = |placement: &str| {
        format!("{{ name = \"p\", pid1 = true, cmdline = \"server\", {placement} }}")
    };
    let cases = [
        case("db by name", "allow", &pid1("container = { name = \"db\" }")),
        case(
            "db by id",
            "allow",
            &pid1("container = { id = \"0123456789abcdef0123\" }"),
        ),
        case(
            "prod",
            "allow",
            &pid1("container = { name = \"api\", namespace = \"prod\" }"),
        ),
        case(
            "labelled",
            "allow",
            &pid1("container = { name = \"w\", labels = { app = \"web\", tier = \"1\" } }"),
        ),
        case(
            "another container",
            "kill",
            &pid1("container = { name = \"cache\", namespace = \"dev\", labels = { app = \"redis\" } }"),
        ),
        case("no container", "kill", &pid1("cgroup = \"/system.slice/cron.service\"")),
        case(
            "the backup service",
            "allow",
            "{ name = \"p\", cmdline = \"restic\", cgroup = \"/system.slice/backup.service\" }",
        ),
    ]
    .concat();
    dir.write("p.cases.toml", &cases);
    let out = guardc(&dir.0, &["test", "p.grd"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.ends_with("7 passed, 0 failed\n"), "{stdout}");
}

/// `guardc explain` on the book's example prints what the book shows.
#[test]
fn the_book_explains_a_case_as_guardc_does() {
    let page = std::fs::read_to_string(root().join("book/src/testing-policies.md"))
        .expect("the testing page");
    let dir = TempDir::new("explain-book");
    dir.write("secrets.grd", &blocks(&page, "grd")[0]);
    dir.write("secrets.cases.toml", &blocks(&page, "toml")[0]);
    let out = guardc(
        &dir.0,
        &["explain", "secrets.grd", "kubectl exec ... cat is killed"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        blocks(&page, "text")[1]
    );
    let out = guardc(&dir.0, &["explain", "secrets.grd", "no such case"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("has no case named `no such case`; its cases:\n  the application reads"),
        "{stderr}"
    );
}

/// Where two rules refuse one exec, explain lists both, in source order, and the verdict
/// names the more severe one (the five-rule policy's rule 3, inside the app's tree).
#[test]
fn explain_lists_every_rule_covering_the_operation() {
    let out = guardc(
        &root(),
        &[
            "explain",
            "policies/mirecloud.grd",
            "EXFIL: curl started by the application's tree is killed",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let covering: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("rules that cover it"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(covering.len(), 2, "{stdout}");
    assert!(
        covering[0]
            .starts_with("  \"MireCloud - Secret Exfiltration Attempt\" (policies/mirecloud.grd:")
            && covering[0]
                .ends_with("exec ... else alert): refuses (alert): its subject does not hold"),
        "{stdout}"
    );
    assert!(
        covering[1].starts_with(
            "  \"MireCloud - Secret Exfiltration Attempt by the Application\" (policies/mirecloud.grd:"
        ) && covering[1].ends_with("refuses (kill): its subject does not hold"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "verdict: kill, reported for \"MireCloud - Secret Exfiltration Attempt by the Application\""
        ),
        "{stdout}"
    );
    // The app's own exec of python: both rules cover it and allow it.
    let out = guardc(
        &root(),
        &[
            "explain",
            "policies/mirecloud.grd",
            "EXFIL: the application itself is python (its own exec is not reported)",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("): allows: its subject holds").count(),
        2,
        "{stdout}"
    );
    assert!(
        stdout.contains("verdict: allow (every covering rule allows)"),
        "{stdout}"
    );
}

/// A `#!` script: the LSM backend judges the script file and then its interpreter, the
/// tracepoint backend only the interpreter it runs. A case expecting one alert from the
/// script's rule fails differently on each, and says so backend by backend.
#[test]
fn a_case_failing_differently_on_each_backend_says_which() {
    let dir = TempDir::new("backends");
    dir.write(
        "s.grd",
        "rule \"scripts\"\nguard exec /tmp/** allow nobody else alert\n\
         rule \"shells\"\nguard exec /bin/sh allow ancestor(any, \"/bin/sh -e /tmp/x.sh\") else alert\n",
    );
    dir.write(
        "s.cases.toml",
        r##"[[case]]
name = "script"
expect = "alert"
process = [{ name = "sh", cmdline = "sh" }]
exec = { process = "sh", cmdline = "/tmp/x.sh a", script = "#!/bin/sh -e" }

[[case.alert]]
rule = "scripts"
fields = { "proc.cmdline" = "/bin/sh -e /tmp/x.sh a", "proc.name" = "x.sh" }
"##,
    );
    let out = guardc(&dir.0, &["test", "s.grd"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let tracepoint = stdout
        .split("    on the lsm backend:\n")
        .next()
        .expect("text");
    assert!(
        tracepoint.contains("    on the tracepoint backend:\n    alert 1: expected rule \"scripts\", got \"shells\"\n"),
        "{stdout}"
    );
    let lsm = stdout
        .split("    on the lsm backend:\n")
        .nth(1)
        .expect("an lsm section");
    assert!(
        lsm.starts_with("    expected 1 alert(s), got 2\n"),
        "{stdout}"
    );
    assert!(
        lsm.contains("decided by rule \"scripts\" (s.grd:2:1), alerted: proc.name=\"x.sh\" proc.cmdline=\"/bin/sh -e /tmp/x.sh a\"")
            && lsm.contains("proc.exepath=\"/tmp/x.sh\""),
        "{stdout}"
    );
    assert!(
        lsm.contains("decided by rule \"shells\" (s.grd:4:1)")
            && lsm.contains("proc.exepath=\"/bin/sh\""),
        "{stdout}"
    );
    // Restricted to the LSM backend, with both alerts listed, the case passes.
    dir.write(
        "s.cases.toml",
        r##"[[case]]
name = "script"
backend = "lsm"
expect = "alert"
process = [{ name = "sh", cmdline = "sh" }]
exec = { process = "sh", cmdline = "/tmp/x.sh a", script = "#!/bin/sh -e" }

[[case.alert]]
rule = "scripts"

[[case.alert]]
rule = "shells"
"##,
    );
    let out = guardc(&dir.0, &["test", "s.grd"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok     s.grd: script\n1 passed, 0 failed\n"
    );
}

/// A policy that does not compile fails all its cases, with the compiler's diagnostics.
#[test]
fn a_policy_that_does_not_compile_fails_its_cases() {
    let dir = TempDir::new("broken");
    dir.write("p.grd", "guard /a allow ancestor(pid1) else kill\n");
    dir.write(
        "p.cases.toml",
        "[[case]]\nname = \"x\"\nexpect = \"allow\"\nprocess = [{ name = \"a\", cmdline = \"a\" }]\n\
         open = { process = \"a\", path = \"/a\", mode = \"read\" }\n",
    );
    let out = guardc(&dir.0, &["test", "."]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "FAILED ./p.grd: the policy does not compile (1 case(s) not run)\n0 passed, 1 failed\n"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error"), "{stderr}");
}

//! The case file's parser: origins, defaults, users, and located errors.

use super::*;

const APP: &str = r#"{ name = "app", pid1 = true, cmdline = "python app.py" }"#;

fn one(processes: &str, rest: &str) -> Result<Case, CaseFileError> {
    let text =
        format!("[[case]]\nname = \"c\"\nexpect = \"kill\"\nprocess = [{processes}]\n{rest}\n");
    parse(&text).map(|f| f.cases.into_iter().next().expect("one case"))
}

#[test]
fn processes_get_their_origin_and_defaults() {
    let c = one(
        &format!(
            r#"{APP}, {{ name = "w", fork_of = "app" }},
            {{ name = "x", entered = "app", user = "nobody", tty = true, cmdline = ["cat", "a b"] }},
            {{ name = "h", cmdline = "/opt/bin/tool -v" }},
            {{ name = "c", parent = "x", cmdline = "sh", exe = "/usr/bin/dash" }},
            {{ name = "n", pid1 = true, parent = "h", cmdline = "init" }}"#
        ),
        r#"exec = { process = "w", cmdline = "curl x" }"#,
    )
    .expect("parses");
    let origins: Vec<&Origin> = c.processes.iter().map(|p| &p.origin).collect();
    assert_eq!(
        origins,
        [
            &Origin::Pid1(None),
            &Origin::Fork(0),
            &Origin::Entered(0),
            &Origin::Host,
            &Origin::Exec(2),
            &Origin::Pid1(Some(3)),
        ]
    );
    let x = &c.processes[2];
    assert_eq!((x.uid, x.tty), (Some(65534), Some(true)));
    assert_eq!(x.argv, ["cat", "a b"]);
    assert_eq!(x.exe, "/usr/bin/cat");
    assert_eq!(c.processes[3].exe, "/opt/bin/tool");
    assert_eq!(c.processes[4].exe, "/usr/bin/dash");
    assert!(c.processes[1].argv.is_empty());
    let Operation::Exec {
        process, argv, exe, ..
    } = &c.operation
    else {
        panic!("{:?}", c.operation);
    };
    assert_eq!(
        (*process, argv.len(), exe.as_str()),
        (1, 2, "/usr/bin/curl")
    );
    assert_eq!(c.expect, Verdict::Kill);
    assert!(c.alerts.is_none());
}

#[test]
fn users_come_from_the_users_table() {
    let f = parse(
        "[users]\nappuser = 1000\n[[case]]\nname = \"c\"\nexpect = \"allow\"\n\
         process = [{ name = \"a\", user = \"appuser\", cmdline = \"a\" }]\n\
         open = { process = \"a\", path = \"/x\", mode = \"read-write\" }\n",
    )
    .expect("parses");
    assert_eq!(f.cases[0].processes[0].uid, Some(1000));
    assert_eq!(f.user_name(1000), Some("appuser"));
    assert_eq!(f.user_name(65534), Some("nobody"));
    assert_eq!(f.user_name(7), None);
    assert_eq!(f.init, ["/sbin/init"]);
    assert_eq!(f.init_exe, "/sbin/init");
}

#[test]
fn mistakes_are_located() {
    let err = |p: &str, rest: &str| one(p, rest).expect_err("an error");
    let e = err(
        r#"{ name = "a", cmdline = "a", parent = "a" }"#,
        r#"exec = { process = "a", cmdline = "b" }"#,
    );
    assert!(e.message.contains("no process `a` before"), "{e:?}");
    assert_eq!(e.line, 4);
    let e = err(
        &format!(r#"{APP}, {{ name = "w", fork_of = "app", cmdline = "x" }}"#),
        r#"exec = { process = "w", cmdline = "b" }"#,
    );
    assert!(e.message.contains("runs its parent's image"), "{e:?}");
    let e = err(
        &format!(r#"{APP}, {{ name = "w", fork_of = "app", entered = "app" }}"#),
        r#"exec = { process = "w", cmdline = "b" }"#,
    );
    assert!(e.message.contains("one origin"), "{e:?}");
    let e = err(
        APP,
        r#"exec = { process = "app", cmdline = "b", exe = "b" }"#,
    );
    assert!(e.message.contains("not an absolute path"), "{e:?}");
    let e = err(
        APP,
        "open = { process = \"app\", path = \"/a\", mode = \"read\" }\n\
         exec = { process = \"app\", cmdline = \"b\" }",
    );
    assert!(e.message.contains("exactly one operation"), "{e:?}");
    let e = err(
        APP,
        "open = { process = \"app\", path = \"/a\", mode = \"append\" }",
    );
    assert!(e.message.contains("mode `append`"), "{e:?}");
    let e = err(
        &format!(r#"{APP}, {APP}"#),
        r#"exec = { process = "app", cmdline = "b" }"#,
    );
    assert!(e.message.contains("a second process named `app`"), "{e:?}");
    let e = err(
        APP,
        "exec = { process = \"app\", cmdline = \"b\" }\n[[case.alert]]\nrule = \"r\"\n\
         fields = { x = 1.5 }",
    );
    assert!(e.message.contains("field `x`"), "{e:?}");
    let e = err(
        APP,
        r#"exec = { process = "app", cmdline = "b", script = "sh -e" }"#,
    );
    assert!(
        e.message
            .contains("`#!` and the interpreter's absolute path"),
        "{e:?}"
    );
    let e = err(
        APP,
        "exec = { process = \"app\", cmdline = \"b\" }\nbackend = \"ebpf\"",
    );
    assert!(e.message.contains("backend `ebpf`"), "{e:?}");
}

#[test]
fn allow_with_alerts_is_refused() {
    let e = parse(
        "[[case]]\nname = \"c\"\nexpect = \"allow\"\nprocess = [{ name = \"a\", cmdline = \"a\" }]\n\
         exec = { process = \"a\", cmdline = \"b\" }\n[[case.alert]]\nrule = \"r\"\n",
    )
    .expect_err("refused");
    assert!(e.message.contains("`alert`"), "{e:?}");
    assert_eq!((e.line, e.column), (3, 10));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for text in [
        "",
        "case = 3",
        "[[case]]",
        "[[case]]\nname = 1",
        "[[case]]\nname = \"c\"\nexpect = \"kill\"\nprocess = 3\n",
        "[[case]]\nname = \"c\"\nexpect = \"kill\"\nprocess = [{ name = \"a\", cmdline = [] }]\n",
        "[[case]]\nname = \"c\"\nexpect = \"kill\"\nprocess = [{ name = \"a\", cmdline = \"  \" }]\n",
        "init = []\n[[case]]\nname = \"c\"\n",
        "[[case]]\nname = \"c\"\nexpect = \"kill\"\nprocess = [{ name = \"a\", cmdline = \"a\" }]\nopen = { process = \"a\", path = \"/a//b\", mode = \"read\" }\n",
        "\u{feff}[[case]]\nname = \"é\"\n",
    ] {
        let e = parse(text).expect_err(text);
        assert!(e.line >= 1 && e.column >= 1, "{text}: {e:?}");
    }
}

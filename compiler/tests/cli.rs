//! The `guardc` binary, run as a user runs it: `check` and `compile` report the same
//! diagnostics for the same file, lowering's included, in both message formats.
//!
//! Each test works in its own temporary directory and names the policy by a relative path, so
//! the output (which names the file as given) is the same on every machine. Human output goes
//! to stderr without colour (it is not a terminal), JSON to stdout.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A directory removed when the test ends, passed or not.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("guardc-cli-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).expect("write policy");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn guardc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardc"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("guardc runs")
}

/// What a run printed: exit status, stdout and stderr.
fn printed(out: &Output) -> (Option<i32>, String, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Snapshots named like the front end's, in `tests/snapshots/`.
fn snapshot(name: &str, output: &str) {
    insta::with_settings!({
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, output);
    });
}

/// `check FILE` and `compile FILE -o OUT` with the same extra arguments; the two outputs, after
/// checking they are identical.
fn check_and_compile(dir: &TempDir, file: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let check = printed(&guardc(&dir.0, &[&["check", file][..], extra].concat()));
    let compile = printed(&guardc(
        &dir.0,
        &[&["compile", file, "-o", "out.o"][..], extra].concat(),
    ));
    assert_eq!(
        check, compile,
        "`check` and `compile` differ on {file} {extra:?}"
    );
    check
}

/// Two `kill` rules over `/a/*` and `/a/b` with different conditions (W0102, twice: the third
/// rule overlaps both), the first of which always holds (W0101): lowering's warnings, which
/// `check` once left to `compile`.
const LINTED: &str = "guard /a/* allow tty or not tty else kill\n\
                      guard /a/* allow ancestor(any, \"x\") else kill\n\
                      guard /a/b allow ancestor(any, \"y\") else kill\n";

#[test]
fn check_reports_lowering_warnings_like_compile() {
    let dir = TempDir::new("lints");
    dir.write("linted.grd", LINTED);

    let (status, stdout, human) = check_and_compile(&dir, "linted.grd", &[]);
    assert_eq!(status, Some(0), "warnings do not fail:\n{human}");
    assert_eq!(stdout, "");
    snapshot("cli_lints_human", &human);

    let (status, json, stderr) =
        check_and_compile(&dir, "linted.grd", &["--message-format", "json"]);
    assert_eq!(status, Some(0));
    assert_eq!(stderr, "");
    snapshot("cli_lints_json", &json);
    let codes: Vec<String> = json
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("one object a line");
            value["code"].as_str().expect("a code").to_string()
        })
        .collect();
    assert_eq!(codes, ["W0101", "W0102", "W0102", "W0102"]);

    // Denied, lowering's warnings fail both commands, and `compile` writes nothing.
    std::fs::remove_file(dir.0.join("out.o")).expect("the object of the runs above");
    let (status, _, denied) = check_and_compile(&dir, "linted.grd", &["--deny-warnings"]);
    assert_eq!(status, Some(1));
    assert_eq!(denied, human);
    assert!(!dir.0.join("out.o").exists());
}

/// A policy that checks but does not fit the tables: 17 distinct uids, one more than the uid
/// table holds. `check` fails with the same error `compile` does.
#[test]
fn check_reports_lowering_errors_like_compile() {
    let dir = TempDir::new("limits");
    let policy: String = (0..17)
        .map(|uid| format!("guard /u{uid} allow uid({uid}) else kill\n"))
        .collect();
    dir.write("uids.grd", &policy);

    let (status, stdout, human) = check_and_compile(&dir, "uids.grd", &[]);
    assert_eq!(status, Some(1));
    assert_eq!(stdout, "");
    assert!(human.starts_with("error[E0500]: "), "{human}");
    assert!(human.contains("uids"), "names the limit:\n{human}");
    assert!(!dir.0.join("out.o").exists());

    let (status, json, _) = check_and_compile(&dir, "uids.grd", &["--message-format", "json"]);
    assert_eq!(status, Some(1));
    assert_eq!(json.lines().count(), 1, "{json}");
    assert!(json.contains("\"code\":\"E0500\""), "{json}");
}

/// Front-end and lowering warnings of one file are reported together, in file order.
#[test]
fn front_end_and_lowering_warnings_interleave_in_file_order() {
    let dir = TempDir::new("order");
    dir.write(
        "mixed.grd",
        &format!("{LINTED}list unused = [/x]\nguard /mnt/secrets/* allow tty else kill\n"),
    );
    let (status, json, _) = check_and_compile(&dir, "mixed.grd", &["--message-format", "json"]);
    assert_eq!(status, Some(0));
    let codes: Vec<&str> = json
        .lines()
        .filter_map(|l| l.split("\"code\":\"").nth(1)?.get(..5))
        .collect();
    assert_eq!(
        codes,
        ["W0101", "W0102", "W0102", "W0102", "W0001", "W0002"]
    );
}

/// W0003 through the command line, against the test modules: an import nothing is used from
/// warns; a partly used one does not.
#[test]
fn unused_import_warns() {
    let dir = TempDir::new("imports");
    dir.write(
        "imports.grd",
        "import \"k8s\"\nimport \"relative_items\"\nguard read secret_mounts allow tty else kill\n",
    );
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/frontend/modules");
    let modules = modules.to_str().expect("UTF-8 path");
    let (status, _, human) = check_and_compile(&dir, "imports.grd", &["--stdlib-dir", modules]);
    assert_eq!(status, Some(0));
    snapshot("cli_unused_import", &human);
    let (status, _, _) = check_and_compile(
        &dir,
        "imports.grd",
        &["--stdlib-dir", modules, "--deny-warnings"],
    );
    assert_eq!(status, Some(1));
}

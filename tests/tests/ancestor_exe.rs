//! Ancestry by executable, judged in the kernel with real processes: `ancestor(any, exe(…))`
//! (the process's own executable or an ancestor's, as executed), `ancestor(pid1, exe(…))`
//! (the executable of its pid namespace's init, which a process entered from outside does not
//! descend from), a process started before the agent, whose identity comes from `/proc`, and
//! an exec rule.
//! The ancestor executable is a copy of `sh` at a path of the test's own. Root, this kernel.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use guard_tests::agent::{self, Agent};
use guard_tests::scenario::shell_status;
use serde_json::Value;

/// Runs `sh_path -c script` (or `prefix… sh_path -c script`) and returns its stdout and the
/// shell's status.
fn run(prefix: &[&str], shell: &Path, script: &str) -> (String, Option<i32>) {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(shell);
            c
        }
        None => Command::new(shell),
    };
    let out = cmd
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        shell_status(out.status),
    )
}

/// `cat FILE` forked by the shell (a command follows it, so the shell cannot exec `cat` in its
/// own place), then its status.
fn cat_then_status(file: &Path) -> String {
    format!("cat {} >/dev/null; echo cat=$?", file.display())
}

/// The first child of `parent` (by `/proc/PID/task/PID/children`), waited for.
fn child_of(parent: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        if let Some(pid) = children.split_whitespace().find_map(|c| c.parse().ok()) {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{parent} started no child");
}

/// Creates the files the waiting shells wait for when dropped, so that a failing test leaves
/// none of them behind.
struct Release(Vec<PathBuf>);

impl Drop for Release {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::write(f, "");
        }
    }
}

/// Waits for `child` to exit and returns its status as a shell shows it.
fn wait(child: &mut Child) -> Option<i32> {
    shell_status(child.wait().expect("waits"))
}

#[test]
fn ancestry_by_executable_is_judged_with_real_processes() {
    if !guard_tests::require_kernel_tests("ancestor_exe") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let dir = std::env::temp_dir().join(format!("guard-ancexe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["any", "pid1", "early", "bin"] {
        std::fs::create_dir_all(dir.join(d)).expect("dir");
    }
    let f = |d: &str| dir.join(d).join("f");
    for d in ["any", "pid1", "early"] {
        std::fs::write(f(d), "x").expect("file");
    }
    // The ancestor executable: a copy of the real shell (not a link: the kernel resolves a
    // link, and the executable's path is what `exe(…)` matches).
    let sh = std::fs::canonicalize("/bin/sh").expect("/bin/sh resolves");
    let gsh: PathBuf = dir.join("bin").join("guard-sh");
    std::fs::copy(&sh, &gsh).expect("copies sh");
    // A program of the test's own for an exec rule (a copy of `true`).
    let probe = dir.join("bin").join("probe");
    let true_bin = guard_tests::which("true").expect("`true` is installed");
    std::fs::copy(std::fs::canonicalize(true_bin).expect("resolves"), &probe).expect("copies");
    let policy = dir.join("ancestor_exe.grd");
    std::fs::write(
        &policy,
        format!(
            "guard {d}/any/* allow ancestor(any, exe(\"{g}\")) else kill\n\
             guard {d}/pid1/* allow ancestor(pid1, exe(\"{g}\")) else kill\n\
             guard {d}/early/* allow ancestor(any, exe(\"{g}\")) else kill\n\
             guard exec \"{p}\" allow ancestor(any, exe(\"{g}\")) else kill\n",
            d = dir.display(),
            g = gsh.display(),
            p = probe.display()
        ),
    )
    .expect("policy");
    let object = agent::temp_object("ancestor_exe");
    agent::compile(&policy, &object).expect("compiles");

    // Started before the agent: the copied shell and a plain one, each waiting for `go`, then
    // forking a `cat` and opening the file itself (a redirection of the builtin `:`).
    let go = dir.join("go");
    let stop = dir.join("stop");
    let _release = Release(vec![go.clone(), stop.clone()]);
    let early = |shell: &Path| -> Child {
        let script = format!(
            "while [ ! -e {go} ]; do sleep 0.05; done; {cat}; : < {file}; echo self=$?",
            go = go.display(),
            cat = cat_then_status(&f("early")),
            file = f("early").display()
        );
        Command::new(shell)
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts")
    };
    let early_gsh = early(&gsh);
    let early_sh = early(&sh);
    // An init of a new pid namespace running the copied shell, for a process entered into it.
    let mut ns_init_parent = Command::new("unshare")
        .args(["--pid", "--fork"])
        .arg(&gsh)
        .arg("-c")
        .arg(format!(
            "while [ ! -e {} ]; do sleep 0.05; done",
            stop.display()
        ))
        .stdin(Stdio::null())
        .spawn()
        .expect("unshare starts");
    let ns_init = child_of(ns_init_parent.id());

    let agent = Agent::start(&object, &["--json"], false).expect("loads");

    // Known from /proc: the waiting copied shell's own open and its child's are allowed; the
    // plain shell's child is killed, and so is the plain shell when it opens the file itself.
    std::fs::write(&go, "").expect("go");
    let out = early_gsh.wait_with_output().expect("waits");
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stdout).trim(),
            shell_status(out.status)
        ),
        ("cat=0\nself=0", Some(0)),
        "scanned from /proc: the copied shell and its child"
    );
    let out = early_sh.wait_with_output().expect("waits");
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stdout).trim(),
            shell_status(out.status)
        ),
        ("cat=137", Some(137)),
        "scanned from /proc: a plain shell and its child"
    );

    // ancestor(any, …): a child and a grandchild (through a plain shell) of the copied shell
    // are allowed; the same cat under a plain shell, or started directly, is killed.
    assert_eq!(
        run(&[], &gsh, &cat_then_status(&f("any"))),
        ("cat=0".to_string(), Some(0))
    );
    let nested = format!("{} -c '{}'; :", sh.display(), cat_then_status(&f("any")));
    assert_eq!(run(&[], &gsh, &nested), ("cat=0".to_string(), Some(0)));
    assert_eq!(
        run(&[], &sh, &cat_then_status(&f("any"))),
        ("cat=137".to_string(), Some(0))
    );
    let direct = Command::new("cat").arg(f("any")).output().expect("runs");
    assert_eq!(shell_status(direct.status), Some(137));
    // An exec rule: judged with the identity the new program gets (before the exec on the LSM
    // backend), which keeps the copied shell as an ancestor.
    let run_probe = format!("{}; echo probe=$?", probe.display());
    assert_eq!(run(&[], &gsh, &run_probe), ("probe=0".to_string(), Some(0)));
    assert_eq!(
        run(&[], &sh, &run_probe),
        ("probe=137".to_string(), Some(0))
    );

    // ancestor(pid1, …): under an init that runs the copied shell, allowed; under an init that
    // runs a plain shell, killed even with the copied shell as its parent; entered into the
    // copied shell's namespace from outside (nsenter), killed: it does not descend from it.
    assert_eq!(
        run(
            &["unshare", "--pid", "--fork"],
            &gsh,
            &cat_then_status(&f("pid1"))
        ),
        ("cat=0".to_string(), Some(0))
    );
    let under_plain_init = format!("{} -c '{}'; :", gsh.display(), cat_then_status(&f("pid1")));
    assert_eq!(
        run(&["unshare", "--pid", "--fork"], &sh, &under_plain_init),
        ("cat=137".to_string(), Some(0))
    );
    let entered = Command::new("nsenter")
        .args(["-t", &ns_init.to_string(), "-p", "cat"])
        .arg(f("pid1"))
        .output()
        .expect("runs");
    assert_eq!(shell_status(entered.status), Some(137));
    std::fs::write(&stop, "").expect("stop");
    assert_eq!(wait(&mut ns_init_parent), Some(0));

    let want = 7;
    let alerts = agent.wait_alerts(want, Duration::from_secs(5));
    let _ = agent.stop();
    let got: Vec<(String, String, String)> = alerts
        .iter()
        .map(|a| {
            let v: Value = serde_json::from_str(a).expect("JSON");
            let field = |k: &str| v["output_fields"][k].as_str().unwrap_or("").to_string();
            (
                v["rule"].as_str().unwrap_or("").to_string(),
                field("proc.name"),
                field("guard.action"),
            )
        })
        .collect();
    let d = dir.display();
    let sh_name = sh
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("sh")
        .to_string();
    let killed = |rule: &str, name: &str| {
        (
            format!("guard {d}/{rule}/*"),
            name.to_string(),
            "killed".to_string(),
        )
    };
    assert_eq!(
        got,
        vec![
            killed("early", "cat"),
            killed("early", &sh_name),
            killed("any", "cat"),
            killed("any", "cat"),
            (
                format!("guard exec \"{}\"", probe.display()),
                "probe".to_string(),
                "killed".to_string(),
            ),
            killed("pid1", "cat"),
            killed("pid1", "cat"),
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(object);
}

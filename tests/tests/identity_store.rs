//! The identity store, in the kernel (root, this kernel): task storage by default where the
//! kernel has it, the hash map when forced, each named in the load report and by `status`;
//! either way, a multi-threaded program started before the load keeps reading from a thread
//! other than its leader, and a program without its identity is killed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use guard_tests::agent::{self, Agent};
use guard_tests::scenario::shell_status;
use serde_json::Value;

/// Reads the file from a second thread every 50 ms and records the reads that succeeded and
/// failed; the main thread only waits. The thread starts before the policy is loaded.
const APP_PY: &str = r#"
import sys, threading, time
target, status = sys.argv[1], sys.argv[2]
def reader():
    ok = fail = 0
    while True:
        try:
            with open(target) as f:
                ok += 1 if f.read() else 0
        except OSError:
            fail += 1
        with open(status + ".tmp", "w") as s:
            s.write(f"{ok} {fail} {threading.get_native_id()}\n")
        import os
        os.replace(status + ".tmp", status)
        time.sleep(0.05)
threading.Thread(target=reader, daemon=True).start()
while True:
    time.sleep(1)
"#;

struct App {
    child: Child,
    status: PathBuf,
}

impl App {
    /// (reads, failed reads, the reading thread's tid).
    fn reads(&self) -> (u64, u64, u32) {
        let text = std::fs::read_to_string(&self.status).unwrap_or_default();
        let f: Vec<u64> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        match f[..] {
            [ok, fail, tid] => (ok, fail, tid as u32),
            _ => (0, 0, 0),
        }
    }

    fn wait_reads(&self, at_least: u64) -> (u64, u64, u32) {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.reads();
            if r.0 >= at_least || Instant::now() > end {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The policy: the file may be read by `python3 APP` only (whatever python3 resolves to); anyone
/// else is killed.
fn setup(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("guard-store-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("secret")).expect("dir");
    let file = dir.join("secret").join("f");
    std::fs::write(&file, "x").expect("file");
    let app = dir.join("threads.py");
    std::fs::write(&app, APP_PY).expect("app");
    let policy = dir.join("store.grd");
    std::fs::write(
        &policy,
        format!(
            "guard {d}/secret/* allow cmdline(\"*python3 {app} *\") else kill\n",
            d = dir.display(),
            app = app.display()
        ),
    )
    .expect("policy");
    let object = agent::temp_object(&format!("store-{tag}"));
    agent::compile(&policy, &object).expect("compiles");
    (dir, file, object)
}

fn start_app(dir: &Path, file: &Path) -> App {
    let status = dir.join("status");
    let child = Command::new("python3")
        .arg(dir.join("threads.py"))
        .arg(file)
        .arg(&status)
        .stdin(Stdio::null())
        .spawn()
        .expect("python3 runs");
    let app = App { child, status };
    let (ok, fail, tid) = app.wait_reads(3);
    assert!(
        ok >= 3 && fail == 0,
        "the app reads before the load: {ok} {fail}"
    );
    assert_ne!(tid, app.child.id(), "the reading thread is not the leader");
    app
}

/// Loads the policy with `extra` arguments while the app runs, checks the report and `status`
/// name `store`, the app's thread keeps reading, and `cat` is killed.
fn run(tag: &str, extra: &[&str], store: &str, report: &str) {
    let _kernel = guard_tests::kernel_lock();
    let (dir, file, object) = setup(tag);
    let mut app = start_app(&dir, &file);
    let mut args = vec!["--json"];
    args.extend(extra);
    let agent = Agent::start(&object, &args, false).expect("loads");
    let line = agent
        .wait_stderr("identity store:", Duration::from_secs(5))
        .expect("the load report names the identity store");
    assert!(line.contains(report), "{line}");

    let out = Command::new(guard_tests::bin("guard-run"))
        .args(["status", "--json", "--pin-root"])
        .arg(agent::default_pin_root())
        .output()
        .expect("status runs");
    let v: Value = serde_json::from_slice(&out.stdout).expect("status prints JSON");
    let stores: Vec<&str> = v["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["identity_store"].as_str())
        .collect();
    assert_eq!(stores, [store], "{v}");
    verifier_budget();

    let (before, _, _) = app.reads();
    let cat = shell_status(
        Command::new("cat")
            .arg(&file)
            .stdout(Stdio::null())
            .status()
            .expect("cat runs"),
    );
    assert_eq!(cat, Some(137), "cat, which is not the app, was not killed");
    let (after, fails, _) = app.wait_reads(before + 20);
    let alive = app.alive();
    let alerts = agent.wait_alerts(1, Duration::from_secs(5));
    assert!(alive, "the app was killed: {alerts:?} {:?}", agent.stderr());
    assert_eq!(fails, 0, "the app's thread had failed reads");
    assert!(after >= before + 20, "the app's thread stopped reading");
    let _ = agent.stop();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a: Value = serde_json::from_str(&alerts[0]).expect("JSON");
    assert_eq!(a["output_fields"]["proc.name"], "cat", "{a}");
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(object);
}

/// The instructions the kernel's verifier walked for each guard program loaded (what
/// `bpftool prog show` calls `verified_insns`), printed for the record and checked against the
/// verifier's limit of a million.
fn verifier_budget() {
    for info in aya::programs::loaded_programs().flatten() {
        let Some(name) = info.name_as_str().filter(|n| n.starts_with("guard_")) else {
            continue;
        };
        let n = info.verified_instruction_count().unwrap_or(0);
        eprintln!("verified_insns {name} {n}");
        assert!(n < 1_000_000, "{name}: {n} instructions verified");
    }
}

#[test]
fn task_storage_is_the_default_and_a_thread_started_before_the_load_lives() {
    if !guard_tests::require_kernel_tests("identity store (task)") {
        return;
    }
    run("task", &[], "task", "task storage");
}

#[test]
fn the_forced_hash_store_enforces_the_same() {
    if !guard_tests::require_kernel_tests("identity store (hash)") {
        return;
    }
    run(
        "hash",
        &["--identity-store", "hash"],
        "hash",
        "hash map keyed by thread id",
    );
}

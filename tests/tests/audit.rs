//! Audit mode and the safety valve, with real processes on this kernel: what is judged and
//! reported but not carried out. Root, this kernel's backend.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use guard_tests::agent::{self, Agent};
use guard_tests::scenario::shell_status;
use serde_json::Value;

/// A directory with a file the policy protects, and the policy's object.
struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new(name: &str, policy: impl Fn(&Path) -> String) -> (Fixture, PathBuf) {
        let dir = std::env::temp_dir().join(format!("guard-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("secret"), "s3cret\n").expect("secret");
        let file = dir.join("policy.grd");
        std::fs::write(&file, policy(&dir)).expect("policy");
        let object = dir.join("policy.o");
        agent::compile(&file, &object).expect("compiles");
        (Fixture { dir }, object)
    }

    /// Runs `argv` with the secret's path appended: (exit status, stdout).
    fn read_with(&self, argv: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .arg(self.dir.join("secret"))
            .output()
            .expect("runs");
        (
            shell_status(out.status),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fields(alert: &str) -> Value {
    serde_json::from_str::<Value>(alert).expect("JSON alert")
}

/// `--audit`: the kill rule and the deny rule (which this backend could not carry out, and
/// which audit mode therefore accepts) judge and alert; nothing is killed or denied, and each
/// alert says what would have happened.
#[test]
fn audit_mode_alerts_what_would_have_happened_and_stops_nothing() {
    if !guard_tests::require_kernel_tests("audit mode") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let (f, object) = Fixture::new("audit", |dir| {
        format!(
            "rule \"killer\"\nguard read {d}/secret allow nobody else kill\n\
             rule \"denier\"\nguard write {d}/secret allow nobody else deny\n",
            d = dir.display()
        )
    });
    let agent = Agent::start(&object, &["--json", "--audit"], false).expect("loads");
    let read = f.read_with(&["cat"]);
    let write = Command::new("sh")
        .arg("-c")
        .arg(format!("echo x >> {}/secret", f.dir.display()))
        .status()
        .expect("sh runs");
    let alerts = agent.wait_alerts(2, Duration::from_secs(10));
    let (_, _, stderr) = agent.stop().expect("stops");
    assert_eq!(read, (Some(0), "s3cret\n".into()), "the read was stopped");
    assert!(write.success(), "the write was stopped");
    let report = stderr.join("\n");
    assert!(report.contains("AUDIT MODE"), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.contains("`killer`") && l.contains("audit: alert only (would kill")),
        "{report}"
    );
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let (kill, deny) = (fields(&alerts[0]), fields(&alerts[1]));
    assert_eq!(kill["rule"], "killer");
    assert_eq!(kill["output_fields"]["guard.action"], "would kill");
    assert!(
        kill["output"]
            .as_str()
            .is_some_and(|o| o.ends_with("(not enforced: would kill)")),
        "{kill}"
    );
    assert_eq!(deny["rule"], "denier");
    assert_eq!(deny["output_fields"]["guard.action"], "would deny");
    let stopping = stderr
        .iter()
        .find(|l| l.contains("guard-run: stopping"))
        .cloned()
        .unwrap_or_default();
    assert!(
        stopping.contains("1 would-kill and 1 would-deny not carried out"),
        "{stopping}"
    );
}

/// `--safety-valve 2`: the rule kills two distinct programs, and a third (more than two
/// within a minute) is still killed: the valve opens on the event that tells it. From then on
/// the rule only alerts, for any program, and an internal alert says why.
#[test]
fn the_safety_valve_stops_a_rule_that_kills_too_many_programs() {
    if !guard_tests::require_kernel_tests("safety valve") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let (f, object) = Fixture::new("valve", |dir| {
        format!(
            "rule \"overeager\"\nguard read {}/secret allow nobody else kill\n",
            dir.display()
        )
    });
    let agent = Agent::start(&object, &["--json", "--safety-valve", "2"], false).expect("loads");
    let mut killed = Vec::new();
    for program in [&["cat"][..], &["head", "-n1"], &["cat"], &["tail", "-n1"]] {
        killed.push(f.read_with(program));
    }
    // Three distinct programs (cat, head, tail) were killed: the valve's internal alert.
    let alerts = agent.wait_alerts(5, Duration::from_secs(10));
    let after = f.read_with(&["cat"]);
    std::thread::sleep(Duration::from_millis(500));
    let (_, alerts_after, stderr) = agent.stop().expect("stops");
    for (i, k) in killed.iter().enumerate() {
        assert_eq!(k.0, Some(137), "attempt {i} was not killed: {k:?}");
    }
    assert_eq!(
        after,
        (Some(0), "s3cret\n".into()),
        "the valve did not open"
    );
    let valve: Vec<Value> = alerts
        .iter()
        .map(|a| fields(a))
        .filter(|a| a["rule"] == "guard internal: safety valve opened")
        .collect();
    assert_eq!(valve.len(), 1, "{alerts:?}");
    assert_eq!(valve[0]["priority"], "Critical");
    assert_eq!(
        valve[0]["output_fields"]["guard.programs"],
        serde_json::json!(["cat", "head", "tail"])
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("WARNING: guard internal: safety valve opened")),
        "{stderr:?}"
    );
    let last = fields(alerts_after.last().expect("alerts"));
    assert_eq!(last["rule"], "overeager");
    assert_eq!(last["output_fields"]["guard.action"], "would kill");
}

//! The BPF LSM backend: deny and kill before the open, for every way into the kernel (the
//! article's attacks, and an open submitted through io_uring).
//!
//! These tests need a kernel booted with `bpf` in its `lsm=` list whose verifier accepts LSM
//! programs; this machine's kernel refuses them, so they are `#[ignore]`d here (cargo test
//! lists them as ignored, never as passed) and run in the VM ring (`cargo xtask vm-test`, which
//! passes `--include-ignored`), on Debian's 6.1 kernel. There a missing BPF LSM fails them.

use std::process::Command;
use std::time::Duration;

use guard_tests::agent::{self, Agent};
use guard_tests::scenario::{Attempt, Scenario, attacks};
use serde_json::Value;

/// The seed scenario's policy with `action`, compiled.
fn secrets_object(name: &str, action: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("guard-lsm-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let policy = dir.join("secrets.grd");
    std::fs::write(
        &policy,
        format!("guard /mnt/secrets/* allow ancestor(pid1, \"python app.py\") else {action}\n"),
    )
    .expect("policy");
    let object = agent::temp_object(&format!("lsm-{name}"));
    agent::compile(&policy, &object).expect("compiles");
    object
}

fn start_agent(object: &std::path::Path) -> Agent {
    let agent = Agent::start(object, &["--json", "--backend", "lsm"], false)
        .expect("guard-run loads the policy with the LSM backend");
    assert!(
        agent
            .stderr()
            .iter()
            .any(|l| l.contains("with the lsm (BPF LSM")),
        "{:?}",
        agent.stderr()
    );
    agent
}

/// The article's attacks plus an open through io_uring, which no syscall hook sees.
fn run_attacks(scenario: &Scenario) -> Vec<Attempt> {
    let uring = guard_tests::bin("guard-uring-open");
    let uring = uring.to_str().expect("utf-8");
    let mut all = attacks();
    all.push(("io_uring", vec![uring, "/mnt/secrets/db-password"]));
    all.iter()
        .map(|(name, argv)| {
            let a = scenario.attack(name, argv).expect("nsenter runs");
            std::thread::sleep(Duration::from_millis(200));
            a
        })
        .collect()
}

fn assert_no_secret(attempts: &[Attempt], secrets: &[String]) {
    for a in attempts {
        assert!(a.stdout.is_empty(), "{} printed {:?}", a.name, a.stdout);
        for s in secrets {
            assert!(
                !a.stderr.contains(s.as_str()),
                "{} leaked the secret",
                a.name
            );
        }
    }
}

fn assert_app_unharmed(scenario: &Scenario) {
    assert!(scenario.app_alive(), "the app was killed");
    let (_, fails) = scenario.app_reads().expect("app status");
    assert_eq!(fails, 0, "the app had failed reads");
    let (worker_reads, worker_fails) = scenario.worker_reads().expect("worker status");
    assert_eq!(worker_fails, 0, "the app's worker had failed reads");
    assert!(worker_reads > 0);
}

/// One alert per attempt, each saying what guard did.
fn assert_alerts(alerts: &[String], attempts: &[Attempt], action: &str) {
    assert_eq!(alerts.len(), attempts.len(), "{}", alerts.join("\n"));
    for line in alerts {
        let v: Value = serde_json::from_str(line).expect("JSON");
        let f = &v["output_fields"];
        assert_eq!(f["fd.name"], "/mnt/secrets/db-password", "{line}");
        assert_eq!(f["guard.action"], action, "{line}");
    }
}

#[test]
#[ignore = "needs BPF LSM: runs in the VM ring (cargo xtask vm-test)"]
fn deny_fails_the_open_with_eperm_and_the_attacker_lives_on() {
    if !guard_tests::require_kernel_tests("lsm deny") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let object = secrets_object("deny", "deny");
    let scenario = Scenario::start("lsm-deny").expect("the app starts");
    let agent = start_agent(&object);
    for r in agent.stderr() {
        if r.contains("rule 0") {
            assert!(r.contains("deny (the open fails with EPERM)"), "{r}");
        }
    }
    let mut attempts = run_attacks(&scenario);
    // The attacker's shell survives a denied command and goes on.
    let shell = scenario
        .attack(
            "sh",
            &["sh", "-c", "cat /mnt/secrets/db-password; echo still-here"],
        )
        .expect("nsenter runs");
    scenario
        .wait_for_reads(10, Duration::from_secs(20))
        .expect("the app keeps reading");
    let alerts = agent.wait_alerts(attempts.len() + 1, Duration::from_secs(10));
    let _ = agent.stop();
    assert_eq!(shell.status, Some(0), "{shell:?}");
    assert_eq!(String::from_utf8_lossy(&shell.stdout), "still-here\n");
    assert!(
        shell.stderr.contains("Operation not permitted"),
        "{shell:?}"
    );

    for a in &attempts {
        // Not killed: the tool reports the failed open and exits on its own.
        assert!(
            matches!(a.status, Some(1..=2)),
            "{} was not simply refused: {a:?}",
            a.name
        );
        // EPERM, as BPF LSM tools return it (strerror: "Operation not permitted"; EACCES
        // would read "Permission denied").
        assert!(
            a.stderr.contains("Operation not permitted"),
            "{} did not see EPERM: {a:?}",
            a.name
        );
    }
    assert_no_secret(&attempts, &[]);
    assert_app_unharmed(&scenario);
    attempts.push(shell);
    assert_alerts(&alerts, &attempts, "denied");
    let _ = std::fs::remove_file(object);
}

#[test]
#[ignore = "needs BPF LSM: runs in the VM ring (cargo xtask vm-test)"]
fn kill_stops_every_attempt_before_a_descriptor_exists() {
    if !guard_tests::require_kernel_tests("lsm kill") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let object = secrets_object("kill", "kill");
    let mut scenario = Scenario::start("lsm-kill").expect("the app starts");
    scenario.start_rotation(Duration::from_millis(1500));
    let agent = start_agent(&object);
    let attempts = run_attacks(&scenario);
    scenario
        .wait_for_reads(10, Duration::from_secs(20))
        .expect("the app keeps reading");
    let alerts = agent.wait_alerts(attempts.len(), Duration::from_secs(10));
    let secrets = scenario.stop_rotation();
    let _ = agent.stop();
    for a in &attempts {
        assert_eq!(a.status, Some(137), "{} was not killed: {a:?}", a.name);
    }
    assert_no_secret(&attempts, &secrets);
    assert_app_unharmed(&scenario);
    assert_alerts(&alerts, &attempts, "killed");
    let _ = std::fs::remove_file(object);
}

/// Without BPF LSM, `--backend lsm` refuses to load and says why; with it, the automatic
/// choice is the LSM backend.
#[test]
#[ignore = "needs BPF LSM: runs in the VM ring (cargo xtask vm-test)"]
fn auto_picks_lsm_where_the_kernel_has_it() {
    if !guard_tests::require_kernel_tests("lsm auto") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let object = secrets_object("auto", "deny");
    let agent = Agent::start(&object, &[], false).expect("a deny policy loads on BPF LSM");
    let stderr = agent.stderr().join("\n");
    let _ = agent.stop();
    assert!(stderr.contains("with the lsm (BPF LSM"), "{stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");
    // The same object, forced onto the tracepoint backend, is refused (it cannot deny).
    let out = Command::new(guard_tests::bin("guard-run"))
        .args(["load", "--backend", "tracepoint"])
        .arg(&object)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot make an open fail"));
    let _ = std::fs::remove_file(object);
}

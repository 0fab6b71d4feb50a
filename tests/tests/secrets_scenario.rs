//! Acceptance test of the seed policy on this machine's kernel (root; runs in CI): the
//! article's Part 2 attacks against the article's Part 9 policy.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use guard_tests::agent::{self, Agent};
use guard_tests::scenario::{Scenario, attacks, shell_status};
use serde_json::Value;

#[test]
fn attacker_is_killed_before_reading_the_secret_and_the_app_keeps_working() {
    if !guard_tests::require_kernel_tests("secrets scenario") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let object = agent::temp_object("secrets");
    agent::compile(&guard_tests::secrets_policy(), &object).expect("the seed policy compiles");

    // The app starts before the agent, as on a real node.
    let mut scenario = Scenario::start("secrets").expect("the app starts");
    scenario.start_rotation(Duration::from_millis(1500));
    let agent = Agent::start(&object, &["--json"], false).expect("guard-run loads the policy");
    let (reads_before, fails_before) = scenario.app_reads().expect("app status");
    assert_eq!(
        fails_before, 0,
        "the app failed reads before the policy was loaded"
    );

    let mut attempts = Vec::new();
    for (name, argv) in attacks() {
        attempts.push(scenario.attack(name, &argv).expect("nsenter runs"));
        // Rotation happens between some attempts, as in the article.
        std::thread::sleep(Duration::from_millis(300));
    }
    scenario
        .wait_for_reads(20, Duration::from_secs(20))
        .expect("the app keeps reading after the attacks");
    let alerts = agent.wait_alerts(attempts.len(), Duration::from_secs(10));
    let secrets = scenario.stop_rotation();

    // Every attempt dies with SIGKILL (137) and prints no byte of any secret.
    for a in &attempts {
        assert_eq!(a.status, Some(137), "{} was not killed: {a:?}", a.name);
        let out = String::from_utf8_lossy(&a.stdout);
        assert!(a.stdout.is_empty(), "{} printed {out:?}", a.name);
        for s in &secrets {
            assert!(
                !a.stderr.contains(s.as_str()),
                "{} leaked the secret on stderr",
                a.name
            );
        }
    }

    // The app: alive, the same process, never a failed read, during and after the attacks.
    assert!(scenario.app_alive(), "the app was killed");
    let (reads, fails) = scenario.app_reads().expect("app status");
    assert_eq!(fails, 0, "the app had failed reads");
    let (worker_reads, worker_fails) = scenario.worker_reads().expect("worker status");
    assert_eq!(worker_fails, 0, "the app's forked worker had failed reads");
    assert!(worker_reads > 0);
    assert!(
        reads >= reads_before + 20,
        "the app stopped reading: {reads_before} -> {reads}"
    );

    // One alert per attempt, in Falco's JSON shape.
    assert_eq!(
        alerts.len(),
        attempts.len(),
        "alerts:\n{}",
        alerts.join("\n")
    );
    let expected_names = ["cat", "head", "dd", "awk", "sed", "cat", "python3"];
    for (line, expected) in alerts.iter().zip(expected_names) {
        let v: Value = serde_json::from_str(line).expect("each alert is one JSON object");
        check_falco_json(&v);
        let f = &v["output_fields"];
        assert_eq!(f["proc.name"], expected, "{line}");
        assert_eq!(f["fd.name"], "/mnt/secrets/db-password", "{line}");
        assert_eq!(f["user.name"], "nobody", "{line}");
        assert_eq!(f["guard.action"], "killed", "{line}");
        assert!(
            f["proc.cmdline"]
                .as_str()
                .unwrap_or("")
                .starts_with(expected),
            "{line}"
        );
        assert_eq!(v["priority"], "Critical");
        assert_eq!(v["rule"], "guard /mnt/secrets/*");
    }

    // SIGTERM detaches everything: afterwards the same attack succeeds again.
    let (status, _, stderr) = agent.stop().expect("guard-run stops");
    assert!(
        status.success(),
        "guard-run exited with {status}: {}",
        stderr.join("\n")
    );
    let after = scenario
        .attack("cat", &["cat", "/mnt/secrets/db-password"])
        .expect("nsenter runs");
    assert_eq!(after.status, Some(0), "after unload: {after:?}");
    assert!(
        !after.stdout.is_empty(),
        "after unload the file is readable again"
    );
    let _ = std::fs::remove_file(object);
}

/// Processes that were running before `guard-run` started are judged by the identity the
/// `/proc` scan gave them: the app's forked worker keeps reading, and an attacker's process
/// that was already waiting inside the namespaces is killed when it opens the secret.
#[test]
fn processes_started_before_the_agent_are_judged_by_their_identity() {
    if !guard_tests::require_kernel_tests("pre-existing processes") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let object = agent::temp_object("preexisting");
    agent::compile(&guard_tests::secrets_policy(), &object).expect("the seed policy compiles");
    let scenario = Scenario::start("preexisting").expect("the app starts");

    // The attacker's interpreter starts, and waits, before the agent exists.
    let mut lurker = scenario
        .attacker(&[
            "python3",
            "-c",
            "import sys; sys.stdin.readline(); print(open('/mnt/secrets/db-password').read())",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nsenter runs");
    std::thread::sleep(Duration::from_millis(500));

    let agent = Agent::start(&object, &["--json"], false).expect("guard-run loads the policy");
    let (_, worker_fails_before) = scenario.worker_reads().expect("worker status");
    lurker
        .stdin
        .take()
        .expect("piped")
        .write_all(b"go\n")
        .expect("the lurker reads its stdin");
    let out = lurker.wait_with_output().expect("the lurker ends");
    assert_eq!(
        shell_status(out.status),
        Some(137),
        "the pre-existing attacker was not killed: {out:?}"
    );
    assert!(
        out.stdout.is_empty(),
        "it printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );

    scenario
        .wait_for_reads(10, Duration::from_secs(10))
        .expect("the app keeps reading");
    let (_, app_fails) = scenario.app_reads().expect("app status");
    let (worker_reads, worker_fails) = scenario.worker_reads().expect("worker status");
    assert_eq!((app_fails, worker_fails, worker_fails_before), (0, 0, 0));
    assert!(worker_reads > 0);
    let alerts = agent.wait_alerts(1, Duration::from_secs(5));
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].contains("\"proc.name\":\"python3\""),
        "{}",
        alerts[0]
    );
    let (status, _, _) = agent.stop().expect("guard-run stops");
    assert!(status.success());
    let _ = std::fs::remove_file(object);
}

/// The keys and value types of Falco's JSON output (`falco-output-contract.md`).
fn check_falco_json(v: &Value) {
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "hostname",
            "output",
            "output_fields",
            "priority",
            "rule",
            "source",
            "tags",
            "time"
        ]
    );
    assert!(v["hostname"].is_string());
    assert_eq!(v["source"], "syscall");
    assert!(v["tags"].is_array());
    let time = v["time"].as_str().expect("time is a string");
    // 2023-05-25T13:44:05.478445995Z
    assert_eq!(time.len(), 30, "{time}");
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T' && time.as_bytes()[19] == b'.');
    let f = v["output_fields"]
        .as_object()
        .expect("output_fields is an object");
    assert!(f["evt.time"].is_u64(), "evt.time is an integer");
    assert!(f["proc.pid"].is_u64(), "proc.pid is a number");
    for k in ["proc.name", "proc.cmdline", "user.name", "fd.name"] {
        assert!(f[k].is_string(), "{k} is a string");
    }
    let output = v["output"].as_str().expect("output is a string");
    assert!(output.contains(": Critical "), "{output}");
}

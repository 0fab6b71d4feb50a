//! Enforcement that outlives the agent (root, this kernel): a SIGKILLed agent leaves its policy
//! enforcing, a new agent adopts it and alerts what was raised meanwhile, `unload` ends it,
//! `status` counts per rule, events lost while nobody read are counted, a reload never leaves
//! a gap, and a failed load pins nothing and leaves the old version enforcing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use guard_tests::agent::{self, Agent, PinRoot};
use guard_tests::scenario::Scenario;
use serde_json::Value;

/// The secrets policy with another alert text: the same policy, another object.
fn secrets_v2(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(guard_tests::secrets_policy()).expect("policy");
    let v2 = text.replace("Vault secret read blocked", "Secret read blocked (v2)");
    assert_ne!(text, v2);
    let p = dir.join("secrets-v2.grd");
    std::fs::write(&p, v2).expect("write");
    p
}

fn compiled(policy: &Path, tag: &str) -> PathBuf {
    let object = agent::temp_object(tag);
    agent::compile(policy, &object).expect("compiles");
    object
}

fn cat_secret(s: &Scenario) -> Option<i32> {
    let a = s
        .attack("cat", &["cat", "/mnt/secrets/db-password"])
        .expect("runs");
    if a.status == Some(137) {
        assert!(a.stdout.is_empty(), "killed, yet printed {a:?}");
    }
    a.status
}

fn policy<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["policies"]
        .as_array()
        .and_then(|v| v.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("policy {name} not in {status}"))
}

#[test]
fn enforcement_survives_sigkill_a_new_agent_adopts_and_unload_ends_it() {
    if !guard_tests::require_kernel_tests("lifecycle: sigkill") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let object = compiled(&guard_tests::secrets_policy(), "life-kill");
    let name = object.file_stem().unwrap().to_string_lossy().into_owned();
    let root = PinRoot::new("kill");
    let scenario = Scenario::start("life-kill").expect("the app starts");
    let args = ["--json", root.arg()[0], root.arg()[1]];

    let first = Agent::start(&object, &args, false).expect("loads");
    assert_eq!(cat_secret(&scenario), Some(137));
    assert_eq!(first.wait_alerts(1, Duration::from_secs(10)).len(), 1);
    // The ring buffer's consumer position moves once the agent is done with an event: killed
    // between printing and that, the event is delivered again to the next agent (at least
    // once). Give it the moment it needs, so that the count below is exact.
    std::thread::sleep(Duration::from_millis(300));
    let (_, stderr) = first.kill();
    assert!(
        !stderr.iter().any(|l| l.contains("stopping")),
        "a SIGKILLed agent says nothing: {stderr:?}"
    );

    // Nobody reads: the policy enforces all the same, and the app is untouched.
    for _ in 0..3 {
        assert_eq!(
            cat_secret(&scenario),
            Some(137),
            "enforcement ended with the agent"
        );
    }
    scenario
        .wait_for_reads(5, Duration::from_secs(10))
        .expect("the app keeps reading");
    let st = root.status();
    let p = policy(&st, &name);
    assert_eq!(p["agent"]["reading"], false, "{p}");
    let rule = &p["rules"][0];
    assert_eq!(rule["killed"], 4, "{p}");
    assert_eq!(rule["denied"], 0, "{p}");
    assert_eq!(rule["alerted"], 0, "{p}");
    // Matched: the refusals this rule decided (the app's allowed reads are not matches).
    assert_eq!(rule["matched"], 4, "{p}");
    assert_eq!(p["drops"]["ring_buffer_full"], 0, "{p}");

    // A new agent adopts: no load, the three events raised meanwhile alerted at once.
    let second = Agent::start(&object, &args, false).expect("adopts");
    let lost = second.wait_stderr("while no agent read the events", Duration::from_secs(10));
    let stderr = second.stderr().join("\n");
    assert!(stderr.contains("adopted"), "{stderr}");
    assert!(
        lost.is_some_and(|l| l.contains("3 waited in the ring buffer (alerted now), 0 were lost")),
        "{stderr}"
    );
    let alerts = second.wait_alerts(3, Duration::from_secs(10));
    assert_eq!(alerts.len(), 3, "{alerts:?}");
    assert!(alerts.iter().all(|a| a.contains("\"proc.name\":\"cat\"")));
    assert_eq!(cat_secret(&scenario), Some(137));
    assert_eq!(second.wait_alerts(4, Duration::from_secs(10)).len(), 4);
    assert_eq!(policy(&root.status(), &name)["agent"]["reading"], true);

    // SIGTERM: the agent goes, the policy stays.
    let (status, _, stderr) = second.stop().expect("stops");
    assert!(status.success(), "{stderr:?}");
    assert!(
        stderr.iter().any(|l| l.contains("continues (pinned at")),
        "{stderr:?}"
    );
    assert_eq!(cat_secret(&scenario), Some(137));
    assert_eq!(policy(&root.status(), &name)["rules"][0]["killed"], 6);

    // Unload: enforcement ends; the attack reads the secret.
    let out = root.guard_run(&["unload", &name]).expect("runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        cat_secret(&scenario),
        Some(0),
        "unload did not end enforcement"
    );
    assert_eq!(root.status()["policies"], Value::Array(vec![]));
    let out = root.guard_run(&["unload", &name]).expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no policy"),
        "{out:?}"
    );
    let _ = std::fs::remove_file(&object);
}

#[test]
fn events_lost_while_no_agent_reads_are_counted() {
    if !guard_tests::require_kernel_tests("lifecycle: lost events") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let dir = std::env::temp_dir().join(format!("guard-life-lost-{}", std::process::id()));
    let watched = dir.join("watched");
    std::fs::create_dir_all(&watched).expect("dir");
    std::fs::write(watched.join("f"), "x").expect("file");
    let src = dir.join("lost.grd");
    std::fs::write(
        &src,
        format!(
            "guard {}/* allow uid(4242) else alert warning \"watched file read (proc=%proc.name file=%fd.name)\"\n",
            watched.display()
        ),
    )
    .expect("policy");
    let object = compiled(&src, "life-lost");
    let name = object.file_stem().unwrap().to_string_lossy().into_owned();
    let root = PinRoot::new("lost");
    let args = [root.arg()[0], root.arg()[1]];
    let first = Agent::start(&object, &args, false).expect("loads");
    first.kill();

    // Far more alerts than the ring buffer holds (8 MiB of 4.4 KiB events), nobody reading.
    const OPENS: u64 = 3000;
    let st = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "for _ in range({OPENS}): open('{}').close()",
            watched.join("f").display()
        ))
        .status()
        .expect("python3");
    assert!(st.success());
    let st = root.status();
    let p = policy(&st, &name);
    assert_eq!(p["rules"][0]["alerted"], OPENS, "{p}");
    assert_eq!(p["rules"][0]["matched"], OPENS, "{p}");
    let lost = p["drops"]["since_last_read"].as_u64().unwrap();
    assert!(lost > 0 && lost < OPENS, "{p}");
    assert_eq!(p["drops"]["ring_buffer_full"], lost, "{p}");

    let second = Agent::start(&object, &args, false).expect("adopts");
    let waited = OPENS - lost;
    // Generous: under emulation (the VM ring) alerting 1,900 events takes a while.
    let line = second.wait_stderr("while no agent read the events", Duration::from_secs(120));
    assert!(
        line.as_ref().is_some_and(|l| l.contains(&format!(
            "{waited} waited in the ring buffer (alerted now), {lost} were lost"
        ))),
        "{:?}",
        second.stderr()
    );
    // Every waiting event, then Falco's drop report for the lost ones.
    let alerts = second.wait_alerts(waited as usize + 1, Duration::from_secs(120));
    assert_eq!(alerts.len() as u64, waited + 1);
    assert!(
        alerts[..waited as usize]
            .iter()
            .all(|a| a.contains("watched file read")),
        "{:?}",
        &alerts[..3]
    );
    let report = alerts.last().unwrap();
    assert!(
        report.contains("syscall event drop") && report.contains(&format!("{lost} alerts lost")),
        "{report}"
    );
    // Once read, nothing is counted as lost while unread any more (the reader records what it
    // has seen once it has caught up, then every second).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut st = root.status();
    while policy(&st, &name)["drops"]["since_last_read"] != 0
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
        st = root.status();
    }
    assert_eq!(policy(&st, &name)["drops"]["since_last_read"], 0, "{st}");
    drop(second);
    drop(root);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&object);
}

/// An attacker in the app's namespaces reading the secret in a tight loop, until stopped:
/// counts its attempts and the reads that returned the secret.
struct Hammer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u64, u64)>>,
}

impl Hammer {
    fn start(scenario: &Scenario) -> Hammer {
        let mut child = scenario
            .attacker(&[
                "sh",
                "-c",
                "while :; do cat /mnt/secrets/db-password 2>/dev/null && echo; echo TRY; done",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("attacker starts");
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let out = child.stdout.take().expect("piped");
            let (tries, reads) = (AtomicU64::new(0), AtomicU64::new(0));
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line == "TRY" {
                    tries.fetch_add(1, Ordering::Relaxed);
                } else if line.contains("secret") {
                    reads.fetch_add(1, Ordering::Relaxed);
                }
                if s.load(Ordering::Relaxed) {
                    break;
                }
            }
            let _ = child.kill();
            let _ = child.wait();
            (tries.into_inner(), reads.into_inner())
        });
        Hammer {
            stop,
            thread: Some(thread),
        }
    }

    /// `(attempts, successful reads)`.
    fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("joins"))
            .unwrap_or_default()
    }
}

#[test]
fn reloading_another_version_never_leaves_a_gap() {
    if !guard_tests::require_kernel_tests("lifecycle: reload") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let scenario = Scenario::start("life-reload").expect("the app starts");
    let v1 = compiled(&guard_tests::secrets_policy(), "life-v1");
    let v2 = compiled(&secrets_v2(&scenario.dir), "life-v2");
    let root = PinRoot::new("reload");
    let args = ["--name", "secrets", root.arg()[0], root.arg()[1]];
    let first = Agent::start(&v1, &args, false).expect("loads");
    first.stop().expect("stops");
    assert_eq!(cat_secret(&scenario), Some(137));

    let hammer = Hammer::start(&scenario);
    const RELOADS: usize = 20;
    for i in 0..RELOADS {
        let (object, text) = if i % 2 == 0 {
            (&v2, "(v2)")
        } else {
            (&v1, "Vault secret")
        };
        let a = Agent::start(object, &args, false).expect("reloads");
        let stderr = a.stderr().join("\n");
        assert!(stderr.contains("(replacing the version of"), "{stderr}");
        let st = root.status();
        let p = policy(&st, "secrets");
        let pinned_sha = p["object_sha3"].as_str().unwrap().to_string();
        let (status, _, stderr) = a.stop().expect("stops");
        assert!(status.success(), "{stderr:?}");
        // One version under the name, nothing left over beside it.
        assert_eq!(root.entries(), vec!["secrets".to_string()]);
        assert_eq!(st["policies"].as_array().unwrap().len(), 1);
        assert!(
            p["rules"][0]["name"].as_str().is_some(),
            "{p} (loaded with {text})"
        );
        assert_eq!(pinned_sha.len(), 64);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (tries, reads) = hammer.stop();
    eprintln!("reload: {RELOADS} reloads, {tries} attempts to read the secret, {reads} succeeded");
    assert_eq!(
        reads, 0,
        "{reads} of {tries} reads got the secret during reloads"
    );
    assert!(tries >= 100, "the attacker only tried {tries} times");
    scenario
        .wait_for_reads(3, Duration::from_secs(10))
        .expect("the app kept reading");
    let (_, fails) = scenario.app_reads().expect("status");
    assert_eq!(fails, 0, "the app had failed reads during the reloads");

    // Every old version was detached: once the last one goes, nothing enforces.
    let out = root.guard_run(&["unload", "secrets"]).expect("runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(cat_secret(&scenario), Some(0));
    for o in [v1, v2] {
        let _ = std::fs::remove_file(o);
    }
}

/// The object with one instruction of its exec tracking program replaced by an invalid opcode,
/// in both identity stores' variants (a rejected task-storage variant alone makes guard-run
/// fall back to the hash store): it parses, and the kernel's verifier rejects it.
fn verifier_rejected(object: &Path) -> PathBuf {
    let mut bytes = std::fs::read(object).expect("read");
    for section in [
        "tp_btf/sched_process_exec",
        "tp_btf/sched_process_exec/hash",
    ] {
        let range = guard_ebpf::elf::section_file_range(&bytes, section)
            .expect("the exec tracking program's section");
        bytes[range.start] = 0xff;
    }
    let bad = object.with_extension("bad.o");
    std::fs::write(&bad, bytes).expect("write");
    bad
}

#[test]
fn a_failed_load_pins_nothing_and_leaves_the_old_version_enforcing() {
    if !guard_tests::require_kernel_tests("lifecycle: failed load") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let scenario = Scenario::start("life-fail").expect("the app starts");
    let v1 = compiled(&guard_tests::secrets_policy(), "life-fail");
    let bad = verifier_rejected(&v1);
    let root = PinRoot::new("fail");
    let v1_str = v1.to_str().unwrap();
    let bad_str = bad.to_str().unwrap();

    // Fresh: nothing pinned under the name, nothing enforcing.
    let out = root
        .guard_run(&["load", bad_str, "--name", "fresh"])
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("verifier rejected"), "{err}");
    // The rules behind the rejected program, with their source locations.
    assert!(
        err.contains("It tracks the identities used by the rules of")
            && err.contains("rule 0 `guard /mnt/secrets/*` at ")
            && err.contains("secrets.grd:3:1"),
        "{err}"
    );
    assert!(root.entries().is_empty(), "{:?}", root.entries());
    assert_eq!(cat_secret(&scenario), Some(0));

    // A good version, then a bad one under the same name: the good one stays.
    let a = Agent::start(
        &v1,
        &["--name", "secrets", root.arg()[0], root.arg()[1]],
        false,
    )
    .expect("loads");
    a.stop().expect("stops");
    let sha = policy(&root.status(), "secrets")["object_sha3"].clone();
    let out = root
        .guard_run(&["load", bad_str, "--name", "secrets"])
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("keeps enforcing its previous version"),
        "{err}"
    );
    assert_eq!(root.entries(), vec!["secrets".to_string()]);
    assert_eq!(policy(&root.status(), "secrets")["object_sha3"], sha);
    assert_eq!(cat_secret(&scenario), Some(137));

    // A corrupt file is refused before anything is touched.
    let corrupt = v1.with_extension("corrupt.o");
    std::fs::write(&corrupt, b"not an object").expect("write");
    let out = root
        .guard_run(&["load", corrupt.to_str().unwrap(), "--name", "secrets"])
        .expect("runs");
    assert!(!out.status.success());
    assert_eq!(policy(&root.status(), "secrets")["object_sha3"], sha);
    let _ = v1_str;
    for f in [&v1, &bad, &corrupt] {
        let _ = std::fs::remove_file(f);
    }
}

/// From audit to enforce and back, as an operator rolls a policy out: each switch is a reload
/// of the same object, `status` tells the mode and the would-kill count, and the attacker's
/// read goes through only while the policy audits.
#[test]
fn switching_between_audit_and_enforce_is_a_reload() {
    if !guard_tests::require_kernel_tests("lifecycle: audit switch") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let scenario = Scenario::start("life-audit").expect("the app starts");
    let object = compiled(&guard_tests::secrets_policy(), "life-audit");
    let root = PinRoot::new("audit");
    let base = ["--json", "--name", "secrets", root.arg()[0], root.arg()[1]];
    let with_audit: Vec<&str> = base.iter().copied().chain(["--audit"]).collect();

    let audit = Agent::start(&object, &with_audit, false).expect("loads in audit mode");
    assert_eq!(
        cat_secret(&scenario),
        Some(0),
        "audit mode stopped the read"
    );
    let alerts = audit.wait_alerts(1, Duration::from_secs(10));
    assert!(
        alerts
            .iter()
            .any(|a| a.contains("\"guard.action\":\"would kill\"")),
        "{alerts:?}"
    );
    let (status, _, stderr) = audit.stop().expect("stops");
    assert!(status.success(), "{stderr:?}");
    let st = root.status();
    let p = policy(&st, "secrets");
    assert_eq!(p["mode"], "audit", "{p}");
    assert_eq!(p["counters"]["would_kill"], 1, "{p}");

    // Enforce: the same object, without --audit, replaces the audit version.
    let enforce = Agent::start(&object, &base, false).expect("loads enforcing");
    let report = enforce.stderr().join("\n");
    assert!(report.contains("(replacing the version of"), "{report}");
    assert!(!report.contains("AUDIT MODE"), "{report}");
    assert_eq!(cat_secret(&scenario), Some(137));
    let alerts = enforce.wait_alerts(1, Duration::from_secs(10));
    assert!(
        alerts
            .iter()
            .any(|a| a.contains("\"guard.action\":\"killed\"")),
        "{alerts:?}"
    );
    let (status, _, stderr) = enforce.stop().expect("stops");
    assert!(status.success(), "{stderr:?}");
    let st = root.status();
    assert_eq!(policy(&st, "secrets")["mode"], "enforce");

    // And back to audit: a reload again, and the read goes through.
    let back = Agent::start(&object, &with_audit, false).expect("back to audit");
    assert!(back.stderr().join("\n").contains("(replacing"));
    assert_eq!(cat_secret(&scenario), Some(0));
    back.stop().expect("stops");
    let out = root.guard_run(&["unload", "secrets"]).expect("runs");
    assert!(out.status.success(), "{out:?}");
    let _ = std::fs::remove_file(object);
}

/// An agent whose stderr reader goes away (a pipe into a command that quit) keeps enforcing,
/// and on SIGTERM stops cleanly, unloading with `--unpin-on-exit`: its reports to the closed
/// stderr fail silently instead of panicking.
#[test]
fn an_agent_whose_stderr_closes_keeps_enforcing_and_stops_cleanly() {
    if !guard_tests::require_kernel_tests("lifecycle: closed stderr") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let scenario = Scenario::start("life-pipe").expect("the app starts");
    let object = compiled(&guard_tests::secrets_policy(), "life-pipe");
    let root = PinRoot::new("pipe");
    let mut child = Command::new(guard_tests::bin("guard-run"))
        .arg("load")
        .arg(&object)
        .args([
            "--name",
            "secrets",
            root.arg()[0],
            root.arg()[1],
            "--unpin-on-exit",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("guard-run starts");
    {
        let stderr = child.stderr.take().expect("piped");
        let enforcing = BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("guard-run: enforcing"));
        assert!(enforcing, "guard-run ended before enforcing");
        // The reader is dropped here: the agent's stderr is a pipe nobody reads.
    }
    assert_eq!(cat_secret(&scenario), Some(137));
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().expect("waits");
    assert!(status.success(), "guard-run did not stop cleanly: {status}");
    assert!(root.entries().is_empty(), "{:?}", root.entries());
    assert_eq!(cat_secret(&scenario), Some(0));
    let _ = std::fs::remove_file(object);
}

//! The article's production rule set (Part 4) on this machine's kernel, with real processes:
//! each rule fires on its attack and stays quiet for the application. Root, this kernel.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use guard_tests::agent::{self, Agent};
use guard_tests::scenario::Scenario;
use serde_json::Value;

fn policy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/mirecloud.grd")
}

struct Alert {
    rule: String,
    priority: String,
    proc_name: String,
    pid: u64,
    fields: Value,
}

fn parse(alerts: &[String]) -> Vec<Alert> {
    alerts
        .iter()
        .map(|a| {
            let v: Value = serde_json::from_str(a).expect("JSON alert");
            Alert {
                rule: v["rule"].as_str().unwrap_or("").to_string(),
                priority: v["priority"].as_str().unwrap_or("").to_string(),
                proc_name: v["output_fields"]["proc.name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                pid: v["output_fields"]["proc.pid"].as_u64().unwrap_or(0),
                fields: v["output_fields"].clone(),
            }
        })
        .collect()
}

/// A copy (not a link: the kernel resolves links to the real program) of `true` under `name`.
fn fake_program(dir: &std::path::Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy("/bin/true", &p).expect("copy /bin/true");
    p
}

#[test]
fn each_rule_of_the_article_fires_on_its_attack_and_not_on_the_app() {
    if !guard_tests::require_kernel_tests("five-rule set") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let object = agent::temp_object("five");
    agent::compile(&policy(), &object).expect("the five-rule policy compiles");
    let scenario = Scenario::start("five").expect("the app starts");
    let bin = scenario.dir.join("fakebin");
    std::fs::create_dir_all(&bin).expect("dir");
    let curl = fake_program(&bin, "curl");
    let wget = fake_program(&bin, "wget");
    let nc = fake_program(&bin, "nc");
    let agent = Agent::start(&object, &["--json"], false).expect("guard-run loads the policy");

    // 1. Secret read: killed, as in the walking skeleton.
    let read = scenario
        .attack("cat", &["cat", "/mnt/secrets/db-password"])
        .expect("runs");
    assert_eq!(read.status, Some(137), "{read:?}");

    // 2. Interactive shell: `script` gives the shell a controlling terminal.
    let shell = scenario
        .attack("tty shell", &["script", "-qec", "sh -c true", "/dev/null"])
        .expect("runs");
    assert_eq!(
        shell.status,
        Some(0),
        "an alert-only rule must not stop the shell: {shell:?}"
    );

    // 3. Exfiltration tools and an interpreter started by the attacker.
    for p in [&curl, &wget, &nc] {
        let a = scenario
            .attack("exfil", &[p.to_str().expect("utf-8")])
            .expect("runs");
        assert_eq!(a.status, Some(0), "{a:?}");
    }
    let py = scenario
        .attack("python3", &["python3", "-c", "pass"])
        .expect("runs");
    assert_eq!(py.status, Some(0), "{py:?}");

    // 4. Process memory: opening /proc/<pid>/mem.
    let mem = scenario
        .attack(
            "mem",
            &["dd", "if=/proc/self/mem", "count=0", "status=none"],
        )
        .expect("runs");
    assert!(mem.status.is_some(), "{mem:?}");

    // 5. Tamper: an open for writing under the secrets mount (as root in the container).
    let tamper = Command::new("nsenter")
        .args(["-t", &scenario.app_pid.to_string(), "-p", "-m"])
        .args(["sh", "-c", "echo tampered >> /mnt/secrets/db-password"])
        .status()
        .expect("runs");
    let _ = tamper;

    scenario
        .wait_for_reads(10, Duration::from_secs(10))
        .expect("the app keeps reading");
    let alerts = agent.wait_alerts(9, Duration::from_secs(10));
    let (status, _, stderr) = agent.stop().expect("stops");
    assert!(status.success(), "{stderr:?}");
    let alerts = parse(&alerts);
    let by_rule = |needle: &str| -> Vec<&Alert> {
        alerts
            .iter()
            .filter(|a| a.rule.to_lowercase().contains(needle))
            .collect()
    };
    let dump = || {
        alerts
            .iter()
            .map(|a| format!("{} {} {} {}", a.rule, a.priority, a.proc_name, a.fields))
            .collect::<Vec<_>>()
            .join("\n")
    };

    if std::env::var_os("GUARD_VERBOSE").is_some() {
        eprintln!("{}", dump());
    }
    let read = by_rule("read");
    assert!(
        read.iter()
            .any(|a| a.proc_name == "cat" && a.priority == "Critical"),
        "{}",
        dump()
    );
    let shell = by_rule("shell");
    assert!(
        shell
            .iter()
            .any(|a| (a.proc_name == "sh" || a.proc_name == "bash") && a.priority == "Warning"),
        "{}",
        dump()
    );
    let exfil = by_rule("exfil");
    for name in ["curl", "wget", "nc", "python3"] {
        assert!(
            exfil.iter().any(|a| a.proc_name == name),
            "no exfiltration alert for {name}:\n{}",
            dump()
        );
    }
    assert!(
        exfil
            .iter()
            .all(|a| a.fields["proc.exepath"].as_str().is_some()),
        "exec alerts carry the program's path:\n{}",
        dump()
    );
    let mem = by_rule("memory");
    assert!(mem.iter().any(|a| a.proc_name == "dd"), "{}", dump());
    let tamper = by_rule("tamper");
    assert!(
        tamper
            .iter()
            .any(|a| a.fields["fd.name"] == "/mnt/secrets/db-password"),
        "{}",
        dump()
    );
    // The app (and its forked worker) raised nothing, and were never refused.
    let app_pids = [u64::from(scenario.app_pid)];
    assert!(
        alerts.iter().all(|a| !app_pids.contains(&a.pid)),
        "{}",
        dump()
    );
    assert!(scenario.app_alive());
    assert_eq!(scenario.app_reads().expect("status").1, 0);
    assert_eq!(scenario.worker_reads().expect("status").1, 0);
    let _ = std::fs::remove_file(object);
}

/// Where this kernel's backend cannot do what a rule asks (deny), guard-run refuses the policy
/// with an error that says why and what to do, and loads nothing.
#[test]
fn a_deny_rule_is_refused_on_the_tracepoint_backend() {
    if !guard_tests::require_kernel_tests("deny refusal") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let dir = std::env::temp_dir().join(format!("guard-deny-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let policy = dir.join("deny.grd");
    std::fs::write(
        &policy,
        format!(
            "guard {}/* allow ancestor(pid1, \"python app.py\") else deny\n",
            dir.display()
        ),
    )
    .expect("written");
    let object = dir.join("deny.o");
    agent::compile(&policy, &object).expect("compiles");
    // The tracepoint backend, insisted on: in the VM ring the kernel has BPF LSM, where the same
    // policy loads (see the lsm test).
    let out = Command::new(guard_tests::bin("guard-run"))
        .arg("load")
        .arg(&object)
        .args(["--backend", "tracepoint"])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot make an open fail"), "{err}");
    assert!(err.contains("--deny-as-kill"), "{err}");
    assert!(err.contains("lsm="), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

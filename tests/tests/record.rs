//! Record and replay with real processes on this kernel (root): `guard-run load --record`
//! writes what the secrets scenario did, allowed or not, with each process's ancestry, and
//! `guardc test --replay` judges other policies against it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use guard_ebpf::abi::Action;
use guard_ebpf::record::{Recorded, RecordedOp};
use guard_tests::agent::{self, Agent};
use guard_tests::scenario::{Scenario, attacks};

/// `guardc test --replay record target`: (exit code, stdout).
fn replay(record: &Path, target: &Path) -> (Option<i32>, String) {
    let out = Command::new(guard_tests::bin("guardc"))
        .args(["test", "--replay"])
        .arg(record)
        .arg(target)
        .output()
        .expect("guardc runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), stdout)
}

fn summary(report: &str) -> &str {
    report
        .lines()
        .last()
        .expect("the report ends with a summary")
}

#[test]
fn an_audit_recording_replays_against_the_same_and_other_policies() {
    if !guard_tests::require_kernel_tests("record and replay") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let object = agent::temp_object("record");
    agent::compile(&guard_tests::secrets_policy(), &object).expect("the seed policy compiles");
    let record = object.with_extension("jsonl");
    let _ = std::fs::remove_file(&record);

    let scenario = Scenario::start("record").expect("the app starts");
    let agent = Agent::start(
        &object,
        &["--json", "--audit", "--record", record.to_str().unwrap()],
        false,
    )
    .expect("guard-run loads the policy");
    assert!(
        agent
            .wait_stderr("recording every open and exec", Duration::from_secs(5))
            .is_some(),
        "the load report does not say it records: {:?}",
        agent.stderr()
    );
    scenario
        .wait_for_reads(5, Duration::from_secs(20))
        .expect("the app reads");
    let chosen = ["cat", "sh -c", "python3 -c"];
    let mut attempts = Vec::new();
    for (name, argv) in attacks().into_iter().filter(|(n, _)| chosen.contains(n)) {
        attempts.push(scenario.attack(name, &argv).expect("nsenter runs"));
    }
    let alerts = agent.wait_alerts(attempts.len(), Duration::from_secs(10));
    scenario
        .wait_for_reads(3, Duration::from_secs(20))
        .expect("the app reads after the attacks");
    let (_, _, stderr) = agent.stop().expect("stops");
    // Audit mode: the attacks read the secret; each was reported as a would-kill.
    for a in &attempts {
        assert_eq!(
            a.status,
            Some(0),
            "{} was stopped in audit mode: {a:?}",
            a.name
        );
    }
    assert_eq!(alerts.len(), attempts.len(), "alerts: {alerts:#?}");
    let said = stderr.join("\n");
    assert!(
        said.contains("operations to") && said.contains(record.to_str().unwrap()),
        "the agent does not say what it recorded: {said}"
    );

    let text = std::fs::read_to_string(&record).expect("the record exists");
    let records: Vec<Recorded> = guard_ebpf::record::parse(&text)
        .expect("every line is a record")
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let refused: Vec<&Recorded> = records
        .iter()
        .filter(|r| r.decision != Action::Allow)
        .collect();
    let allowed: Vec<&Recorded> = records
        .iter()
        .filter(|r| r.decision == Action::Allow)
        .collect();
    assert_eq!(refused.len(), attempts.len(), "records: {records:#?}");
    // The app read at least eight times while recorded, its worker as often: each is written
    // once (the same operation by the same kind of process).
    assert_eq!(allowed.len(), 2, "the app's reads: {records:#?}");
    let line = stderr
        .iter()
        .find(|l| l.contains("operations to"))
        .expect("the agent says what it recorded");
    let seen: u64 = line
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        seen >= 8 + 3 && line.contains(&format!(": {} distinct ones written", records.len())),
        "{line}"
    );
    for r in &records {
        assert_eq!(r.op, RecordedOp::Read);
        assert_eq!(r.path, "/mnt/secrets/db-password");
        assert!(r.policy.ends_with("secrets.grd"), "{}", r.policy);
        // A loaded machine can delay the agent until an attacker's nsenter has exited: its
        // record then lacks the ancestry, and says so.
        let root = &r.process[0];
        assert!(
            (root.pid, root.ns_level) == (1, 0) || !r.complete,
            "a complete record's chain starts at init: {r:#?}"
        );
    }
    for r in &refused {
        assert_eq!(r.decision, Action::Kill);
        assert!(!r.enforced, "audit mode carried nothing out: {r:#?}");
        assert_eq!(r.rule.as_deref(), Some("guard /mnt/secrets/*"));
        let actor = r.process.last().unwrap();
        assert_eq!(actor.uid, 65534, "{r:#?}");
        assert_eq!(actor.user.as_deref(), Some("nobody"), "{r:#?}");
        assert!(
            actor.entered,
            "the attacker was entered from outside: {r:#?}"
        );
        assert!(actor.ns_level >= 1 && !actor.ns_init, "{r:#?}");
        // Whoever entered it: the nearest ancestor in the host's namespace.
        if (r.process[0].pid, r.process[0].ns_level) == (1, 0) {
            let outside = r.process.iter().rev().find(|p| p.ns_level == 0).unwrap();
            assert_eq!(outside.name, "nsenter", "{r:#?}");
        }
    }
    let names: Vec<&str> = refused
        .iter()
        .map(|r| r.process.last().unwrap().name.as_str())
        .collect();
    assert_eq!(names, ["cat", "cat", "python3"], "who was recorded");
    for r in &allowed {
        // The app (python app.py, pid 1 of its namespace) or the worker it forked.
        let app = r
            .process
            .iter()
            .find(|p| p.argv == ["python", "app.py"] && p.ns_init)
            .unwrap_or_else(|| panic!("no app in the ancestry: {r:#?}"));
        assert_eq!(app.ns_level, 1);
        assert!(r.complete, "the app's context is all there: {r:#?}");
    }

    // The same policy: nothing differs.
    let (code, report) = replay(&record, &object);
    let n = records.len();
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(
        summary(&report),
        format!(
            "{n} operations replayed: {n} same, 0 differ (0 refused more severely, 0 less), 0 not replayed; {} with incomplete process context",
            records.iter().filter(|r| !r.complete).count()
        ),
        "{report}"
    );

    // A version that also lets user nobody read: each attack differs, the app's reads do not.
    let dir = object.parent().unwrap();
    let looser = dir.join("record-looser.grd");
    std::fs::write(
        &looser,
        "guard /mnt/secrets/* allow ancestor(pid1, \"python app.py\") or uid(65534) else kill\n",
    )
    .unwrap();
    let (code, report) = replay(&record, &looser);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        summary(&report).contains(&format!(
            "{} same, 3 differ (0 refused more severely, 3 less)",
            n - 3
        )),
        "{report}"
    );
    assert_eq!(report.matches("recorded: kill (rule \"guard /mnt/secrets/*\"), not carried out\n    new:      allow").count(), 3, "{report}");
    assert!(
        report.contains("`cat /mnt/secrets/db-password`"),
        "{report}"
    );

    // A version that lets no one read: the app's reads are the ones that differ, each with
    // the rule that now refuses it and where it is.
    let stricter = dir.join("record-stricter.grd");
    std::fs::write(&stricter, "guard /mnt/secrets/* allow nobody else kill\n").unwrap();
    let (code, report) = replay(&record, &stricter);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        summary(&report).contains(&format!(
            "3 same, {} differ ({} refused more severely, 0 less)",
            allowed.len(),
            allowed.len()
        )),
        "{report}"
    );
    assert!(
        report.contains(
            "recorded: allow\n    new:      kill\n    decided by rule \"guard /mnt/secrets/*\" ("
        ) && report.contains("record-stricter.grd:1:1"),
        "{report}"
    );
    for f in [record, looser, stricter, object] {
        let _ = std::fs::remove_file(f);
    }
}

/// Execs are recorded too: an allowed one and a refused one, each with the program as its
/// executable and the command line the new program runs with; the replay judges them as
/// execs.
#[test]
fn execs_are_recorded_and_replayed_as_execs() {
    use std::os::unix::process::CommandExt;
    if !guard_tests::require_kernel_tests("record and replay of execs") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let dir = std::env::temp_dir().join(format!("guard-record-exec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let wc = std::fs::canonicalize(guard_tests::which("wc").expect("wc")).unwrap();
    let policy = dir.join("exec.grd");
    std::fs::write(
        &policy,
        format!("guard exec {} allow uid(0) else kill\n", wc.display()),
    )
    .unwrap();
    let object = dir.join("exec.o");
    agent::compile(&policy, &object).expect("compiles");
    let record = dir.join("exec.jsonl");
    let agent = Agent::start(
        &object,
        &["--json", "--audit", "--record", record.to_str().unwrap()],
        false,
    )
    .expect("loads");
    let as_root = Command::new(&wc)
        .arg("-c")
        .arg("/dev/null")
        .output()
        .unwrap();
    let as_nobody = unsafe {
        Command::new(&wc)
            .args(["-l", "/dev/null"])
            .pre_exec(|| {
                if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
            .output()
            .unwrap()
    };
    let alerts = agent.wait_alerts(1, Duration::from_secs(10));
    agent.stop().expect("stops");
    assert!(
        as_root.status.success() && as_nobody.status.success(),
        "audit stops nothing"
    );
    assert_eq!(alerts.len(), 1, "{alerts:#?}");

    let text = std::fs::read_to_string(&record).expect("the record exists");
    let records: Vec<Recorded> = guard_ebpf::record::parse(&text)
        .expect("records")
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r.path == wc.to_str().unwrap())
        // On the LSM backend the exec's own open of the program is recorded too, as a read
        // of a path the policy's pattern matches.
        .filter(|r| r.op == RecordedOp::Exec)
        .collect();
    assert_eq!(records.len(), 2, "{text}");
    let decisions: Vec<(Action, u32, &[String])> = records
        .iter()
        .map(|r| {
            let p = r.process.last().unwrap();
            assert_eq!(r.op, RecordedOp::Exec);
            assert_eq!(p.exe.as_deref(), wc.to_str());
            (r.decision, p.uid, p.argv.as_slice())
        })
        .collect();
    assert_eq!(decisions[0].0, Action::Allow, "{records:#?}");
    assert_eq!(decisions[0].1, 0);
    assert_eq!(decisions[0].2[1..], ["-c", "/dev/null"]);
    assert_eq!(decisions[1].0, Action::Kill, "{records:#?}");
    assert_eq!(decisions[1].1, 65534);
    assert_eq!(decisions[1].2[1..], ["-l", "/dev/null"]);

    let only = dir.join("only.jsonl");
    std::fs::write(
        &only,
        records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let (code, report) = replay(&only, &object);
    assert_eq!(code, Some(0), "{report}");
    let open = dir.join("open.grd");
    std::fs::write(
        &open,
        format!("guard exec {} allow not nobody else kill\n", wc.display()),
    )
    .unwrap();
    let (code, report) = replay(&only, &open);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        summary(&report).starts_with(
            "2 operations replayed: 1 same, 1 differ (0 refused more severely, 1 less)"
        ),
        "{report}"
    );
    assert!(
        report.contains(&format!("exec {} by `", wc.display())),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

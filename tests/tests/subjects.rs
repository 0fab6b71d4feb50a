//! Subjects judged in the kernel with real processes: `entered` (a process brought into a pid
//! namespace from outside, as `kubectl exec` does), `cgroup("/path")` (including cgroups
//! created after the policy was loaded) and `nobody`. Root, this kernel.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use guard_tests::agent::{self, Agent};
use guard_tests::scenario::{Scenario, shell_status};
use serde_json::Value;

fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    })
}

fn status(cmd: &mut Command) -> Option<i32> {
    shell_status(cmd.output().expect("runs").status)
}

fn cat_in_cgroup(cgroup: &Path, file: &Path) -> Option<i32> {
    status(Command::new("sh").arg("-c").arg(format!(
        "echo $$ > {}/cgroup.procs && exec cat {} >/dev/null",
        cgroup.display(),
        file.display()
    )))
}

#[test]
fn entered_cgroup_and_nobody_are_judged_with_real_processes() {
    if !guard_tests::require_kernel_tests("subjects") {
        return;
    }
    let Some(cg_root) = cgroup2_root() else {
        if std::env::var_os("CI").is_some() {
            panic!("subjects: no cgroup v2 hierarchy is mounted");
        }
        eprintln!("skip: subjects: no cgroup v2 hierarchy is mounted");
        return;
    };
    let _kernel = guard_tests::kernel_lock();
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("guard-subj-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["entered", "scoped", "nobody"] {
        std::fs::create_dir_all(dir.join(d)).expect("dir");
        std::fs::write(dir.join(d).join("f"), "x").expect("file");
    }
    let cg_name = format!("guard-test-{pid}");
    let cg = cg_root.join(&cg_name);
    std::fs::create_dir_all(&cg).expect("a cgroup v2 directory can be created");
    let policy = dir.join("subjects.grd");
    std::fs::write(
        &policy,
        format!(
            "guard {d}/entered/* allow not entered else kill\n\
             guard {d}/scoped/* allow cgroup(\"/{cg_name}\") else kill\n\
             guard {d}/nobody/* allow nobody else alert warning\n",
            d = dir.display()
        ),
    )
    .expect("policy");
    let object = agent::temp_object("subjects");
    agent::compile(&policy, &object).expect("compiles");
    let scenario = Scenario::start("subjects").expect("the app starts");
    let agent = Agent::start(&object, &["--json"], false).expect("loads");
    let f = |d: &str| dir.join(d).join("f");

    // entered: nsenter into the app's namespaces is; the host and a new namespace's init are not.
    let entered = scenario
        .attack("cat", &["cat", f("entered").to_str().expect("utf-8")])
        .expect("runs");
    assert_eq!(entered.status, Some(137), "{entered:?}");
    assert_eq!(status(Command::new("cat").arg(f("entered"))), Some(0));
    assert_eq!(
        status(
            Command::new("unshare")
                .args(["--pid", "--fork", "cat"])
                .arg(f("entered"))
        ),
        Some(0),
        "the init of a new pid namespace was not entered"
    );

    // cgroup: inside the scope (and in a cgroup created after the load) allowed, outside killed.
    assert_eq!(cat_in_cgroup(&cg, &f("scoped")), Some(0));
    assert_eq!(status(Command::new("cat").arg(f("scoped"))), Some(137));
    let late = cg.join("late");
    std::fs::create_dir_all(&late).expect("sub-cgroup");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        cat_in_cgroup(&late, &f("scoped")),
        Some(0),
        "the new cgroup joined the scope"
    );

    // nobody: every open alerts; nothing is stopped.
    assert_eq!(status(Command::new("cat").arg(f("nobody"))), Some(0));

    let alerts = agent.wait_alerts(3, Duration::from_secs(5));
    let _ = agent.stop();
    let names: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            let v: Value = serde_json::from_str(a).expect("JSON");
            (
                v["rule"].as_str().unwrap_or("").to_string(),
                v["output_fields"]["guard.action"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    let d = dir.display();
    assert_eq!(
        names,
        vec![
            (format!("guard {d}/entered/*"), "killed".to_string()),
            (format!("guard {d}/scoped/*"), "killed".to_string()),
            (format!("guard {d}/nobody/*"), "alerted".to_string()),
        ]
    );
    drop(scenario);
    let _ = std::fs::remove_dir(&late);
    let _ = std::fs::remove_dir(&cg);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(object);
}

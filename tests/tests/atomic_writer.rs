//! A Kubernetes secret volume as the kubelet's atomic writer lays it out: the file an open
//! reaches is `/mnt/secrets/..<timestamp>/db-password`, through two symlinks. guard matches the
//! file actually opened, so `/mnt/secrets/**` covers it, and `/mnt/secrets/*` (which the
//! compiler warns about, W0002) does not. Root, this kernel.

use std::time::Duration;

use guard_tests::agent::{self, Agent};
use guard_tests::scenario::{Layout, Scenario};
use serde_json::Value;

fn policy(dir: &std::path::Path, pattern: &str) -> std::path::PathBuf {
    let p = dir.join(format!("atomic-{}.grd", pattern.len()));
    std::fs::write(
        &p,
        format!("guard {pattern} allow ancestor(pid1, \"python app.py\") else kill\n"),
    )
    .expect("policy written");
    p
}

#[test]
fn the_opened_file_is_under_the_timestamped_directory() {
    if !guard_tests::require_kernel_tests("atomic writer layout") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let mut scenario =
        Scenario::start_with("atomic", Layout::AtomicWriter).expect("the app starts");
    scenario.start_rotation(Duration::from_millis(700));

    // `**` covers the real file: the attacker is killed, the app keeps reading through rotations.
    let object = agent::temp_object("atomic-globstar");
    agent::compile(&policy(&scenario.dir, "/mnt/secrets/**"), &object).expect("compiles");
    let agent = Agent::start(&object, &["--json"], false).expect("loads");
    let a = scenario
        .attack("cat", &["cat", "/mnt/secrets/db-password"])
        .expect("runs");
    assert_eq!(a.status, Some(137), "{a:?}");
    assert!(a.stdout.is_empty());
    scenario
        .wait_for_reads(15, Duration::from_secs(10))
        .expect("the app keeps reading");
    let alerts = agent.wait_alerts(1, Duration::from_secs(5));
    let _ = agent.stop();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let v: Value = serde_json::from_str(&alerts[0]).expect("JSON");
    let name = v["output_fields"]["fd.name"].as_str().unwrap_or("");
    assert!(
        name.starts_with("/mnt/secrets/..2026_") && name.ends_with("/db-password"),
        "the alert names the file actually opened: {name}"
    );
    assert_eq!(scenario.app_reads().expect("status").1, 0);

    // `*` covers only direct children of /mnt/secrets: the file actually opened is not one,
    // so this policy does not protect the secret. This is what W0002 warns about.
    let object2 = agent::temp_object("atomic-star");
    agent::compile(&policy(&scenario.dir, "/mnt/secrets/*"), &object2).expect("compiles");
    let agent = Agent::start(&object2, &["--json"], false).expect("loads");
    let a = scenario
        .attack("cat", &["cat", "/mnt/secrets/db-password"])
        .expect("runs");
    let _ = agent.stop();
    assert_eq!(a.status, Some(0), "{a:?}");
    assert!(
        !a.stdout.is_empty(),
        "with `/*` the attacker reads the secret"
    );
    scenario.stop_rotation();
    let _ = std::fs::remove_file(object);
    let _ = std::fs::remove_file(object2);
}

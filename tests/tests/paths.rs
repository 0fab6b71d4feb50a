//! Rules match the file actually opened, resolved in the kernel from the open file: the ways an
//! attacker can spell a path do not get around them, and a path too long to walk is judged fail
//! closed. Root, this kernel.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use guard_tests::agent::{self, Agent};
use guard_tests::scenario::{Scenario, shell_status};
use serde_json::Value;

fn alert_paths(alerts: &[String]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| {
            let v: Value = serde_json::from_str(a).expect("JSON alert");
            v["output_fields"]["fd.name"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn relative_dotdot_symlink_and_proc_root_spellings_are_caught() {
    if !guard_tests::require_kernel_tests("path spellings") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let object = agent::temp_object("spellings");
    agent::compile(&guard_tests::secrets_policy(), &object).expect("compiles");
    let scenario = Scenario::start("spellings").expect("the app starts");
    let agent = Agent::start(&object, &["--json"], false).expect("guard-run loads");

    let tricks: [(&str, &[&str]); 4] = [
        (
            "relative",
            &["sh", "-c", "cd /mnt/secrets && cat db-password"],
        ),
        ("dot-dot", &["cat", "/mnt/secrets/../secrets/./db-password"]),
        (
            "symlink",
            &[
                "sh",
                "-c",
                "ln -sf /mnt/secrets/db-password /tmp/guard-link-$$ && cat /tmp/guard-link-$$; s=$?; rm -f /tmp/guard-link-$$; exit $s",
            ],
        ),
        (
            "/proc/self/root",
            &["cat", "/proc/self/root/mnt/secrets/db-password"],
        ),
    ];
    for (name, argv) in tricks {
        let a = scenario.attack("trick", argv).expect("nsenter runs");
        assert_eq!(a.status, Some(137), "{name}: not killed: {a:?}");
        assert!(
            a.stdout.is_empty(),
            "{name}: printed {:?}",
            String::from_utf8_lossy(&a.stdout)
        );
    }
    let alerts = agent.wait_alerts(4, Duration::from_secs(5));
    // Every alert names the file as it really is, whatever the attacker typed.
    assert_eq!(
        alert_paths(&alerts),
        vec!["/mnt/secrets/db-password"; 4],
        "{alerts:?}"
    );
    assert!(scenario.app_alive());
    assert_eq!(scenario.app_reads().expect("status").1, 0);
    let _ = agent.stop();
    let _ = std::fs::remove_file(object);
}

/// A path deeper than the walk reads (48 components) is judged by every rule that could still
/// match the part that was read: fail closed. A deep path that no rule can match is told apart
/// from the first component read and allowed.
#[test]
fn a_path_too_deep_to_walk_is_judged_fail_closed() {
    if !guard_tests::require_kernel_tests("deep paths") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let base = std::env::temp_dir().join(format!("guard-deep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let policy = base.with_extension("grd");
    std::fs::write(
        &policy,
        format!(
            "guard {}/**/secret allow ancestor(any, \"no such program\") else kill\n",
            base.display()
        ),
    )
    .expect("policy written");
    let object = agent::temp_object("deep");
    agent::compile(&policy, &object).expect("compiles");

    let deep = (0..60).fold(base.clone(), |p, _| p.join("d"));
    std::fs::create_dir_all(&deep).expect("deep dirs");
    for (dir, name) in [(&deep, "secret"), (&deep, "other"), (&base, "secret")] {
        std::fs::write(dir.join(name), "x").expect("file");
    }
    let agent = Agent::start(&object, &["--json"], false).expect("guard-run loads");
    let cat = |p: &Path| {
        let out = Command::new("cat").arg(p).output().expect("cat runs");
        (shell_status(out.status), out.stdout)
    };
    let (deep_secret, out) = cat(&deep.join("secret"));
    assert_eq!(
        deep_secret,
        Some(137),
        "a covered path too deep to read was allowed"
    );
    assert!(out.is_empty());
    let (shallow_secret, _) = cat(&base.join("secret"));
    assert_eq!(shallow_secret, Some(137));
    let (deep_other, out) = cat(&deep.join("other"));
    assert_eq!(deep_other, Some(0), "an uncovered deep path was refused");
    assert_eq!(out, b"x");

    let alerts = agent.wait_alerts(2, Duration::from_secs(5));
    let (_, _, stderr) = agent.stop().expect("stops");
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let paths = alert_paths(&alerts);
    // The truncated path is reported as far as it was read: its deepest part.
    assert!(
        paths[0].ends_with("/d/d/d/secret") && !paths[0].starts_with(&*base.to_string_lossy()),
        "{paths:?}"
    );
    assert_eq!(paths[1], base.join("secret").to_string_lossy());
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("1 paths judged truncated")),
        "the truncation was counted: {stderr:?}"
    );
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_file(policy);
    let _ = std::fs::remove_file(object);
}

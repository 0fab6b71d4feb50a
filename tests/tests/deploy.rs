//! The deployment files in `deploy/`: the Kubernetes manifests validate against the Kubernetes
//! API schema (strictly: a misspelt field fails), and every flag they and the systemd unit pass
//! to `guard-run` is one `guard-run load` accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn manifests() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(deploy().join("kubernetes"))
        .expect("deploy/kubernetes")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn manifests_validate_against_the_kubernetes_schema() {
    // As a module: no dependence on where pip put the script.
    let validator = || {
        let mut c = Command::new("python3");
        c.args(["-m", "kubernetes_validate"]);
        c
    };
    if !validator()
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        if std::env::var_os("CI").is_some() {
            panic!(
                "deploy: python3 -m kubernetes_validate does not run (pip install kubernetes-validate)"
            );
        }
        eprintln!("skip: deploy: kubernetes-validate is not installed");
        return;
    }
    let files = manifests();
    assert!(!files.is_empty());
    let out = validator()
        .args(["--strict", "--no-warn"])
        .args(&files)
        .output()
        .expect("kubernetes-validate runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("daemonset/guard"), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
}

/// The long options of `guard-run load --help`.
fn accepted_flags() -> Vec<String> {
    let out = Command::new(guard_tests::bin("guard-run"))
        .args(["load", "--help"])
        .output()
        .expect("guard-run runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches([',', '.']).to_string())
        .collect()
}

/// The `--flags` outside comments (the manifests' comments show `kubectl` commands).
fn used_flags(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("readable")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        // `---` separates YAML documents.
        .filter(|w| w.starts_with("--") && *w != "---")
        .map(|w| w.split('=').next().unwrap_or(w).to_string())
        .collect()
}

#[test]
fn every_flag_the_deployment_passes_exists() {
    let accepted = accepted_flags();
    assert!(accepted.iter().any(|f| f == "--backend"), "{accepted:?}");
    let mut files = manifests();
    files.push(deploy().join("systemd/guard-run.service"));
    for f in files {
        let used = used_flags(&f);
        assert!(!used.is_empty(), "{} passes no flags", f.display());
        for flag in used {
            assert!(
                accepted.contains(&flag),
                "{} passes {flag}, which `guard-run load` does not accept",
                f.display()
            );
        }
    }
}

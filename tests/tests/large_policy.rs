//! Generated policies of many rules, each its own path. With 10,000, the reversed path DFA has
//! about 180,000 states, more than u16 transitions can name, so the path table takes the wide
//! layout (u32 transitions, rows bounded by a compare); with 1,000 the table is narrow but its
//! info array lies past the reach of a load's 16-bit offset. Either way the object compiles,
//! loads, and judges files under rules at the start, in the middle and at the end like any
//! other. Root, this kernel.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use guard_tests::agent::{self, Agent};
use guard_tests::scenario::shell_status;
use serde_json::Value;

/// Not root: the subject every rule allows is `uid(0)`.
const NOBODY: u32 = 65534;

/// `cat FILE` as `uid`: its exit status (137 when killed) and what it printed.
fn cat_as(uid: u32, file: &Path) -> (Option<i32>, Vec<u8>) {
    let out = Command::new("cat")
        .arg(file)
        .uid(uid)
        .gid(uid)
        .output()
        .expect("cat runs");
    (shell_status(out.status), out.stdout)
}

/// Writes `text` to `path` under `base`, readable by nobody: a refusal must come from guard,
/// not from the permissions.
fn write(base: &Path, path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir).expect("directory");
    for d in dir.ancestors().take_while(|d| d.starts_with(base)) {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("mode");
    }
    std::fs::write(path, text).expect("file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("mode");
}

/// The path table's `state_bits` (above 16 is the wide layout) and the offset of its info
/// array, from the object's metadata.
fn path_table(object: &Path) -> (u64, u64) {
    let bytes = std::fs::read(object).expect("object");
    let meta = guard_ebpf::elf::read_metadata(&bytes).expect("metadata section");
    let meta: guard_ebpf::abi::Metadata = serde_json::from_slice(&meta).expect("metadata");
    let shape = meta.path_dfa;
    let layout = guard_ebpf::dfa_table::Layout::new(
        shape.n_states,
        shape.n_classes,
        shape.state_bits,
        shape.class_bits,
    );
    (u64::from(shape.state_bits), layout.info_off as u64)
}

#[test]
fn ten_thousand_rules_compile_load_and_enforce() {
    enforce("large policy", 10_000, 7_777, true);
}

#[test]
fn a_thousand_rules_compile_load_and_enforce() {
    enforce("thousand rules", 1_000, 777, false);
}

/// Compiles `rules` rules `guard DIR/app<i>/keys/* allow uid(0) else kill`, loads them, and
/// reads the files of rules 0, `middle` and the last as nobody (killed) and as root (allowed),
/// and near misses no rule covers as nobody (allowed). `wide`: the path table is expected in
/// the wide layout, else in the narrow one with its info array past 32,767.
fn enforce(test: &str, rules: usize, middle: usize, wide: bool) {
    if !guard_tests::require_kernel_tests(test) {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    // A short prefix: read last byte first, each rule's path keeps its own chain of states for
    // the prefix and `/keys/` (10,000 rules × about 17 bytes: 180,000 states), and the table
    // grows with it.
    let dir = std::env::temp_dir().join(format!("gl{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let judged = [0, middle, rules - 1];
    // Not `secret`: every `…secret…/*` pattern draws a warning, thousands of them here.
    let key = |i: usize| dir.join(format!("app{i}/keys/token"));
    for i in judged {
        write(&dir, &key(i), &format!("key {i}"));
    }
    // Near misses: no rule `rules`, and `*` does not cross a `/`.
    let uncovered: Vec<PathBuf> = vec![
        dir.join(format!("app{rules}/keys/token")),
        dir.join(format!("app{middle}/keys/old/token")),
        dir.join(format!("app{middle}/token")),
    ];
    for f in &uncovered {
        write(&dir, f, "public");
    }
    let policy = dir.join("large.grd");
    let text: String = (0..rules)
        .map(|i| {
            format!(
                "guard {}/app{i}/keys/* allow uid(0) else kill\n",
                dir.display()
            )
        })
        .collect();
    std::fs::write(&policy, text).expect("policy");

    let object = agent::temp_object("large");
    let t = Instant::now();
    agent::compile(&policy, &object).expect("the rules compile");
    let compiled_in = t.elapsed();
    let size = std::fs::metadata(&object).map(|m| m.len()).unwrap_or(0);
    let (state_bits, info_off) = path_table(&object);
    if wide {
        assert!(
            state_bits > 16,
            "the path table should need u32 transitions"
        );
    } else {
        assert!(
            state_bits <= 16 && info_off > i16::MAX as u64,
            "a narrow table with a far info array: {state_bits} state bits, info at {info_off}"
        );
    }
    let t = Instant::now();
    let agent = Agent::start(&object, &["--json"], false).expect("guard-run loads the rules");
    eprintln!(
        "{test}: compiled in {:.2} s ({size} bytes), enforcing after {:.2} s",
        compiled_in.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );

    for i in judged {
        let (status, out) = cat_as(NOBODY, &key(i));
        assert_eq!(status, Some(137), "rule {i}: nobody's read was not killed");
        assert!(out.is_empty(), "rule {i}: nobody read {out:?}");
        let (status, out) = cat_as(0, &key(i));
        assert_eq!(status, Some(0), "rule {i}: root's read was refused");
        assert_eq!(out, format!("key {i}").as_bytes());
    }
    for f in &uncovered {
        let (status, out) = cat_as(NOBODY, f);
        assert_eq!(status, Some(0), "{}: no rule covers it", f.display());
        assert_eq!(out, b"public");
    }

    let alerts = agent.wait_alerts(judged.len(), Duration::from_secs(5));
    // Late alerts would be refusals nobody expected.
    std::thread::sleep(Duration::from_millis(300));
    let (_, alerts_after, _) = agent.stop().expect("stops");
    assert_eq!(alerts.len(), alerts_after.len(), "{alerts_after:?}");
    let seen: Vec<(String, String, String)> = alerts_after
        .iter()
        .map(|a| {
            let v: Value = serde_json::from_str(a).expect("JSON alert");
            let s = |x: &Value| x.as_str().unwrap_or("").to_string();
            (
                s(&v["rule"]),
                s(&v["output_fields"]["fd.name"]),
                s(&v["output_fields"]["guard.action"]),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = judged
        .iter()
        .map(|&i| {
            (
                format!("guard {}/app{i}/keys/*", dir.display()),
                key(i).display().to_string(),
                "killed".to_string(),
            )
        })
        .collect();
    assert_eq!(seen, expected);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(object);
}

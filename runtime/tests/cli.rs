//! `guard-run` refuses what is not a guard object, with a message that says why, before it
//! touches the kernel.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs guard-run, which these tests expect to refuse at once. One that loads instead would
/// enforce until stopped: after a minute it is stopped, its policy unpinned
/// (`--unpin-on-exit`), and the test fails, rather than hanging with a policy left enforcing
/// that breaks every later kernel test on the machine.
fn run(args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_guard-run"));
    cmd.args(args);
    if args.first() == Some(&"load") {
        cmd.arg("--unpin-on-exit");
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("guard-run runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
            panic!("guard-run {args:?} did not refuse: it loaded and enforced until stopped");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("guard-run's output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmp(name: &str, bytes: &[u8]) -> String {
    let p = std::env::temp_dir().join(format!("guard-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).expect("temp file");
    p.display().to_string()
}

fn seed_object() -> Vec<u8> {
    let src = "guard /mnt/secrets/* allow ancestor(pid1, \"python app.py\") else kill\n";
    let policy = guard_compiler::frontend::check_source("seed.grd", src).expect("checks");
    guard_compiler::codegen::compile(&policy, "seed.grd")
        .expect("compiles")
        .object
}

#[test]
fn missing_file_is_a_clear_error() {
    let (code, err) = run(&["load", "/nonexistent/guard.o"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read `/nonexistent/guard.o`"), "{err}");
}

#[test]
fn a_text_file_is_not_an_object() {
    let f = tmp("text.o", b"root:x:0:0:root:/root:/bin/bash\n");
    let (code, err) = run(&["load", &f]);
    assert_eq!(code, 1);
    assert!(err.contains("is not a usable guard object"), "{err}");
    assert!(err.to_lowercase().contains("elf"), "{err}");
}

#[test]
fn a_truncated_object_is_refused() {
    let obj = seed_object();
    let f = tmp("trunc.o", &obj[..obj.len() / 2]);
    let (code, err) = run(&["load", &f]);
    assert_eq!(code, 1);
    assert!(err.contains("is not a usable guard object"), "{err}");
}

#[test]
fn an_object_of_another_format_version_is_refused() {
    let obj = seed_object();
    // Rewrite the version inside the metadata JSON; same length, so offsets stay valid.
    let needle = format!("\"format_version\":{},", guard_ebpf::abi::FORMAT_VERSION).into_bytes();
    let at = obj
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .expect("metadata has a format version");
    // Another last digit: another version of the same length.
    let mut bad = obj.clone();
    let digit = &mut bad[at + needle.len() - 2];
    *digit = b'0' + (*digit - b'0' + 1) % 10;
    let other = String::from_utf8_lossy(&bad[at..at + needle.len() - 1]).into_owned();
    let other = other.rsplit(':').next().unwrap().to_owned();
    assert_ne!(other, guard_ebpf::abi::FORMAT_VERSION.to_string());
    let f = tmp("version.o", &bad);
    let (code, err) = run(&["load", &f]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("object format {other} ")), "{err}");
}

#[test]
fn a_bpf_object_without_guard_metadata_is_refused() {
    // A valid BPF ELF that guardc did not write: the seed object with its metadata section
    // renamed, so the section is no longer found.
    let mut obj = seed_object();
    let needle = b".guard.meta";
    let at = obj
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("section name present");
    obj[at + 1] = b'x';
    let f = tmp("nometa.o", &obj);
    let (code, err) = run(&["load", &f]);
    assert_eq!(code, 1);
    assert!(err.contains(".guard.meta"), "{err}");
}

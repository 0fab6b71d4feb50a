//! `guard-run` refuses what is not a guard object, with a message that says why, before it
//! touches the kernel.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_guard-run"))
        .args(args)
        .output()
        .expect("guard-run runs");
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
    // Another last digit: the version this guard-run does not read.
    let last = guard_ebpf::abi::FORMAT_VERSION % 10;
    let other = guard_ebpf::abi::FORMAT_VERSION - last + (last + 1) % 10;
    let mut bad = obj.clone();
    bad[at + needle.len() - 2] = b'0' + ((last + 1) % 10) as u8;
    let f = tmp("version.o", &bad);
    let (code, err) = run(&["load", &f]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("object format {other}")), "{err}");
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

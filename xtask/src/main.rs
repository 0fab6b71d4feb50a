//! Developer tasks of the guard workspace, run as `cargo xtask <task>` (the alias is in
//! `.cargo/config.toml`).
//!
//! - `vm-test`: the third test ring. Boots the Debian distribution kernel (6.1, BTF,
//!   `CONFIG_BPF_LSM=y`) under QEMU/TCG with `bpf` in its `lsm=` list and runs guard's kernel
//!   tests inside it as root. See [`vm`].
//! - `bench`: guard's performance figures, written to `book/src/performance.md`. See [`bench`].

mod bench;
mod vm;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  vm-test    boot the Debian 6.1 kernel under QEMU/TCG (lsm=...,bpf) and run guard's kernel
             tests inside it as root; exits non-zero if a test fails, a prerequisite is
             missing, the VM times out or its console lacks the result markers
  bench      measure guard's costs side by side (compiler; kernel cost on this host's
             tracepoint backend and, in the VM, on BPF LSM; alerts) and write
             book/src/performance.md with its plots; needs root for all but `compiler`

bench options:
  --quick          fewer rounds, iterations and steps: minutes, rougher figures
  --sections LIST  comma-separated, of compiler,kernel,lsm,alerts (default: all); the page
                   keeps the other sections' last figures (saved under target/bench/)

vm-test options:
  --test NAME      run only this test target (repeatable; default: every target of the ring)
  --filter NAME    passed to each test binary as libtest's name filter
  --timeout SECS   kill the VM after SECS seconds (default 1200)
  --keep           keep the unpacked initramfs under target/vm/initramfs/ and print the QEMU
                   command line, to rerun the VM by hand
  --list           print the test targets of the ring and exit
  --run CMD        run the shell command CMD in the guest (as root, cwd the workspace, after
                   the same build) instead of the tests, to look into a failure on its kernel
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("vm-test") => {
            let outcome = vm::Options::parse(&args[1..]).and_then(vm::run);
            match outcome {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("xtask vm-test: error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("bench") => match bench::Options::parse(&args[1..]).and_then(bench::run) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask bench: error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("xtask: unknown task `{other}`\n\n{USAGE}");
            ExitCode::FAILURE
        }
        None => {
            eprint!("{USAGE}");
            ExitCode::FAILURE
        }
    }
}

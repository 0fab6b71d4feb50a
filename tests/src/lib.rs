//! The secrets scenario of the threat article, reproduced on this machine: an application that
//! is PID 1 of its own pid and mount namespaces reads a rotated secret from a tmpfs, an agent
//! loads a guard policy, and an attacker enters the namespaces the way `kubectl exec` does.
//!
//! Used by the acceptance test (`tests/secrets_scenario.rs`) and by the demo (`guard-demo`).
//! Everything here touches the real kernel and needs root.

pub mod agent;
pub mod bench;
pub mod falco;
pub mod http;
pub mod scenario;

use std::path::PathBuf;

/// Where `cargo` put the workspace's binaries: next to the running executable (a test binary
/// lives one directory deeper, in `deps/`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable has a path");
    let mut dir = exe
        .parent()
        .expect("an executable lives in a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "`{}` is missing: build the workspace's binaries first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

/// The policy of the scenario, shipped in `policies/`.
pub fn secrets_policy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/secrets.grd")
}

/// Why this machine cannot run kernel tests, if it cannot.
pub fn kernel_test_prerequisites() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("kernel tests need root".into());
    }
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err("the kernel exposes no BTF at /sys/kernel/btf/vmlinux".into());
    }
    for tool in [
        "unshare", "nsenter", "mount", "python3", "awk", "sed", "dd", "head", "cat", "sh",
    ] {
        if which(tool).is_none() {
            return Err(format!("`{tool}` is not installed"));
        }
    }
    Ok(())
}

pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Held while a kernel test runs.
pub struct KernelLock {
    _thread: std::sync::MutexGuard<'static, ()>,
    _process: Option<std::fs::File>,
}

/// Kernel tests load policies into the same hooks and count the alerts they cause, so they run
/// one at a time: across threads of one test binary (a mutex) and across processes on the
/// machine, e.g. two checkouts testing at once (an exclusive `flock` on a well-known file).
pub fn kernel_lock() -> KernelLock {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let thread = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/guard-kernel-tests.lock")
        .ok();
    if let Some(f) = &file {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a valid descriptor; blocks until the other holder is done.
        unsafe {
            libc::flock(f.as_raw_fd(), libc::LOCK_EX);
        }
    }
    KernelLock {
        _thread: thread,
        _process: file,
    }
}

/// In CI a missing prerequisite fails the test; elsewhere the test says why it skips.
/// Returns false when the test should return early.
pub fn require_kernel_tests(test: &str) -> bool {
    match kernel_test_prerequisites() {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{test}: cannot run in CI: {why}")
        }
        Err(why) => {
            eprintln!("skip: {test}: {why}");
            false
        }
    }
}

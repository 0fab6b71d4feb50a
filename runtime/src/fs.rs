//! The pseudo file systems the loader needs, mounted if the node has not mounted them.

use std::path::Path;

use anyhow::{Context, Result};

fn is_mounted(target: &str, fstype: &str) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines().any(|l| {
                let mut f = l.split_whitespace();
                let (_, at, ty) = (f.next(), f.next(), f.next());
                at == Some(target) && ty == Some(fstype)
            })
        })
        .unwrap_or(false)
}

fn mount(fstype: &str, target: &str) -> Result<()> {
    if is_mounted(target, fstype) {
        return Ok(());
    }
    std::fs::create_dir_all(target).with_context(|| format!("cannot create `{target}`"))?;
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL in a constant");
    let (src, tgt, ty) = (c(fstype), c(target), c(fstype));
    // SAFETY: all pointers are valid NUL-terminated strings; data is null.
    let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot mount {fstype} on `{target}`"));
    }
    Ok(())
}

/// bpffs (for pinning) and tracefs (tracepoint ids) must be there before loading; securityfs
/// tells which LSMs the kernel runs (without it, the BPF LSM looks absent and the tracepoint
/// backend is chosen, which the load report says).
pub fn ensure_mounts() -> Result<()> {
    mount("bpf", "/sys/fs/bpf")?;
    if !Path::new("/sys/kernel/tracing/events").exists() {
        mount("tracefs", "/sys/kernel/tracing")?;
    }
    if !Path::new("/sys/kernel/security/lsm").exists()
        && let Err(e) = mount("securityfs", "/sys/kernel/security")
    {
        crate::report!("guard-run: note: {e:#}; the BPF LSM cannot be detected");
    }
    Ok(())
}

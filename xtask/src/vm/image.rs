//! The initramfs: busybox, the 9p/virtio modules of the kernel package, `/init` (stage 1) and
//! `guard-vm.sh` (stage 2), packed as a gzipped newc cpio archive.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::kernel::Kernel;
use super::{BINARY_TIMEOUT_SECS, Planned, Share, Tools, sh_quote};

/// The modules that give the guest the host's root over 9p, in `insmod` order (each after the
/// ones it depends on). Those built into the kernel are skipped.
const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "netfs",
    "fscache",
    "9pnet",
    "9pnet_virtio",
    "9p",
];

/// Printed by the guest in front of every line the host parses.
pub const MARKER: &str = "@@guard-vm@@";

/// Builds `target/vm/initramfs.cpio.gz`; returns its path.
pub fn pack(
    vm_dir: &Path,
    kernel: &Kernel,
    tools: &Tools,
    planned: &[Planned],
    shares: &[Share],
    keep: bool,
) -> Result<PathBuf> {
    let root = vm_dir.join("initramfs");
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "newroot", "modules", "tmp",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::copy(&tools.busybox, root.join("bin/busybox"))
        .with_context(|| format!("copying {}", tools.busybox.display()))?;
    set_mode(&root.join("bin/busybox"), 0o755)?;

    let loaded = copy_modules(kernel, &root.join("modules"))?;
    write_script(&root.join("init"), &stage1(&loaded, shares))?;
    write_script(&root.join("guard-vm.sh"), &stage2(planned))?;

    let out = vm_dir.join("initramfs.cpio.gz");
    cpio_gzip(&root, &out)?;
    println!(
        "{} ({} KiB): busybox, modules {}",
        out.display(),
        fs::metadata(&out)?.len() / 1024,
        loaded.join(" ")
    );
    if keep {
        println!("kept the unpacked initramfs in {}", root.display());
    } else {
        fs::remove_dir_all(&root)?;
    }
    Ok(out)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

fn write_script(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    set_mode(path, 0o755)
}

/// Copies (and decompresses) [`MODULES`] into `dir` as `<name>.ko`; returns the names to
/// `insmod`, in order.
fn copy_modules(kernel: &Kernel, dir: &Path) -> Result<Vec<String>> {
    let mut index: BTreeMap<String, PathBuf> = BTreeMap::new();
    index_modules(&kernel.modules.join("kernel"), &mut index)?;
    let builtin = fs::read_to_string(kernel.modules.join("modules.builtin")).unwrap_or_default();
    let is_builtin = |name: &str| {
        builtin.lines().any(|l| {
            Path::new(l)
                .file_name()
                .and_then(|f| f.to_str())
                .and_then(|f| f.strip_suffix(".ko"))
                .is_some_and(|f| f.replace('-', "_") == name)
        })
    };
    let mut loaded = Vec::new();
    for &name in MODULES {
        let Some(src) = index.get(name) else {
            if is_builtin(name) {
                continue;
            }
            bail!(
                "module {name} is neither in {} nor built into the kernel",
                kernel.modules.display()
            );
        };
        let dst = dir.join(format!("{name}.ko"));
        let file = src.to_string_lossy();
        let decompress = if file.ends_with(".ko.xz") {
            Some("xz")
        } else if file.ends_with(".ko.zst") {
            Some("zstd")
        } else if file.ends_with(".ko.gz") {
            Some("gzip")
        } else {
            None
        };
        match decompress {
            None => {
                fs::copy(src, &dst).with_context(|| format!("copying {}", src.display()))?;
            }
            Some(tool) => {
                let out = Command::new(tool)
                    .arg("-dc")
                    .arg(src)
                    .stderr(Stdio::inherit())
                    .output()
                    .with_context(|| {
                        format!("running `{tool} -dc {}` (install {tool})", src.display())
                    })?;
                if !out.status.success() {
                    bail!("`{tool} -dc {}` failed: {}", src.display(), out.status);
                }
                fs::write(&dst, out.stdout)?;
            }
        }
        loaded.push(name.to_string());
    }
    Ok(loaded)
}

/// Module name (with `_`, as `modprobe` spells it) -> its file under `dir`.
fn index_modules(dir: &Path, index: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let path = e.path();
        if e.file_type()?.is_dir() {
            index_modules(&path, index)?;
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
            .iter()
            .find_map(|s| name.strip_suffix(s));
        if let Some(stem) = stem {
            index.insert(stem.replace('-', "_"), path);
        }
    }
    Ok(())
}

/// `/init`: mounts the host's root over 9p with writable tmpfs where the tests write, the
/// pseudo file systems the tests and `guard-run` use, and `switch_root`s into it (not
/// `chroot`: `nsenter -m` must land in the host's root).
fn stage1(modules: &[String], shares: &[Share]) -> String {
    let mut extra = String::new();
    for s in shares {
        let at = format!("$R{}", sh_quote(&s.path.to_string_lossy()));
        writeln!(
            extra,
            "mkdir -p {at} && mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 {tag} {at} || fail \"mounting 9p share {tag}\"",
            tag = s.tag
        )
        .expect("writing to a String");
    }
    format!(
        r#"#!/bin/busybox sh
# guard VM ring, stage 1 (generated by `cargo xtask vm-test`).
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
M='{MARKER}'
fail() {{
    echo "$M error $*"
    sleep 1
    poweroff -f
    sleep 30
}}
for m in {modules}; do
    insmod /modules/$m.ko || fail "insmod $m.ko"
done
R=/newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot $R || fail "mounting the host's root over 9p"
mount -t tmpfs -o mode=1777 tmpfs $R/tmp || fail "tmpfs on /tmp"
mount -t tmpfs -o mode=0755 tmpfs $R/run || fail "tmpfs on /run"
mount -t tmpfs -o mode=0755 tmpfs $R/mnt || fail "tmpfs on /mnt"
{extra}for d in proc sys dev; do
    mount -o move /$d $R/$d || fail "moving /$d"
done
mount -t bpf bpf $R/sys/fs/bpf || fail "bpffs"
mount -t securityfs securityfs $R/sys/kernel/security || fail "securityfs"
mount -t tracefs tracefs $R/sys/kernel/tracing || fail "tracefs"
mount -t debugfs debugfs $R/sys/kernel/debug || echo "$M note no debugfs"
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || echo "$M note no cgroup2"
mkdir -p $R/dev/shm $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm || fail "tmpfs on /dev/shm"
mount -t devpts devpts $R/dev/pts || echo "$M note no devpts"
cp /guard-vm.sh $R/run/guard-vm.sh || fail "copying guard-vm.sh"
exec switch_root $R /bin/sh /run/guard-vm.sh
fail "switch_root"
"#,
        modules = modules.join(" ")
    )
}

/// `guard-vm.sh`, PID 1 after `switch_root`: reports the kernel, its LSMs and BTF, runs each
/// test executable from its host path between `begin`/`end` markers, and powers off.
fn stage2(planned: &[Planned]) -> String {
    let mut runs = String::new();
    for p in planned {
        let mut line = format!(
            "run {} {} {}",
            sh_quote(&p.name),
            sh_quote(&p.dir.to_string_lossy()),
            sh_quote(&p.exe.to_string_lossy())
        );
        for a in &p.args {
            line.push(' ');
            line.push_str(&sh_quote(a));
        }
        writeln!(runs, "{line}").expect("writing to a String");
    }
    format!(
        r#"#!/bin/sh
# guard VM ring, stage 2 (generated by `cargo xtask vm-test`): PID 1 in the host's root.
M='{MARKER}'
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root CI=true RUST_BACKTRACE=1 TERM=dumb NO_COLOR=1
echo "$M kernel $(uname -r)"
echo "$M lsm $(cat /sys/kernel/security/lsm)"
if [ -e /sys/kernel/btf/vmlinux ]; then echo "$M btf yes"; else echo "$M btf no"; fi
run() {{
    name=$1
    dir=$2
    shift 2
    echo "$M begin $name"
    start=$(date +%s)
    (cd "$dir" && exec timeout -k 10 {BINARY_TIMEOUT_SECS} "$@")
    rc=$?
    echo "$M end $name exit=$rc secs=$(($(date +%s) - start))"
}}
{runs}echo "$M done"
sleep 1
echo o >/proc/sysrq-trigger
sleep 30
"#
    )
}

/// `find . | cpio -o -H newc | gzip` in Rust: the file list goes to cpio's stdin.
fn cpio_gzip(root: &Path, out: &Path) -> Result<()> {
    let mut list = Vec::new();
    walk(root, Path::new("."), &mut list)?;
    let mut cpio = Command::new("cpio")
        .args(["-o", "-H", "newc", "-R", "0:0", "--quiet"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running cpio")?;
    let cpio_out = cpio.stdout.take().expect("piped");
    let gzip = Command::new("gzip")
        .arg("-6")
        .stdin(cpio_out)
        .stdout(fs::File::create(out)?)
        .spawn()
        .context("running gzip")?;
    {
        let mut stdin = cpio.stdin.take().expect("piped");
        for p in &list {
            writeln!(stdin, "{}", p.display())?;
        }
    }
    let st = cpio.wait()?;
    let gz = gzip.wait_with_output()?;
    if !st.success() || !gz.status.success() {
        bail!(
            "packing the initramfs failed: cpio {st}, gzip {}",
            gz.status
        );
    }
    Ok(())
}

/// Every path under `dir` (relative, `./...`), directories before what they hold.
fn walk(base: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(base.join(rel))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = rel.join(e.file_name());
        out.push(p.clone());
        if e.file_type()?.is_dir() {
            walk(base, &p, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage2_runs_each_executable_from_its_package_dir_between_markers() {
        let planned = vec![Planned {
            name: "guard-tests/paths".into(),
            dir: "/w/tests".into(),
            exe: "/w/target/debug/deps/paths-1".into(),
            args: vec!["--test-threads=1".into(), "deep paths".into()],
        }];
        let s = stage2(&planned);
        assert!(s.contains(
            "run guard-tests/paths /w/tests /w/target/debug/deps/paths-1 --test-threads=1 'deep paths'\n"
        ));
        assert!(s.contains("export HOME=/root CI=true"));
        assert!(s.contains("echo \"$M done\""));
        assert!(s.contains(MARKER));
    }

    #[test]
    fn stage1_loads_the_modules_in_order() {
        let shares = [Share {
            tag: "guardshare0".into(),
            path: "/tmp/ci checkout".into(),
        }];
        let s = stage1(&["virtio".into(), "9p".into()], &shares);
        assert!(s.contains("for m in virtio 9p; do"));
        assert!(s.contains(
            "mkdir -p $R'/tmp/ci checkout' && mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 guardshare0 $R'/tmp/ci checkout' ||"
        ));
        assert!(s.contains("exec switch_root $R /bin/sh /run/guard-vm.sh"));
    }
}

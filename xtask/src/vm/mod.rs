//! `cargo xtask vm-test`: guard's kernel tests inside a QEMU/TCG VM running the Debian
//! distribution kernel, booted with `bpf` in its `lsm=` list.
//!
//! The guest's root is the host's own root, exported read-only over 9p: the freshly built test
//! executables, `guardc`, `guard-run`, python3 and util-linux run in the guest from their host
//! paths, with tmpfs on `/tmp`, `/run` and `/mnt` for what the tests write. The initramfs only
//! holds busybox, the 9p/virtio modules of the kernel package and two scripts: `/init` (stage 1:
//! mounts, `switch_root`) and `guard-vm.sh` (stage 2: runs the test executables, prints
//! markers). Results come back on the serial console, which is streamed to
//! `target/vm/console.log` and parsed.
//!
//! Adding tests to the ring (the LSM backend's, say): add their test targets to [`VM_TESTS`].

mod image;
mod kernel;
mod qemu;
mod report;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// One test target of the ring: a `tests/*.rs` integration test of a workspace package, run
/// whole (`--test-threads=1`) inside the VM.
pub struct VmTest {
    /// The Cargo package (`guard-tests`).
    pub package: &'static str,
    /// The test target's name (the file stem of `tests/<name>.rs`).
    pub target: &'static str,
    /// Extra libtest arguments for this target (`--skip NAME`, ...).
    pub args: &'static [&'static str],
    /// The enforcement backend the tests' agents are forced onto (`GUARD_BACKEND`), or `None`
    /// for guard-run's own choice (the LSM backend on this kernel).
    pub backend: Option<&'static str>,
}

/// The kernel tests the VM runs, in this order. The guest kernel runs BPF LSM, so guard-run
/// picks the LSM backend there: the host-kernel tests run on it unchanged, and the LSM tests
/// add deny, exec checks and io_uring. The ring must stay under ten minutes in CI, and each
/// agent start costs 25-40 s under TCG (the verifier), so it holds what differs by kernel: the
/// LSM programs, and program shapes the 6.1 verifier must accept. Tests whose kernel side is
/// the same on both kernels stay on the host: `atomic_writer` (the dentry walk every test
/// runs), `ancestor_exe` (two minutes here), `lifecycle` (pinning), and the seed scenario
/// forced onto the tracepoint backend (a [`VmTest::backend`] entry). Each passed in the VM
/// when it was written; `--test NAME` runs one again.
pub const VM_TESTS: &[VmTest] = &[
    VmTest {
        package: "guard-tests",
        target: "secrets_scenario",
        args: &[],
        backend: None,
    },
    VmTest {
        package: "guard-tests",
        target: "paths",
        args: &[],
        backend: None,
    },
    VmTest {
        package: "guard-tests",
        target: "five_rules",
        args: &[],
        backend: None,
    },
    VmTest {
        package: "guard-tests",
        target: "subjects",
        args: &[],
        backend: None,
    },
    VmTest {
        package: "guard-tests",
        target: "scopes",
        args: &[],
        backend: None,
    },
    // Task storage on 6.1: a pidfd names thread-group leaders only there, so a thread that
    // was running before the load is judged with its leader's identity. The hash store,
    // forced, is the host's to test: it is for kernels without task storage, which 6.1 is not,
    // and its agent start would cost the ring another 35 s.
    VmTest {
        package: "guard-tests",
        target: "identity_store",
        args: &["--skip", "the_forced_hash_store_enforces_the_same"],
        backend: None,
    },
    // The LSM backend's own tests are #[ignore]d on hosts without BPF LSM; here they run.
    VmTest {
        package: "guard-tests",
        target: "lsm",
        args: &["--include-ignored"],
        backend: None,
    },
    // Audit mode and the safety valve on the LSM backend: a deny or kill not carried out
    // returns 0 from the hook.
    VmTest {
        package: "guard-tests",
        target: "audit",
        args: &[],
        backend: None,
    },
    // 10,000 rules: the wide path table on 6.1 (about a minute under TCG, two thirds of it the
    // debug guardc). The 1,000-rule case would add 25 s for nothing new to the 6.1 verifier: its
    // far info load is the wide table's.
    VmTest {
        package: "guard-tests",
        target: "large_policy",
        args: &["--skip", "a_thousand_rules"],
        backend: None,
    },
];

/// The workspace binaries the tests exec from next to their executables (`guard_tests::bin`).
const REQUIRED_BINS: &[&str] = &["guardc", "guard-run", "guard-uring-open"];

/// What `.ci/run` installs for this ring; printed when something is missing.
const APT_PACKAGES: &str = "qemu-system-x86 busybox-static cpio";

/// Seconds the whole VM may run (boot, every test binary, power-off); `--timeout` overrides.
/// The ring takes about 2 minutes here.
const DEFAULT_TIMEOUT_SECS: u64 = 1200;

/// Seconds one test binary may run inside the VM before `timeout` kills it (the ring then goes
/// on with the next one).
const BINARY_TIMEOUT_SECS: u64 = 600;

pub struct Options {
    keep: bool,
    list: bool,
    filter: Option<String>,
    tests: Vec<String>,
    /// A shell command the guest runs instead of the tests (`--run`), to look into a failure.
    run: Option<String>,
    timeout: Duration,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            keep: false,
            list: false,
            filter: None,
            run: None,
            tests: Vec::new(),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (arg.as_str(), None),
            };
            let mut value = |name: &str| -> Result<String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| anyhow!("`{name}` needs a value")),
                }
            };
            match flag {
                "--keep" => o.keep = true,
                "--list" => o.list = true,
                "--filter" => o.filter = Some(value("--filter")?),
                "--run" => o.run = Some(value("--run")?),
                "--test" => o.tests.push(value("--test")?),
                "--timeout" => {
                    let v = value("--timeout")?;
                    let secs: u64 = v
                        .parse()
                        .with_context(|| format!("`--timeout {v}`: not a number of seconds"))?;
                    o.timeout = Duration::from_secs(secs);
                }
                _ => bail!("unknown option `{arg}` (see `cargo xtask --help`)"),
            }
        }
        for t in &o.tests {
            if !VM_TESTS.iter().any(|v| v.target == t) {
                bail!(
                    "`--test {t}`: not a test target of the VM ring (known: {})",
                    VM_TESTS
                        .iter()
                        .map(|v| v.target)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Ok(o)
    }

    /// Runs `cmd` in the guest instead of the tests (what `--run` does).
    pub fn command(cmd: String) -> Options {
        Options {
            keep: false,
            list: false,
            filter: None,
            tests: Vec::new(),
            run: Some(cmd),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        }
    }

    fn selected(&self) -> Vec<&'static VmTest> {
        VM_TESTS
            .iter()
            .filter(|v| self.tests.is_empty() || self.tests.iter().any(|t| t == v.target))
            .collect()
    }
}

/// One test executable as the guest runs it.
pub struct Planned {
    /// `package/target`, as printed in the markers and the summary.
    pub name: String,
    /// Working directory: the package's directory, as `cargo test` does.
    pub dir: PathBuf,
    pub exe: PathBuf,
    pub args: Vec<String>,
}

/// Runs the ring; `Ok(false)` when it ran and something failed.
pub fn run(opts: Options) -> Result<bool> {
    if opts.list {
        for v in VM_TESTS {
            println!("{}/{}", v.package, v.target);
        }
        return Ok(true);
    }
    run_with_console(opts).map(|(ok, _)| ok)
}

/// [`run`], also returning the guest's console line by line (`cargo xtask bench` reads its
/// figures off it).
pub fn run_with_console(opts: Options) -> Result<(bool, Vec<String>)> {
    let started = Instant::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let ws = Workspace::load(&cargo)?;
    let vm_dir = ws.target_dir.join("vm");
    fs::create_dir_all(&vm_dir).with_context(|| format!("creating {}", vm_dir.display()))?;
    let shares = shares(&ws)?;
    // Two rings at once would overwrite each other's initramfs and console log.
    let lock = fs::File::create(vm_dir.join(".lock"))?;
    lock.lock().context("locking target/vm")?;

    step("prerequisites");
    let tools = check_prerequisites()?;

    step("kernel package");
    let t = Instant::now();
    let kernel = kernel::prepare(&vm_dir)?;
    println!(
        "kernel {} from {} ({}) in {:.1} s",
        kernel.release,
        kernel.package,
        kernel.vmlinuz.display(),
        t.elapsed().as_secs_f64()
    );

    step("building the workspace's binaries and test executables");
    let t = Instant::now();
    let planned = build(&cargo, &ws, &opts)?;
    println!("built in {:.1} s; the VM runs:", t.elapsed().as_secs_f64());
    for p in &planned {
        println!("  {} = {} {}", p.name, p.exe.display(), p.args.join(" "));
    }

    step("initramfs");
    let initrd = image::pack(&vm_dir, &kernel, &tools, &planned, &shares, opts.keep)?;

    step("booting the VM (QEMU, TCG)");
    let log = vm_dir.join("console.log");
    let run = qemu::boot(
        &tools.qemu,
        &kernel,
        &initrd,
        &shares,
        &log,
        opts.timeout,
        opts.keep,
    )?;

    let report = report::Report::parse(&run.lines);
    let ok = report.print(&planned, opts.run.is_none(), &run, &log, started.elapsed());
    Ok((ok, run.lines))
}

/// The guest sees the host's root, except where it mounts its own file systems.
const GUEST_MOUNTS: &[&str] = &["/tmp", "/run", "/mnt", "/proc", "/sys", "/dev"];

/// A host directory that the guest's own mounts would hide (a checkout under `/tmp`, say):
/// exported as one more 9p share and mounted at the same path in the guest.
pub struct Share {
    pub tag: String,
    pub path: PathBuf,
}

/// The shares the workspace needs besides the host's root.
fn shares(ws: &Workspace) -> Result<Vec<Share>> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for dir in [&ws.root, &ws.target_dir] {
        let real = fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
        match hidden_in_guest(&real) {
            None => {}
            Some("/tmp" | "/run" | "/mnt") if dirs.iter().any(|d| real.starts_with(d)) => {}
            Some("/tmp" | "/run" | "/mnt") => {
                dirs.retain(|d| !d.starts_with(&real));
                dirs.push(real);
            }
            Some(m) => bail!(
                "{} is under {m}, where the guest mounts its own file system: move the checkout (or CARGO_TARGET_DIR) elsewhere",
                dir.display()
            ),
        }
    }
    Ok(dirs
        .into_iter()
        .enumerate()
        .map(|(i, path)| {
            println!(
                "{} is hidden in the guest by its own tmpfs: exporting it as one more 9p share",
                path.display()
            );
            Share {
                tag: format!("guardshare{i}"),
                path,
            }
        })
        .collect())
}

/// The guest mount that hides `path` from the guest, if one does.
fn hidden_in_guest(path: &Path) -> Option<&'static str> {
    let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    GUEST_MOUNTS.iter().copied().find(|m| real.starts_with(m))
}

fn step(what: &str) {
    println!("== vm-test: {what}");
}

/// What `cargo metadata` says about the workspace.
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    /// Package id -> (name, directory).
    packages: BTreeMap<String, (String, PathBuf)>,
}

impl Workspace {
    pub fn load(cargo: &OsString) -> Result<Workspace> {
        let out = Command::new(cargo)
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .stderr(Stdio::inherit())
            .output()
            .context("running `cargo metadata`")?;
        if !out.status.success() {
            bail!("`cargo metadata` failed: {}", out.status);
        }
        let v: Value = serde_json::from_slice(&out.stdout).context("parsing `cargo metadata`")?;
        let path = |key: &str| -> Result<PathBuf> {
            v[key]
                .as_str()
                .map(PathBuf::from)
                .ok_or_else(|| anyhow!("`cargo metadata` has no `{key}`"))
        };
        let mut packages = BTreeMap::new();
        for p in v["packages"].as_array().into_iter().flatten() {
            let (Some(id), Some(name), Some(manifest)) = (
                p["id"].as_str(),
                p["name"].as_str(),
                p["manifest_path"].as_str(),
            ) else {
                continue;
            };
            let dir = Path::new(manifest)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            packages.insert(id.to_string(), (name.to_string(), dir));
        }
        Ok(Workspace {
            root: path("workspace_root")?,
            target_dir: path("target_directory")?,
            packages,
        })
    }
}

/// Host tools the ring runs.
pub struct Tools {
    pub qemu: PathBuf,
    pub busybox: PathBuf,
}

fn check_prerequisites() -> Result<Tools> {
    // (what is missing, the Debian package that brings it)
    let mut missing: Vec<(String, &str)> = Vec::new();
    let mut need = |tool: &str, package: &'static str| -> Option<PathBuf> {
        let found = which(tool);
        if found.is_none() {
            missing.push((format!("`{tool}`"), package));
        }
        found
    };
    let qemu = need("qemu-system-x86_64", "qemu-system-x86");
    need("cpio", "cpio");
    need("gzip", "gzip");
    need("apt-get", "apt");
    need("apt-cache", "apt");
    need("dpkg-deb", "dpkg");
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| which("busybox"));
    let busybox = match busybox {
        None => {
            missing.push(("`busybox`, statically linked".into(), "busybox-static"));
            None
        }
        Some(b) => match elf_is_static(&b) {
            Ok(true) => Some(b),
            Ok(false) => {
                let what = format!(
                    "a statically linked busybox ({} is dynamically linked)",
                    b.display()
                );
                missing.push((what, "busybox-static"));
                None
            }
            Err(e) => {
                let what = format!("a usable busybox ({}: {e:#})", b.display());
                missing.push((what, "busybox-static"));
                None
            }
        },
    };
    if !missing.is_empty() {
        let mut packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
        packages.dedup();
        bail!(
            "missing prerequisites of the VM ring:\n{}\ninstall them with:\n  apt-get update && apt-get install -y --no-install-recommends {}\n(.ci/run installs {APT_PACKAGES})",
            missing
                .iter()
                .map(|(what, package)| format!("  - {what} (Debian package {package})"))
                .collect::<Vec<_>>()
                .join("\n"),
            packages.join(" ")
        );
    }
    let (Some(qemu), Some(busybox)) = (qemu, busybox) else {
        unreachable!("checked above")
    };
    println!("qemu {}, busybox {}", qemu.display(), busybox.display());
    Ok(Tools { qemu, busybox })
}

pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// True when the ELF executable at `path` has no program interpreter (static or static-pie).
fn elf_is_static(path: &Path) -> Result<bool> {
    let data = fs::read(path)?;
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    if data.get(..6) != Some(b"\x7fELF\x02\x01") {
        bail!("not a little-endian 64-bit ELF file");
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        bail!("truncated ELF header");
    };
    const PT_INTERP: u32 = 3;
    for i in 0..usize::from(phnum) {
        let off = usize::try_from(phoff)? + i * usize::from(phentsize);
        match u32_at(off) {
            Some(PT_INTERP) => return Ok(false),
            Some(_) => {}
            None => bail!("truncated program headers"),
        }
    }
    Ok(true)
}

/// Runs `cmd`; an error names it when it fails.
fn run_checked(cmd: &mut Command) -> Result<()> {
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

/// Builds the binaries and test executables the way the README says, and finds the ring's.
fn build(cargo: &OsString, ws: &Workspace, opts: &Options) -> Result<Vec<Planned>> {
    run_checked(
        Command::new(cargo)
            .args(["build", "--workspace", "--bins"])
            .current_dir(&ws.root),
    )?;
    if let Some(cmd) = &opts.run {
        // A command, not the tests: the test executables need not be built.
        return Ok(vec![Planned {
            name: "run".into(),
            dir: ws.root.clone(),
            exe: "/bin/sh".into(),
            args: vec!["-c".into(), cmd.clone()],
        }]);
    }
    let out = Command::new(cargo)
        .args([
            "test",
            "--workspace",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(&ws.root)
        .stderr(Stdio::inherit())
        .output()
        .context("running `cargo test --no-run`")?;
    if !out.status.success() {
        bail!("`cargo test --workspace --no-run` failed: {}", out.status);
    }
    let executables = test_executables(&String::from_utf8_lossy(&out.stdout), ws);

    let bin_dir = ws.target_dir.join("debug");
    for b in REQUIRED_BINS {
        if !bin_dir.join(b).is_file() {
            bail!(
                "`{}` is missing after `cargo build --workspace --bins`",
                bin_dir.join(b).display()
            );
        }
    }

    let mut unlisted: Vec<String> = executables
        .keys()
        .filter(|(package, target)| {
            VM_TESTS.iter().any(|v| v.package == package)
                && !VM_TESTS
                    .iter()
                    .any(|v| v.package == package && v.target == target)
        })
        .map(|(package, target)| format!("{package}/{target}"))
        .collect();
    unlisted.sort();
    if !unlisted.is_empty() {
        println!(
            "note: not in the VM ring (add them to VM_TESTS in xtask/src/vm/mod.rs if they are kernel tests): {}",
            unlisted.join(", ")
        );
    }

    let mut planned = Vec::new();
    for v in opts.selected() {
        let Some((exe, dir)) = executables.get(&(v.package.to_string(), v.target.to_string()))
        else {
            bail!(
                "cargo built no test executable `{}` of package `{}` (is VM_TESTS in xtask/src/vm/mod.rs up to date?)",
                v.target,
                v.package
            );
        };
        let mut args = vec!["--test-threads=1".to_string()];
        args.extend(v.args.iter().map(|a| a.to_string()));
        if let Some(f) = &opts.filter {
            args.push(f.clone());
        }
        let name = format!("{}/{}", v.package, v.target);
        planned.push(match v.backend {
            None => Planned {
                name,
                dir: dir.clone(),
                exe: exe.clone(),
                args,
            },
            // `env GUARD_BACKEND=… test-exe args…`: the test harness passes it to guard-run.
            Some(b) => Planned {
                name: format!("{name}@{b}"),
                dir: dir.clone(),
                exe: "/usr/bin/env".into(),
                args: [
                    format!("GUARD_BACKEND={b}"),
                    exe.to_string_lossy().into_owned(),
                ]
                .into_iter()
                .chain(args)
                .collect(),
            },
        });
    }
    Ok(planned)
}

/// `(package, test target) -> (executable, package dir)` from cargo's JSON messages.
fn test_executables(
    messages: &str,
    ws: &Workspace,
) -> BTreeMap<(String, String), (PathBuf, PathBuf)> {
    let mut found = BTreeMap::new();
    for line in messages.lines() {
        let Ok(m) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if m["reason"] != "compiler-artifact" || m["profile"]["test"] != true {
            continue;
        }
        let is_test_target = m["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        let (Some(exe), Some(target), Some(id)) = (
            m["executable"].as_str(),
            m["target"]["name"].as_str(),
            m["package_id"].as_str(),
        ) else {
            continue;
        };
        if !is_test_target {
            continue;
        }
        if let Some((package, dir)) = ws.packages.get(id) {
            found.insert(
                (package.clone(), target.to_string()),
                (PathBuf::from(exe), dir.clone()),
            );
        }
    }
    found
}

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=+:,@".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_guests_own_mounts_are_hidden() {
        assert_eq!(hidden_in_guest(Path::new("/tmp/x/target")), Some("/tmp"));
        assert_eq!(hidden_in_guest(Path::new("/work/main/target")), None);
        assert_eq!(hidden_in_guest(Path::new("/runner/target")), None);
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(sh_quote("/work/main/target"), "/work/main/target");
        assert_eq!(sh_quote("--test-threads=1"), "--test-threads=1");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("$(x)"), "'$(x)'");
    }

    #[test]
    fn options() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = Options::parse(&args(&["--keep", "--filter", "deep", "--timeout=60"])).unwrap();
        assert!(o.keep);
        assert_eq!(o.filter.as_deref(), Some("deep"));
        assert_eq!(o.timeout, Duration::from_secs(60));
        assert_eq!(o.selected().len(), VM_TESTS.len());
        let o = Options::parse(&args(&["--run", "ls /"])).unwrap();
        assert_eq!(o.run.as_deref(), Some("ls /"));
        let o = Options::parse(&args(&["--test", "paths"])).unwrap();
        assert_eq!(o.selected().len(), 1);
        assert!(Options::parse(&args(&["--test", "nope"])).is_err());
        assert!(Options::parse(&args(&["--bogus"])).is_err());
        assert!(Options::parse(&args(&["--filter"])).is_err());
    }

    #[test]
    fn test_executables_come_from_cargo_messages() {
        let mut packages = BTreeMap::new();
        packages.insert(
            "path+file:///w/tests#guard-tests@0.1.0".to_string(),
            ("guard-tests".to_string(), PathBuf::from("/w/tests")),
        );
        let ws = Workspace {
            root: "/w".into(),
            target_dir: "/w/target".into(),
            packages,
        };
        let messages = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/tests#guard-tests@0.1.0","target":{"kind":["test"],"name":"paths"},"profile":{"test":true},"executable":"/w/target/debug/deps/paths-1"}
{"reason":"compiler-artifact","package_id":"path+file:///w/tests#guard-tests@0.1.0","target":{"kind":["lib"],"name":"guard_tests"},"profile":{"test":true},"executable":"/w/target/debug/deps/guard_tests-2"}
{"reason":"compiler-artifact","package_id":"path+file:///w/tests#guard-tests@0.1.0","target":{"kind":["lib"],"name":"guard_tests"},"profile":{"test":false},"executable":null}
not json
{"reason":"build-finished","success":true}"#;
        let found = test_executables(messages, &ws);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[&("guard-tests".to_string(), "paths".to_string())],
            (
                PathBuf::from("/w/target/debug/deps/paths-1"),
                PathBuf::from("/w/tests")
            )
        );
    }

    #[test]
    fn the_host_busybox_check_reads_elf_headers() {
        // The running test executable is a dynamically linked (or static) ELF: either way the
        // parser must not fail on it.
        let exe = std::env::current_exe().unwrap();
        assert!(elf_is_static(&exe).is_ok());
        assert!(elf_is_static(Path::new("Cargo.toml")).is_err());
    }
}

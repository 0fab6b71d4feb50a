//! The workload side: the application in its namespaces, the secret and its rotation, and the
//! attacker's attempts.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The app of the article: reads the secret on every request (here every 100 ms) and records
/// how many reads succeeded and failed.
const APP_PY: &str = r#"
import os, sys, time
ok = fail = 0
status = os.environ["GUARD_APP_STATUS"]
# A worker forked without exec, as gunicorn or multiprocessing do: same image, same identity.
if os.fork() == 0:
    status += "-worker"
while True:
    try:
        with open("/mnt/secrets/db-password") as f:
            if f.read():
                ok += 1
            else:
                fail += 1
    except OSError:
        fail += 1
    with open(status + ".tmp", "w") as s:
        s.write(f"{ok} {fail}\n")
    os.replace(status + ".tmp", status)
    time.sleep(0.1)
"#;

/// The uid the attacker runs as (`nobody`): not root, like `appuser` in the article.
pub const ATTACKER_UID: u32 = 65534;

/// How the secret volume is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `db-password` is a plain file, replaced by rename on rotation.
    Plain,
    /// As Kubernetes' atomic writer does for secret and projected volumes: the file lives in a
    /// timestamped directory `..2026_…`, `..data` is a symlink to the current one, and
    /// `db-password` is a symlink to `..data/db-password`; rotation writes a new directory and
    /// swaps `..data`.
    AtomicWriter,
}

pub struct Scenario {
    pub dir: PathBuf,
    layout: Layout,
    secrets: PathBuf,
    unshare: Child,
    /// The app's pid in the host's pid namespace.
    pub app_pid: u32,
    stop: Arc<AtomicBool>,
    rotator: Option<JoinHandle<Vec<String>>>,
}

/// What one attack attempt did.
#[derive(Debug)]
pub struct Attempt {
    pub name: &'static str,
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// The article's seven ways to read the secret, as the attacker types them.
pub fn attacks() -> Vec<(&'static str, Vec<&'static str>)> {
    let f = "/mnt/secrets/db-password";
    vec![
        ("cat", vec!["cat", f]),
        ("head", vec!["head", f]),
        ("dd", vec!["dd", "if=/mnt/secrets/db-password"]),
        ("awk", vec!["awk", "{print}", f]),
        ("sed", vec!["sed", "", f]),
        ("sh -c", vec!["sh", "-c", "cat /mnt/secrets/db-password"]),
        (
            "python3 -c",
            vec![
                "python3",
                "-c",
                "print(open('/mnt/secrets/db-password').read())",
            ],
        ),
    ]
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let st = cmd.status()?;
    if st.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("{cmd:?} failed: {st}")))
    }
}

impl Scenario {
    /// Starts the app as PID 1 of new pid and mount namespaces, with cmdline exactly
    /// `python app.py`, the secret bind-mounted at `/mnt/secrets` from a tmpfs that the
    /// rotator writes from outside (as the kubelet does).
    pub fn start(name: &str) -> io::Result<Scenario> {
        Scenario::start_with(name, Layout::Plain)
    }

    /// [`Scenario::start`] with the secret volume laid out as `layout`.
    pub fn start_with(name: &str, layout: Layout) -> io::Result<Scenario> {
        let dir = std::env::temp_dir().join(format!("guard-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let secrets = dir.join("secrets");
        let bin = dir.join("bin");
        for d in [&secrets, &bin] {
            std::fs::create_dir_all(d)?;
        }
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs"])
            .arg(&secrets))?;
        write_secret(&secrets, "initial-secret-0000", layout)?;
        std::fs::write(dir.join("app.py"), APP_PY)?;
        let python3 = crate::which("python3").ok_or_else(|| io::Error::other("python3 missing"))?;
        // The app's argv[0] must be `python`, as in the article; a symlink gives it that name.
        std::os::unix::fs::symlink(real_python(&python3)?, bin.join("python"))?;

        let script = format!(
            "mkdir -p /mnt/secrets && mount --bind {secrets} /mnt/secrets && cd {dir} && \
             GUARD_APP_STATUS={dir}/status PATH={bin}:$PATH exec python app.py",
            secrets = secrets.display(),
            dir = dir.display(),
            bin = bin.display()
        );
        let mut unshare = Command::new("unshare");
        // A session of its own: the app has no controlling terminal, as in a container, even
        // when the tests run from one.
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            use std::os::unix::process::CommandExt;
            unshare.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let unshare = unshare
            .args([
                "--pid",
                "--mount",
                "--fork",
                "--propagation",
                "private",
                "sh",
                "-c",
            ])
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.join("app.log"))?))
            .spawn()?;
        let app_pid = wait_for_child_cmdline(unshare.id(), b"python\0app.py\0")?;
        let s = Scenario {
            dir,
            layout,
            secrets,
            unshare,
            app_pid,
            stop: Arc::new(AtomicBool::new(false)),
            rotator: None,
        };
        // Python starts in well under a second here, but a loaded CI host running the VM ring
        // has taken more than ten.
        s.wait_for_reads(3, Duration::from_secs(30))?;
        Ok(s)
    }

    /// Rotates the secret every `every`, from outside the app's namespaces.
    pub fn start_rotation(&mut self, every: Duration) {
        let stop = self.stop.clone();
        let secrets = self.secrets.clone();
        let layout = self.layout;
        self.rotator = Some(std::thread::spawn(move || {
            let mut written = Vec::new();
            let mut n = 1u32;
            while !stop.load(Ordering::Relaxed) {
                let value = format!("rotated-secret-{n:04}-{:x}", std::process::id());
                if write_secret(&secrets, &value, layout).is_ok() {
                    written.push(value);
                }
                n += 1;
                let until = Instant::now() + every;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            written
        }));
    }

    /// Every secret value written so far (initial included), to check attackers saw none.
    pub fn stop_rotation(&mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = vec!["initial-secret-0000".to_string()];
        if let Some(h) = self.rotator.take() {
            all.extend(h.join().unwrap_or_default());
        }
        all
    }

    /// `(successful reads, failed reads)` as the app reports them.
    pub fn app_reads(&self) -> io::Result<(u64, u64)> {
        self.reads("status")
    }

    /// The same for the worker the app forked at start.
    pub fn worker_reads(&self) -> io::Result<(u64, u64)> {
        self.reads("status-worker")
    }

    fn reads(&self, file: &str) -> io::Result<(u64, u64)> {
        let text = std::fs::read_to_string(self.dir.join(file))?;
        let mut it = text
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(u64::MAX));
        Ok((it.next().unwrap_or(0), it.next().unwrap_or(u64::MAX)))
    }

    pub fn wait_for_reads(&self, more: u64, timeout: Duration) -> io::Result<()> {
        let start = self.app_reads().map(|r| r.0).unwrap_or(0);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.app_reads().map(|r| r.0).unwrap_or(0) >= start + more {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Say what the app was doing: dead, alive but failing its reads, or not started.
        Err(io::Error::other(format!(
            "the app made fewer than {more} reads in {timeout:?} (alive: {}, status: {:?}); \
             its log:\n{}",
            self.app_alive(),
            std::fs::read_to_string(self.dir.join("status")).ok(),
            std::fs::read_to_string(self.dir.join("app.log")).unwrap_or_default()
        )))
    }

    /// True while the app process is alive with its original command line.
    pub fn app_alive(&self) -> bool {
        std::fs::read(format!("/proc/{}/cmdline", self.app_pid))
            .map(|c| c == b"python\0app.py\0")
            .unwrap_or(false)
    }

    /// The command that enters the app's pid and mount namespaces as the attacker, like
    /// `kubectl exec`.
    pub fn attacker(&self, argv: &[&str]) -> Command {
        let uid = ATTACKER_UID.to_string();
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.app_pid.to_string(), "-p", "-m"])
            .args(["-S", &uid, "-G", &uid])
            .args(argv);
        cmd
    }

    /// Runs one attack to completion.
    pub fn attack(&self, name: &'static str, argv: &[&str]) -> io::Result<Attempt> {
        let out: Output = self.attacker(argv).stdin(Stdio::null()).output()?;
        Ok(Attempt {
            name,
            status: shell_status(out.status),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The app is the init of its pid namespace: only SIGKILL reaches it from outside.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(self.app_pid as i32, libc::SIGKILL);
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        let _ = Command::new("umount").arg(&self.secrets).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The status as a shell reports it: the exit code, or 128 + the signal that killed it
/// (`nsenter` re-raises the signal its child died of).
pub fn shell_status(status: std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s))
}

/// Writes a new value of the secret, atomically for readers.
fn write_secret(dir: &Path, value: &str, layout: Layout) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match layout {
        Layout::Plain => {
            let tmp = dir.join(".db-password.tmp");
            std::fs::write(&tmp, value)?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
            std::fs::rename(tmp, dir.join("db-password"))
        }
        Layout::AtomicWriter => {
            static GENERATION: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
            let ts = format!(
                "..2026_11_28_01_00_{generation:02}.{:09}",
                std::process::id()
            );
            let new = dir.join(&ts);
            std::fs::create_dir(&new)?;
            std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o755))?;
            std::fs::write(new.join("db-password"), value)?;
            std::fs::set_permissions(
                new.join("db-password"),
                std::fs::Permissions::from_mode(0o644),
            )?;
            let old = std::fs::read_link(dir.join("..data")).ok();
            let _ = std::fs::remove_file(dir.join("..data_tmp"));
            std::os::unix::fs::symlink(&ts, dir.join("..data_tmp"))?;
            std::fs::rename(dir.join("..data_tmp"), dir.join("..data"))?;
            if !dir.join("db-password").exists() {
                std::os::unix::fs::symlink("..data/db-password", dir.join("db-password"))?;
            }
            if let Some(old) = old {
                let _ = std::fs::remove_dir_all(dir.join(old));
            }
            Ok(())
        }
    }
}

/// `python3` on PATH may be a shim script (pyenv); the app must exec a real interpreter so its
/// command line is exactly `python app.py`.
fn real_python(found: &Path) -> io::Result<PathBuf> {
    for candidate in ["/usr/bin/python3", "/usr/local/bin/python3"] {
        if Path::new(candidate).exists() {
            return Ok(PathBuf::from(candidate));
        }
    }
    Ok(found.to_path_buf())
}

/// Waits for the forked child of `parent` to exec into `cmdline` and returns its pid.
fn wait_for_child_cmdline(parent: u32, cmdline: &[u8]) -> io::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        for child in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            if std::fs::read(format!("/proc/{child}/cmdline"))
                .ok()
                .as_deref()
                == Some(cmdline)
            {
                return Ok(child);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(io::Error::other("the app did not start"))
}

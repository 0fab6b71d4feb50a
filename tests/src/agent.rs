//! The node side: `guardc compile` and `guard-run load` as the operator runs them.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Compiles `policy` with the `guardc` binary into `out`.
pub fn compile(policy: &Path, out: &Path) -> io::Result<()> {
    let st = Command::new(crate::bin("guardc"))
        .arg("compile")
        .arg(policy)
        .arg("-o")
        .arg(out)
        .status()?;
    if !st.success() {
        return Err(io::Error::other(format!("guardc compile failed: {st}")));
    }
    Ok(())
}

/// A running `guard-run load`, its stdout (alerts) and stderr collected line by line.
pub struct Agent {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    /// The policy this agent pinned, unloaded when the agent is dropped without a clean stop
    /// (a failed test must not leave its policy enforcing); `None` when the test manages the
    /// pin root itself.
    own_pin: Option<(PathBuf, String)>,
}

/// The pin root of the agents a test starts without choosing one: per test process, so that
/// tests never adopt or replace each other's policies.
pub fn default_pin_root() -> PathBuf {
    PathBuf::from(format!("/sys/fs/bpf/guard-tests-{}", std::process::id()))
}

/// A pin root of a test's own, for tests of pinning itself. Dropping it unloads every policy
/// under it (whatever the test did, nothing stays enforced) and removes it.
pub struct PinRoot {
    pub path: PathBuf,
}

impl PinRoot {
    pub fn new(tag: &str) -> PinRoot {
        let path = PathBuf::from(format!(
            "/sys/fs/bpf/guard-tests-{tag}-{}",
            std::process::id()
        ));
        PinRoot { path }
    }

    /// `--pin-root DIR`, to pass to `guard-run`.
    pub fn arg(&self) -> [&str; 2] {
        ["--pin-root", self.path.to_str().expect("utf-8 path")]
    }

    /// Runs `guard-run SUBCOMMAND ARGS... --pin-root DIR` to completion.
    pub fn guard_run(&self, args: &[&str]) -> io::Result<std::process::Output> {
        Command::new(crate::bin("guard-run"))
            .args(args)
            .args(self.arg())
            .stdin(Stdio::null())
            .output()
    }

    /// `guard-run status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let out = self
            .guard_run(&["status", "--json"])
            .expect("guard-run runs");
        assert!(out.status.success(), "status: {out:?}");
        serde_json::from_slice(&out.stdout).expect("status prints JSON")
    }

    /// Every entry of the pin root, staging directories (`_<pid>_<name>`) included.
    pub fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for PinRoot {
    fn drop(&mut self) {
        let _ = self.guard_run(&["unload", "--all"]);
        let _ = std::fs::remove_dir(&self.path);
    }
}

fn collect(
    mut r: impl io::Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
    echo: bool,
) -> JoinHandle<()> {
    // Line by line per read, not per line: guard-run writes its load report in one write, and
    // a test that saw its first line must see all of it (a test once read the report while
    // this thread was between two of its lines).
    std::thread::spawn(move || {
        let mut pending = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match r.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(n) => n,
                Err(_) => 0,
            };
            if n == 0 && pending.is_empty() {
                return;
            }
            pending.extend_from_slice(&buf[..n]);
            let end = if n == 0 {
                pending.len()
            } else {
                pending
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1)
            };
            let lines: Vec<String> = String::from_utf8_lossy(&pending[..end])
                .lines()
                .map(str::to_string)
                .collect();
            pending.drain(..end);
            if echo {
                for line in &lines {
                    eprintln!("{line}");
                }
            }
            if let Ok(mut v) = into.lock() {
                v.extend(lines);
            }
            if n == 0 {
                return;
            }
        }
    })
}

impl Agent {
    /// Starts the agent and waits until it reports the policy enforced.
    ///
    /// `GUARD_BACKEND` in the environment (`lsm`, `tracepoint`) forces that backend on every
    /// agent a test starts without choosing one itself: the VM ring runs the same tests on both
    /// backends of one kernel this way.
    pub fn start(object: &Path, extra: &[&str], echo: bool) -> io::Result<Agent> {
        let forced = std::env::var("GUARD_BACKEND")
            .ok()
            .filter(|_| !extra.contains(&"--backend"));
        // Unless the test manages pinning itself, the agent's policy lives under this test
        // process's pin root and ends with the agent, as the tests expect.
        let own_root = (!extra.contains(&"--pin-root")).then(default_pin_root);
        let own_args: Vec<String> = own_root
            .iter()
            .flat_map(|r| {
                [
                    "--pin-root".to_string(),
                    r.display().to_string(),
                    "--unpin-on-exit".to_string(),
                ]
            })
            .collect();
        let name = extra
            .iter()
            .position(|a| *a == "--name")
            .and_then(|i| extra.get(i + 1))
            .map(|n| n.to_string())
            .or_else(|| {
                object
                    .file_stem()
                    .map(|s| guard_runtime::pin::name_from_stem(&s.to_string_lossy()))
            })
            .unwrap_or_default();
        let mut child = Command::new(crate::bin("guard-run"))
            .arg("load")
            .arg(object)
            .args(extra)
            .args(&own_args)
            .args(forced.iter().flat_map(|b| ["--backend", b.as_str()]))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().expect("piped"), stdout.clone(), false),
            collect(child.stderr.take().expect("piped"), stderr.clone(), echo),
        ];
        let mut agent = Agent {
            child,
            stdout,
            stderr,
            readers,
            own_pin: own_root.map(|r| (r, name)),
        };
        // Generous: under emulation (the VM ring) verification alone takes tens of seconds.
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if agent
                .stderr()
                .iter()
                .any(|l| l.contains("guard-run: enforcing"))
            {
                return Ok(agent);
            }
            if let Some(st) = agent.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "guard-run exited ({st}) before enforcing:\n{}",
                    agent.stderr().join("\n")
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(
                    "guard-run did not start enforcing within 300 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn alerts(&self) -> Vec<String> {
        self.stdout.lock().map(|v| v.clone()).unwrap_or_default()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits until a line of stderr contains `needle` (or the timeout passed); returns it.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.stderr().into_iter().find(|l| l.contains(needle)) {
                return Some(l);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until at least `n` alerts arrived (or the timeout passed); returns them.
    pub fn wait_alerts(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        while self.alerts().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.alerts()
    }

    /// Sends `sig` to the agent (SIGHUP: reopen the alert file).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGKILL, as the OOM killer or a crash would end it: no chance to clean up. Returns what
    /// it printed.
    pub fn kill(mut self) -> (Vec<String>, Vec<String>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (self.alerts(), self.stderr())
    }

    /// SIGTERM, then waits: the agent must exit by itself (detaching the policy when it was
    /// started with `--unpin-on-exit`, as [`Agent::start`] does by default).
    pub fn stop(mut self) -> io::Result<(ExitStatus, Vec<String>, Vec<String>)> {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(st) = self.child.try_wait()? {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(io::Error::other(
                    "guard-run did not exit within 20 s of SIGTERM",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Ok((status, self.alerts(), self.stderr()))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((root, name)) = &self.own_pin {
            // Already gone after a clean stop; what a killed agent left is removed here.
            let _ = Command::new(crate::bin("guard-run"))
                .args(["unload", name, "--pin-root"])
                .arg(root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_dir(root);
        }
    }
}

/// A fresh path for an object file under the system temp dir.
pub fn temp_object(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("guard-{name}-{}.o", std::process::id()))
}

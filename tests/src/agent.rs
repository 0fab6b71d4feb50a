//! The node side: `guardc compile` and `guard-run load` as the operator runs them.

use std::io::{self, BufRead, BufReader};
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
}

fn collect(
    r: impl io::Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
    echo: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if echo {
                eprintln!("{line}");
            }
            if let Ok(mut v) = into.lock() {
                v.push(line);
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
        let mut child = Command::new(crate::bin("guard-run"))
            .arg("load")
            .arg(object)
            .args(extra)
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

    /// SIGTERM, then waits: the agent must detach and exit by itself.
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
    }
}

/// A fresh path for an object file under the system temp dir.
pub fn temp_object(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("guard-{name}-{}.o", std::process::id()))
}

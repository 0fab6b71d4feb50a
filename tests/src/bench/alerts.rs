//! Section 4 of `cargo xtask bench`: how many alerts per second go from the kernel to the JSON
//! file sink before the first is lost, and the agent's CPU time per 1,000 alerts.
//!
//! One agent enforces a rule that alerts on every open of one file; steps of rising rates open
//! it (open+close, paced) for a fixed time each. After each step we wait for the sink to catch
//! up and count its lines; the step loses alerts when the agent reports a drop (its
//! `Falco internal: syscall event drop` warning, made from the kernel's ring-full counter) or
//! fewer lines arrive than opens were made. The run stops at the first step that loses any.

use std::ffi::CString;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One step: opens at `target_rate` per second (0: as fast as one thread can).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Step {
    pub target_rate: u64,
    /// Opens made per second.
    pub offered_rate: f64,
    pub opens: u64,
    pub delivered: u64,
    /// Alerts per second from the first open to the last line in the sink.
    pub delivered_rate: f64,
    /// The agent's user+system CPU from the step's start until the sink caught up, per 1,000
    /// delivered alerts, ms (none when none came).
    pub cpu_ms_per_1000: Option<f64>,
    /// The agent reported losses, or the sink is short of lines.
    pub lost: bool,
    /// The agent reported losses (the kernel's ring buffer was full).
    pub reported_drop: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlertsResult {
    pub backend: String,
    pub step_secs: f64,
    pub steps: Vec<Step>,
}

impl AlertsResult {
    /// The step with the highest delivered rate among those that lost nothing.
    pub fn best_lossless(&self) -> Option<&Step> {
        self.steps
            .iter()
            .filter(|s| !s.lost)
            .max_by(|a, b| a.delivered_rate.total_cmp(&b.delivered_rate))
    }

    pub fn first_loss(&self) -> Option<&Step> {
        self.steps.iter().find(|s| s.lost)
    }
}

/// `guard-run load OBJECT --json --output-file SINK --unpin-on-exit`, stdout discarded, stderr
/// collected.
struct Sink {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Sink {
    fn start(object: &Path, file: &Path) -> Result<Sink, String> {
        let mut child = Command::new(crate::bin("guard-run"))
            .arg("load")
            .arg(object)
            .args(["--json", "--output-file"])
            .arg(file)
            // The bench's own pin root, unloaded when the sink stops: a benchmark must not
            // leave a policy enforced on the machine.
            .arg("--pin-root")
            .arg(crate::agent::default_pin_root())
            .arg("--unpin-on-exit")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("guard-run: {e}"))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let into = stderr.clone();
        let err = child.stderr.take().ok_or("guard-run: no stderr")?;
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Ok(mut v) = into.lock() {
                    v.push(line);
                }
            }
        });
        let sink = Sink { child, stderr };
        let deadline = Instant::now() + Duration::from_secs(300);
        while !sink.said("guard-run: enforcing") {
            if Instant::now() > deadline {
                return Err("guard-run did not start enforcing within 300 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sink)
    }

    fn said(&self, what: &str) -> bool {
        self.stderr
            .lock()
            .is_ok_and(|v| v.iter().any(|l| l.contains(what)))
    }

    fn line(&self, what: &str) -> String {
        self.stderr
            .lock()
            .ok()
            .and_then(|v| v.iter().find(|l| l.contains(what)).cloned())
            .unwrap_or_default()
    }

    /// User+system CPU time of the agent so far, ms (from /proc/PID/stat).
    fn cpu_ms(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<f64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let ticks = f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        ticks * 1e3 / hz
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // SIGTERM, so that `--unpin-on-exit` unloads the policy; a SIGKILLed agent would leave
        // it pinned and enforced, so whatever is left under the bench's root is unloaded too.
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
        let _ = Command::new(crate::bin("guard-run"))
            .args(["unload", "--all", "--pin-root"])
            .arg(crate::agent::default_pin_root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir(crate::agent::default_pin_root());
    }
}

/// Counts the lines appended to a file since the last call.
struct LineCounter {
    file: std::fs::File,
    at: u64,
    lines: u64,
}

impl LineCounter {
    fn count(&mut self) -> u64 {
        let mut buf = Vec::new();
        if self.file.seek(SeekFrom::Start(self.at)).is_ok()
            && self.file.read_to_end(&mut buf).is_ok()
        {
            self.at += buf.len() as u64;
            self.lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        self.lines
    }
}

/// Opens `path` at `rate` per second (0: flat out) for `secs`; the number of opens.
fn offer(path: &CString, rate: u64, secs: f64) -> u64 {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        let t = start.elapsed().as_secs_f64();
        if t >= secs {
            return n;
        }
        if rate > 0 && n as f64 >= t * rate as f64 {
            std::thread::sleep(Duration::from_micros(100));
            continue;
        }
        // SAFETY: a valid NUL-terminated path; the descriptor is closed right away.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
            if fd >= 0 {
                libc::close(fd);
            }
        }
        n += 1;
    }
}

/// Runs the steps of `rates` (0 last: flat out), `secs` each, in `dir`. Root, kernel lock.
pub fn run(rates: &[u64], secs: f64, dir: &Path) -> Result<AlertsResult, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let target = dir.join("alerted");
    std::fs::write(&target, "x").map_err(|e| e.to_string())?;
    let policy = format!(
        "rule \"bench: every open alerts\"\nguard {} allow nobody else alert warning\n",
        target.display()
    );
    let object = dir.join("alerts.o");
    super::compile(&policy, &object, false)?;
    let sink_file = dir.join("alerts.json");
    let _ = std::fs::remove_file(&sink_file);
    let sink = Sink::start(&object, &sink_file)?;
    let backend = sink
        .line("guard-run: enforcing")
        .split_once("with the ")
        .and_then(|(_, r)| r.split_once(" backend"))
        .map_or_else(|| "unknown".to_string(), |(b, _)| b.to_string());
    // "tracepoint (kill via ...)": the name is enough here.
    let backend = backend.split(" (").next().unwrap_or_default().to_string();
    // The sink file exists once the agent runs.
    let file =
        std::fs::File::open(&sink_file).map_err(|e| format!("{}: {e}", sink_file.display()))?;
    let mut lines = LineCounter {
        file,
        at: 0,
        lines: 0,
    };
    let path = CString::new(target.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
    let mut steps = Vec::new();
    for &rate in rates {
        let before = lines.count();
        let cpu0 = sink.cpu_ms();
        let start = Instant::now();
        let opens = offer(&path, rate, secs);
        let offered_secs = start.elapsed().as_secs_f64();
        // Wait for the sink: until every alert is in, or nothing came for a second.
        let mut last = (before, start.elapsed());
        let mut idle = Instant::now();
        while last.0 < before + opens && idle.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(5));
            let n = lines.count();
            if n > last.0 {
                last = (n, start.elapsed());
                idle = Instant::now();
            }
        }
        let cpu = sink.cpu_ms() - cpu0;
        // The agent checks the kernel's loss counter once a second.
        std::thread::sleep(Duration::from_millis(1200));
        let delivered = lines.count() - before;
        let reported_drop = sink.said("alerts lost");
        let lost = reported_drop || delivered < opens;
        steps.push(Step {
            target_rate: rate,
            offered_rate: opens as f64 / offered_secs,
            opens,
            delivered,
            delivered_rate: (last.0 - before) as f64 / last.1.as_secs_f64().max(1e-9),
            cpu_ms_per_1000: (delivered > 0).then(|| cpu * 1e3 / delivered as f64),
            lost,
            reported_drop,
        });
        if lost {
            break;
        }
    }
    drop(sink);
    Ok(AlertsResult {
        backend,
        step_secs: secs,
        steps,
    })
}

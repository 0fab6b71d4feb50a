//! What guard costs in the kernel, measured side by side (`guard-bench`): open()+close() and
//! fork+exec+wait under no program, the empty programs on the same hooks (the floor of the
//! mechanism), the article's five-rule policy, 10- and 10,000-rule policies, and the same
//! checks as a bpftrace script where bpftrace is installed.
//!
//! The machine is noisy, so every round runs every configuration once, in turn (interleaved),
//! and the report gives medians over the rounds.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::agent::{self, Agent};

pub mod alerts;
pub mod compiler;
pub mod kernel;
pub mod page;
pub mod svg;

/// One way the kernel can be set up while we measure.
pub enum Setup {
    /// No BPF program at all.
    Bare,
    /// `guard-run load` of this object.
    Guard(PathBuf),
    /// `bpftrace --unsafe -e SCRIPT`.
    Bpftrace(String),
}

pub struct Config {
    pub name: String,
    pub setup: Setup,
}

/// Medians of one configuration.
#[derive(Clone, Copy, Debug, Default)]
pub struct Row {
    /// ns per open()+close() of a file no rule covers.
    pub uncovered: f64,
    /// ns per open()+close() of a file a rule covers and allows.
    pub covered: f64,
    /// µs per fork+exec+wait of /bin/true.
    pub spawn: f64,
    /// Half the range of the rounds' `uncovered` samples: the noise a difference must exceed.
    pub uncovered_spread: f64,
}

/// Half the range of `v` (0 for fewer than two samples).
pub fn spread(v: &[f64]) -> f64 {
    let max = v.iter().copied().fold(f64::MIN, f64::max);
    let min = v.iter().copied().fold(f64::MAX, f64::min);
    if v.len() < 2 { 0.0 } else { (max - min) / 2.0 }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Iterations timed together: the median over such chunks is what a configuration scores, so
/// that a burst of another process's work (the machine is shared) spoils a chunk, not a row.
const CHUNK: u32 = 5_000;

/// ns per open()+close() of `path`: the median over chunks of [`CHUNK`] of `n` iterations.
pub fn open_close(path: &CString, n: u32) -> f64 {
    let mut chunks = Vec::new();
    let mut left = n.max(1);
    while left > 0 {
        let k = left.min(CHUNK);
        left -= k;
        let start = Instant::now();
        for _ in 0..k {
            // SAFETY: a valid NUL-terminated path; the descriptor is closed right away.
            unsafe {
                let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
                assert!(
                    fd >= 0,
                    "open failed: {:?}",
                    std::io::Error::last_os_error()
                );
                libc::close(fd);
            }
        }
        chunks.push(start.elapsed().as_nanos() as f64 / f64::from(k));
    }
    median(chunks)
}

/// µs per fork+exec+wait of `/bin/true`.
pub fn spawn(n: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        let st = Command::new("/bin/true").status().expect("/bin/true runs");
        assert!(st.success());
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// The article's five rules, with a sixth that covers `covered` and allows root: the
/// "covered path that is allowed" row needs a file the policy judges and lets through.
pub fn five_rule_policy(covered: &Path) -> String {
    let five = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/mirecloud.grd"),
    )
    .expect("policies/mirecloud.grd");
    format!(
        "{five}\nrule \"bench: covered and allowed\"\nguard read {} allow uid(0) else kill\n",
        covered.display()
    )
}

/// `n` rules, each over its own directory, none covering the benchmark's files.
pub fn generated_policy(n: usize) -> String {
    (0..n)
        .map(|i| format!("guard /srv/bench{i}/keys/* allow uid(0) else kill\n"))
        .collect()
}

/// Compiles `source` to `out`; with `empty`, every program body returns at once.
pub fn compile(source: &str, out: &Path, empty: bool) -> Result<(), String> {
    let name = out.with_extension("grd");
    std::fs::write(&name, source).map_err(|e| e.to_string())?;
    if !empty {
        return agent::compile(&name, out).map_err(|e| e.to_string());
    }
    let policy = guard_compiler::frontend::check_source(&name.to_string_lossy(), source)
        .map_err(|d| format!("{} diagnostics", d.len()))?;
    let bodies = guard_compiler::codegen::Bodies::Empty;
    let compiled =
        guard_compiler::codegen::compile_as(&policy, "floor", bodies).map_err(|e| e.to_string())?;
    std::fs::write(out, compiled.object).map_err(|e| e.to_string())
}

/// The five-rule set's file checks as a bpftrace user would write them: the opened name
/// compared at `openat` entry, the process killed with `signal` (needs `--unsafe`).
pub fn bpftrace_script(covered: &Path) -> String {
    format!(
        r#"tracepoint:syscalls:sys_enter_openat {{
  $f = str(args->filename);
  if (strncmp($f, "/mnt/secrets/", 13) == 0 && comm != "python3") {{ signal("KILL"); }}
  if (strncmp($f, "/proc/", 6) == 0 && uid != 0) {{ signal("KILL"); }}
  if ($f == "{}" && uid != 0) {{ signal("KILL"); }}
}}"#,
        covered.display()
    )
}

pub(crate) fn start_bpftrace(script: &str) -> std::io::Result<Child> {
    let mut child = Command::new("bpftrace")
        .args(["--unsafe", "-e", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    // bpftrace prints "Attaching N probes..." once its probes are in.
    use std::io::BufRead;
    let out = child.stdout.take().expect("piped");
    let mut lines = std::io::BufReader::new(out).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(l)) if l.contains("Attaching") => return Ok(child),
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    let _ = child.kill();
    Err(std::io::Error::other("bpftrace did not attach"))
}

/// Runs every configuration once per round, in turn, and returns the medians.
pub fn measure(
    configs: &[Config],
    uncovered: &CString,
    covered: &CString,
    rounds: u32,
    iterations: u32,
    spawns: u32,
) -> Result<Vec<Row>, String> {
    let mut samples: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> =
        configs.iter().map(|_| Default::default()).collect();
    open_close(uncovered, iterations / 10); // warm the caches
    for round in 1..=rounds {
        // Progress, for runs that take minutes (the VM's).
        eprintln!("guard-bench: round {round} of {rounds}");
        for (c, s) in configs.iter().zip(&mut samples) {
            let mut agent = None;
            let mut tracer = None;
            match &c.setup {
                Setup::Bare => {}
                Setup::Guard(object) => {
                    let started = Agent::start(object, &[], false);
                    agent = Some(started.map_err(|e| format!("{}: guard-run: {e}", c.name))?);
                }
                Setup::Bpftrace(script) => {
                    let started = start_bpftrace(script);
                    tracer = Some(started.map_err(|e| format!("{}: {e}", c.name))?);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
            s.0.push(open_close(uncovered, iterations));
            s.1.push(open_close(covered, iterations));
            s.2.push(spawn(spawns));
            if let Some(a) = agent {
                let _ = a.stop();
            }
            if let Some(mut t) = tracer {
                let _ = t.kill();
                let _ = t.wait();
            }
        }
    }
    Ok(samples
        .into_iter()
        .map(|(u, c, f)| Row {
            uncovered_spread: spread(&u),
            uncovered: median(u),
            covered: median(c),
            spawn: median(f),
        })
        .collect())
}

//! Sections 2 and 3 of `cargo xtask bench`: the kernel rows (a)–(e) side by side on one
//! backend (this host's tracepoints, or the VM's BPF LSM), built from [`super::measure`].

use std::ffi::CString;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::{Config, Setup, bpftrace_script, compile, five_rule_policy, generated_policy};

/// How much to measure.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub rounds: u32,
    pub iterations: u32,
    pub spawns: u32,
    /// Rules of the large generated policy (10,000; the test uses fewer).
    pub large: usize,
    /// Whether to try row (e) at all (the VM has no bpftrace for its kernel).
    pub bpftrace: bool,
}

/// One configuration's medians.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KernelRow {
    /// Short key: `a`, `b`, `cd`, `ten`, `large`, `e`.
    pub key: String,
    pub name: String,
    pub uncovered_ns: f64,
    /// Half the range of the rounds' uncovered samples.
    pub uncovered_spread_ns: f64,
    pub covered_ns: f64,
    pub spawn_us: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KernelResult {
    /// `uname -r`.
    pub kernel: String,
    /// The backend guard-run chose (or was forced onto), from its own words.
    pub backend: String,
    pub rounds: u32,
    pub iterations: u32,
    pub spawns: u32,
    pub rows: Vec<KernelRow>,
    /// Why row (e) is missing, when it is.
    pub bpftrace_skipped: Option<String>,
}

impl KernelResult {
    pub fn row(&self, key: &str) -> Option<&KernelRow> {
        self.rows.iter().find(|r| r.key == key)
    }
}

pub fn uname() -> String {
    Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Whether bpftrace can attach the script here: it is installed and gets its probe in.
fn bpftrace_usable(script: &str) -> Result<(), String> {
    if crate::which("bpftrace").is_none() {
        return Err("bpftrace is not installed (apt-get install bpftrace)".into());
    }
    let mut child = super::start_bpftrace(script).map_err(|e| format!("bpftrace: {e}"))?;
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

/// The backend guard-run enforces `object` with, as its start-up line names it.
fn backend_of(object: &Path) -> String {
    match crate::agent::Agent::start(object, &[], false) {
        Ok(agent) => {
            let line = agent
                .stderr()
                .into_iter()
                .find(|l| l.contains("guard-run: enforcing"))
                .unwrap_or_default();
            let _ = agent.stop();
            // "... with the tracepoint backend; ..."
            line.split_once("with the ")
                .and_then(|(_, rest)| rest.split_once(" backend"))
                .map(|(b, _)| b.to_string())
                .unwrap_or(line)
                // "tracepoint (kill via ...)": the name is enough here.
                .split(" (")
                .next()
                .unwrap_or_default()
                .to_string()
        }
        Err(e) => format!("unknown ({e})"),
    }
}

/// Rows (a)–(e) in `dir` (temporary files and objects go there). Needs root and the kernel lock.
pub fn run(plan: Plan, dir: &Path) -> Result<KernelResult, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let uncovered = dir.join("data.txt");
    let covered = dir.join("covered");
    for f in [&uncovered, &covered] {
        std::fs::write(f, "x").map_err(|e| format!("{}: {e}", f.display()))?;
    }
    let obj = |name: &str, source: String, empty: bool| -> Result<_, String> {
        let out = dir.join(format!("{name}.o"));
        compile(&source, &out, empty).map_err(|e| format!("{name}: {e}"))?;
        Ok(out)
    };
    let five = five_rule_policy(&covered);
    let five_obj = obj("five", five.clone(), false)?;
    let mut configs = vec![
        ("a", "(a) no program".to_string(), Setup::Bare),
        (
            "b",
            "(b) empty programs on guard's hooks".into(),
            Setup::Guard(obj("floor", five, true)?),
        ),
        (
            "cd",
            "(c)/(d) five-rule policy".into(),
            Setup::Guard(five_obj.clone()),
        ),
        (
            "ten",
            "10-rule policy".into(),
            Setup::Guard(obj("ten", generated_policy(10), false)?),
        ),
        (
            "large",
            format!("{}-rule policy", thousands(plan.large)),
            Setup::Guard(obj("large", generated_policy(plan.large), false)?),
        ),
    ];
    let script = bpftrace_script(&covered);
    let bpftrace_skipped = if plan.bpftrace {
        bpftrace_usable(&script).err()
    } else {
        Some("not run on this backend".into())
    };
    if bpftrace_skipped.is_none() {
        configs.push((
            "e",
            "(e) bpftrace, same file checks".into(),
            Setup::Bpftrace(script),
        ));
    }
    let backend = backend_of(&five_obj);
    let (keys, configs): (Vec<(&str, String)>, Vec<Config>) = configs
        .into_iter()
        .map(|(k, name, setup)| ((k, name.clone()), Config { name, setup }))
        .unzip();
    let c = |p: &Path| CString::new(p.to_string_lossy().as_bytes()).map_err(|e| e.to_string());
    let rows = super::measure(
        &configs,
        &c(&uncovered)?,
        &c(&covered)?,
        plan.rounds,
        plan.iterations,
        plan.spawns,
    )?;
    Ok(KernelResult {
        kernel: uname(),
        backend,
        rounds: plan.rounds,
        iterations: plan.iterations,
        spawns: plan.spawns,
        rows: keys
            .into_iter()
            .zip(rows)
            .map(|((key, name), r)| KernelRow {
                key: key.to_string(),
                name,
                uncovered_ns: r.uncovered,
                uncovered_spread_ns: r.uncovered_spread,
                covered_ns: r.covered,
                spawn_us: r.spawn,
            })
            .collect(),
        bpftrace_skipped,
    })
}

/// 10000 → "10,000".
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

//! `cargo xtask bench`: guard's performance figures and the book page made from them.
//!
//! The host sections (compiler, kernel cost on the tracepoint backend, alerts) are measured by
//! the release `guard-bench` (`tests/src/bin/guard-bench.rs`, as root); the `lsm` section runs
//! the same release `guard-bench` inside the VM of `vm-test`, whose console hands the figures back
//! (`guard-bench-result lsm {json}`). Each section is saved under `target/bench/`, and the page
//! (`book/src/performance.md`, plots in `book/src/performance/`) is written from every saved
//! section, so a section run alone keeps the others' last figures.

use std::ffi::OsString;
use std::fs;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::vm;

pub const SECTIONS: [&str; 4] = ["compiler", "kernel", "lsm", "alerts"];

pub struct Options {
    pub quick: bool,
    pub sections: Vec<String>,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            quick: false,
            sections: SECTIONS.iter().map(|s| s.to_string()).collect(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--quick" => o.quick = true,
                "--sections" => {
                    let Some(list) = it.next() else {
                        bail!("`--sections` needs a value ({})", SECTIONS.join(","));
                    };
                    o.sections = list.split(',').map(str::to_string).collect();
                    for s in &o.sections {
                        if !SECTIONS.contains(&s.as_str()) {
                            bail!("unknown section `{s}` (known: {})", SECTIONS.join(", "));
                        }
                    }
                }
                _ => bail!("unknown option `{arg}` (see `cargo xtask --help`)"),
            }
        }
        Ok(o)
    }
}

/// The kernel rows' plan inside the VM: TCG runs a syscall some 20 times slower than the host,
/// and every round loads five objects through the 6.1 verifier.
fn vm_plan(quick: bool) -> &'static str {
    if quick {
        "--rounds 2 --iterations 5000 --spawns 10"
    } else {
        "--rounds 3 --iterations 20000 --spawns 30"
    }
}

pub fn run(opts: Options) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let ws = vm::Workspace::load(&cargo)?;
    let results = ws.target_dir.join("bench");
    fs::create_dir_all(&results).with_context(|| format!("creating {}", results.display()))?;
    let quick = if opts.quick { " --quick" } else { "" };

    println!("== bench: building the release binaries");
    let st = Command::new(&cargo)
        .args(["build", "--release", "--bins"])
        .current_dir(&ws.root)
        .status()
        .context("running cargo build --release")?;
    if !st.success() {
        bail!("`cargo build --release --bins` failed: {st}");
    }

    if opts.sections.iter().any(|s| s == "lsm") {
        println!("== bench: the lsm section, in the VM (minutes)");
        // The release build, as on the host: the guest sees the host's root, and under TCG the
        // debug compiler alone would take minutes over the 10,000-rule policy.
        let exe = ws.target_dir.join("release/guard-bench");
        let cmd = format!(
            "{} --sections kernel --no-bpftrace --print-json --results /tmp/guard-bench {} \
             --command {}",
            vm::sh_quote(&exe.to_string_lossy()),
            vm_plan(opts.quick),
            vm::sh_quote(&format!("cargo xtask bench{quick} --sections lsm")),
        );
        let (_, console) = vm::run_with_console(vm::Options::command(cmd))?;
        let json = lsm_result(&console).context(
            "the VM's guard-bench printed no result (see target/vm/console.log for why)",
        )?;
        let path = results.join("lsm.json");
        fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }

    let host: Vec<&str> = opts
        .sections
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "lsm")
        .collect();
    let page = ws.root.join("book/src/performance.md");
    let mut bench = Command::new(ws.target_dir.join("release/guard-bench"));
    bench
        .arg("--results")
        .arg(&results)
        .arg("--page")
        .arg(&page);
    if host.is_empty() {
        bench.arg("--render-only");
    } else {
        bench.args(["--sections", &host.join(",")]);
    }
    if opts.quick {
        bench.arg("--quick");
    }
    println!("== bench: {bench:?}");
    let st = bench.status().context("running guard-bench")?;
    if !st.success() {
        bail!("guard-bench failed: {st}");
    }
    Ok(())
}

/// The JSON after the `guard-bench-result kernel ` marker on the guest's console.
fn lsm_result(console: &[String]) -> Option<String> {
    const MARK: &str = "guard-bench-result kernel ";
    console
        .iter()
        .rev()
        .find_map(|l| l.find(MARK).map(|i| l[i + MARK.len()..].trim().to_string()))
        .filter(|j| serde_json::from_str::<serde_json::Value>(j).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = Options::parse(&args(&[])).unwrap();
        assert_eq!(o.sections.len(), 4);
        assert!(!o.quick);
        let o = Options::parse(&args(&["--quick", "--sections", "compiler,lsm"])).unwrap();
        assert!(o.quick);
        assert_eq!(o.sections, ["compiler", "lsm"]);
        assert!(Options::parse(&args(&["--sections", "gpu"])).is_err());
        assert!(Options::parse(&args(&["--sections"])).is_err());
        assert!(Options::parse(&args(&["--slow"])).is_err());
    }

    #[test]
    fn the_result_comes_off_the_console() {
        let console = [
            "[   3.1] random: crng init done".to_string(),
            r#"guard-bench-result kernel {"when":"x","quick":true}"#.to_string(),
            "GUARD-VM end run exit=0".to_string(),
        ];
        assert_eq!(
            lsm_result(&console).as_deref(),
            Some(r#"{"when":"x","quick":true}"#)
        );
        assert_eq!(lsm_result(&console[..1]), None);
        // Cut by the console: not JSON, not a result.
        let cut = [r#"guard-bench-result kernel {"when":"#.to_string()];
        assert_eq!(lsm_result(&cut), None);
    }
}

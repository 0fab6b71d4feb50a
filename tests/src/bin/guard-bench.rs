//! guard's costs, measured side by side on this machine: the sections of the performance page
//! (`book/src/performance.md`). `cargo xtask bench` builds the release binaries and runs this;
//! run it by hand as
//!
//!     cargo build --release --bins && sudo ./target/release/guard-bench [options]
//!
//! options:
//!   --quick              fewer rounds, iterations and steps (minutes, rougher figures)
//!   --sections LIST      compiler,kernel,alerts (default: all three; kernel and alerts need root)
//!   --results DIR        save each section as DIR/SECTION.json (default target/bench)
//!   --render-only        measure nothing: only write the page from DIR
//!   --page FILE          then write the page from every section saved in DIR (and its plots)
//!   --print-json         print each section's saved JSON on one stdout line, after
//!                        `guard-bench-result SECTION ` (how the VM hands its figures back)
//!   --no-bpftrace        leave out row (e)
//!   --rounds N --iterations N --spawns N   override the kernel section's plan
//!   --command TEXT       the reproducing command recorded with the figures

use std::path::PathBuf;

use guard_tests::bench::page::{self, Saved};
use guard_tests::bench::{alerts, compiler, kernel};

struct Options {
    quick: bool,
    sections: Vec<String>,
    results: PathBuf,
    page: Option<PathBuf>,
    render_only: bool,
    print_json: bool,
    bpftrace: bool,
    rounds: Option<u32>,
    iterations: Option<u32>,
    spawns: Option<u32>,
    command: Option<String>,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        sections: vec!["compiler".into(), "kernel".into(), "alerts".into()],
        results: PathBuf::from("target/bench"),
        page: None,
        render_only: false,
        print_json: false,
        bpftrace: true,
        rounds: None,
        iterations: None,
        spawns: None,
        command: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("`{a}` needs a value"));
        let number = |v: String| {
            v.parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("`{a} {v}`: not a positive number"))
        };
        match a.as_str() {
            "--quick" => o.quick = true,
            "--sections" => {
                o.sections = value()?.split(',').map(str::to_string).collect();
                for s in &o.sections {
                    if !["compiler", "kernel", "alerts"].contains(&s.as_str()) {
                        return Err(format!(
                            "unknown section `{s}` (compiler, kernel, alerts; lsm is xtask's)"
                        ));
                    }
                }
            }
            "--results" => o.results = value()?.into(),
            "--page" => o.page = Some(value()?.into()),
            "--render-only" => o.render_only = true,
            "--print-json" => o.print_json = true,
            "--no-bpftrace" => o.bpftrace = false,
            "--rounds" => o.rounds = Some(number(value()?)?),
            "--iterations" => o.iterations = Some(number(value()?)?),
            "--spawns" => o.spawns = Some(number(value()?)?),
            "--command" => o.command = Some(value()?),
            _ => {
                return Err(format!(
                    "unknown option `{a}` (see the top of guard-bench.rs)"
                ));
            }
        }
    }
    if o.render_only {
        o.sections.clear();
    }
    Ok(o)
}

fn now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn main() {
    if let Err(e) = run() {
        eprintln!("guard-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let o = parse()?;
    let needs_kernel = o.sections.iter().any(|s| s != "compiler");
    let _lock = if needs_kernel {
        guard_tests::kernel_test_prerequisites()?;
        Some(guard_tests::kernel_lock())
    } else {
        None
    };
    let dir = std::env::temp_dir().join(format!("guard-bench-{}", std::process::id()));
    let saved = |section: &str| Saved {
        when: now(),
        quick: o.quick,
        command: o.command.clone().unwrap_or_else(|| {
            let quick = if o.quick { " --quick" } else { "" };
            format!("cargo xtask bench{quick} --sections {section}")
        }),
        data: (),
    };
    let emit = |section: &str, json: String| {
        if o.print_json {
            println!("guard-bench-result {section} {json}");
        }
    };
    let result = (|| -> Result<(), String> {
        for section in &o.sections {
            eprintln!("guard-bench: measuring {section}");
            let json = match section.as_str() {
                "compiler" => {
                    let rounds = o.rounds.unwrap_or(if o.quick { 3 } else { 9 });
                    let rows = compiler::measure(&[10, 100, 1_000, 10_000], rounds)?;
                    let s = saved(section).with(rows);
                    page::save(&o.results, section, &s)?;
                    serde_json::to_string(&s)
                }
                "kernel" => {
                    let plan = kernel::Plan {
                        rounds: o.rounds.unwrap_or(if o.quick { 3 } else { 9 }),
                        iterations: o
                            .iterations
                            .unwrap_or(if o.quick { 50_000 } else { 200_000 }),
                        spawns: o.spawns.unwrap_or(if o.quick { 50 } else { 300 }),
                        large: 10_000,
                        bpftrace: o.bpftrace,
                    };
                    let data = kernel::run(plan, &dir.join("kernel"))?;
                    let s = saved(section).with(data);
                    page::save(&o.results, section, &s)?;
                    serde_json::to_string(&s)
                }
                _ => {
                    let (rates, secs): (&[u64], f64) = if o.quick {
                        (&[1_000, 10_000, 100_000, 0], 0.5)
                    } else {
                        (
                            &[
                                1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 0,
                            ],
                            2.0,
                        )
                    };
                    let data = alerts::run(rates, secs, &dir.join("alerts"))?;
                    let s = saved(section).with(data);
                    page::save(&o.results, section, &s)?;
                    serde_json::to_string(&s)
                }
            }
            .map_err(|e| e.to_string())?;
            emit(section, json);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    let rendered = page::render(&page::Results::load(&o.results)?);
    if let Some(path) = &o.page {
        page::write(&rendered, path)?;
        eprintln!("guard-bench: wrote {}", path.display());
    }
    if !o.print_json {
        print!("{}", rendered.markdown);
    }
    Ok(())
}

//! guard's costs, measured side by side on this machine (root): the seed policy's compile time
//! and object size, then open()+close() and fork+exec+wait under no program, the empty
//! programs on guard's hooks (the floor), the five-rule policy (a file no rule covers, and one a
//! rule covers and allows), 10- and 10,000-rule policies, and bpftrace running the same file
//! checks (when installed). Configurations are interleaved round by round; medians reported.
//!
//!     cargo build --release --workspace && sudo ./target/release/guard-bench
//!     options: --rounds N (7) --iterations N (200000) --spawns N (300) --json

use std::ffi::CString;
use std::process::Command;
use std::time::Instant;

use guard_tests::agent;
use guard_tests::bench::{self, Config, Setup, median};

fn arg(name: &str, default: u32) -> u32 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if let Err(why) = guard_tests::kernel_test_prerequisites() {
        eprintln!("guard-bench: {why}");
        std::process::exit(2);
    }
    let _kernel = guard_tests::kernel_lock();
    let rounds = arg("--rounds", 7);
    let iterations = arg("--iterations", 200_000);
    let spawns = arg("--spawns", 300);
    let json = std::env::args().any(|a| a == "--json");
    let dir = std::env::temp_dir().join(format!("guard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    // Compiler: wall time of the whole `guardc compile` process for the seed policy.
    let policy = guard_tests::secrets_policy();
    let object = agent::temp_object("bench");
    let mut compile = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        agent::compile(&policy, &object).expect("the seed policy compiles");
        compile.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let size = std::fs::metadata(&object).map(|m| m.len()).unwrap_or(0);

    let uncovered = dir.join("data.txt");
    let covered = dir.join("covered");
    for f in [&uncovered, &covered] {
        std::fs::write(f, "x").expect("temp file");
    }
    let obj = |name: &str, source: String, empty: bool| {
        let out = dir.join(format!("{name}.o"));
        bench::compile(&source, &out, empty).unwrap_or_else(|e| panic!("{name}: {e}"));
        out
    };
    let five = bench::five_rule_policy(&covered);
    let mut configs = vec![
        Config {
            name: "(a) no program".into(),
            setup: Setup::Bare,
        },
        Config {
            name: "(b) empty programs on guard's hooks".into(),
            setup: Setup::Guard(obj("floor", five.clone(), true)),
        },
        Config {
            name: "(c/d) five-rule policy".into(),
            setup: Setup::Guard(obj("five", five, false)),
        },
        Config {
            name: "10-rule policy".into(),
            setup: Setup::Guard(obj("ten", bench::generated_policy(10), false)),
        },
        Config {
            name: "10,000-rule policy".into(),
            setup: Setup::Guard(obj("tenk", bench::generated_policy(10_000), false)),
        },
    ];
    let has_bpftrace = guard_tests::which("bpftrace").is_some();
    if has_bpftrace {
        configs.push(Config {
            name: "(e) bpftrace, same file checks".into(),
            setup: Setup::Bpftrace(bench::bpftrace_script(&covered)),
        });
    }
    let c = |p: &std::path::Path| CString::new(p.to_string_lossy().as_bytes()).expect("no NUL");
    let rows = bench::measure(
        &configs,
        &c(&uncovered),
        &c(&covered),
        rounds,
        iterations,
        spawns,
    );

    let backend = std::env::var("GUARD_BACKEND").unwrap_or_else(|_| "auto".into());
    if json {
        let rows: Vec<serde_json::Value> = configs
            .iter()
            .zip(&rows)
            .map(|(c, r)| {
                serde_json::json!({"config": c.name, "uncovered_ns": r.uncovered,
                    "covered_ns": r.covered, "spawn_us": r.spawn})
            })
            .collect();
        let out = serde_json::json!({"kernel": uname(), "backend": backend, "rounds": rounds,
            "iterations": iterations, "spawns": spawns, "seed_compile_ms": median(compile),
            "seed_object_bytes": size, "rows": rows});
        println!("{out}");
    } else {
        println!(
            "guard-bench on {} (backend {backend}), {rounds} interleaved rounds, medians",
            uname()
        );
        println!(
            "  guardc compile of the seed policy: {:.2} ms, object {size} bytes",
            median(compile)
        );
        let base = rows[0];
        println!(
            "  {:<40} {:>14} {:>14} {:>16}",
            "configuration", "open+close ns", "covered ns", "fork+exec µs"
        );
        for (cfg, r) in configs.iter().zip(&rows) {
            println!(
                "  {:<40} {:>8.1} {:>+6.0} {:>8.1} {:>+6.0} {:>9.1} {:>+6.1}",
                cfg.name,
                r.uncovered,
                r.uncovered - base.uncovered,
                r.covered,
                r.covered - base.covered,
                r.spawn,
                r.spawn - base.spawn
            );
        }
        let added = |i: usize| rows[i].uncovered - base.uncovered;
        println!(
            "  five-rule policy on an uncovered file adds {:.0} ns, {:.2}x the floor's {:.0} ns",
            added(2),
            added(2) / added(1),
            added(1)
        );
        if !has_bpftrace {
            println!("  (e) skipped: bpftrace is not installed (apt-get install bpftrace)");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(object);
}

fn uname() -> String {
    Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

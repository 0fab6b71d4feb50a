//! A small benchmark of the seed policy (root): compile time, object size, and the cost the
//! loaded policy adds to open()+close() of a file no rule covers. Runs are interleaved (without,
//! with, without, ...) and medians reported, because the machine is noisy.
//!
//!     cargo build --release --workspace && sudo ./target/release/guard-bench

use std::ffi::CString;
use std::process::Command;
use std::time::{Duration, Instant};

use guard_tests::agent::{self, Agent};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// ns per open()+close() of `path`, over `n` iterations.
fn open_close(path: &CString, n: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        // SAFETY: a valid NUL-terminated path; the descriptor is closed right away.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
            assert!(fd >= 0, "open failed");
            libc::close(fd);
        }
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

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
    let policy = guard_tests::secrets_policy();
    let object = agent::temp_object("bench");

    // Compiler: wall time of the whole `guardc compile` process, median of the rounds.
    let mut compile = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        agent::compile(&policy, &object).expect("the seed policy compiles");
        compile.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let stats = Command::new(guard_tests::bin("guardc"))
        .args(["compile", "--stats", "-o"])
        .arg(&object)
        .arg(&policy)
        .output()
        .expect("guardc runs");
    let size = std::fs::metadata(&object).map(|m| m.len()).unwrap_or(0);

    let dir = std::env::temp_dir().join(format!("guard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("data.txt");
    std::fs::write(&file, "x").expect("temp file");
    let cpath = CString::new(file.to_string_lossy().as_bytes()).expect("no NUL");

    let (mut without, mut with) = (Vec::new(), Vec::new());
    open_close(&cpath, iterations / 10); // warm up
    for _ in 0..rounds {
        without.push(open_close(&cpath, iterations));
        let agent = Agent::start(&object, &[], false).expect("guard-run loads");
        std::thread::sleep(Duration::from_millis(100));
        with.push(open_close(&cpath, iterations));
        let _ = agent.stop();
    }
    let (a, b) = (median(without), median(with));
    println!("guard-bench: seed policy (policies/secrets.grd), {rounds} rounds");
    println!(
        "  guardc compile (process wall time)   {:>10.2} ms",
        median(compile)
    );
    println!(
        "  guardc --stats                       {}",
        String::from_utf8_lossy(&stats.stderr).trim()
    );
    println!("  object size                          {size:>10} bytes");
    println!(
        "  open()+close() of {} ({iterations} iterations per run):",
        file.display()
    );
    println!("    without guard                      {a:>10.1} ns");
    println!(
        "    with the policy loaded             {b:>10.1} ns  ({:+.1} ns, x{:.2})",
        b - a,
        b / a
    );
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(object);
}

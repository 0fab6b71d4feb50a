//! The simulator against this machine's kernel, backend by backend: for generated policies and
//! the same activity played twice, once by real processes under `guard-run` and once in
//! `guard_ebpf::sim::Machine` on the very object file `guard-run` loaded, every judgement is
//! the same, so `guardc test` and the kernel cannot drift apart. Root, this kernel.
//!
//! The policies only alert: a judgement is an alert or none, and nothing the activity needs
//! (the app, the namespace) is killed between policies. Each policy has an open rule and an
//! exec rule with the same subject, generated from atoms that depend on the process tree
//! (`ancestor`, `image`, `entered`), the process itself (`name`, `cmdline`, `exe`, `uid`) and
//! its terminal (`tty`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use guard_ebpf::abi::Action;
use guard_ebpf::sim::machine::Backend;
use guard_ebpf::sim::{Machine, Mode, Outcome};
use guard_tests::agent::{self, Agent};
use guard_tests::scenario::Scenario;
use serde_json::Value;

const SECRET: &str = "/mnt/secrets/db-password";

/// One attack: entered into the app's namespaces as `uid` (which tells its alerts apart).
struct Attack {
    uid: u32,
    /// Run under `script`, which gives the command a controlling terminal.
    tty: bool,
    /// `sh -c` forks the command.
    shell: bool,
    /// The command: an absolute canonical path, so both sides exec the same file under the
    /// same name.
    argv: Vec<String>,
}

fn canonical(tool: &str) -> String {
    // The scenario's app runs /usr/bin/python3 when there is one (`PATH` may hold a wrapper
    // script, such as pyenv's, in front of it).
    let system = Path::new("/usr/bin").join(tool);
    let found = if system.is_file() {
        system
    } else {
        guard_tests::which(tool).unwrap_or_else(|| PathBuf::from(tool))
    };
    std::fs::canonicalize(found)
        .expect("the tool resolves")
        .display()
        .to_string()
}

fn attacks(cat: &str, python: &str) -> Vec<Attack> {
    let read = format!("open('{SECRET}').read()");
    vec![
        Attack {
            uid: 60001,
            tty: false,
            shell: false,
            argv: vec![cat.into(), SECRET.into()],
        },
        Attack {
            uid: 60002,
            tty: false,
            shell: false,
            argv: vec![python.into(), "-c".into(), read],
        },
        Attack {
            uid: 60003,
            tty: false,
            shell: true,
            argv: vec![cat.into(), SECRET.into()],
        },
        Attack {
            uid: 60004,
            tty: true,
            shell: false,
            argv: vec![cat.into(), SECRET.into()],
        },
    ]
}

/// Subject atoms; a generated subject combines up to three.
fn atoms(cat: &str, python: &str, nsenter: &str) -> Vec<String> {
    vec![
        "ancestor(pid1, \"python app.py\")".into(),
        "image(pid1, \"python app.py\")".into(),
        "tty".into(),
        "name(\"cat\")".into(),
        "uid(60001)".into(),
        "entered".into(),
        format!("cmdline(\"{python} *\")"),
        format!("exe(\"{cat}\")"),
        format!("ancestor(any, exe(\"{nsenter}\"))"),
    ]
}

/// Each atom alone, a few combinations of the seed's, then combinations drawn from a fixed seed.
fn subjects(atoms: &[String]) -> Vec<String> {
    let mut out: Vec<String> = atoms.to_vec();
    out.extend([
        format!("not {}", atoms[5]),
        format!("{} and not {}", atoms[0], atoms[2]),
        format!("{} or {}", atoms[3], atoms[4]),
        format!("not ({} or {})", atoms[6], atoms[7]),
    ]);
    // A linear congruential generator: the same policies on every run.
    let mut state: u64 = 0x005e_ed0f_6a7d;
    let mut pick = |n: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % n as u64) as usize
    };
    for _ in 0..7 {
        let (a, b, c) = (
            &atoms[pick(atoms.len())],
            &atoms[pick(atoms.len())],
            &atoms[pick(atoms.len())],
        );
        out.push(match pick(5) {
            0 => format!("{a} and {b}"),
            1 => format!("{a} or not {b}"),
            2 => format!("({a} or {b}) and not {c}"),
            3 => format!("not ({a} and {b})"),
            _ => format!("{a} and not ({b} or {c})"),
        });
    }
    out
}

fn policy(subject: &str, cat: &str, python: &str) -> String {
    let alert = "alert critical \"uid=%user.uid pid=%proc.pid\"";
    format!(
        "rule \"open\"\nguard read /mnt/secrets/** allow {subject} else {alert}\n\
         rule \"exec\"\nguard exec {cat} {python} allow {subject} else {alert}\n"
    )
}

/// What one side judged: for each process (app, worker, each attack), whether its open of the
/// secret raised an alert, and for attacks whether the exec of their command did.
#[derive(Debug, PartialEq, Eq)]
struct Judged {
    app_open: bool,
    worker_open: bool,
    attack_open: Vec<bool>,
    attack_exec: Vec<bool>,
}

fn alerted(out: &Outcome) -> bool {
    match out.verdict {
        Action::Allow => false,
        Action::Alert => true,
        other => panic!("an alert-only policy decided {other:?}: {out:?}"),
    }
}

/// The same activity in the simulator, on the object `guard-run` loaded.
fn simulate(object: &[u8], backend: Backend, python: &str, attacks: &[Attack]) -> Judged {
    let mut m = Machine::boot_with_init(object, backend, &["/sbin/init"], "/sbin/init")
        .expect("the object loads");
    let unshare = m.fork(1).expect("fork");
    m.exec(
        unshare,
        &["unshare", "--pid", "--mount", "--fork"],
        &canonical("unshare"),
    )
    .expect("exec");
    let app = m.fork_new_namespace(unshare).expect("pid 1");
    m.exec(app, &["sh", "-c", "exec python app.py"], &canonical("sh"))
        .expect("exec");
    m.exec(app, &["python", "app.py"], python).expect("exec");
    let worker = m.fork(app).expect("fork");
    let app_open = alerted(&m.open(app, SECRET, Mode::Read).expect("open"));
    let worker_open = alerted(&m.open(worker, SECRET, Mode::Read).expect("open"));
    let (mut attack_open, mut attack_exec) = (Vec::new(), Vec::new());
    for a in attacks {
        let entered = m.enter(app, a.uid, None).expect("nsenter");
        let opener = if a.tty || a.shell {
            let (argv, exe) = if a.tty {
                (
                    vec!["script", "-qec", "cmd", "/dev/null"],
                    canonical("script"),
                )
            } else {
                (vec!["/bin/sh", "-c", "cmd"], canonical("sh"))
            };
            m.exec(entered, &argv, &exe).expect("exec");
            let child = m.fork(entered).expect("fork");
            if a.tty {
                m.set_tty(child, Some(0)).expect("tty");
            }
            child
        } else {
            entered
        };
        let argv: Vec<&str> = a.argv.iter().map(String::as_str).collect();
        let exec = m.exec(opener, &argv, &a.argv[0]).expect("exec");
        attack_exec.push(alerted(&exec));
        attack_open.push(alerted(&m.open(opener, SECRET, Mode::Read).expect("open")));
    }
    Judged {
        app_open,
        worker_open,
        attack_open,
        attack_exec,
    }
}

/// Runs one attack for real: `nsenter -t APP -p -m -S UID -G UID`, in a session of its own
/// (no controlling terminal unless `script` makes one).
fn run_attack(app_pid: u32, a: &Attack) {
    let uid = a.uid.to_string();
    let joined = a.argv.join(" ");
    let mut cmd = Command::new("nsenter");
    cmd.args([
        "-t",
        &app_pid.to_string(),
        "-p",
        "-m",
        "-S",
        &uid,
        "-G",
        &uid,
    ]);
    if a.tty {
        cmd.args(["script", "-qec", &joined, "/dev/null"]);
    } else if a.shell {
        cmd.args(["/bin/sh", "-c", &joined]);
    } else {
        cmd.args(&a.argv);
    }
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let out = cmd
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::null())
        .output()
        .expect("nsenter runs");
    assert!(out.status.success(), "{joined}: {out:?}");
}

fn worker_pid(app_pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{app_pid}/task/{app_pid}/children"))
        .expect("the app's children")
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the app forked its worker")
}

struct Seen {
    rule: String,
    uid: u64,
    pid: u64,
}

fn parse(alerts: &[String]) -> Vec<Seen> {
    alerts
        .iter()
        .map(|a| {
            let v: Value = serde_json::from_str(a).expect("JSON alert");
            let f = &v["output_fields"];
            Seen {
                rule: v["rule"].as_str().unwrap_or("").to_string(),
                uid: f["user.uid"].as_u64().unwrap_or(u64::MAX),
                pid: f["proc.pid"].as_u64().unwrap_or(u64::MAX),
            }
        })
        .collect()
}

/// The activity under `guard-run`: the app and its worker keep reading, each attack runs.
fn observe(
    scenario: &Scenario,
    object: &Path,
    backend: Backend,
    attacks: &[Attack],
    expected: &Judged,
) -> Judged {
    let agent = Agent::start(object, &["--json", "--backend", backend.as_str()], false)
        .expect("guard-run loads the policy");
    // Reads made under the policy, by the app and by its worker.
    let (_, worker_before) = scenario.worker_reads().expect("worker status");
    scenario
        .wait_for_reads(3, Duration::from_secs(10))
        .expect("the app reads");
    let deadline = Instant::now() + Duration::from_secs(10);
    while scenario.worker_reads().expect("worker status").0 < worker_before + 3 {
        assert!(Instant::now() < deadline, "the worker stopped reading");
        std::thread::sleep(Duration::from_millis(50));
    }
    for a in attacks {
        run_attack(scenario.app_pid, a);
    }
    // Every alert the simulator predicts, then a grace period for any it did not.
    let predicted = usize::from(expected.app_open)
        + usize::from(expected.worker_open)
        + expected.attack_open.iter().filter(|&&b| b).count()
        + expected.attack_exec.iter().filter(|&&b| b).count();
    let _ = agent.wait_alerts(predicted, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    let (status, alerts, stderr) = agent.stop().expect("guard-run stops");
    assert!(status.success(), "{stderr:?}");
    let seen = parse(&alerts);
    let worker = u64::from(worker_pid(scenario.app_pid));
    let any = |rule: &str, f: &dyn Fn(&Seen) -> bool| seen.iter().any(|s| s.rule == rule && f(s));
    let app = u64::from(scenario.app_pid);
    Judged {
        app_open: any("open", &|s| s.pid == app),
        worker_open: any("open", &|s| s.pid == worker),
        attack_open: attacks
            .iter()
            .map(|a| any("open", &|s| s.uid == u64::from(a.uid)))
            .collect(),
        attack_exec: attacks
            .iter()
            .map(|a| any("exec", &|s| s.uid == u64::from(a.uid)))
            .collect(),
    }
}

#[test]
fn the_simulator_judges_as_the_kernel_does_on_the_tracepoint_backend() {
    differential(Backend::Tracepoint);
}

/// As `lsm.rs`: this machine's kernel lists BPF LSM but refuses LSM programs, so this runs
/// where the kernel accepts them (the VM ring passes `--include-ignored`).
#[test]
#[ignore = "needs a kernel that accepts BPF LSM programs (the VM ring)"]
fn the_simulator_judges_as_the_kernel_does_on_the_lsm_backend() {
    differential(Backend::Lsm);
}

fn differential(backend: Backend) {
    if !guard_tests::require_kernel_tests("simulator differential") {
        return;
    }
    assert!(
        guard_tests::which("script").is_some(),
        "`script` (util-linux) is needed for the terminal case"
    );
    let _kernel = guard_tests::kernel_lock();
    let (cat, python, nsenter) = (canonical("cat"), canonical("python3"), canonical("nsenter"));
    let attacks = attacks(&cat, &python);
    let scenario = Scenario::start("simdiff").expect("the app starts");
    let dir = scenario.dir.join("policies");
    std::fs::create_dir_all(&dir).expect("dir");
    let subjects = subjects(&atoms(&cat, &python, &nsenter));
    let mut differ = Vec::new();
    let mut refused = 0;
    for (i, subject) in subjects.iter().enumerate() {
        let source = dir.join(format!("p{i}.grd"));
        std::fs::write(&source, policy(subject, &cat, &python)).expect("write");
        let object = dir.join(format!("p{i}.o"));
        agent::compile(&source, &object).expect("the generated policy compiles");
        let bytes = std::fs::read(&object).expect("the object");
        let simulated = simulate(&bytes, backend, &python, &attacks);
        let real = observe(&scenario, &object, backend, &attacks, &simulated);
        refused += simulated.attack_open.iter().filter(|&&b| b).count();
        if std::env::var_os("GUARD_VERBOSE").is_some() {
            eprintln!("`{subject}`:\n  simulator {simulated:?}\n  kernel    {real:?}");
        }
        if simulated != real {
            differ.push(format!(
                "subject `{subject}`:\n  simulator {simulated:?}\n  kernel    {real:?}"
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} backend:\n{}",
        backend.as_str(),
        differ.join("\n")
    );
    // The generated policies exercise both sides.
    assert!(
        refused > 0 && refused < subjects.len() * attacks.len(),
        "{refused}"
    );
    assert!(scenario.app_alive());
}

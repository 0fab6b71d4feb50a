//! The compiled objects of the shipped policies, run in the user-space simulator
//! (`guard_ebpf::sim::Machine`): the same scenarios the kernel tests play on this machine
//! (`tests/tests/secrets_scenario.rs`, `tests/tests/five_rules.rs`), with the same outcomes.
//! Every identity comes from the object's tracking programs run on the process tree.

use std::path::PathBuf;

use guard_compiler::{codegen, frontend};
use guard_ebpf::abi::{self, Action, EVENT_EXEC, EVENT_OPEN, IdentityStore, Metadata, task_flags};
use guard_ebpf::sim::{Machine, Mode, Outcome};

fn object(policy: &str) -> (Vec<u8>, Metadata) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../policies")
        .join(policy);
    let source = std::fs::read_to_string(&path).expect("policy readable");
    let checked = frontend::check_source(policy, &source).expect("policy checks");
    let compiled = codegen::compile(&checked, policy).expect("policy compiles");
    (compiled.object, compiled.metadata)
}

const SECRET: &str = "/mnt/secrets/db-password";
const NOBODY: u32 = 65534;

/// The scenario's app as the kernel test starts it: `unshare --pid --fork sh -c '... exec
/// python app.py'` from a host shell, so `python app.py` is pid 1 of a new pid namespace.
fn start_app(m: &mut Machine) -> u32 {
    let unshare = m.fork(1).expect("fork");
    m.exec(
        unshare,
        &[
            "unshare",
            "--pid",
            "--mount",
            "--fork",
            "sh",
            "-c",
            "exec python app.py",
        ],
        "/usr/bin/unshare",
    )
    .expect("exec unshare");
    let app = m
        .fork_new_namespace(unshare)
        .expect("pid 1 of a new namespace");
    m.exec(app, &["sh", "-c", "exec python app.py"], "/usr/bin/dash")
        .expect("exec sh");
    // `bin/python` is a symbolic link: the kernel runs (and walks) the file it points to.
    let out = m
        .exec(app, &["python", "app.py"], "/usr/bin/python3.11")
        .expect("exec python");
    assert!(out.events.is_empty(), "{out:?}");
    app
}

fn name(e: &abi::Event) -> String {
    String::from_utf8_lossy(e.comm_bytes()).into_owned()
}

fn path(e: &abi::Event) -> String {
    String::from_utf8_lossy(e.path_bytes()).into_owned()
}

fn cmdline(e: &abi::Event) -> String {
    let raw = e.cmdline_bytes();
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    String::from_utf8_lossy(raw).replace('\0', " ")
}

fn allowed_quietly(out: &Outcome) {
    assert_eq!(out.verdict, Action::Allow, "{out:?}");
    assert!(out.events.is_empty() && out.signals.is_empty(), "{out:?}");
}

/// The kernel test's attacks: entered into the app's namespaces as `nobody`, each one run
/// whole (`sh -c` forks the `cat` it runs), the secret opened by the process named.
fn attack(m: &mut Machine, app: u32, argv: &[&str]) -> (u32, Outcome) {
    let attacker = m.enter(app, NOBODY, None).expect("nsenter");
    let exe = format!("/usr/bin/{}", argv[0]);
    let out = m.exec(attacker, argv, &exe).expect("exec");
    assert!(out.events.is_empty(), "{out:?}");
    let opener = if argv[0] == "sh" {
        let child = m.fork(attacker).expect("fork");
        m.exec(child, &["cat", SECRET], "/usr/bin/cat")
            .expect("exec cat");
        child
    } else {
        attacker
    };
    (opener, m.open(opener, SECRET, Mode::Read).expect("open"))
}

fn attacks() -> Vec<Vec<&'static str>> {
    vec![
        vec!["cat", SECRET],
        vec!["head", SECRET],
        vec!["dd", "if=/mnt/secrets/db-password"],
        vec!["awk", "{print}", SECRET],
        vec!["sed", "", SECRET],
        vec!["sh", "-c", "cat /mnt/secrets/db-password"],
        vec![
            "python3",
            "-c",
            "print(open('/mnt/secrets/db-password').read())",
        ],
    ]
}

#[test]
fn secrets_policy_kills_each_attack_and_lets_the_app_and_its_worker_read() {
    secrets_scenario(IdentityStore::Task);
}

/// The programs of the hash store (guard-run's fallback where the kernel has no task storage)
/// judge as those of task storage do.
#[test]
fn the_hash_store_programs_judge_the_secrets_scenario_the_same() {
    secrets_scenario(IdentityStore::Hash);
}

fn secrets_scenario(store: IdentityStore) {
    let (obj, meta) = object("secrets.grd");
    let mut m = Machine::boot_with_store(
        &obj,
        abi::Backend::Tracepoint,
        store,
        &["/sbin/init"],
        "/sbin/init",
    )
    .expect("boots");
    let app = start_app(&mut m);
    // The identity the tracking programs gave the app: pid 1 of its namespace.
    let info = m
        .task_info(app)
        .expect("the exec program wrote the app's entry");
    assert_ne!(info.flags & task_flags::NS_INIT, 0);
    assert_eq!(info.flags & task_flags::ENTERED, 0);
    assert_ne!(info.pid1_ids, 0);

    allowed_quietly(&m.open(app, SECRET, Mode::Read).expect("open"));
    let worker = m.fork(app).expect("fork");
    allowed_quietly(&m.open(worker, SECRET, Mode::Read).expect("open"));
    // Unrelated files are not judged at all.
    allowed_quietly(&m.open(app, "/etc/hosts", Mode::Read).expect("open"));

    let expected = ["cat", "head", "dd", "awk", "sed", "cat", "python3"];
    for (argv, want) in attacks().iter().zip(expected) {
        let (pid, out) = attack(&mut m, app, argv);
        assert_eq!(out.verdict, Action::Kill, "{argv:?}: {out:?}");
        assert_eq!(out.signals, vec![(pid, 9)], "{argv:?}");
        let [e] = out.events.as_slice() else {
            panic!("{argv:?}: one event expected: {out:?}");
        };
        assert_eq!(e.kind, EVENT_OPEN);
        assert_eq!(meta.rules[e.rule as usize].name, "guard /mnt/secrets/*");
        assert_eq!(name(e), want);
        assert_eq!(path(e), SECRET);
        assert_eq!(e.uid, NOBODY);
        assert_eq!(e.pid, pid);
        assert!(cmdline(e).starts_with(want), "{}", cmdline(e));
        let info = m.task_info(pid);
        assert!(info.is_none(), "a killed process is forgotten: {info:?}");
    }
    // The app is still there, still allowed.
    allowed_quietly(&m.open(app, SECRET, Mode::Read).expect("open"));
}

#[test]
fn a_process_entered_from_outside_is_marked_by_the_fork_program() {
    let (obj, _) = object("secrets.grd");
    let mut m = Machine::boot(&obj).expect("boots");
    let app = start_app(&mut m);
    let entered = m.enter(app, NOBODY, None).expect("nsenter");
    let info = m
        .task_info(entered)
        .expect("the fork program wrote its entry");
    assert_ne!(info.flags & task_flags::ENTERED, 0, "{info:?}");
    assert_eq!(info.flags & task_flags::NS_INIT, 0);
    // Its command line is nsenter's, a host process: no identity of the app's namespace.
    assert_eq!(info.pid1_ids, 0);
    // A process started by the app's own image with exec is not the app itself, but the
    // seed policy allows the app's whole tree (`ancestor(pid1, ...)`).
    let child = m.fork(app).expect("fork");
    m.exec(child, &["sh", "-c", "cat x"], "/usr/bin/dash")
        .expect("exec");
    allowed_quietly(&m.open(child, SECRET, Mode::Read).expect("open"));
    // The same command line elsewhere (pid 1 of nothing: a host process) holds nothing.
    let fake = m.fork(1).expect("fork");
    m.exec(fake, &["python", "app.py"], "/usr/bin/python3.11")
        .expect("exec");
    let out = m.open(fake, SECRET, Mode::Read).expect("open");
    assert_eq!(out.verdict, Action::Kill, "{out:?}");
}

/// `five_rules.rs`: each of the article's rules fires on its attack and not on the app.
#[test]
fn five_rule_policy_fires_each_rule_on_its_attack_and_not_on_the_app() {
    let (obj, meta) = object("mirecloud.grd");
    let rule = |e: &abi::Event| meta.rules[e.rule as usize].name.clone();
    let mut m = Machine::boot(&obj).expect("boots");
    let app = start_app(&mut m);
    allowed_quietly(&m.open(app, SECRET, Mode::Read).expect("open"));
    let worker = m.fork(app).expect("fork");
    allowed_quietly(&m.open(worker, SECRET, Mode::Read).expect("open"));

    // 1. Secret read: killed.
    let (_, out) = attack(&mut m, app, &["cat", SECRET]);
    assert_eq!(out.verdict, Action::Kill, "{out:?}");
    assert_eq!(rule(&out.events[0]), "MireCloud - Vault Secret Direct Read");

    // 2. A shell with a terminal: an alert, nothing stopped.
    let shell = m.enter(app, NOBODY, Some(0)).expect("nsenter");
    let out = m
        .exec(shell, &["sh", "-c", "true"], "/usr/bin/dash")
        .expect("exec");
    assert_eq!(out.verdict, Action::Alert, "{out:?}");
    assert!(out.signals.is_empty());
    assert_eq!(
        rule(&out.events[0]),
        "MireCloud - Interactive Shell Spawned"
    );
    assert_eq!(out.events[0].kind, EVENT_EXEC);
    assert_eq!(meta.rules[out.events[0].rule as usize].priority, "Warning");
    // The same shell without a terminal is not reported.
    let quiet = m.enter(app, NOBODY, None).expect("nsenter");
    allowed_quietly(
        &m.exec(quiet, &["sh", "-c", "true"], "/usr/bin/dash")
            .expect("exec"),
    );

    // 3. Network tools and an interpreter from outside the app: alerts naming the program.
    for (argv, exe) in [
        (vec!["curl"], "/tmp/fakebin/curl"),
        (vec!["wget"], "/tmp/fakebin/wget"),
        (vec!["nc"], "/tmp/fakebin/nc"),
        (vec!["python3", "-c", "pass"], "/usr/bin/python3.11"),
    ] {
        let p = m.enter(app, NOBODY, None).expect("nsenter");
        let out = m.exec(p, &argv, exe).expect("exec");
        assert_eq!(out.verdict, Action::Alert, "{argv:?}: {out:?}");
        let [e] = out.events.as_slice() else {
            panic!("{argv:?}: {out:?}");
        };
        assert_eq!(rule(e), "MireCloud - Secret Exfiltration Attempt");
        assert_eq!(name(e), argv[0]);
        assert_eq!(path(e), exe, "the exec event carries the program's path");
    }
    // ... and killed when the app's own tree starts one (a command injection).
    let injected = m.fork(app).expect("fork");
    m.exec(injected, &["sh", "-c", "curl x"], "/usr/bin/dash")
        .expect("exec");
    let curl = m.fork(injected).expect("fork");
    let out = m.exec(curl, &["curl", "x"], "/usr/bin/curl").expect("exec");
    assert_eq!(out.verdict, Action::Kill, "{out:?}");
    assert_eq!(
        rule(&out.events[0]),
        "MireCloud - Secret Exfiltration Attempt by the Application"
    );
    assert_eq!(out.signals, vec![(curl, 9)]);

    // 4. Process memory: dd opening /proc/PID/mem, killed; the node's own debugger is not.
    let dd = m.enter(app, NOBODY, None).expect("nsenter");
    m.exec(dd, &["dd", "if=/proc/self/mem"], "/usr/bin/dd")
        .expect("exec");
    let out = m
        .open(dd, &format!("/proc/{dd}/mem"), Mode::Read)
        .expect("open");
    assert_eq!(out.verdict, Action::Kill, "{out:?}");
    assert_eq!(rule(&out.events[0]), "MireCloud - Process Memory Read");
    let gdb = m.fork(1).expect("fork");
    m.exec(gdb, &["gdb", "-p", "1"], "/usr/bin/gdb")
        .expect("exec");
    allowed_quietly(&m.open(gdb, "/proc/1/mem", Mode::ReadWrite).expect("open"));

    // 5. Tamper: a write open under the secrets mount, as root in the container.
    let root = m.enter(app, 0, None).expect("nsenter");
    m.exec(root, &["sh", "-c", "echo x >> f"], "/usr/bin/dash")
        .expect("exec");
    let out = m.open(root, SECRET, Mode::Write).expect("open");
    assert_eq!(out.verdict, Action::Kill, "{out:?}");
    assert_eq!(out.events.len(), 1, "{out:?}");
    assert_eq!(rule(&out.events[0]), "MireCloud - Vault Secret Tampered");
    // Even the app's own worker may not write there.
    let writer = m.fork(app).expect("fork");
    let out = m.open(writer, SECRET, Mode::Write).expect("open");
    assert_eq!(out.verdict, Action::Kill, "{out:?}");

    // The app never raised anything above, and is alive.
    allowed_quietly(&m.open(app, SECRET, Mode::Read).expect("open"));
}

#[test]
fn a_killed_process_runs_nothing_more() {
    let (obj, _) = object("secrets.grd");
    let mut m = Machine::boot(&obj).expect("boots");
    let app = start_app(&mut m);
    let (pid, out) = attack(&mut m, app, &["cat", SECRET]);
    assert!(out.killed());
    let e = m.open(pid, SECRET, Mode::Read).unwrap_err();
    assert!(e.to_string().contains("was killed"), "{e}");
    assert!(m.fork(pid).is_err());
    // Processes that never were are errors too, not panics.
    for e in [
        m.fork(999).unwrap_err(),
        m.fork_new_namespace(999).unwrap_err(),
        m.enter(999, 0, None).unwrap_err(),
        m.exec(999, &["x"], "/x").unwrap_err(),
        m.open(999, "/x", Mode::Read).unwrap_err(),
        m.open(app, "relative", Mode::Read).unwrap_err(),
    ] {
        assert!(matches!(e, guard_ebpf::sim::SimError::World(_)), "{e}");
    }
}

/// The LSM backend's programs: the open check fails the open before a descriptor exists, the
/// exec check decides before the exec (the `execve` tracepoint computed the identity from the
/// caller's argv), and the exec program after it does not judge the same exec twice.
#[test]
fn lsm_backend_refuses_before_the_operation_and_judges_each_exec_once() {
    use guard_ebpf::sim::machine::Backend;
    let (obj, meta) = object("mirecloud.grd");
    let rule = |e: &abi::Event| meta.rules[e.rule as usize].name.clone();
    let boot = || {
        Machine::boot_with_init(&obj, Backend::Lsm, &["/sbin/init"], "/sbin/init").expect("boots")
    };
    let mut m = boot();
    let app = start_app(&mut m);
    allowed_quietly(&m.open(app, SECRET, Mode::Read).expect("open"));
    let (pid, out) = attack(&mut m, app, &["cat", SECRET]);
    assert!(out.denied && out.killed(), "{out:?}");
    assert_eq!(out.signals, vec![(pid, 9)]);
    assert_eq!(
        m.sim.world.files.iter().filter(|f| f.0 == pid).count(),
        0,
        "a refused open installs no descriptor"
    );

    // An alert-only exec rule: one alert, from the exec check; the exec goes on.
    let shell = m.enter(app, NOBODY, Some(0)).expect("nsenter");
    let out = m
        .exec(shell, &["sh", "-c", "true"], "/usr/bin/dash")
        .expect("exec");
    assert_eq!(out.events.len(), 1, "judged once: {out:?}");
    assert_eq!(
        rule(&out.events[0]),
        "MireCloud - Interactive Shell Spawned"
    );
    assert!(!out.denied && !out.killed());
    assert_eq!(m.process(shell).expect("alive").comm, "sh");

    // A kill: the exec fails and the process dies before running the program.
    let injected = m.fork(app).expect("fork");
    m.exec(injected, &["sh", "-c", "curl x"], "/usr/bin/dash")
        .expect("exec");
    let curl = m.fork(injected).expect("fork");
    let out = m.exec(curl, &["curl", "x"], "/usr/bin/curl").expect("exec");
    assert!(out.denied && out.killed(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(out.events[0].comm_bytes()), "curl");
    assert_eq!(m.process(curl).expect("still listed").comm, "sh");

    // A deny rule: the open fails, the process lives on.
    let (obj, _) = {
        let source = "guard /mnt/secrets/** allow ancestor(pid1, \"python app.py\") else deny\n";
        let checked = frontend::check_source("deny.grd", source).expect("checks");
        let c = codegen::compile(&checked, "deny.grd").expect("compiles");
        (c.object, c.metadata)
    };
    let mut m =
        Machine::boot_with_init(&obj, Backend::Lsm, &["/sbin/init"], "/sbin/init").expect("boots");
    let app = start_app(&mut m);
    let (pid, out) = attack(&mut m, app, &["cat", SECRET]);
    assert_eq!(out.verdict, Action::Deny, "{out:?}");
    assert!(out.denied && !out.killed(), "{out:?}");
    allowed_quietly(&m.open(app, SECRET, Mode::Read).expect("open"));
    // Not killed: it can go on opening other things.
    allowed_quietly(&m.open(pid, "/etc/hosts", Mode::Read).expect("open"));
}

/// Recording (`guard-run load --record` sets the rule-off map's `record`): an allowed open a
/// rule covers is reported as an allow event carrying the operation, the terminal, whether the
/// process was entered and its namespace's depth; an open no rule covers is not. Both backends.
#[test]
fn recording_reports_allowed_covered_operations_with_their_context() {
    use guard_ebpf::abi::event_flags as f;
    use guard_ebpf::sim::machine::Backend;
    let (obj, _) = object("secrets.grd");
    for backend in [Backend::Tracepoint, Backend::Lsm] {
        let mut m =
            Machine::boot_with_init(&obj, backend, &["/sbin/init"], "/sbin/init").expect("boots");
        let mut off = vec![0u8; std::mem::size_of::<abi::RuleOff>()];
        off[4..8].copy_from_slice(&1u32.to_le_bytes());
        m.sim
            .map_put(abi::MAP_RULE_OFF, &0u32.to_le_bytes(), &off)
            .expect("rule-off map");
        let app = start_app(&mut m);
        let out = m.open(app, SECRET, Mode::ReadWrite).expect("open");
        assert_eq!(out.verdict, Action::Allow, "{backend:?}: {out:?}");
        assert!(
            out.signals.is_empty() && !out.denied,
            "{backend:?}: {out:?}"
        );
        let [e] = out.events.as_slice() else {
            panic!("{backend:?}: one allow event expected: {out:?}");
        };
        assert_eq!(e.action, Action::Allow as u32);
        assert_eq!(path(e), SECRET);
        let ops = (e.flags & f::OPS_MASK) >> f::OPS_SHIFT;
        assert_eq!(ops, abi::OP_READ | abi::OP_WRITE, "{backend:?}");
        assert_eq!((e.flags & f::NS_LEVEL_MASK) >> f::NS_LEVEL_SHIFT, 1);
        assert_eq!(e.flags & (f::ENTERED | f::TTY), 0, "{backend:?}");
        allowed_quietly(&m.open(app, "/etc/hosts", Mode::Read).expect("open"));

        // The attacker's refusal carries the same context: entered, with a terminal.
        let shell = m.enter(app, NOBODY, Some(0)).expect("nsenter");
        m.exec(shell, &["cat", SECRET], "/usr/bin/cat")
            .expect("exec");
        let out = m.open(shell, SECRET, Mode::Read).expect("open");
        let [e] = out.events.as_slice() else {
            panic!("{backend:?}: one kill event expected: {out:?}");
        };
        assert_eq!(e.action, Action::Kill as u32);
        assert_eq!(e.flags & (f::ENTERED | f::TTY), f::ENTERED | f::TTY);
        assert_eq!((e.flags & f::OPS_MASK) >> f::OPS_SHIFT, abi::OP_READ);
    }
}

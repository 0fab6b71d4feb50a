//! Running one case: a fresh simulated node with the compiled object loaded, the case's
//! processes created as the kernel would create them (each step runs the object's tracking
//! programs), then the operation, judged by the object's own programs.

use std::fmt::Write;

use guard_ebpf::abi::{self, Action, Event, Metadata, TaskInfo, task_flags};
use guard_ebpf::sim::machine::Backend;
use guard_ebpf::sim::{Machine, Mode, Outcome, SimError};

use super::fields;
use super::file::{Case, CaseFile, OpenMode, Operation, Origin, Verdict};
use super::scopes::{self, Placement};

/// What a case showed: `Ok` when it behaved as expected, else why not (indented lines).
pub type CaseResult = Result<(), String>;

/// The case verdict of a kernel action.
pub fn verdict(a: Action) -> Verdict {
    match a {
        Action::Allow => Verdict::Allow,
        Action::Alert => Verdict::Alert,
        Action::Deny => Verdict::Deny,
        Action::Kill => Verdict::Kill,
    }
}

fn mode(m: OpenMode) -> Mode {
    match m {
        OpenMode::Read => Mode::Read,
        OpenMode::Write => Mode::Write,
        OpenMode::ReadWrite => Mode::ReadWrite,
    }
}

/// The terminal a case's `tty = true` gives: `pts/0` (only its presence is judged).
fn tty_index(tty: Option<bool>) -> Option<i32> {
    tty.and_then(|t| t.then_some(0))
}

/// The policy being tested: its object, metadata and file name (for source locations).
pub struct Policy<'a> {
    pub object: &'a [u8],
    pub meta: &'a Metadata,
    pub file: &'a str,
}

/// The object ready to run: each `user("name")` of the policy resolved from the case file's
/// users (`[users]`, root, nobody), as `guard-run` resolves them from the node's user database
/// before loading (an entry left unresolved would hold for no one).
pub fn prepare(object: &[u8], meta: &Metadata, cases: &CaseFile) -> Result<Vec<u8>, String> {
    let mut bytes = object.to_vec();
    if meta.users.is_empty() {
        return Ok(bytes);
    }
    let range = guard_ebpf::elf::section_file_range(&bytes, abi::RODATA_UIDS)
        .map_err(|e| format!("the object's uid table is unusable: {e}"))?;
    for u in &meta.users {
        let uid = cases.uid_of(&u.name).ok_or_else(|| {
            format!(
                "the policy names user `{}`, which the case file does not know: add it to its \
                 `[users]` table",
                u.name
            )
        })?;
        // The table is a u32 count followed by the entries.
        let at = range.start + 4 + 4 * u.slot as usize;
        let Some(entry) = bytes.get_mut(at..at + 4) else {
            return Err(format!(
                "the object's uid table has no entry {} for user `{}`",
                u.slot, u.name
            ));
        };
        entry.copy_from_slice(&uid.to_le_bytes());
    }
    Ok(bytes)
}

fn sim_err(what: String) -> impl Fn(SimError) -> String {
    move |e: SimError| format!("    {what}: {e}")
}

/// A booted node with the case's process tree created; `pids[i]` is process `i`'s pid.
pub struct Staged {
    pub machine: Machine,
    pub pids: Vec<u32>,
}

/// Boots a node and creates the case's processes, each fork and exec run through the object's
/// programs. A process killed (or an exec denied) on the way is an error naming the rule.
pub fn stage(
    policy: &Policy,
    cases: &CaseFile,
    case: &Case,
    backend: Backend,
) -> Result<Staged, String> {
    let init: Vec<&str> = cases.init.iter().map(String::as_str).collect();
    let mut m = Machine::boot_with_init(policy.object, backend, &init, &cases.init_exe)
        .map_err(sim_err("booting the simulated node".into()))?;
    let mut pids: Vec<u32> = Vec::new();
    let mut placed = Placed::default();
    let mut placements: Vec<Placement> = Vec::new();
    for p in &case.processes {
        let what = format!("creating process `{}` (line {})", p.name, p.line);
        let e = sim_err(what.clone());
        let placement = p.placement.clone().unwrap_or_else(|| match p.origin {
            Origin::Host | Origin::Pid1(None) => Placement {
                cgroup: "/".into(),
                container: None,
            },
            Origin::Exec(i) | Origin::Fork(i) | Origin::Entered(i) | Origin::Pid1(Some(i)) => {
                placements[i].clone()
            }
        });
        let pid = match p.origin {
            Origin::Host => m.fork(1),
            Origin::Exec(i) | Origin::Fork(i) => m.fork(pids[i]),
            Origin::Entered(i) => m.enter(pids[i], p.uid.unwrap_or(0), tty_index(p.tty)),
            Origin::Pid1(parent) => m.fork_new_namespace(parent.map_or(1, |i| pids[i])),
        }
        .map_err(&e)?;
        let cgroup = placed.id(&mut m, policy.meta, &placement).map_err(&e)?;
        m.set_cgroup(pid, cgroup).map_err(&e)?;
        placements.push(placement);
        if let Some(uid) = p.uid {
            m.set_uid(pid, uid).map_err(&e)?;
        }
        if p.tty.is_some() {
            m.set_tty(pid, tty_index(p.tty)).map_err(&e)?;
        }
        if !matches!(p.origin, Origin::Fork(_)) {
            let argv: Vec<&str> = p.argv.iter().map(String::as_str).collect();
            let out = exec(&mut m, pid, &argv, &p.exe, p.script.as_deref()).map_err(&e)?;
            if out.killed() || out.denied {
                return Err(format!(
                    "    {what}: its exec was {} ({} backend)\n{}",
                    if out.killed() { "killed" } else { "denied" },
                    backend.as_str(),
                    describe(policy, cases, &out)
                ));
            }
        }
        pids.push(pid);
    }
    Ok(Staged { machine: m, pids })
}

/// The cgroups of a staged node: one id per distinct placement, with its scope bits in the
/// kernel's cgroup map, written as `guard-run` writes them.
#[derive(Default)]
struct Placed {
    ids: Vec<(Placement, u64)>,
}

impl Placed {
    /// The cgroup id of `p`: 1 for the root cgroup (the id every mocked task starts with), the
    /// next free one from 2 for any other.
    fn id(&mut self, m: &mut Machine, meta: &Metadata, p: &Placement) -> Result<u64, SimError> {
        if let Some((_, id)) = self.ids.iter().find(|(q, _)| q == p) {
            return Ok(*id);
        }
        let root = p.cgroup == "/" && p.container.is_none();
        let id = if root { 1 } else { self.ids.len() as u64 + 2 };
        self.ids.push((p.clone(), id));
        let bits = scopes::bits(&meta.scopes, p);
        if bits != 0 {
            m.sim
                .map_put(abi::MAP_CGROUPS, &id.to_le_bytes(), &bits.to_le_bytes())?;
        }
        Ok(id)
    }
}

/// An exec of a binary, or of a `#!` script whose first line is `script`.
fn exec(
    m: &mut Machine,
    pid: u32,
    argv: &[&str],
    exe: &str,
    script: Option<&str>,
) -> Result<Outcome, SimError> {
    match script {
        Some(line) => m.exec_script(pid, argv, exe, line),
        None => m.exec(pid, argv, exe),
    }
}

/// The process that performs the case's operation (an index into its processes).
pub fn actor(case: &Case) -> usize {
    match &case.operation {
        Operation::Open { process, .. }
        | Operation::Exec { process, .. }
        | Operation::Memory { process, .. } => *process,
    }
}

/// Performs the case's operation on a staged node.
pub fn perform(staged: &mut Staged, case: &Case) -> Result<Outcome, String> {
    let (m, pids) = (&mut staged.machine, &staged.pids);
    let pid = pids[actor(case)];
    match &case.operation {
        Operation::Open { path, mode: md, .. } => m.open(pid, path, mode(*md)),
        Operation::Exec {
            argv, exe, script, ..
        } => {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            exec(m, pid, &argv, exe, script.as_deref())
        }
        Operation::Memory {
            target, mode: md, ..
        } => {
            let target = pids[*target];
            let seen = m.pid_seen_by(pid, target).unwrap_or(target);
            m.open(pid, &format!("/proc/{seen}/mem"), mode(*md))
        }
    }
    .map_err(sim_err("the operation".into()))
}

/// Runs `case` of `cases` against `policy` on each backend; a failure says on which.
pub fn run_case(policy: &Policy, cases: &CaseFile, case: &Case) -> CaseResult {
    let mut failed = Vec::new();
    let backends = match case.backend {
        Some(b) => vec![b],
        None => vec![Backend::Tracepoint, Backend::Lsm],
    };
    for backend in backends {
        if let Err(why) = run_on(policy, cases, case, backend) {
            failed.push((backend, why));
        }
    }
    match failed.as_slice() {
        [] => Ok(()),
        [(_, a), (_, b)] if a == b => Err(a.clone()),
        _ => Err(failed
            .iter()
            .map(|(b, why)| format!("    on the {} backend:\n{why}", b.as_str()))
            .collect::<Vec<_>>()
            .join("\n")),
    }
}

/// Runs `case` on one backend.
fn run_on(policy: &Policy, cases: &CaseFile, case: &Case, backend: Backend) -> CaseResult {
    let mut staged = stage(policy, cases, case, backend)?;
    let actor = actor(case);
    // Before the operation: a process killed by it is forgotten by the exit program.
    let held = staged.machine.task_info(staged.pids[actor]);
    let out = perform(&mut staged, case)?;
    check(policy, cases, case, &out, backend).map_err(|mut msg| {
        let name = &case.processes[actor].name;
        match held {
            Some(info) => {
                let _ = write!(
                    msg,
                    "\n    process `{name}` held before the operation: {}",
                    identity(policy.meta, Some(&info))
                );
            }
            None => {
                let _ = write!(
                    msg,
                    "\n    process `{name}` had no identity entry (unknown to guard)"
                );
            }
        }
        msg
    })
}

/// Compares the outcome with the case's expectation.
fn check(
    policy: &Policy,
    cases: &CaseFile,
    case: &Case,
    out: &Outcome,
    backend: Backend,
) -> CaseResult {
    let got = verdict(out.verdict);
    let mut problems = Vec::new();
    if got != case.expect {
        problems.push(format!(
            "    expected: {}\n    actual:   {}",
            case.expect.as_str(),
            got.as_str()
        ));
    }
    // Carried out as the backend carries it out: the tracepoint backend kills (a deny too,
    // as `guard-run --deny-as-kill` does); the LSM backend fails the operation, and a kill
    // also signals.
    let (want_kill, want_denied) = match (backend, got) {
        (_, Verdict::Allow | Verdict::Alert) => (false, false),
        (Backend::Tracepoint, _) => (true, false),
        (Backend::Lsm, Verdict::Deny) => (false, true),
        (Backend::Lsm, Verdict::Kill) => (true, true),
    };
    if out.killed() != want_kill || out.denied != want_denied {
        problems.push(format!(
            "    a {} verdict was carried out {}",
            got.as_str(),
            match (out.killed(), out.denied) {
                (true, true) => "by failing the operation and killing the process",
                (true, false) => "by killing the process",
                (false, true) => "by failing the operation",
                (false, false) => "by doing nothing",
            }
        ));
    }
    if let Some(alerts) = &case.alerts {
        if alerts.len() != out.events.len() {
            problems.push(format!(
                "    expected {} alert(s), got {}",
                alerts.len(),
                out.events.len()
            ));
        }
        for (i, (want, e)) in alerts.iter().zip(&out.events).enumerate() {
            let Some(rule) = policy.meta.rules.get(e.rule as usize) else {
                problems.push(format!("    alert {}: unknown rule id {}", i + 1, e.rule));
                continue;
            };
            if rule.name != want.rule {
                problems.push(format!(
                    "    alert {}: expected rule \"{}\", got \"{}\"",
                    i + 1,
                    want.rule,
                    rule.name
                ));
            }
            if let Some(p) = &want.priority
                && !p.eq_ignore_ascii_case(&rule.priority)
            {
                problems.push(format!(
                    "    alert {}: expected priority {p}, got {}",
                    i + 1,
                    rule.priority
                ));
            }
            let f = fields::fields(e, rule, cases.user_name(e.uid));
            for (k, v) in &want.fields {
                match f.get(k) {
                    Some(got) if got == v => {}
                    Some(got) => problems.push(format!(
                        "    alert {}: expected {k}={v:?}, got {k}={got:?}",
                        i + 1
                    )),
                    None => problems.push(format!(
                        "    alert {}: no field `{k}` in this event (it has: {})",
                        i + 1,
                        f.keys().cloned().collect::<Vec<_>>().join(", ")
                    )),
                }
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}\n{}",
        problems.join("\n"),
        describe(policy, cases, out)
    ))
}

/// Which rules decided and why, from the events: rule, source location, action and the
/// fields that say who did what.
pub fn describe(policy: &Policy, cases: &CaseFile, out: &Outcome) -> String {
    if out.events.is_empty() {
        return "    no rule refused it (no event)".into();
    }
    out.events
        .iter()
        .map(|e| describe_event(policy, cases, e))
        .collect::<Vec<_>>()
        .join("\n")
}

fn describe_event(policy: &Policy, cases: &CaseFile, e: &Event) -> String {
    let Some(rule) = policy.meta.rules.get(e.rule as usize) else {
        return format!("    an event names rule id {}, not in the policy", e.rule);
    };
    let f = fields::fields(e, rule, cases.user_name(e.uid));
    let shown: Vec<String> = [
        "proc.name",
        "proc.cmdline",
        "proc.pname",
        "user.name",
        "user.uid",
        "fd.name",
        "proc.exepath",
    ]
    .iter()
    .filter_map(|k| f.get(*k).map(|v| format!("{k}={v:?}")))
    .collect();
    format!(
        "    decided by rule \"{}\" ({}:{}:{}), {}: {}",
        rule.name,
        policy.file,
        rule.line,
        rule.column,
        f.get("guard.action").map_or("", String::as_str),
        shown.join(" ")
    )
}

/// The identities a task entry holds, by the policy's names for them.
pub fn identity(meta: &Metadata, info: Option<&TaskInfo>) -> String {
    let Some(info) = info else {
        return "no identity entry (unknown to guard)".into();
    };
    let ids = |word: u64, names: &[String]| -> Vec<String> {
        names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < 64 && word & (1 << i) != 0)
            .map(|(_, n)| format!("{n:?}"))
            .collect()
    };
    let mut parts = Vec::new();
    for (label, word, names) in [
        ("self", info.self_ids, &meta.identities),
        ("ancestor", info.anc_ids, &meta.identities),
        ("pid1", info.pid1_ids, &meta.identities),
        ("image(pid1)", info.img_pid1, &meta.identities),
        ("exe", info.exe_ids, &meta.exes),
        ("ancestor exe", info.anc_exe, &meta.exes),
        ("pid1 exe", info.pid1_exe, &meta.exes),
    ] {
        let held = ids(word, names);
        if !held.is_empty() {
            parts.push(format!("{label} [{}]", held.join(", ")));
        }
    }
    for (flag, name) in [
        (task_flags::NS_INIT, "pid 1 of its namespace"),
        (task_flags::ENTERED, "entered from outside"),
        (task_flags::CMDLINE_TRUNCATED, "command line too long"),
    ] {
        if info.flags & flag != 0 {
            parts.push(name.to_string());
        }
    }
    if parts.is_empty() {
        "no identity of the policy".into()
    } else {
        parts.join(", ")
    }
}

//! `guardc test --replay RECORD POLICY`: recorded activity judged by another policy.
//!
//! Each record (`guard-run load --record`, [`guard_ebpf::record`]) becomes a case: its
//! ancestry is created in a fresh simulated node as the kernel would have created it (every
//! fork and exec run through the new object's tracking programs), then the recorded operation
//! is judged by the new object's programs on the backend that recorded it. Where the verdict
//! differs from what the recorded policy decided, the replay says so, event by event: the
//! check an operator runs before switching a policy from audit to enforce, or before replacing
//! one version with another.

use std::collections::BTreeMap;
use std::io::Write;

use guard_ebpf::abi::Metadata;
use guard_ebpf::record::{Recorded, RecordedOp, RecordedProcess};

use super::file::{Case, CaseFile, OpenMode, Operation, Origin, Process, Verdict};
use super::run::{self, Policy, verdict};
use super::scopes::{Container, Placement};

/// Counts of a replay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub same: usize,
    /// The new policy refuses more severely than what was recorded.
    pub stricter: usize,
    /// The new policy refuses less severely, or allows.
    pub looser: usize,
    /// Records whose process tree the new policy would not let come to be, or that the
    /// simulator could not build.
    pub not_replayed: usize,
    /// Records with part of their process context missing (`"complete": false`).
    pub incomplete: usize,
}

impl ReplaySummary {
    pub fn differ(&self) -> usize {
        self.stricter + self.looser
    }
}

/// An executable nobody recorded: the process exited before guard-run could read it.
const UNKNOWN_EXE: &str = "/(executable not recorded)";

/// The case a record describes, and the case file around it (the host's init, the users).
pub fn to_case(rec: &Recorded, line: usize) -> (CaseFile, Case) {
    let chain = &rec.process;
    let host_init = chain
        .first()
        .filter(|p| p.pid == 1 && p.ns_level == 0 && chain.len() > 1);
    let (init, init_exe) = match host_init {
        Some(p) => (argv(p), exe(p)),
        None => (vec!["/sbin/init".to_string()], "/sbin/init".to_string()),
    };
    let mut users = BTreeMap::new();
    for p in chain {
        if let Some(u) = &p.user {
            users.insert(u.clone(), p.uid);
        }
    }
    let skip = usize::from(host_init.is_some());
    let last = chain.len() - 1;
    let mut procs: Vec<Process> = Vec::new();
    // Index in `procs` of chain entry `k` (`None`: the host's init).
    let mut index: Vec<Option<usize>> = vec![None; chain.len()];
    for k in skip..chain.len() {
        let p = &chain[k];
        let parent = k.checked_sub(1).map(|j| (&chain[j], index[j]));
        let acting_exec = k == last && rec.op == RecordedOp::Exec;
        let origin = origin(p, parent, acting_exec, &mut procs);
        // The process that execs is created as a fork of its parent's image; the recorded
        // exec is then the operation.
        let (argv, exe) = match (acting_exec, parent) {
            (true, Some((pp, _))) => (self::argv(pp), self::exe(pp)),
            _ => (self::argv(p), self::exe(p)),
        };
        let origin = match origin {
            Origin::Exec(i) if acting_exec => Origin::Fork(i),
            o => o,
        };
        index[k] = Some(procs.len());
        procs.push(Process {
            name: format!("{} (pid {})", p.name, p.pid),
            origin,
            argv,
            exe,
            script: None,
            uid: Some(p.uid),
            tty: Some(p.tty),
            placement: Some(placement(p)),
            line: line as u32,
        });
    }
    let actor = index[last].unwrap_or(0);
    let acting = &chain[last];
    let operation = match rec.op {
        RecordedOp::Exec => Operation::Exec {
            process: actor,
            argv: argv(acting),
            exe: rec.path.clone(),
            script: None,
        },
        op => Operation::Open {
            process: actor,
            path: rec.path.clone(),
            mode: match op {
                RecordedOp::Write => OpenMode::Write,
                RecordedOp::ReadWrite => OpenMode::ReadWrite,
                _ => OpenMode::Read,
            },
        },
    };
    let case = Case {
        name: format!("line {line}"),
        line: line as u32,
        processes: procs,
        operation,
        expect: verdict(rec.decision),
        alerts: None,
        backend: Some(rec.backend),
    };
    let file = CaseFile {
        init,
        init_exe,
        users,
        cases: Vec::new(),
    };
    (file, case)
}

fn argv(p: &RecordedProcess) -> Vec<String> {
    if p.argv.is_empty() {
        vec![p.name.clone()]
    } else {
        p.argv.clone()
    }
}

fn exe(p: &RecordedProcess) -> String {
    p.exe.clone().unwrap_or_else(|| UNKNOWN_EXE.into())
}

fn placement(p: &RecordedProcess) -> Placement {
    Placement {
        cgroup: p.cgroup.clone().unwrap_or_else(|| "/".into()),
        container: p.container.as_ref().map(|c| Container {
            id: c.id.clone(),
            name: c.name.clone(),
            namespace: c.namespace.clone(),
            labels: c.labels.clone(),
        }),
    }
}

/// How process `p` came to be, from its parent (`None` at the top of an incomplete chain;
/// `Some((_, None))`: the host's init). A process entered into a namespace needs a process of
/// that namespace to enter: the record does not name one (it is no ancestor), so its inits
/// are added, with no command line of their own (an entered process inherits nothing from
/// them: the kernel's fork program gives it no `pid1` identity).
fn origin(
    p: &RecordedProcess,
    parent: Option<(&RecordedProcess, Option<usize>)>,
    acting_exec: bool,
    procs: &mut Vec<Process>,
) -> Origin {
    let parent_level = parent.map_or(0, |(pp, _)| pp.ns_level);
    let parent_index = parent.and_then(|(_, i)| i);
    if p.ns_level > parent_level {
        if p.ns_init {
            return Origin::Pid1(parent_index);
        }
        return Origin::Entered(namespace_of(p, procs));
    }
    match (parent, parent_index) {
        (Some((pp, _)), Some(i))
            if !acting_exec && p.argv == pp.argv && p.exe.is_some() && p.exe == pp.exe =>
        {
            // /proc cannot tell a fork from an exec of the same image; as the scan at load
            // does, the same executable and command line is taken for a fork.
            Origin::Fork(i)
        }
        (_, Some(i)) => Origin::Exec(i),
        _ if p.ns_level > 0 && !p.ns_init => Origin::Entered(namespace_of(p, procs)),
        _ => Origin::Host,
    }
}

/// A chain of pid-namespace inits down to `p`'s level; returns the deepest one's index.
fn namespace_of(p: &RecordedProcess, procs: &mut Vec<Process>) -> usize {
    let mut parent = None;
    for _ in 0..p.ns_level.max(1) {
        let outer = parent;
        parent = Some(procs.len());
        procs.push(Process {
            name: format!("(init of the pid namespace {} entered)", p.name),
            origin: Origin::Pid1(outer),
            argv: vec!["(not recorded)".into()],
            exe: UNKNOWN_EXE.into(),
            script: None,
            uid: Some(0),
            tty: Some(false),
            placement: Some(placement(p)),
            line: 0,
        });
    }
    parent.unwrap_or(0)
}

/// Who did it: the acting process and its ancestry, nearest first.
fn who(rec: &Recorded) -> String {
    let show = |p: &RecordedProcess| {
        let mut line = argv(p).join(" ");
        if line.chars().count() > 60 {
            line = line.chars().take(57).collect::<String>() + "...";
        }
        let mut s = format!("`{line}` (pid {}", p.pid);
        if let Some(u) = &p.user {
            s += &format!(", {u}");
        }
        if p.ns_init && p.ns_level > 0 {
            s += ", pid 1 of its namespace";
        }
        if p.entered {
            s += ", entered";
        }
        s + ")"
    };
    let mut parts: Vec<String> = rec.process.iter().rev().map(show).collect();
    if parts.len() > 4 {
        let n = parts.len() - 4;
        parts.truncate(4);
        parts.push(format!("{n} more"));
    }
    parts.join(" < ")
}

/// Replays `records` (line number, record) against `policy`, printing each difference and a
/// summary line to `out`.
pub fn replay(
    policy: &Policy,
    meta: &Metadata,
    records: &[(usize, Recorded)],
    record_file: &str,
    out: &mut impl Write,
) -> std::io::Result<ReplaySummary> {
    let mut sum = ReplaySummary::default();
    for (line, rec) in records {
        sum.incomplete += usize::from(!rec.complete);
        let (cases, case) = to_case(rec, *line);
        let object = match run::prepare(policy.object, meta, &cases) {
            Ok(o) => o,
            Err(_) => {
                // A user the new policy names never acted in the record: it resolves to a
                // uid no recorded process has, as on a node without that user.
                let mut cases = cases.clone();
                for u in &meta.users {
                    cases.users.entry(u.name.clone()).or_insert(u32::MAX - 1);
                }
                match run::prepare(policy.object, meta, &cases) {
                    Ok(o) => o,
                    Err(e) => {
                        writeln!(out, "{record_file}:{line}: not replayed: {e}")?;
                        sum.not_replayed += 1;
                        continue;
                    }
                }
            }
        };
        let p = Policy {
            object: &object,
            meta,
            file: policy.file,
        };
        let backend = rec.backend;
        let outcome = run::stage(&p, &cases, &case, backend)
            .and_then(|mut staged| run::perform(&mut staged, &case));
        let was = verdict(rec.decision);
        let recorded = format!(
            "{}{}{}",
            was.as_str(),
            rec.rule
                .as_deref()
                .map_or(String::new(), |r| format!(" (rule \"{r}\")")),
            if was != Verdict::Allow && !rec.enforced {
                ", not carried out"
            } else {
                ""
            }
        );
        let head = format!(
            "{record_file}:{line}: {} {} by {}",
            rec.op.as_str(),
            rec.path,
            who(rec)
        );
        let caveat = if rec.complete {
            ""
        } else {
            "\n    part of the process context was not recorded (an ancestor or the executable of a process that had exited): this verdict rests on what was"
        };
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                writeln!(
                    out,
                    "{head}\n    recorded: {recorded}\n    not replayed: the new policy does not let its process tree come to be:\n{e}{caveat}"
                )?;
                sum.not_replayed += 1;
                continue;
            }
        };
        let now = verdict(outcome.verdict);
        if now == was {
            sum.same += 1;
            continue;
        }
        // Actions are ordered by severity.
        if outcome.verdict > rec.decision {
            sum.stricter += 1;
        } else {
            sum.looser += 1;
        }
        writeln!(
            out,
            "{head}\n    recorded: {recorded}\n    new:      {}\n{}{caveat}",
            now.as_str(),
            run::describe(&p, &cases, &outcome)
        )?;
    }
    writeln!(
        out,
        "{} operations replayed: {} same, {} differ ({} refused more severely, {} less), {} not replayed; {} with incomplete process context",
        records.len(),
        sum.same,
        sum.differ(),
        sum.stricter,
        sum.looser,
        sum.not_replayed,
        sum.incomplete
    )?;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use guard_ebpf::abi::{Action, Backend};
    use guard_ebpf::record::RECORD_VERSION;

    fn proc(
        pid: u32,
        argv: &[&str],
        exe: &str,
        uid: u32,
        level: u32,
        init: bool,
    ) -> RecordedProcess {
        RecordedProcess {
            pid,
            name: argv[0].rsplit('/').next().unwrap().into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            argv_truncated: false,
            exe: Some(exe.into()),
            uid,
            user: None,
            tty: false,
            ns_level: level,
            ns_init: init,
            entered: false,
            cgroup: Some("/".into()),
            container: None,
        }
    }

    fn record(process: Vec<RecordedProcess>, decision: Action, backend: Backend) -> Recorded {
        Recorded {
            version: RECORD_VERSION,
            time: "2026-11-28T15:00:00.000000000Z".into(),
            op: RecordedOp::Read,
            path: "/mnt/secrets/db-password".into(),
            path_truncated: false,
            backend,
            decision,
            enforced: true,
            rule: None,
            policy: "secrets.grd".into(),
            process,
            complete: true,
        }
    }

    fn compiled(source: &str) -> (Vec<u8>, Metadata) {
        let checked = crate::frontend::check_source("p.grd", source).expect("checks");
        let c = crate::codegen::compile(&checked, "p.grd").expect("compiles");
        (c.object, c.metadata)
    }

    /// The secrets scenario's processes, as a recording of them reads: the app (pid 1 of a
    /// namespace, under `unshare`), its forked worker, and an attacker entered with nsenter.
    fn scenario(backend: Backend) -> Vec<(usize, Recorded)> {
        let init = proc(1, &["/sbin/init"], "/usr/lib/systemd/systemd", 0, 0, true);
        let unshare = proc(
            40,
            &["unshare", "--pid", "--fork", "sh"],
            "/usr/bin/unshare",
            0,
            0,
            false,
        );
        let app = proc(41, &["python", "app.py"], "/usr/bin/python3.11", 0, 1, true);
        let mut worker = app.clone();
        worker.pid = 42;
        worker.ns_init = false;
        let nsenter = proc(
            50,
            &["nsenter", "-t", "41", "-p"],
            "/usr/bin/nsenter",
            0,
            0,
            false,
        );
        let mut cat = proc(
            51,
            &["cat", "/mnt/secrets/db-password"],
            "/usr/bin/cat",
            65534,
            1,
            false,
        );
        cat.entered = true;
        cat.user = Some("nobody".into());
        vec![
            (
                1,
                record(
                    vec![init.clone(), unshare.clone(), app.clone()],
                    Action::Allow,
                    backend,
                ),
            ),
            (
                2,
                record(
                    vec![init.clone(), unshare, app, worker],
                    Action::Allow,
                    backend,
                ),
            ),
            (3, record(vec![init, nsenter, cat], Action::Kill, backend)),
        ]
    }

    fn run(source: &str, records: &[(usize, Recorded)]) -> (ReplaySummary, String) {
        let (object, meta) = compiled(source);
        let p = Policy {
            object: &object,
            meta: &meta,
            file: "p.grd",
        };
        let mut out = Vec::new();
        let sum = replay(&p, &meta, records, "rec.jsonl", &mut out).expect("writes");
        (sum, String::from_utf8(out).unwrap())
    }

    const SECRETS: &str =
        "guard /mnt/secrets/* allow ancestor(pid1, \"python app.py\") else kill\n";

    #[test]
    fn the_recording_policy_agrees_with_itself_on_both_backends() {
        for backend in [Backend::Tracepoint, Backend::Lsm] {
            let (sum, out) = run(SECRETS, &scenario(backend));
            assert_eq!(
                (sum.same, sum.differ(), sum.not_replayed),
                (3, 0, 0),
                "{out}"
            );
        }
    }

    #[test]
    fn a_worker_is_a_fork_and_an_attacker_enters_the_namespace() {
        let recs = scenario(Backend::Tracepoint);
        let (_, worker) = to_case(&recs[1].1, 2);
        let origins: Vec<&Origin> = worker.processes.iter().map(|p| &p.origin).collect();
        assert_eq!(
            origins,
            [&Origin::Host, &Origin::Pid1(Some(0)), &Origin::Fork(1)]
        );
        let (file, attacker) = to_case(&recs[2].1, 3);
        assert_eq!(file.init, ["/sbin/init"]);
        assert_eq!(file.users.get("nobody"), Some(&65534));
        let origins: Vec<&Origin> = attacker.processes.iter().map(|p| &p.origin).collect();
        // nsenter on the host, a stand-in init of the namespace, the attacker entered into it.
        assert_eq!(
            origins,
            [&Origin::Host, &Origin::Pid1(None), &Origin::Entered(1)]
        );
    }

    #[test]
    fn differences_are_reported_with_the_deciding_rule() {
        let (sum, out) = run(
            "guard /mnt/secrets/* allow ancestor(pid1, \"python app.py\") and not image(pid1, \"python app.py\") else kill\n",
            &scenario(Backend::Tracepoint),
        );
        // The app and its worker (a fork: the same image) are refused now.
        assert_eq!((sum.same, sum.stricter, sum.looser), (1, 2, 0), "{out}");
        assert!(out.contains("rec.jsonl:1: read /mnt/secrets/db-password by `python app.py` (pid 41, pid 1 of its namespace) < `unshare --pid --fork sh` (pid 40) < `/sbin/init` (pid 1)\n"), "{out}");
        assert!(out.contains("    recorded: allow\n    new:      kill\n    decided by rule \"guard /mnt/secrets/*\" (p.grd:1:1)"), "{out}");
        assert!(out.ends_with("3 operations replayed: 1 same, 2 differ (2 refused more severely, 0 less), 0 not replayed; 0 with incomplete process context\n"), "{out}");
    }

    #[test]
    fn an_exec_is_replayed_as_the_exec_of_a_fork() {
        let mut recs = scenario(Backend::Lsm);
        let r = &mut recs[2].1;
        r.op = RecordedOp::Exec;
        r.path = "/usr/bin/curl".into();
        let last = r.process.last_mut().unwrap();
        last.argv = vec!["curl".into(), "x".into()];
        last.exe = Some("/usr/bin/curl".into());
        r.decision = Action::Deny;
        let (sum, out) = run(
            "guard exec /usr/bin/curl allow nobody else deny\n",
            &recs[2..],
        );
        assert_eq!((sum.same, sum.differ()), (1, 0), "{out}");
        let (sum, out) = run(
            "guard exec /usr/bin/wget allow nobody else deny\n",
            &recs[2..],
        );
        assert_eq!(sum.looser, 1, "{out}");
    }

    #[test]
    fn an_incomplete_chain_is_replayed_from_what_is_there() {
        let mut recs = scenario(Backend::Tracepoint);
        for (_, r) in &mut recs {
            r.process.remove(0);
            r.complete = false;
        }
        let (sum, out) = run(SECRETS, &recs);
        assert_eq!((sum.same, sum.incomplete), (3, 3), "{out}");
    }
}

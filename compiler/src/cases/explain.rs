//! `guardc explain`: for one case, the process tree as the tracking programs saw it, every rule
//! that covers the operation in source order with what it says, and the final verdict.
//!
//! The rules are judged by the object's own programs, one at a time: on a copy of the staged
//! node, the rule table (`.rodata.rules`) is rewritten so that only the rule asked about
//! covers any operation, and the operation is performed. Once as the rule is (does it refuse?)
//! and once with its subject made impossible (is it consulted at all, i.e. does its pattern
//! and operation cover this one?). Nothing is evaluated outside the programs.

use std::fmt::Write;

use core::mem::{offset_of, size_of};
use guard_ebpf::abi::{self, Backend, RuleEntry};

use super::file::{Case, CaseFile, OpenMode, Operation, Origin};
use super::run::{self, Policy, Staged};

/// What one rule says about the operation, alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alone {
    /// Its pattern or operation does not cover this operation.
    NotCovering,
    /// It covers it and its subject holds.
    Allows,
    /// It covers it and its subject does not hold: its action.
    Refuses(abi::Action),
}

/// Rewrites the rule table of `staged` so that only rule `keep` covers anything; with
/// `impossible`, that rule's subject never holds.
fn isolate(
    staged: &mut Staged,
    n_rules: usize,
    keep: usize,
    impossible: bool,
) -> Result<(), String> {
    let sim = &mut staged.machine.sim;
    let e = |e: guard_ebpf::sim::SimError| format!("rewriting the rule table: {e}");
    for r in 0..n_rules {
        let at = r * size_of::<RuleEntry>();
        if r != keep {
            sim.rodata_poke(
                abi::RODATA_RULES,
                at + offset_of!(RuleEntry, ops),
                &0u32.to_le_bytes(),
            )
            .map_err(e)?;
        } else if impossible {
            // No term: the rule refuses whoever does the operation.
            sim.rodata_poke(
                abi::RODATA_RULES,
                at + offset_of!(RuleEntry, n_terms),
                &0u32.to_le_bytes(),
            )
            .map_err(e)?;
        }
    }
    Ok(())
}

/// What rule `r` alone says about the case's operation, judged by the object's programs.
pub fn judge_alone(
    staged: &Staged,
    case: &Case,
    n_rules: usize,
    r: usize,
) -> Result<Alone, String> {
    let mut covers = Staged {
        machine: staged.machine.clone(),
        pids: staged.pids.clone(),
    };
    isolate(&mut covers, n_rules, r, true)?;
    if run::perform(&mut covers, case)?.events.is_empty() {
        return Ok(Alone::NotCovering);
    }
    let mut alone = Staged {
        machine: staged.machine.clone(),
        pids: staged.pids.clone(),
    };
    isolate(&mut alone, n_rules, r, false)?;
    let out = run::perform(&mut alone, case)?;
    Ok(match out.events.first() {
        None => Alone::Allows,
        Some(e) => Alone::Refuses(abi::Action::from_u32(e.action).unwrap_or(abi::Action::Kill)),
    })
}

fn origin(case: &Case, o: &Origin) -> String {
    let name = |i: &usize| format!("`{}`", case.processes[*i].name);
    match o {
        Origin::Host => "started by the node's init".into(),
        Origin::Exec(p) => format!("started by {}", name(p)),
        Origin::Fork(p) => format!("forked from {} (no exec)", name(p)),
        Origin::Entered(p) => format!("entered into {}'s pid namespace from outside", name(p)),
        Origin::Pid1(Some(p)) => format!("pid 1 of a new pid namespace, started by {}", name(p)),
        Origin::Pid1(None) => "pid 1 of a new pid namespace, started by the node's init".into(),
    }
}

fn operation(case: &Case) -> String {
    let mode = |m: &OpenMode| match m {
        OpenMode::Read => "reading",
        OpenMode::Write => "writing",
        OpenMode::ReadWrite => "reading and writing",
    };
    let who = &case.processes[run::actor(case)].name;
    match &case.operation {
        Operation::Open { path, mode: m, .. } => {
            format!("`{who}` opens {path} for {}", mode(m))
        }
        Operation::Exec { argv, exe, .. } => {
            format!("`{who}` executes {exe} as `{}`", argv.join(" "))
        }
        Operation::Memory {
            target, mode: m, ..
        } => format!(
            "`{who}` opens the memory of `{}` for {}",
            case.processes[*target].name,
            mode(m)
        ),
    }
}

/// The explanation of `case`, as text.
pub fn explain(
    policy: &Policy,
    cases: &CaseFile,
    case: &Case,
    case_file: &str,
    backend: Backend,
) -> Result<String, String> {
    let staged = run::stage(policy, cases, case, backend)?;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "case \"{}\" ({case_file}:{}), on the {} backend",
        case.name,
        case.line,
        backend.as_str()
    );
    let _ = writeln!(w, "processes, as the tracking programs left them:");
    for (p, pid) in case.processes.iter().zip(&staged.pids) {
        let task = staged.machine.process(*pid);
        let cmdline = task.map(|t| t.argv.join(" ")).unwrap_or_default();
        let _ = writeln!(
            w,
            "  `{}` (pid {pid}, uid {}{}): {}, runs `{cmdline}`\n      holds {}",
            p.name,
            task.map_or(0, |t| t.uid),
            if task.is_some_and(|t| t.tty.is_some()) {
                ", a terminal"
            } else {
                ""
            },
            origin(case, &p.origin),
            run::identity(policy.meta, staged.machine.task_info(*pid).as_ref())
        );
    }
    let _ = writeln!(w, "operation: {}", operation(case));
    let _ = writeln!(w, "rules that cover it, in source order:");
    let n_rules = policy.meta.rules.len();
    let mut covering = 0;
    for (r, rule) in policy.meta.rules.iter().enumerate() {
        let what = match judge_alone(&staged, case, n_rules, r)? {
            Alone::NotCovering => continue,
            Alone::Allows => "allows: its subject holds".to_string(),
            Alone::Refuses(a) => format!("refuses ({}): its subject does not hold", a.as_str()),
        };
        covering += 1;
        let _ = writeln!(
            w,
            "  \"{}\" ({}:{}:{}, {} ... else {}): {what}",
            rule.name,
            policy.file,
            rule.line,
            rule.column,
            rule.operation,
            rule.action.as_str()
        );
    }
    if covering == 0 {
        let _ = writeln!(w, "  none: no rule's pattern and operation cover it");
    }
    let mut whole = Staged {
        machine: staged.machine.clone(),
        pids: staged.pids.clone(),
    };
    let result = run::perform(&mut whole, case)?;
    match result
        .events
        .first()
        .and_then(|e| policy.meta.rules.get(e.rule as usize).map(|r| (e, r)))
    {
        None => {
            let _ = writeln!(w, "verdict: allow (every covering rule allows)");
        }
        Some((e, rule)) => {
            let _ = writeln!(
                w,
                "verdict: {}, reported for \"{}\" ({}:{}:{}): the most severe refusal (kill > deny \
                 > alert), the first in the source on a tie; guard.action={}",
                abi::Action::from_u32(e.action).map_or("?", abi::Action::as_str),
                rule.name,
                policy.file,
                rule.line,
                rule.column,
                super::fields::action_word(e)
            );
        }
    }
    let expected = case.expect.as_str();
    let got = match result.verdict {
        abi::Action::Allow => "allow",
        a => a.as_str(),
    };
    let _ = writeln!(
        w,
        "the case expects {expected}: {}",
        if expected == got {
            "the verdict agrees"
        } else {
            "the verdict differs"
        }
    );
    Ok(out)
}

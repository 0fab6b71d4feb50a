//! Which enforcement backend a kernel gets, and what each rule's action becomes on it.
//!
//! One object carries the programs of both backends. The BPF LSM backend decides before the
//! operation (deny makes the open or the `execve` fail with EPERM; kill also sends SIGKILL) and
//! sees every path into the kernel, io_uring included; it needs a kernel booted with `bpf` in
//! its `lsm=` list. The tracepoint backend works on any kernel with BTF but acts after the open
//! returned, or once the new program is set up: it can kill, not deny. `guard-run` never downgrades silently: a rule the chosen backend cannot
//! enforce as written refuses the load unless the operator accepts killing instead.

use anyhow::{Result, bail};
use guard_ebpf::abi::{Action, RuleMeta};

pub use guard_ebpf::abi::Backend;

/// `--backend`: let the kernel decide, or insist on one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Choice {
    /// The LSM backend where the kernel runs BPF LSM and accepts its programs, else the
    /// tracepoint backend (said loudly).
    #[default]
    Auto,
    /// The LSM backend or nothing.
    Lsm,
    /// The tracepoint backend even where BPF LSM is available.
    Tracepoint,
}

/// Whether the kernel runs the BPF LSM: `bpf` in the active LSM list. (A kernel may list it
/// and still refuse LSM programs; the loader finds that out by loading them.)
pub fn bpf_lsm_listed() -> bool {
    std::fs::read_to_string("/sys/kernel/security/lsm")
        .map(|l| l.trim().split(',').any(|m| m == "bpf"))
        .unwrap_or(false)
}

pub fn describe(b: Backend) -> &'static str {
    match b {
        Backend::Lsm => "lsm (BPF LSM: deny and kill before the operation)",
        Backend::Tracepoint => {
            "tracepoint (kill via bpf_send_signal when the open returns; cannot deny)"
        }
    }
}

/// Whether `backend` can do what `rule` says: the tracepoint backend cannot deny (it acts
/// after the open returned, or once the new program is set up, when an exec can no longer
/// fail); the LSM backend decides opens and execs before they happen.
fn can_enforce(rule: &RuleMeta, backend: Backend) -> bool {
    rule.action != Action::Deny || backend == Backend::Lsm
}

/// What `rule` does on `backend`, for the load report.
pub fn effective(rule: &RuleMeta, backend: Backend, deny_as_kill: bool) -> String {
    let exec = rule.operation == "exec";
    match (rule.action, backend) {
        (Action::Deny, _) if !can_enforce(rule, backend) && deny_as_kill => {
            "kill (deny enforced by killing: --deny-as-kill)".into()
        }
        (Action::Deny, Backend::Lsm) if exec => {
            "deny (execve fails with EPERM; the program never starts)".into()
        }
        (Action::Deny, Backend::Lsm) => "deny (the open fails with EPERM)".into(),
        (Action::Kill, Backend::Lsm) if exec => "kill (SIGKILL, and execve fails)".into(),
        (Action::Kill, Backend::Lsm) => "kill (SIGKILL, and the open fails with EPERM)".into(),
        (Action::Kill, _) if exec => "kill (SIGKILL before the program's first instruction)".into(),
        (Action::Kill, _) => "kill (SIGKILL when the open returns)".into(),
        (a, _) => a.as_str().into(),
    }
}

/// Refuses a policy the backend would enforce less strictly than written, unless the operator
/// accepted killing instead of denying.
pub fn check_enforceable(rules: &[RuleMeta], backend: Backend, deny_as_kill: bool) -> Result<()> {
    let cannot: Vec<String> = rules
        .iter()
        .filter(|r| !can_enforce(r, backend))
        .map(|r| format!("`{}` (line {})", r.name, r.line))
        .collect();
    if cannot.is_empty() || deny_as_kill {
        return Ok(());
    }
    // Only the tracepoint backend cannot deny.
    let why = "this kernel offers only the tracepoint backend, which cannot make an open fail, \
               nor an execve";
    let fix = "Boot with `lsm=...,bpf` for deny, or pass --deny-as-kill to enforce these rules \
               by killing";
    bail!(
        "the policy has deny rules ({}) and {why} (backend {}); refusing to load rather than \
         enforce less than the policy says. {fix}",
        cannot.join(", "),
        backend.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(operation: &str, action: Action) -> RuleMeta {
        RuleMeta {
            id: 0,
            name: "r".into(),
            operation: operation.into(),
            action,
            priority: "Critical".into(),
            output: String::new(),
            tags: vec![],
            patterns: vec![],
            line: 3,
            column: 1,
        }
    }

    #[test]
    fn deny_needs_the_lsm_backend() {
        let deny_read = [rule("read", Action::Deny)];
        let deny_exec = [rule("exec", Action::Deny)];
        let kill = [rule("read", Action::Kill), rule("exec", Action::Kill)];
        assert!(check_enforceable(&deny_read, Backend::Lsm, false).is_ok());
        let err = check_enforceable(&deny_read, Backend::Tracepoint, false).unwrap_err();
        assert!(err.to_string().contains("--deny-as-kill"), "{err}");
        assert!(err.to_string().contains("`r` (line 3)"), "{err}");
        assert!(check_enforceable(&deny_read, Backend::Tracepoint, true).is_ok());
        assert!(check_enforceable(&deny_exec, Backend::Lsm, false).is_ok());
        let err = check_enforceable(&deny_exec, Backend::Tracepoint, false).unwrap_err();
        assert!(err.to_string().contains("execve"), "{err}");
        assert!(check_enforceable(&deny_exec, Backend::Tracepoint, true).is_ok());
        for b in [Backend::Lsm, Backend::Tracepoint] {
            assert!(check_enforceable(&kill, b, false).is_ok());
        }
        assert_eq!(
            effective(&deny_read[0], Backend::Lsm, false),
            "deny (the open fails with EPERM)"
        );
        assert_eq!(
            effective(&deny_exec[0], Backend::Lsm, false),
            "deny (execve fails with EPERM; the program never starts)"
        );
        assert_eq!(
            effective(&kill[1], Backend::Lsm, false),
            "kill (SIGKILL, and execve fails)"
        );
        assert_eq!(
            effective(&kill[1], Backend::Tracepoint, false),
            "kill (SIGKILL before the program's first instruction)"
        );
        assert!(effective(&deny_read[0], Backend::Tracepoint, true).contains("--deny-as-kill"));
        assert!(effective(&deny_exec[0], Backend::Tracepoint, true).contains("--deny-as-kill"));
    }
}

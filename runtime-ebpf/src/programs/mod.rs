//! Program templates: each function here emits one BPF program for a policy's tables.
//!
//! The templates do not depend on the policy's rules, only on the shapes of its tables (DFA
//! sizes, number of rules), which become masks and bounds in the bytecode so the verifier can
//! prove every table access in bounds.

mod common;
mod exec_check;
mod identity;
mod open;
mod shebang;
mod tracking;
mod verdict;
mod walk;

pub use common::table_size;
pub use walk::SCRATCH_SIZE as OPEN_SCRATCH_SIZE;

use crate::abi::{Attach, Backend, DfaShape, ProgramMeta, Role};
use crate::asm::{Asm, AsmError, Assembled};

/// What the templates need to know about a policy's tables.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub path_dfa: DfaShape,
    pub cmdline_dfa: DfaShape,
    pub n_rules: u32,
    /// Number of u16 entries in the rule-list table.
    pub rule_list_len: u32,
    /// The longest rule list of this policy (1..=[`crate::abi::MAX_RULES_PER_LIST`]): the
    /// bound of the loops over a list. The verifier walks a bounded loop once per possible
    /// iteration, so a bound of 32 where the policy's lists hold 3 entries multiplied its work
    /// on the exec program past Debian 6.1's million instructions.
    pub max_list: u32,
    pub name_dfa: DfaShape,
    /// Process names the subjects use (0: the name DFA is not run).
    pub n_names: u32,
    /// Entries of the uid table (0: uids are not compared).
    pub n_uids: u32,
    /// Whether a subject asks for a controlling terminal.
    pub uses_tty: bool,
    /// Scopes the subjects name (0: the cgroup map is not consulted).
    pub n_scopes: u32,
}

/// The longest list of a flat rule-list table (`[0, len, ids..., len, ids...]`), at least 1 and
/// at most [`crate::abi::MAX_RULES_PER_LIST`].
pub fn longest_list(flat: &[u16]) -> u32 {
    let mut longest = 1;
    let mut i = 0;
    while let Some(&n) = flat.get(i) {
        longest = longest.max(u32::from(n));
        i += 1 + usize::from(n);
    }
    longest.min(crate::abi::MAX_RULES_PER_LIST as u32)
}

/// One emitted program with its ELF section and attach point.
#[derive(Clone, Debug)]
pub struct Program {
    pub code: Assembled,
    pub section: String,
    pub attach: Attach,
    pub role: Role,
    pub backend: Option<Backend>,
}

impl Program {
    /// `backend`: the enforcement backend the program belongs to (an enforcement program), or
    /// `None` (a tracking program every backend loads).
    fn finish(
        a: Asm,
        section: &str,
        attach: Attach,
        backend: Option<Backend>,
    ) -> Result<Program, AsmError> {
        let role = match backend {
            Some(_) => Role::Enforcement,
            None => Role::Tracking,
        };
        Ok(Program {
            code: a.finish()?,
            section: section.to_string(),
            attach,
            role,
            backend,
        })
    }

    pub fn meta(&self) -> ProgramMeta {
        ProgramMeta {
            name: self.code.name.clone(),
            attach: self.attach.clone(),
            role: self.role,
            backend: self.backend,
        }
    }
}

/// Size of the per-CPU scratch value of the exec tracking program and of the `execve`
/// tracepoints: the walk's header and path buffer, then the exec record being computed.
pub const EXEC_SCRATCH_SIZE: u32 = walk::SCRATCH_SIZE + identity::ARGS_ROOM;

/// Size of the LSM exec check's per-CPU scratch value.
pub const BPRM_SCRATCH_SIZE: u32 = shebang::SCRATCH_SIZE;

/// Every program of an object: identity tracking, each backend's open check, and the LSM
/// backend's exec check (the `execve` tracepoints that prepare it, then the check itself).
pub fn programs(p: &Params) -> Result<Vec<Program>, AsmError> {
    Ok(vec![
        tracking::exec(p)?,
        tracking::fork(p)?,
        tracking::exit(p)?,
        open::program(p)?,
        open::lsm_program(p)?,
        exec_check::argv_program(p, "execve", 1)?,
        exec_check::argv_program(p, "execveat", 2)?,
        exec_check::lsm_program(p)?,
    ])
}

/// The maps every guard object defines, as legacy `bpf_map_def`s.
pub fn maps() -> Vec<(String, crate::elf::MapDef)> {
    use crate::abi;
    use crate::elf::MapDef;
    const HASH: u32 = 1;
    const ARRAY: u32 = 2;
    const PERCPU_ARRAY: u32 = 6;
    const RINGBUF: u32 = 27;
    const NO_PREALLOC: u32 = 1;
    let def = |map_type, key_size, value_size, max_entries, map_flags| MapDef {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags,
    };
    vec![
        (
            abi::MAP_TASKS.into(),
            def(
                HASH,
                4,
                core::mem::size_of::<abi::TaskInfo>() as u32,
                abi::TASKS_MAX_ENTRIES,
                NO_PREALLOC,
            ),
        ),
        (
            abi::MAP_EVENTS.into(),
            def(RINGBUF, 0, 0, abi::EVENTS_RING_BYTES, 0),
        ),
        (
            abi::MAP_OPEN_SCRATCH.into(),
            def(PERCPU_ARRAY, 4, OPEN_SCRATCH_SIZE, 1, 0),
        ),
        (
            abi::MAP_EXEC_SCRATCH.into(),
            def(PERCPU_ARRAY, 4, EXEC_SCRATCH_SIZE, 1, 0),
        ),
        (
            abi::MAP_BPRM_SCRATCH.into(),
            def(PERCPU_ARRAY, 4, BPRM_SCRATCH_SIZE, 1, 0),
        ),
        (
            abi::MAP_EXEC_ARGS.into(),
            def(
                HASH,
                4,
                core::mem::size_of::<abi::ExecArgs>() as u32,
                abi::TASKS_MAX_ENTRIES,
                NO_PREALLOC,
            ),
        ),
        (
            abi::MAP_RULE_OFF.into(),
            def(ARRAY, 4, core::mem::size_of::<abi::RuleOff>() as u32, 1, 0),
        ),
        (
            abi::MAP_COUNTERS.into(),
            def(PERCPU_ARRAY, 4, 8, abi::N_COUNTERS, 0),
        ),
        (
            abi::MAP_RULE_COUNTS.into(),
            def(PERCPU_ARRAY, 4, 8, abi::RULE_COUNTS_DEFAULT_ENTRIES, 0),
        ),
        (
            abi::MAP_CGROUPS.into(),
            def(HASH, 8, 8, abi::CGROUPS_MAX_ENTRIES, NO_PREALLOC),
        ),
    ]
}

#[cfg(test)]
mod list_tests {
    use super::longest_list;

    #[test]
    fn the_longest_list_bounds_the_loops() {
        assert_eq!(longest_list(&[0]), 1);
        assert_eq!(longest_list(&[0, 2, 7, 8, 3, 1, 2, 3, 1, 9]), 3);
        let mut long = vec![0, 40];
        long.extend(0..40);
        assert_eq!(longest_list(&long), 32);
    }
}

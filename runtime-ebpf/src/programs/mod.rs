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
mod store;
mod tracking;
mod verdict;
mod walk;

pub use common::table_size;
pub use walk::SCRATCH_SIZE as OPEN_SCRATCH_SIZE;

use crate::abi::{Attach, Backend, DfaShape, IdentityStore, ProgramMeta, Role};
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
    /// Whether any rule judges execs: without one, the LSM backend's exec check (and the
    /// tracepoints that prepare it) is not part of the object.
    pub exec_rules: bool,
    /// Executable identities the subjects use (`exe(...)`, `ancestor(.., exe(...))`). With
    /// none and no exec rule, the exec program does not walk the new executable's path: that
    /// walk is most of the program's cost to the verifier, and nothing would read its result.
    pub n_exes: u32,
    /// The identity store the programs that touch it are written for. [`programs`] emits
    /// them once per store, whatever this says; it matters to a single template.
    pub store: IdentityStore,
}

impl Params {
    /// Whether the exec program must walk the executable's path.
    pub fn walks_executables(&self) -> bool {
        self.exec_rules || self.n_exes > 0
    }

    /// The symbol name of program `base` for this store: the task-storage variant has the
    /// plain name (what the kernels guard runs on have), the hash variant a `_hash` suffix.
    pub fn program_name(&self, base: &str) -> String {
        variant_name(base, self.store)
    }

    /// The ELF section of a program attached at `base` (`tp_btf/sched_process_exec`) for this
    /// store. aya reads a section's program type from its first `/`-separated part only, and
    /// the attach point comes from the metadata, so the hash variant's `/hash` suffix is inert.
    pub fn section_name(&self, base: &str) -> String {
        variant_section(base, self.store)
    }
}

/// The section of the `store` variant of the program attached at `base` (see
/// [`Params::section_name`]).
pub fn variant_section(base: &str, store: IdentityStore) -> String {
    variant(base, "/hash", store)
}

/// The symbol name of the `store` variant of program `base` (see [`Params::program_name`]).
pub fn variant_name(base: &str, store: IdentityStore) -> String {
    variant(base, "_hash", store)
}

fn variant(base: &str, suffix: &str, store: IdentityStore) -> String {
    match store {
        IdentityStore::Task => base.to_string(),
        IdentityStore::Hash => format!("{base}{suffix}"),
    }
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
    /// The identity store it is written for (`None`: it does not touch the store).
    pub store: Option<IdentityStore>,
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
            store: None,
        })
    }

    pub fn meta(&self) -> ProgramMeta {
        ProgramMeta {
            name: self.code.name.clone(),
            attach: self.attach.clone(),
            role: self.role,
            backend: self.backend,
            store: self.store,
        }
    }
}

/// Size of the per-CPU scratch value of the exec tracking program and of the `execve`
/// tracepoints: the walk's header and path buffer, then the exec record being computed.
pub const EXEC_SCRATCH_SIZE: u32 = walk::SCRATCH_SIZE + identity::ARGS_ROOM;

/// Size of the LSM exec check's per-CPU scratch value.
pub const BPRM_SCRATCH_SIZE: u32 = shebang::SCRATCH_SIZE;

/// Every program of an object: identity tracking, each backend's open check, and, when a rule
/// judges execs, the LSM backend's exec check (the `execve` tracepoints that prepare it, then
/// the check itself).
///
/// Every program that reads or writes the identity store comes twice, once per
/// [`IdentityStore`] (see [`Params::program_name`]); `guard-run` loads one set.
pub fn programs(p: &Params) -> Result<Vec<Program>, AsmError> {
    let mut all = Vec::new();
    for store in [IdentityStore::Task, IdentityStore::Hash] {
        let p = &Params { store, ..*p };
        let mut variant = vec![
            tracking::exec(p)?,
            tracking::fork(p)?,
            tracking::exit(p)?,
            open::program(p)?,
            open::lsm_program(p)?,
        ];
        if p.exec_rules {
            variant.push(exec_check::argv_program(p, "execve", 1)?);
            variant.push(exec_check::argv_program(p, "execveat", 2)?);
        }
        for prog in &mut variant {
            prog.store = Some(store);
        }
        all.extend(variant);
    }
    if p.exec_rules {
        // It reads the exec record, not the store: one program for both.
        all.push(exec_check::lsm_program(p)?);
    }
    Ok(all)
}

/// The maps defined in BTF: the identity store, as task storage. `guard-run` turns it into a
/// hash map (type only: the key, a thread id, and the value fit both) where the kernel has no
/// task storage; `max_entries` is then [`crate::abi::TASKS_MAX_ENTRIES`], given at load.
pub fn btf_maps() -> Vec<crate::btf::BtfMap> {
    use crate::abi;
    /// `BPF_F_NO_PREALLOC`: mandatory for task storage, and keeps the hash store unallocated.
    const NO_PREALLOC: u32 = 1;
    vec![crate::btf::BtfMap {
        name: abi::MAP_TASKS.into(),
        map_type: abi::MAP_TYPE_TASK_STORAGE,
        map_flags: NO_PREALLOC,
        value_name: "guard_task_info",
        value_members: vec![
            "self_ids",
            "anc_ids",
            "pid1_ids",
            "inh_anc",
            "inh_pid1",
            "flags",
            "img_pid1",
            "exe_ids",
            "anc_exe",
            "pid1_exe",
            "inh_anc_exe",
            "inh_pid1_exe",
        ],
    }]
}

/// The other maps every guard object defines, as legacy `bpf_map_def`s.
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

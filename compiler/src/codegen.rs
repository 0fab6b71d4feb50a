//! Code generation: the lowered tables, the program templates instantiated for their shapes,
//! and the metadata, written as one BPF ELF object.

use guard_ebpf::abi::{self, DfaShape, Metadata, RuleMeta};
use guard_ebpf::asm::AsmError;
use guard_ebpf::dfa_table::DfaTable;
use guard_ebpf::elf::{self, ObjectSpec, ProgramObject};
use guard_ebpf::programs::{self, Params, Program};

use crate::checked::{self, MessagePart};
use crate::lower::{self, Lowered};

/// The output used when a rule's alert clause gives no message (file operations).
pub const DEFAULT_OUTPUT: &str = "%fd.name opened by %proc.name, %guard.action \
     (user=%user.name uid=%user.uid cmd=%proc.cmdline pid=%proc.pid ppid=%proc.ppid rule=%rule.name)";

/// The same for exec rules: there is no file descriptor, the program is the subject.
pub const DEFAULT_EXEC_OUTPUT: &str = "%proc.exepath executed as %proc.name, %guard.action \
     (user=%user.name uid=%user.uid cmd=%proc.cmdline pid=%proc.pid ppid=%proc.ppid rule=%rule.name)";

/// Everything `guardc compile` produces.
pub struct Compiled {
    pub object: Vec<u8>,
    pub programs: Vec<Program>,
    pub lowered: Lowered,
    pub metadata: Metadata,
}

#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    #[error(transparent)]
    Lower(#[from] lower::LowerError),
    #[error("internal error in a program template: {0}")]
    Asm(#[from] AsmError),
    #[error("internal error writing the object: {0}")]
    Elf(#[from] elf::ElfError),
    #[error("internal error encoding metadata: {0}")]
    Meta(#[from] serde_json::Error),
}

fn shape(t: &DfaTable) -> DfaShape {
    DfaShape {
        n_states: t.n_states,
        n_classes: t.n_classes,
        state_bits: t.state_bits,
        class_bits: t.class_bits,
    }
}

pub fn compile(policy: &checked::Policy, source_name: &str) -> Result<Compiled, CodegenError> {
    compile_as(policy, source_name, Bodies::Policy)
}

/// What the programs of an object do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bodies {
    /// What the policy says.
    Policy,
    /// Nothing: every program returns 0 at once. The same object otherwise (maps, tables,
    /// metadata, attach points), so that `guard-run` loads and attaches it like the real one:
    /// the benchmarks' floor, the cost of the hooks themselves.
    Empty,
}

/// [`compile`], with the programs' bodies chosen.
pub fn compile_as(
    policy: &checked::Policy,
    source_name: &str,
    bodies: Bodies,
) -> Result<Compiled, CodegenError> {
    let lowered = lower::lower(policy)?;
    let params = Params {
        path_dfa: shape(&lowered.path_dfa),
        cmdline_dfa: shape(&lowered.cmdline_dfa),
        n_rules: lowered.rules.len() as u32,
        rule_list_len: lowered.rule_lists.len() as u32,
        max_list: programs::longest_list(&lowered.rule_lists),
        name_dfa: shape(&lowered.name_dfa),
        n_names: lowered.names.len() as u32,
        n_uids: lowered.uids.len() as u32,
        uses_tty: lowered.uses_tty,
        n_scopes: lowered.scopes.len() as u32,
        exec_rules: lowered.rules.iter().any(|r| r.ops & abi::OP_EXEC != 0),
        n_exes: lowered.exes.len() as u32,
        // programs() emits the programs for both stores.
        store: abi::IdentityStore::Task,
    };
    let programs = programs::programs(&params)?;
    let metadata = Metadata {
        format_version: abi::FORMAT_VERSION,
        compiler: format!("guardc {}", env!("CARGO_PKG_VERSION")),
        source: source_name.to_string(),
        rules: policy
            .rules
            .iter()
            .zip(&lowered.rules)
            .enumerate()
            .map(|(id, (rule, entry))| rule_meta(id as u32, rule, entry.action))
            .chain(
                lowered
                    .synthetic
                    .iter()
                    .enumerate()
                    .map(|(i, s)| synthetic_meta((policy.rules.len() + i) as u32, s)),
            )
            .collect(),
        identities: lowered.identities.clone(),
        exes: lowered.exes.clone(),
        names: lowered.names.clone(),
        uids: lowered.uids.clone(),
        users: lowered.users.clone(),
        scopes: lowered.scopes.clone(),
        name_dfa: params.name_dfa,
        path_dfa: params.path_dfa,
        cmdline_dfa: params.cmdline_dfa,
        programs: programs.iter().map(Program::meta).collect(),
    };
    let spec = ObjectSpec {
        license: abi::LICENSE.to_string(),
        programs: programs
            .iter()
            .map(|p| match bodies {
                Bodies::Policy => ProgramObject {
                    name: p.code.name.clone(),
                    section: p.section.clone(),
                    code: p.code.code.clone(),
                    map_relocs: p.code.map_relocs.clone(),
                    core_relocs: p.code.core_relocs.clone(),
                },
                Bodies::Empty => ProgramObject {
                    name: p.code.name.clone(),
                    section: p.section.clone(),
                    // r0 = 0; exit
                    code: [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0].to_vec(),
                    map_relocs: Vec::new(),
                    core_relocs: Vec::new(),
                },
            })
            .collect(),
        maps: programs::maps(),
        btf_maps: programs::btf_maps(),
        rodata: vec![
            (
                abi::RODATA_PATH_DFA.into(),
                lowered.path_dfa.bytes().to_vec(),
            ),
            (
                abi::RODATA_CMDLINE_DFA.into(),
                lowered.cmdline_dfa.bytes().to_vec(),
            ),
            (abi::RODATA_RULES.into(), rule_bytes(&lowered.rules)),
            (
                abi::RODATA_RULE_LISTS.into(),
                list_bytes(&lowered.rule_lists),
            ),
            (
                abi::RODATA_NAME_DFA.into(),
                lowered.name_dfa.bytes().to_vec(),
            ),
            (abi::RODATA_UIDS.into(), uid_bytes(&lowered.uids)),
        ],
        metadata: serde_json::to_vec(&metadata)?,
    };
    let object = elf::write_object(&spec)?;
    Ok(Compiled {
        object,
        programs,
        lowered,
        metadata,
    })
}

fn rule_meta(id: u32, rule: &checked::Rule, action: u32) -> RuleMeta {
    let output = match &rule.alert.template {
        Some(parts) => parts
            .iter()
            .map(|p| match p {
                MessagePart::Text(t) => t.replace('%', "%%"),
                MessagePart::Field(f) => format!("%{}", f.as_str()),
            })
            .collect(),
        None if rule.operation == checked::Operation::Exec => DEFAULT_EXEC_OUTPUT.to_string(),
        None => DEFAULT_OUTPUT.to_string(),
    };
    RuleMeta {
        id,
        name: rule.name.clone(),
        operation: match rule.operation {
            checked::Operation::Open => "open",
            checked::Operation::Read => "read",
            checked::Operation::Write => "write",
            checked::Operation::Exec => "exec",
        }
        .to_string(),
        action: abi::Action::from_u32(action).unwrap_or(abi::Action::Kill),
        priority: rule.alert.priority.as_str().to_string(),
        output,
        patterns: rule.objects.iter().map(|p| p.pattern.clone()).collect(),
        tags: rule.tags.clone(),
        line: rule.line,
        column: rule.column,
    }
}

fn synthetic_meta(id: u32, s: &lower::SyntheticRule) -> RuleMeta {
    RuleMeta {
        id,
        name: format!(
            "guard: path too long to judge ({} rules could match it)",
            s.covers
        ),
        operation: if s.entry.ops == abi::OP_EXEC {
            "exec"
        } else {
            "open"
        }
        .to_string(),
        action: abi::Action::from_u32(s.entry.action).unwrap_or(abi::Action::Kill),
        priority: "Critical".to_string(),
        output: DEFAULT_OUTPUT.to_string(),
        tags: vec!["guard".to_string()],
        patterns: Vec::new(),
        line: 0,
        column: 0,
    }
}

/// INVARIANT: `RuleEntry` is `repr(C)` with only integer fields, little endian on the BPF side.
fn rule_bytes(rules: &[abi::RuleEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(core::mem::size_of_val(rules));
    for r in rules {
        for t in &r.terms {
            for w in t.must.iter().chain(&t.must_not) {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out.extend_from_slice(&r.n_terms.to_le_bytes());
        out.extend_from_slice(&r.action.to_le_bytes());
        out.extend_from_slice(&r.ops.to_le_bytes());
        out.extend_from_slice(&r._pad.to_le_bytes());
    }
    out
}

/// `[count, uid_0, …, uid_15]` as u32s (unused slots zero; the program compares only `count`).
fn uid_bytes(uids: &[u32]) -> Vec<u8> {
    let mut out = (uids.len() as u32).to_le_bytes().to_vec();
    for i in 0..abi::MAX_UIDS {
        out.extend_from_slice(&uids.get(i).copied().unwrap_or(0).to_le_bytes());
    }
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    out
}

fn list_bytes(lists: &[u16]) -> Vec<u8> {
    let mut out: Vec<u8> = lists.iter().flat_map(|v| v.to_le_bytes()).collect();
    // Keep the section a multiple of 8 bytes; the padding is never indexed (bounded by length).
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    out
}

/// The annotated listing of every program, for `--emit asm`.
pub fn listing(compiled: &Compiled) -> String {
    let mut out = String::new();
    for p in &compiled.programs {
        out.push_str(&format!(
            "; ---- {} (section {}, {} instructions)\n{}:\n",
            p.code.name,
            p.section,
            p.code.insn_count(),
            p.code.name
        ));
        out.push_str(&p.code.listing);
        out.push('\n');
    }
    out
}

//! Reading a guard object before anything touches the kernel: it must be a BPF ELF object
//! written by guardc in the format version this runtime understands.

use std::path::Path;

use anyhow::{Context, Result, bail};
use guard_ebpf::abi::{self, Metadata};
use guard_ebpf::dfa_table::DfaTable;
use guard_ebpf::elf;

/// An object file read into memory, with its metadata decoded.
pub struct GuardObject {
    pub bytes: Vec<u8>,
    pub meta: Metadata,
    /// The tables that give already running processes their identities.
    pub identities: Identities,
}

/// The identity tables, run in user space exactly as the exec program runs them.
pub struct Identities {
    pub cmdline_dfa: DfaTable,
    pub path_dfa: DfaTable,
    pub rule_lists: Vec<u16>,
}

impl crate::procscan::CmdlineMatcher for Identities {
    fn identities(&self, cmdline: &[u8]) -> u64 {
        self.cmdline_dfa.info(self.cmdline_dfa.run(1, cmdline))
    }

    /// INVARIANT: as the exec program's walk: the reversed path through the path DFA, then the
    /// accept list's entries from `EXE_TAG_BASE` on.
    fn exe_identities(&self, exe: &[u8]) -> u64 {
        if exe.is_empty() {
            return 0;
        }
        let reversed: Vec<u8> = exe.iter().rev().copied().collect();
        let state = self.path_dfa.run(1, &reversed);
        if state == 0 {
            return 0;
        }
        let list = (self.path_dfa.info(state) & 0xffff_ffff) as usize;
        let len = self.rule_lists.get(list).copied().unwrap_or(0) as usize;
        let entries = self.rule_lists.get(list + 1..list + 1 + len).unwrap_or(&[]);
        entries
            .iter()
            .map(|&t| u32::from(t))
            .filter(|t| (abi::EXE_TAG_BASE..abi::EXE_TAG_BASE + 64).contains(t))
            .fold(0, |m, t| m | (1u64 << (t - abi::EXE_TAG_BASE)))
    }
}

fn table(bytes: &[u8], shape: abi::DfaShape, what: &str) -> Result<DfaTable> {
    DfaTable::from_bytes(
        shape.n_states,
        shape.n_classes,
        shape.state_bits,
        shape.class_bits,
        bytes.to_vec(),
    )
    .map_err(|e| anyhow::anyhow!("its {what} is corrupt: {e}"))
}

impl GuardObject {
    pub fn open(path: &Path) -> Result<GuardObject> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        GuardObject::parse(bytes)
            .with_context(|| format!("`{}` is not a usable guard object", path.display()))
    }

    pub fn parse(bytes: Vec<u8>) -> Result<GuardObject> {
        let meta = match elf::decode_metadata(&bytes) {
            Ok(meta) => meta,
            Err(elf::MetadataError::Version { found, compiler }) => bail!(
                "it was written in object format {} by {compiler}, and this guard-run reads \
                 format {}; recompile the policy with a matching guardc",
                found.map_or("(none)".to_string(), |v| v.to_string()),
                abi::FORMAT_VERSION
            ),
            Err(e) => return Err(e.into()),
        };
        let cmdline_dfa = table(
            &elf::read_section(&bytes, abi::RODATA_CMDLINE_DFA)?,
            meta.cmdline_dfa,
            "identity table",
        )?;
        let path_dfa = table(
            &elf::read_section(&bytes, abi::RODATA_PATH_DFA)?,
            meta.path_dfa,
            "path table",
        )?;
        let rule_lists = elf::read_section(&bytes, abi::RODATA_RULE_LISTS)?
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        if meta.rules.is_empty() {
            bail!("it holds no rules");
        }
        Ok(GuardObject {
            bytes,
            meta,
            identities: Identities {
                cmdline_dfa,
                path_dfa,
                rule_lists,
            },
        })
    }

    pub fn rule(&self, id: u32) -> Option<&abi::RuleMeta> {
        self.meta.rules.get(id as usize)
    }
}

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
    /// The identity table, for computing the identities of already running processes.
    pub cmdline_dfa: DfaTable,
}

impl GuardObject {
    pub fn open(path: &Path) -> Result<GuardObject> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        GuardObject::parse(bytes)
            .with_context(|| format!("`{}` is not a usable guard object", path.display()))
    }

    pub fn parse(bytes: Vec<u8>) -> Result<GuardObject> {
        let raw = elf::read_metadata(&bytes)?;
        let meta: Metadata =
            serde_json::from_slice(&raw).context("its metadata section is corrupt")?;
        if meta.format_version != abi::FORMAT_VERSION {
            bail!(
                "it was written in object format {} by {}, and this guard-run reads format {}; \
                 recompile the policy with a matching guardc",
                meta.format_version,
                meta.compiler,
                abi::FORMAT_VERSION
            );
        }
        let shape = meta.cmdline_dfa;
        let table = elf::read_section(&bytes, abi::RODATA_CMDLINE_DFA)?;
        let cmdline_dfa = DfaTable::from_bytes(
            shape.n_states,
            shape.n_classes,
            shape.state_bits,
            shape.class_bits,
            table,
        )
        .map_err(|e| anyhow::anyhow!("its identity table is corrupt: {e}"))?;
        if meta.rules.is_empty() {
            bail!("it holds no rules");
        }
        Ok(GuardObject {
            bytes,
            meta,
            cmdline_dfa,
        })
    }

    pub fn rule(&self, id: u32) -> Option<&abi::RuleMeta> {
        self.meta.rules.get(id as usize)
    }
}

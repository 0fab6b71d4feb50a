//! Loading a compiled object into a [`Sim`]: its programs (by section), its maps as the
//! object defines them (legacy `maps` records, BTF-defined `.maps`, and each `.rodata*` section as a frozen
//! one-element array holding its bytes, as aya makes it), with the relocations applied as
//! aya and the kernel would: map references become `BPF_PSEUDO_MAP_FD`/`BPF_PSEUDO_MAP_VALUE`
//! `ld_imm64`s (the map's index in place of an fd), CO-RE field offsets are patched to the
//! simulator's kernel layout ([`super::layout`]). Nothing else in the bytes changes.

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionFlags, SymbolKind};

use super::vm::{PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, Program};
use super::{MAP_ARRAY, Sim, SimError, btf, layout};
use crate::elf::{BPF_MAP_DEF_SIZE, MapDef};

/// The programs of a loaded object, by function name and section.
#[derive(Clone, Debug)]
pub struct SimObject {
    pub programs: Vec<Program>,
}

impl SimObject {
    pub fn program(&self, name_or_section: &str) -> Result<&Program, SimError> {
        self.programs
            .iter()
            .find(|p| p.name == name_or_section || p.section == name_or_section)
            .ok_or_else(|| SimError::Load(format!("no program `{name_or_section}`")))
    }
}

fn load_err(e: impl std::fmt::Display) -> SimError {
    SimError::Load(e.to_string())
}

impl Sim {
    /// Creates the object's maps in this machine and returns its relocated programs.
    pub fn load(&mut self, elf: &[u8]) -> Result<SimObject, SimError> {
        let file = object::File::parse(elf).map_err(load_err)?;
        if file.architecture() != object::Architecture::Bpf {
            return Err(SimError::Load("not a BPF object".into()));
        }
        let section_name = |i| {
            file.section_by_index(i)
                .ok()
                .and_then(|s| s.name().ok().map(str::to_string))
        };
        // Maps: one symbol per `bpf_map_def` in `maps`.
        for sym in file.symbols() {
            let Some(index) = sym.section_index() else {
                continue;
            };
            if section_name(index).as_deref() != Some("maps") {
                continue;
            }
            let sec = file.section_by_index(index).map_err(load_err)?;
            let data = sec.data().map_err(load_err)?;
            let at = sym.address() as usize;
            let d = data
                .get(at..at + BPF_MAP_DEF_SIZE)
                .ok_or_else(|| SimError::Load("map definition out of range".into()))?;
            let w =
                |i: usize| u32::from_le_bytes([d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]]);
            let def = MapDef {
                map_type: w(0),
                key_size: w(1),
                value_size: w(2),
                max_entries: w(3),
                map_flags: w(4),
            };
            self.add_map(sym.name().map_err(load_err)?, def, None)?;
        }
        // BTF-defined maps: one VAR of the `.BTF` per symbol in `.maps`.
        if let Some(btf) = file.section_by_name(".BTF")
            && file.section_by_name(crate::btf::MAPS_SECTION).is_some()
        {
            for (name, def) in
                btf::btf_maps(btf.data().map_err(load_err)?).map_err(SimError::Load)?
            {
                self.add_map(&name, def, None)?;
            }
        }
        // Read-only data: a frozen one-element array per section.
        for sec in file.sections() {
            let name = sec.name().map_err(load_err)?;
            if name.starts_with(".rodata") {
                let data = sec.data().map_err(load_err)?;
                let def = MapDef {
                    map_type: MAP_ARRAY,
                    key_size: 4,
                    value_size: data.len() as u32,
                    max_entries: 1,
                    map_flags: 0,
                };
                self.add_map(name, def, Some(data))?;
            }
        }
        let core = match (
            file.section_by_name(".BTF"),
            file.section_by_name(".BTF.ext"),
        ) {
            (Some(b), Some(e)) => {
                btf::core_relocs(b.data().map_err(load_err)?, e.data().map_err(load_err)?)
                    .map_err(SimError::Load)?
            }
            _ => Vec::new(),
        };
        let mut programs = Vec::new();
        for sec in file.sections() {
            let exec = matches!(sec.flags(), SectionFlags::Elf { sh_flags }
                if sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0);
            if !exec {
                continue;
            }
            let section = sec.name().map_err(load_err)?.to_string();
            let name = file
                .symbols()
                .find(|s| s.section_index() == Some(sec.index()) && s.kind() == SymbolKind::Text)
                .and_then(|s| s.name().ok().map(str::to_string))
                .unwrap_or_else(|| section.clone());
            let mut prog = Program::from_code(&name, &section, sec.data().map_err(load_err)?)?;
            for (offset, rel) in sec.relocations() {
                let RelocationTarget::Symbol(si) = rel.target() else {
                    return Err(SimError::Load(format!(
                        "`{name}`: relocation without symbol"
                    )));
                };
                let sym = file.symbol_by_index(si).map_err(load_err)?;
                let target = sym
                    .section_index()
                    .and_then(section_name)
                    .unwrap_or_default();
                let by_symbol = target == "maps" || target == crate::btf::MAPS_SECTION;
                let map_name = if by_symbol {
                    sym.name().map_err(load_err)?.to_string()
                } else {
                    target.clone()
                };
                let map = self.map_index(&map_name).ok_or_else(|| {
                    SimError::Load(format!("`{name}`: relocation against unknown `{map_name}`"))
                })?;
                let i = offset as usize / 8;
                if prog.insns.get(i).map(|x| x.code) != Some(0x18) || i + 1 >= prog.insns.len() {
                    return Err(SimError::Load(format!(
                        "`{name}`: relocation at {i} is not on an ld_imm64"
                    )));
                }
                if by_symbol {
                    prog.insns[i].src = PSEUDO_MAP_FD;
                } else {
                    // aya: insn[1].imm = insn[0].imm + sym.address, insn[0].imm = fd.
                    prog.insns[i + 1].imm = prog.insns[i].imm.wrapping_add(sym.address() as i32);
                    prog.insns[i].src = PSEUDO_MAP_VALUE;
                }
                prog.insns[i].imm = map as i32;
            }
            for r in core.iter().filter(|r| r.section == section) {
                patch_core(&mut prog, r)?;
            }
            programs.push(prog);
        }
        Ok(SimObject { programs })
    }
}

/// Rewrites the offset of one CO-RE access to the simulator's layout, checking first (as aya
/// does) that the instruction holds the local offset.
fn patch_core(prog: &mut Program, r: &btf::CoreRelo) -> Result<(), SimError> {
    let bad = |why: String| {
        SimError::Load(format!(
            "`{}`: CO-RE {}{:?} at instruction {}: {why}",
            prog.name, r.root, r.path, r.insn
        ))
    };
    let (target, _) = layout::offset_of(&r.root, &r.path).map_err(bad)?;
    let insn = prog
        .insns
        .get(r.insn)
        .copied()
        .ok_or_else(|| bad("out of range".into()))?;
    let class = insn.code & 0x07;
    let local = r.local_offset as i64;
    match class {
        0x01..=0x03 => {
            if i64::from(insn.off) != local {
                return Err(bad(format!("holds offset {}, BTF says {local}", insn.off)));
            }
            prog.insns[r.insn].off = i16::try_from(target).map_err(|e| bad(e.to_string()))?;
        }
        0x04 | 0x07 if insn.code & 0x08 == 0 => {
            if i64::from(insn.imm) != local {
                return Err(bad(format!("holds imm {}, BTF says {local}", insn.imm)));
            }
            prog.insns[r.insn].imm = target as i32;
        }
        _ => {
            return Err(bad(format!(
                "opcode {:#04x} cannot be relocated",
                insn.code
            )));
        }
    }
    Ok(())
}

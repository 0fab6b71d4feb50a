//! The object writer: one self-contained BPF ELF relocatable that aya 0.14 (aya-obj 0.3) loads,
//! plus the readers the runtime uses to get guard's own sections back out of it.
//!
//! Layout (what aya-obj's `Object::parse` expects, aya-obj 0.3 obj.rs; toolchain notes §1, §3):
//! * `license`: NUL-terminated string (aya: `parse_license`, at least 2 bytes).
//! * `maps`: legacy `struct bpf_map_def` records (7 x u32 = 28 bytes), one global STT_OBJECT
//!   symbol of size 28 per map; aya names each map after its symbol (`parse_maps_section`).
//!   Omitted when there are no maps (aya rejects a `maps` section without symbols).
//! * `.maps`: BTF-defined maps ([`btf::BtfMap`]: task storage needs BTF for its key and
//!   value), [`btf::BTF_MAP_DEF_SIZE`] zero bytes and one global STT_OBJECT symbol each, named
//!   after the map's `.BTF` VAR in the `.maps` DATASEC (aya-obj `parse_btf_maps`).
//! * `.rodata*`: one section per read-only blob; aya turns each into a frozen one-element
//!   ARRAY map named after the section. Each gets one STT_OBJECT symbol covering it.
//! * one SHF_EXECINSTR section per program (its name selects the program type, e.g.
//!   `tracepoint/...`, `tp_btf/...`), with one global STT_FUNC symbol of the exact code size:
//!   aya keys programs by that symbol's name and slices `[st_value, st_value + st_size)`.
//! * `.BTF` / `.BTF.ext` (non-alloc PROGBITS) from [`crate::btf`].
//! * [`META_SECTION`] (non-alloc PROGBITS): guard's metadata. aya-obj ignores it: its name
//!   matches none of the prefixes of `EbpfSectionKind::from_name` and it is not SHF_EXECINSTR,
//!   so `parse_section` sees `EbpfSectionKind::Undefined` and does nothing.
//!
//! Relocations are `SHT_REL` `R_BPF_64_64` on `ld_imm64`s, always with addend 0: the `object`
//! crate stores a non-zero addend of an implicit-addend (REL) target *at r_offset*, i.e. over the
//! instruction's opcode (object 0.39 write/mod.rs `write_relocation_addend`). Offsets into data
//! go in the instruction's `imm`, which aya adds to the symbol value (aya-obj relocation.rs
//! `relocate_maps`: `insn[1].imm = insn[0].imm + sym.address`). Map relocations target each
//! map's own symbol: aya looks maps up by symbol index first and keeps only one map per
//! section index.

use std::collections::{BTreeSet, HashSet};

use object::write::{Object, Relocation, Symbol, SymbolId, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind,
    SymbolScope, elf,
};

use crate::btf::{self, CoreRelocation};

pub const META_SECTION: &str = ".guard.meta";
const LICENSE_SECTION: &str = "license";
const MAPS_SECTION: &str = "maps";
const BTF_SECTION: &str = ".BTF";
const BTF_EXT_SECTION: &str = ".BTF.ext";
/// `sizeof(struct bpf_map_def)` as aya reads it: type, key, value, max_entries, flags, id,
/// pinning.
pub const BPF_MAP_DEF_SIZE: usize = 28;
const INSN_SIZE: usize = 8;
/// `BPF_LD | BPF_IMM | BPF_DW`: the first half of a 16-byte `ld_imm64`.
const LD_IMM64: u8 = 0x18;

/// A legacy map definition (`struct bpf_map_def`, `id` and `pinning` written as 0; the runtime
/// chooses pin paths with `EbpfLoader::map_pin_path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapDef {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
}

impl MapDef {
    pub fn to_bytes(&self) -> [u8; BPF_MAP_DEF_SIZE] {
        let fields = [
            self.map_type,
            self.key_size,
            self.value_size,
            self.max_entries,
            self.map_flags,
            0, // id
            0, // pinning
        ];
        let mut out = [0; BPF_MAP_DEF_SIZE];
        for (chunk, v) in out.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }
}

/// An `ld_imm64` at `insn_index` that references a legacy map (by map name) or a read-only data
/// section (by section name, e.g. `.rodata.pdfa`); its `imm` already holds the offset into the
/// data (0 for maps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapReloc {
    pub insn_index: usize,
    pub symbol: String,
}

/// A CO-RE field access at `insn_index` (see [`crate::ktypes::field`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreReloc {
    pub insn_index: usize,
    pub root: &'static str,
    pub access: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramObject {
    /// STT_FUNC symbol name: aya's program key (`ebpf.program_mut(name)`).
    pub name: String,
    /// ELF section name, e.g. `tracepoint/syscalls/sys_exit_openat`, `tp_btf/sched_process_exec`.
    pub section: String,
    /// Little-endian 8-byte instructions.
    pub code: Vec<u8>,
    pub map_relocs: Vec<MapReloc>,
    pub core_relocs: Vec<CoreReloc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpec {
    pub license: String,
    pub programs: Vec<ProgramObject>,
    pub maps: Vec<(String, MapDef)>,
    /// Maps defined in BTF (`.maps`).
    pub btf_maps: Vec<btf::BtfMap>,
    /// (section name starting with `.rodata`, contents).
    pub rodata: Vec<(String, Vec<u8>)>,
    /// Written to the non-alloc section [`META_SECTION`].
    pub metadata: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("license `{0}` must be non-empty and contain no NUL byte")]
    InvalidLicense(String),
    #[error("invalid {what} name `{name}`: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("duplicate {what} `{name}`")]
    Duplicate { what: &'static str, name: String },
    #[error("program `{program}`: code length {len} is not a multiple of 8")]
    CodeLength { program: String, len: usize },
    #[error(
        "program `{program}`: instruction {insn_index} out of range ({insn_count} instructions)"
    )]
    InsnOutOfRange {
        program: String,
        insn_index: usize,
        insn_count: usize,
    },
    #[error(
        "program `{program}`: map relocation at instruction {insn_index} is not on an ld_imm64 \
         (opcode {opcode:#04x})"
    )]
    NotLdImm64 {
        program: String,
        insn_index: usize,
        opcode: u8,
    },
    #[error(
        "program `{program}`: instruction {insn_index} references unknown map or data section \
         `{symbol}`"
    )]
    UnknownSymbol {
        program: String,
        insn_index: usize,
        symbol: String,
    },
    #[error(
        "program `{program}`: instruction {insn_index} reads offset {offset} of `{symbol}`, \
         which has {size} bytes"
    )]
    DataOffset {
        program: String,
        insn_index: usize,
        symbol: String,
        offset: i64,
        size: usize,
    },
    #[error(
        "program `{program}`: CO-RE relocation at instruction {insn_index} needs LDX/ST/STX, \
         ALU with an immediate, or ld_imm64 (opcode {opcode:#04x})"
    )]
    NotCoreRelocatable {
        program: String,
        insn_index: usize,
        opcode: u8,
    },
    #[error("program `{program}`: two relocations on instruction {insn_index}")]
    DuplicateReloc { program: String, insn_index: usize },
    #[error(transparent)]
    Btf(#[from] btf::BtfError),
    #[error("writing ELF: {0}")]
    Write(#[from] object::write::Error),
    #[error("not an ELF file")]
    NotElf,
    #[error(
        "not a BPF object (e_machine {machine}, expected EM_BPF {})",
        elf::EM_BPF
    )]
    NotBpf { machine: u16 },
    #[error("malformed ELF: {0}")]
    Malformed(String),
    #[error("no `{0}` section in the object")]
    MissingSection(String),
}

fn check_name(what: &'static str, name: &str) -> Result<(), ElfError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(ElfError::InvalidName {
        what,
        name: name.to_owned(),
        reason,
    })
}

/// Section-name prefixes aya-obj gives a meaning of its own (`EbpfSectionKind::from_name`); a
/// program section starting with one of them would not be parsed as a program.
const RESERVED_PREFIXES: [&str; 8] = [
    "license", "version", "maps", ".maps", ".text", ".bss", ".data", ".rodata",
];

fn check_sections(spec: &ObjectSpec) -> Result<(), ElfError> {
    let mut sections = HashSet::new();
    for (name, data) in &spec.rodata {
        check_name("rodata section", name)?;
        if !name.starts_with(".rodata") {
            return Err(ElfError::InvalidName {
                what: "rodata section",
                name: name.clone(),
                reason: "must start with `.rodata` (aya maps sections by name prefix)",
            });
        }
        if data.is_empty() {
            // aya would create an ARRAY map with value_size 0, which the kernel rejects.
            return Err(ElfError::InvalidName {
                what: "rodata section",
                name: name.clone(),
                reason: "has no contents",
            });
        }
        if !sections.insert(name.as_str()) {
            return Err(ElfError::Duplicate {
                what: "section",
                name: name.clone(),
            });
        }
    }
    for p in &spec.programs {
        check_name("program section", &p.section)?;
        let reserved = RESERVED_PREFIXES.iter().any(|r| p.section.starts_with(r))
            || [BTF_SECTION, BTF_EXT_SECTION, META_SECTION].contains(&p.section.as_str());
        if reserved {
            return Err(ElfError::InvalidName {
                what: "program section",
                name: p.section.clone(),
                reason: "is reserved for data by aya",
            });
        }
        // aya finds the ELF section of CO-RE records by name (`section_infos`), so names must
        // be unique; one program per section also keeps symbol values at 0.
        if !sections.insert(p.section.as_str()) {
            return Err(ElfError::Duplicate {
                what: "section",
                name: p.section.clone(),
            });
        }
    }
    Ok(())
}

/// Checks a program's code and relocations; returns its instruction count.
fn check_program(p: &ProgramObject, spec: &ObjectSpec) -> Result<usize, ElfError> {
    let program = || p.name.clone();
    if p.code.is_empty() || !p.code.len().is_multiple_of(INSN_SIZE) {
        // Empty code also counts: aya only treats non-empty executable sections as programs.
        return Err(ElfError::CodeLength {
            program: program(),
            len: p.code.len(),
        });
    }
    let count = p.code.len() / INSN_SIZE;
    let opcode = |i: usize| p.code[i * INSN_SIZE];
    let imm = |i: usize| {
        let b = &p.code[i * INSN_SIZE + 4..i * INSN_SIZE + 8];
        i32::from_le_bytes([b[0], b[1], b[2], b[3]])
    };
    let mut seen = BTreeSet::new();
    let mut check_index = |insn_index: usize, width: usize| {
        if insn_index + width > count {
            return Err(ElfError::InsnOutOfRange {
                program: program(),
                insn_index,
                insn_count: count,
            });
        }
        if !seen.insert(insn_index) {
            return Err(ElfError::DuplicateReloc {
                program: program(),
                insn_index,
            });
        }
        Ok(())
    };
    for r in &p.map_relocs {
        check_index(r.insn_index, 2)?;
        // An ld_imm64 spans two slots; the second one has opcode 0.
        if opcode(r.insn_index) != LD_IMM64 || opcode(r.insn_index + 1) != 0 {
            return Err(ElfError::NotLdImm64 {
                program: program(),
                insn_index: r.insn_index,
                opcode: opcode(r.insn_index),
            });
        }
        let offset = i64::from(imm(r.insn_index));
        let is_map = spec.maps.iter().any(|(n, _)| *n == r.symbol)
            || spec.btf_maps.iter().any(|m| m.name == r.symbol);
        let size = if is_map {
            0
        } else if let Some((_, data)) = spec.rodata.iter().find(|(n, _)| *n == r.symbol) {
            data.len()
        } else {
            return Err(ElfError::UnknownSymbol {
                program: program(),
                insn_index: r.insn_index,
                symbol: r.symbol.clone(),
            });
        };
        // Map pointers carry no offset; data pointers must point inside the data.
        let ok = if size == 0 {
            offset == 0
        } else {
            (0..size as i64).contains(&offset)
        };
        if !ok {
            return Err(ElfError::DataOffset {
                program: program(),
                insn_index: r.insn_index,
                symbol: r.symbol.clone(),
                offset,
                size,
            });
        }
    }
    for r in &p.core_relocs {
        check_index(r.insn_index, 1)?;
        // What aya's `ComputedRelocation::apply` can patch: `off` of LDX/ST/STX, `imm` of an
        // ALU/ALU64 with BPF_K source, or the 64-bit immediate of an ld_imm64.
        let op = opcode(r.insn_index);
        let ok = match op & 0x07 {
            0x01..=0x03 => true,
            0x04 | 0x07 => op & 0x08 == 0,
            0x00 => op == LD_IMM64 && r.insn_index + 1 < count,
            _ => false,
        };
        if !ok {
            return Err(ElfError::NotCoreRelocatable {
                program: program(),
                insn_index: r.insn_index,
                opcode: op,
            });
        }
    }
    Ok(count)
}

/// Writes `spec` as a BPF ELF relocatable. Same input, same bytes.
pub fn write_object(spec: &ObjectSpec) -> Result<Vec<u8>, ElfError> {
    if spec.license.is_empty() || spec.license.contains('\0') {
        return Err(ElfError::InvalidLicense(spec.license.clone()));
    }
    check_sections(spec)?;
    // Symbol names: aya keys maps and programs by symbol name, so they must be unique across
    // maps, rodata anchors (named after their sections) and programs.
    let mut symbols = HashSet::new();
    let names = spec.maps.iter().map(|(n, _)| ("map", n));
    let names = names.chain(spec.btf_maps.iter().map(|m| ("map", &m.name)));
    let names = names.chain(spec.rodata.iter().map(|(n, _)| ("rodata section", n)));
    for (what, name) in names.chain(spec.programs.iter().map(|p| ("program", &p.name))) {
        check_name(what, name)?;
        if !symbols.insert(name.as_str()) {
            return Err(ElfError::Duplicate {
                what: "symbol",
                name: name.clone(),
            });
        }
    }
    let mut core_relocs = Vec::new();
    for p in &spec.programs {
        check_program(p, spec)?;
        core_relocs.extend(p.core_relocs.iter().map(|r| CoreRelocation {
            section_name: p.section.clone(),
            insn_byte_offset: (r.insn_index * INSN_SIZE) as u32,
            root: r.root,
            access: r.access.clone(),
        }));
    }
    let encoded = btf::encode(&core_relocs, &spec.btf_maps)?;

    let mut obj = Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);
    let add_symbol = |obj: &mut Object, name: &str, section, value, size, kind, scope| {
        obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value,
            size,
            kind,
            scope,
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        })
    };

    let license = obj.add_section(Vec::new(), LICENSE_SECTION.into(), SectionKind::Data);
    let mut text = spec.license.as_bytes().to_vec();
    text.push(0);
    obj.append_section_data(license, &text, 1);

    // name -> symbol for map relocations
    let mut targets: Vec<(&str, SymbolId)> = Vec::new();
    if !spec.maps.is_empty() {
        let maps = obj.add_section(Vec::new(), MAPS_SECTION.into(), SectionKind::Data);
        for (name, def) in &spec.maps {
            let off = obj.append_section_data(maps, &def.to_bytes(), 4);
            let sym = add_symbol(
                &mut obj,
                name,
                maps,
                off,
                BPF_MAP_DEF_SIZE as u64,
                SymbolKind::Data,
                SymbolScope::Dynamic,
            );
            targets.push((name, sym));
        }
    }
    if !spec.btf_maps.is_empty() {
        let maps = obj.add_section(Vec::new(), btf::MAPS_SECTION.into(), SectionKind::Data);
        for m in &spec.btf_maps {
            let def = [0u8; btf::BTF_MAP_DEF_SIZE as usize];
            let off = obj.append_section_data(maps, &def, 8);
            let sym = add_symbol(
                &mut obj,
                &m.name,
                maps,
                off,
                u64::from(btf::BTF_MAP_DEF_SIZE),
                SymbolKind::Data,
                SymbolScope::Dynamic,
            );
            targets.push((&m.name, sym));
        }
    }
    for (name, data) in &spec.rodata {
        let sec = obj.add_section(
            Vec::new(),
            name.as_bytes().to_vec(),
            SectionKind::ReadOnlyData,
        );
        obj.append_section_data(sec, data, 8);
        // Local: it only anchors relocations (aya resolves data maps by section index) and lets
        // the runtime patch the whole blob with `EbpfLoader::override_global(name, ..)`.
        let sym = add_symbol(
            &mut obj,
            name,
            sec,
            0,
            data.len() as u64,
            SymbolKind::Data,
            SymbolScope::Compilation,
        );
        targets.push((name, sym));
    }
    for p in &spec.programs {
        let sec = obj.add_section(Vec::new(), p.section.as_bytes().to_vec(), SectionKind::Text);
        obj.append_section_data(sec, &p.code, 8);
        add_symbol(
            &mut obj,
            &p.name,
            sec,
            0,
            p.code.len() as u64,
            SymbolKind::Text,
            SymbolScope::Dynamic,
        );
        let mut relocs: Vec<&MapReloc> = p.map_relocs.iter().collect();
        relocs.sort_by_key(|r| r.insn_index);
        for r in relocs {
            let symbol = targets
                .iter()
                .find(|(n, _)| *n == r.symbol)
                .map(|&(_, s)| s)
                .expect("checked by check_program");
            obj.add_relocation(
                sec,
                Relocation {
                    offset: (r.insn_index * INSN_SIZE) as u64,
                    symbol,
                    addend: 0, // never non-zero: see the module comment
                    flags: RelocationFlags::Elf {
                        r_type: elf::R_BPF_64_64,
                    },
                },
            )?;
        }
    }
    for (name, data) in [
        (BTF_SECTION, &encoded.btf),
        (BTF_EXT_SECTION, &encoded.btf_ext),
        (META_SECTION, &spec.metadata),
    ] {
        let sec = obj.add_section(Vec::new(), name.into(), SectionKind::Other);
        obj.append_section_data(sec, data, if name == META_SECTION { 1 } else { 4 });
    }
    Ok(obj.write()?)
}

/// Changes the type of BTF-defined map `name` in the object's bytes (see [`btf::set_map_type`]).
pub fn set_map_type(elf_bytes: &mut [u8], name: &str, map_type: u32) -> Result<(), ElfError> {
    let range = section_file_range(elf_bytes, BTF_SECTION)?;
    btf::set_map_type(&mut elf_bytes[range], name, map_type)
        .map_err(|e| ElfError::Malformed(format!("`.BTF`: {e}")))
}

/// Reads guard's metadata back from an object written by [`write_object`].
pub fn read_metadata(elf_bytes: &[u8]) -> Result<Vec<u8>, ElfError> {
    read_section(elf_bytes, META_SECTION)
}

/// Why an object's metadata cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error("its metadata section is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// Written in another object format than [`crate::abi::FORMAT_VERSION`].
    #[error("it is in object format {}, written by {compiler}; this build reads format {}",
        found.map_or("(none)".to_string(), |v| v.to_string()), crate::abi::FORMAT_VERSION)]
    Version {
        found: Option<u64>,
        compiler: String,
    },
}

/// guard's metadata of an object [`write_object`] wrote, refusing another format version.
/// The version is checked first: an object of another format would fail to decode with a
/// message about some field, when the real cause is the version.
pub fn decode_metadata(elf_bytes: &[u8]) -> Result<crate::abi::Metadata, MetadataError> {
    let value: serde_json::Value = serde_json::from_slice(&read_metadata(elf_bytes)?)?;
    let found = value
        .get("format_version")
        .and_then(serde_json::Value::as_u64);
    if found != Some(u64::from(crate::abi::FORMAT_VERSION)) {
        let compiler = value
            .get("compiler")
            .and_then(|c| c.as_str())
            .unwrap_or("an unknown compiler")
            .to_owned();
        return Err(MetadataError::Version { found, compiler });
    }
    Ok(serde_json::from_value(value)?)
}

/// Returns the contents of section `name` (e.g. `.rodata.cdfa`) of a BPF ELF object.
pub fn read_section(elf_bytes: &[u8], name: &str) -> Result<Vec<u8>, ElfError> {
    use object::read::elf::{ElfFile64, FileHeader as _};
    use object::{Object as _, ObjectSection as _};

    if !elf_bytes.starts_with(&elf::ELFMAG) {
        return Err(ElfError::NotElf);
    }
    let file = ElfFile64::<Endianness>::parse(elf_bytes)
        .map_err(|e| ElfError::Malformed(e.to_string()))?;
    let machine = file.elf_header().e_machine(file.endian());
    if machine != elf::EM_BPF {
        return Err(ElfError::NotBpf { machine });
    }
    let section = file
        .section_by_name(name)
        .ok_or_else(|| ElfError::MissingSection(name.to_owned()))?;
    let data = section
        .data()
        .map_err(|e| ElfError::Malformed(e.to_string()))?;
    Ok(data.to_vec())
}

/// Where section `name`'s contents lie in the file, for a loader that fills in values known
/// only on the node (user names resolved to uids) before handing the object to the kernel.
pub fn section_file_range(
    elf_bytes: &[u8],
    name: &str,
) -> Result<core::ops::Range<usize>, ElfError> {
    use object::Object as _;
    use object::ObjectSection as _;
    use object::read::elf::{ElfFile64, FileHeader as _};

    if !elf_bytes.starts_with(&elf::ELFMAG) {
        return Err(ElfError::NotElf);
    }
    let file = ElfFile64::<Endianness>::parse(elf_bytes)
        .map_err(|e| ElfError::Malformed(e.to_string()))?;
    let machine = file.elf_header().e_machine(file.endian());
    if machine != elf::EM_BPF {
        return Err(ElfError::NotBpf { machine });
    }
    let section = file
        .section_by_name(name)
        .ok_or_else(|| ElfError::MissingSection(name.to_owned()))?;
    let (start, len) = section
        .file_range()
        .ok_or_else(|| ElfError::Malformed(format!("section {name} has no file contents")))?;
    let (start, len) = (start as usize, len as usize);
    if start
        .checked_add(len)
        .is_none_or(|end| end > elf_bytes.len())
    {
        return Err(ElfError::Malformed(format!(
            "section {name} lies outside the file"
        )));
    }
    Ok(start..start + len)
}

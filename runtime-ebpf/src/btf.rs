//! A small deterministic BTF encoder: the local kernel-struct descriptions of [`crate::ktypes`]
//! as `.BTF`, and CO-RE relocation records as `.BTF.ext`.
//!
//! Why our own encoder: aya-obj 0.3's public BTF builder has no constructors for STRUCT or
//! ARRAY (`Struct::new`/`Array::new` are crate-private), see the toolchain notes §2.3.
//!
//! Format (kernel `include/uapi/linux/btf.h`, libbpf `btf.h`; little-endian, our objects are
//! EM_BPF little-endian only):
//! * `.BTF` = `btf_header` (24 bytes) + type records + string table. Type ids start at 1 in
//!   emission order; id 0 is `void`. The string table starts with `"\0"`.
//! * `.BTF.ext` = `btf_ext_header` (32 bytes, so it includes the core_relo fields) + three
//!   info blocks, each `u32 rec_size` followed by per-ELF-section groups `{u32 sec_name_off,
//!   u32 num_info, records...}`. Section names and CO-RE access strings live in the `.BTF`
//!   string table, which is why both sections are encoded together.
//!
//! Output is a pure function of the input: types are emitted in [`ktypes::structs`] order, then
//! the helper types (INT/PTR/CONST/ARRAY) in first-use order; strings in first-use order.

use std::collections::HashMap;

use crate::ktypes::{self, KType};

const BTF_MAGIC: u16 = 0xeb9f;
const BTF_VERSION: u8 = 1;
const BTF_HEADER_LEN: u32 = 24;
const BTF_EXT_HEADER_LEN: u32 = 32;

const BTF_KIND_INT: u32 = 1;
const BTF_KIND_PTR: u32 = 2;
const BTF_KIND_ARRAY: u32 = 3;
const BTF_KIND_STRUCT: u32 = 4;
const BTF_KIND_CONST: u32 = 10;
const BTF_INT_SIGNED: u32 = 1;

/// `sizeof(struct bpf_func_info)`, `sizeof(struct bpf_line_info)`, `sizeof(struct
/// bpf_core_relo)`.
const FUNC_INFO_REC_SIZE: u32 = 8;
const LINE_INFO_REC_SIZE: u32 = 16;
const CORE_RELO_REC_SIZE: u32 = 16;
/// `BPF_CORE_FIELD_BYTE_OFFSET`: the relocated value is the byte offset of the field; aya
/// writes it into `off` of LDX/ST/STX or `imm` of ALU-immediate instructions.
pub const CORE_FIELD_BYTE_OFFSET: u32 = 0;

/// One CO-RE relocation: the instruction at `insn_byte_offset` (bytes from the start of ELF
/// section `section_name`) accesses `access` (e.g. `"0:0:1"`) from struct `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreRelocation {
    pub section_name: String,
    pub insn_byte_offset: u32,
    pub root: &'static str,
    pub access: String,
}

/// Contents of the `.BTF` and `.BTF.ext` sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBtf {
    pub btf: Vec<u8>,
    pub btf_ext: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("CO-RE relocation in `{section}` at byte {offset}: {reason}")]
    InvalidRelocation {
        section: String,
        offset: u32,
        reason: String,
    },
    #[error("two CO-RE relocations in `{section}` at byte {offset}")]
    DuplicateRelocation { section: String, offset: u32 },
}

/// BTF type id of local struct `name`: struct `i` of [`ktypes::structs`] is emitted as id
/// `i + 1` (INVARIANT: [`encode`] emits the structs first, in that order).
pub fn struct_type_id(name: &str) -> Option<u32> {
    ktypes::structs()
        .iter()
        .position(|s| s.name == name)
        .map(|i| i as u32 + 1)
}

struct Strings {
    bytes: Vec<u8>,
    offsets: HashMap<String, u32>,
}

impl Strings {
    fn new() -> Self {
        // Offset 0 is the empty string: anonymous types (PTR, CONST, ARRAY) use name_off 0;
        // the kernel rejects them if name_off points at a separately added "" (notes §1.4).
        Strings {
            bytes: vec![0],
            offsets: HashMap::new(),
        }
    }

    fn add(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        if let Some(&off) = self.offsets.get(s) {
            return off;
        }
        let off = self.bytes.len() as u32;
        self.bytes.extend_from_slice(s.as_bytes());
        self.bytes.push(0);
        self.offsets.insert(s.to_owned(), off);
        off
    }
}

struct TypeTable {
    /// Encoded records of the non-struct types, in id order after the structs.
    extra: Vec<Vec<u8>>,
    ids: HashMap<KType, u32>,
    n_structs: u32,
}

fn put(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn type_header(buf: &mut Vec<u8>, name_off: u32, kind: u32, vlen: u32, size_or_type: u32) {
    put(buf, name_off);
    put(buf, (kind << 24) | vlen); // kind_flag 0: struct member offsets are plain bit offsets
    put(buf, size_or_type);
}

impl TypeTable {
    fn id(&mut self, ty: &KType, strings: &mut Strings) -> u32 {
        match ty {
            KType::Void => return 0,
            KType::Struct(name) => {
                // ktypes::validate() (unit-tested) guarantees every referenced struct exists.
                return struct_type_id(name)
                    .unwrap_or_else(|| panic!("ktypes references undescribed struct `{name}`"));
            }
            _ => {}
        }
        if let Some(&id) = self.ids.get(ty) {
            return id;
        }
        let mut rec = Vec::with_capacity(16);
        match ty {
            KType::Int(i) => {
                let enc = if i.signed() { BTF_INT_SIGNED } else { 0 };
                type_header(&mut rec, strings.add(i.name()), BTF_KIND_INT, 0, i.size());
                put(&mut rec, (enc << 24) | (i.size() * 8));
            }
            KType::Ptr(to) => {
                let to = self.id(to, strings);
                type_header(&mut rec, 0, BTF_KIND_PTR, 0, to);
            }
            KType::Const(to) => {
                let to = self.id(to, strings);
                type_header(&mut rec, 0, BTF_KIND_CONST, 0, to);
            }
            KType::Array(elem, n) => {
                let elem = self.id(elem, strings);
                // The kernel requires a "regular" INT as the index type (btf_array_resolve).
                let index = self.id(&KType::Int(ktypes::KInt::UInt), strings);
                type_header(&mut rec, 0, BTF_KIND_ARRAY, 0, 0);
                put(&mut rec, elem);
                put(&mut rec, index);
                put(&mut rec, *n);
            }
            KType::Void | KType::Struct(_) => unreachable!("handled above"),
        }
        self.extra.push(rec);
        let id = self.n_structs + self.extra.len() as u32;
        self.ids.insert(*ty, id);
        id
    }
}

fn encode_types(strings: &mut Strings) -> Vec<u8> {
    let structs = ktypes::structs();
    let mut table = TypeTable {
        extra: Vec::new(),
        ids: HashMap::new(),
        n_structs: structs.len() as u32,
    };
    let mut struct_records = Vec::new();
    for s in structs {
        let mut rec = Vec::with_capacity(12 + 12 * s.members.len());
        type_header(
            &mut rec,
            strings.add(s.name),
            BTF_KIND_STRUCT,
            s.members.len() as u32,
            s.size,
        );
        for m in s.members {
            put(&mut rec, strings.add(m.name));
            put(&mut rec, table.id(&m.ty, strings));
            put(&mut rec, m.offset * 8);
        }
        struct_records.push(rec);
    }
    struct_records
        .into_iter()
        .chain(table.extra)
        .flatten()
        .collect()
}

/// Encodes all local kernel types and the given CO-RE relocations (all of kind
/// FIELD_BYTE_OFFSET). Relocations are grouped per ELF section in order of first appearance and
/// sorted by instruction offset within a section.
pub fn encode(relocs: &[CoreRelocation]) -> Result<EncodedBtf, BtfError> {
    let mut strings = Strings::new();
    let types = encode_types(&mut strings);

    // Group per section, keeping first-appearance order of sections.
    let mut groups: Vec<(&str, Vec<&CoreRelocation>)> = Vec::new();
    for r in relocs {
        let invalid = |reason: String| BtfError::InvalidRelocation {
            section: r.section_name.clone(),
            offset: r.insn_byte_offset,
            reason,
        };
        if !r.insn_byte_offset.is_multiple_of(8) {
            return Err(invalid("offset is not a multiple of 8".into()));
        }
        ktypes::resolve_access(r.root, &r.access).map_err(invalid)?;
        match groups.iter_mut().find(|(s, _)| *s == r.section_name) {
            Some((_, v)) => v.push(r),
            None => groups.push((&r.section_name, vec![r])),
        }
    }
    let mut core = Vec::new();
    put(&mut core, CORE_RELO_REC_SIZE);
    for (section, mut recs) in groups {
        recs.sort_by_key(|r| r.insn_byte_offset);
        if let Some(w) = recs
            .windows(2)
            .find(|w| w[0].insn_byte_offset == w[1].insn_byte_offset)
        {
            return Err(BtfError::DuplicateRelocation {
                section: section.to_owned(),
                offset: w[0].insn_byte_offset,
            });
        }
        put(&mut core, strings.add(section));
        put(&mut core, recs.len() as u32);
        for r in recs {
            put(&mut core, r.insn_byte_offset);
            put(
                &mut core,
                struct_type_id(r.root).expect("validated by resolve_access"),
            );
            put(&mut core, strings.add(&r.access));
            put(&mut core, CORE_FIELD_BYTE_OFFSET);
        }
    }

    let mut btf = Vec::with_capacity(24 + types.len() + strings.bytes.len());
    btf.extend_from_slice(&BTF_MAGIC.to_le_bytes());
    btf.push(BTF_VERSION);
    btf.push(0); // flags
    put(&mut btf, BTF_HEADER_LEN);
    put(&mut btf, 0); // type_off
    put(&mut btf, types.len() as u32); // type_len
    put(&mut btf, types.len() as u32); // str_off
    put(&mut btf, strings.bytes.len() as u32); // str_len
    btf.extend_from_slice(&types);
    btf.extend_from_slice(&strings.bytes);

    // func_info and line_info are present but empty (just their rec_size): aya then reports
    // rec sizes with zero counts, which the kernel ignores (`check_btf_info`: nothing to check
    // when func_info_cnt and line_info_cnt are 0). Offsets are relative to the header end.
    let mut ext = Vec::with_capacity(32 + 8 + core.len());
    ext.extend_from_slice(&BTF_MAGIC.to_le_bytes());
    ext.push(BTF_VERSION);
    ext.push(0); // flags
    put(&mut ext, BTF_EXT_HEADER_LEN);
    put(&mut ext, 0); // func_info_off
    put(&mut ext, 4); // func_info_len
    put(&mut ext, 4); // line_info_off
    put(&mut ext, 4); // line_info_len
    put(&mut ext, 8); // core_relo_off
    put(&mut ext, core.len() as u32); // core_relo_len
    put(&mut ext, FUNC_INFO_REC_SIZE);
    put(&mut ext, LINE_INFO_REC_SIZE);
    ext.extend_from_slice(&core);

    Ok(EncodedBtf { btf, btf_ext: ext })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reloc(section: &str, off: u32, root: &'static str, access: &str) -> CoreRelocation {
        CoreRelocation {
            section_name: section.into(),
            insn_byte_offset: off,
            root,
            access: access.into(),
        }
    }

    #[test]
    fn header_and_determinism() {
        let relocs = [reloc("tp/a", 8, "task_struct", "0:1")];
        let a = encode(&relocs).unwrap();
        assert_eq!(a, encode(&relocs).unwrap());
        assert_eq!(&a.btf[..4], &[0x9f, 0xeb, 1, 0]);
        let type_len = u32::from_le_bytes(a.btf[12..16].try_into().unwrap()) as usize;
        let str_len = u32::from_le_bytes(a.btf[20..24].try_into().unwrap()) as usize;
        assert_eq!(a.btf.len(), 24 + type_len + str_len);
        assert_eq!(a.btf[24 + type_len], 0, "string table starts with NUL");
        // header (32) + rec sizes (4+4+4) + one group (8) + one record (16)
        assert_eq!(a.btf_ext.len(), 32 + 12 + 8 + 16);
    }

    #[test]
    fn rejects_bad_relocations() {
        let e = encode(&[reloc("s", 4, "task_struct", "0:1")]).unwrap_err();
        assert!(matches!(e, BtfError::InvalidRelocation { .. }), "{e}");
        let e = encode(&[reloc("s", 8, "task_struct", "0:99")]).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = encode(&[reloc("s", 8, "inode", "0:0")]).unwrap_err();
        assert!(e.to_string().contains("unknown struct `inode`"), "{e}");
        let dup = [reloc("s", 8, "file", "0:0"), reloc("s", 8, "path", "0:1")];
        assert_eq!(
            encode(&dup).unwrap_err(),
            BtfError::DuplicateRelocation {
                section: "s".into(),
                offset: 8
            }
        );
    }
}

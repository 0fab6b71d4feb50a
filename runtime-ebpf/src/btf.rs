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
const BTF_KIND_VAR: u32 = 14;
const BTF_KIND_DATASEC: u32 = 15;
/// `BTF_VAR_GLOBAL_ALLOCATED`: what libbpf and aya expect of a `.maps` variable.
const VAR_GLOBAL_ALLOCATED: u32 = 1;
/// The ELF section of BTF-defined maps.
pub const MAPS_SECTION: &str = ".maps";
/// Bytes of one BTF map definition in `.maps`: four pointers (`type`, `map_flags`, `key`,
/// `value`).
pub const BTF_MAP_DEF_SIZE: u32 = 32;
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

/// A BTF-defined map, in libbpf's `.maps` convention, which aya-obj parses
/// (`parse_btf_map_struct`): a variable of an anonymous struct whose members `type` and
/// `map_flags` are pointers to arrays of that many `int`s, and `key` and `value` pointers to
/// the key and value types. The key is an `int`; the value a struct of `u64` members, back to
/// back. Task storage must be defined so: the kernel creates it only with BTF for its key and
/// value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfMap {
    pub name: String,
    pub map_type: u32,
    pub map_flags: u32,
    /// The value struct's BTF name.
    pub value_name: &'static str,
    /// Its `u64` members, in order.
    pub value_members: Vec<&'static str>,
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

/// The records of the BTF-defined maps, from type id `next` on: per map its value struct and the
/// definition struct with the pointers and arrays it needs, then its VAR; last the `.maps`
/// DATASEC. The arrays are each map's own (never shared with another type), so that a loader
/// may patch one map's type ([`set_map_type`]).
fn encode_maps(
    maps: &[BtfMap],
    ints: (u32, u32, u32),
    next: u32,
    strings: &mut Strings,
) -> Vec<u8> {
    let (int, uint, u64_id) = ints;
    let mut out = Vec::new();
    let mut id = next;
    let mut vars = Vec::new();
    let mut push = |out: &mut Vec<u8>, rec: Vec<u8>| {
        out.extend(rec);
        id += 1;
        id - 1
    };
    for m in maps {
        let mut rec = Vec::new();
        let n = m.value_members.len() as u32;
        type_header(
            &mut rec,
            strings.add(m.value_name),
            BTF_KIND_STRUCT,
            n,
            8 * n,
        );
        for (i, name) in m.value_members.iter().enumerate() {
            put(&mut rec, strings.add(name));
            put(&mut rec, u64_id);
            put(&mut rec, 64 * i as u32);
        }
        let value = push(&mut out, rec);
        let ptr = |to: u32| {
            let mut rec = Vec::new();
            type_header(&mut rec, 0, BTF_KIND_PTR, 0, to);
            rec
        };
        let array = |n: u32| {
            let mut rec = Vec::new();
            type_header(&mut rec, 0, BTF_KIND_ARRAY, 0, 0);
            put(&mut rec, int);
            put(&mut rec, uint);
            put(&mut rec, n);
            rec
        };
        let value_ptr = push(&mut out, ptr(value));
        let key_ptr = push(&mut out, ptr(int));
        let type_array = push(&mut out, array(m.map_type));
        let type_ptr = push(&mut out, ptr(type_array));
        let flags_array = push(&mut out, array(m.map_flags));
        let flags_ptr = push(&mut out, ptr(flags_array));
        let mut def = Vec::new();
        type_header(&mut def, 0, BTF_KIND_STRUCT, 4, BTF_MAP_DEF_SIZE);
        for (i, (name, ty)) in [
            ("type", type_ptr),
            ("map_flags", flags_ptr),
            ("key", key_ptr),
            ("value", value_ptr),
        ]
        .into_iter()
        .enumerate()
        {
            put(&mut def, strings.add(name));
            put(&mut def, ty);
            put(&mut def, 64 * i as u32);
        }
        let def = push(&mut out, def);
        let mut var = Vec::new();
        type_header(&mut var, strings.add(&m.name), BTF_KIND_VAR, 0, def);
        put(&mut var, VAR_GLOBAL_ALLOCATED);
        vars.push(push(&mut out, var));
    }
    if !vars.is_empty() {
        let mut sec = Vec::new();
        let size = BTF_MAP_DEF_SIZE * vars.len() as u32;
        type_header(
            &mut sec,
            strings.add(MAPS_SECTION),
            BTF_KIND_DATASEC,
            vars.len() as u32,
            size,
        );
        for (i, var) in vars.into_iter().enumerate() {
            put(&mut sec, var);
            put(&mut sec, BTF_MAP_DEF_SIZE * i as u32);
            put(&mut sec, BTF_MAP_DEF_SIZE);
        }
        push(&mut out, sec);
    }
    out
}

fn encode_types(strings: &mut Strings, maps: &[BtfMap]) -> Vec<u8> {
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
    let mut map_records = Vec::new();
    if !maps.is_empty() {
        let int = table.id(&KType::Int(ktypes::KInt::Int), strings);
        let uint = table.id(&KType::Int(ktypes::KInt::UInt), strings);
        let u64_id = table.id(&KType::Int(ktypes::KInt::ULong), strings);
        let next = table.n_structs + table.extra.len() as u32 + 1;
        map_records = encode_maps(maps, (int, uint, u64_id), next, strings);
    }
    struct_records
        .into_iter()
        .chain(table.extra)
        .flatten()
        .chain(map_records)
        .collect()
}

/// One type record of a `.BTF` type section: where it starts, its kind, `vlen`, name offset
/// and size/type word.
struct Record {
    at: usize,
    kind: u32,
    vlen: usize,
    name_off: u32,
    size_type: u32,
}

/// The type records of `.BTF` (id `i + 1` is record `i`), for the kinds our objects hold, and
/// where the type section and the string table start.
fn records(b: &[u8]) -> Result<(Vec<Record>, usize, usize), String> {
    let word = |at: usize| {
        b.get(at..at + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or_else(|| format!("BTF truncated at byte {at}"))
    };
    if b.len() < BTF_HEADER_LEN as usize || u16::from_le_bytes([b[0], b[1]]) != BTF_MAGIC {
        return Err("no BTF header".into());
    }
    let hdr = word(4)? as usize;
    let types = hdr + word(8)? as usize;
    let end = types + word(12)? as usize;
    let strs = hdr + word(16)? as usize;
    let mut out = Vec::new();
    let mut at = types;
    while at < end {
        let info = word(at + 4)?;
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        let extra = match kind {
            BTF_KIND_INT | BTF_KIND_VAR => 4,
            BTF_KIND_ARRAY => 12,
            BTF_KIND_STRUCT | BTF_KIND_DATASEC => 12 * vlen,
            BTF_KIND_PTR | BTF_KIND_CONST => 0,
            k => return Err(format!("BTF kind {k} is not one guard writes")),
        };
        out.push(Record {
            at,
            kind,
            vlen,
            name_off: word(at)?,
            size_type: word(at + 8)?,
        });
        at += 12 + extra;
    }
    Ok((out, strs, end))
}

/// Changes the `type` of BTF-defined map `name` in the `.BTF` section `b` (as [`encode`] wrote
/// it) to `map_type`, in place. This is how one object carries a map whose type the loader
/// chooses: the kernel creates a map from the type aya reads here.
pub fn set_map_type(b: &mut [u8], name: &str, map_type: u32) -> Result<(), String> {
    let (recs, strs, _) = records(b)?;
    let name_at = |off: u32| {
        let s = b.get(strs + off as usize..).unwrap_or_default();
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        &s[..end]
    };
    let rec = |id: u32| {
        id.checked_sub(1)
            .and_then(|i| recs.get(i as usize))
            .ok_or_else(|| format!("BTF type {id} out of range"))
    };
    let var = recs
        .iter()
        .find(|r| r.kind == BTF_KIND_VAR && name_at(r.name_off) == name.as_bytes())
        .ok_or_else(|| format!("no BTF-defined map `{name}`"))?;
    let def = rec(var.size_type)?;
    let member = (0..def.vlen)
        .map(|i| def.at + 12 + 12 * i)
        .find(|&m| name_at(u32::from_le_bytes(b[m..m + 4].try_into().unwrap())) == b"type")
        .filter(|_| def.kind == BTF_KIND_STRUCT)
        .ok_or_else(|| format!("map `{name}` has no `type` member"))?;
    let ptr = rec(u32::from_le_bytes(
        b[member + 4..member + 8].try_into().unwrap(),
    ))?;
    let array = rec(ptr.size_type)
        .ok()
        .filter(|a| ptr.kind == BTF_KIND_PTR && a.kind == BTF_KIND_ARRAY);
    let array =
        array.ok_or_else(|| format!("map `{name}`: `type` is not a pointer to an array"))?;
    // btf_array: type, index_type, nelems.
    let nelems = array.at + 12 + 8;
    b[nelems..nelems + 4].copy_from_slice(&map_type.to_le_bytes());
    Ok(())
}

/// Encodes all local kernel types and the given CO-RE relocations (all of kind
/// FIELD_BYTE_OFFSET). Relocations are grouped per ELF section in order of first appearance and
/// sorted by instruction offset within a section.
pub fn encode(relocs: &[CoreRelocation], maps: &[BtfMap]) -> Result<EncodedBtf, BtfError> {
    let mut strings = Strings::new();
    let types = encode_types(&mut strings, maps);

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
        let a = encode(&relocs, &[]).unwrap();
        assert_eq!(a, encode(&relocs, &[]).unwrap());
        assert_eq!(&a.btf[..4], &[0x9f, 0xeb, 1, 0]);
        let type_len = u32::from_le_bytes(a.btf[12..16].try_into().unwrap()) as usize;
        let str_len = u32::from_le_bytes(a.btf[20..24].try_into().unwrap()) as usize;
        assert_eq!(a.btf.len(), 24 + type_len + str_len);
        assert_eq!(a.btf[24 + type_len], 0, "string table starts with NUL");
        // header (32) + rec sizes (4+4+4) + one group (8) + one record (16)
        assert_eq!(a.btf_ext.len(), 32 + 12 + 8 + 16);
    }

    #[test]
    fn a_map_type_is_rewritten_in_place_and_nothing_else() {
        let map = BtfMap {
            name: "M".into(),
            map_type: 29,
            map_flags: 1,
            value_name: "v",
            value_members: vec!["a", "b"],
        };
        let before = encode(&[], &[map]).unwrap().btf;
        let mut after = before.clone();
        set_map_type(&mut after, "M", 1).unwrap();
        let changed: Vec<usize> = (0..before.len())
            .filter(|&i| before[i] != after[i])
            .collect();
        // The nelems of M's own `type` array: 29 -> 1, one byte of a little-endian u32.
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert_eq!((before[changed[0]], after[changed[0]]), (29, 1));
        let e = set_map_type(&mut after, "N", 1).unwrap_err();
        assert!(e.contains("no BTF-defined map `N`"), "{e}");
    }

    #[test]
    fn rejects_bad_relocations() {
        let e = encode(&[reloc("s", 4, "task_struct", "0:1")], &[]).unwrap_err();
        assert!(matches!(e, BtfError::InvalidRelocation { .. }), "{e}");
        let e = encode(&[reloc("s", 8, "task_struct", "0:99")], &[]).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = encode(&[reloc("s", 8, "inode", "0:0")], &[]).unwrap_err();
        assert!(e.to_string().contains("unknown struct `inode`"), "{e}");
        let dup = [reloc("s", 8, "file", "0:0"), reloc("s", 8, "path", "0:1")];
        assert_eq!(
            encode(&dup, &[]).unwrap_err(),
            BtfError::DuplicateRelocation {
                section: "s".into(),
                offset: 8
            }
        );
    }
}

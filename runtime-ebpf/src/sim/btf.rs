//! A reader of the little BTF our objects carry: enough to turn each `bpf_core_relo` of
//! `.BTF.ext` into (program section, instruction, root struct, member path, local offset), and
//! the BTF-defined maps of `.maps` into map definitions, as aya-obj reads them.

use super::layout::Step;

#[derive(Clone, Debug)]
enum Ty {
    Struct {
        name: String,
        /// (member name, type id, byte offset)
        members: Vec<(String, u32, u32)>,
        size: u32,
    },
    Array {
        elem: u32,
        elem_size: u32,
        len: u32,
    },
    Ptr(u32),
    Var {
        name: String,
        ty: u32,
    },
    /// const/volatile/typedef/restrict: look through.
    Modifier(u32),
    Int(u32),
    Other,
}

/// One CO-RE field-offset relocation, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreRelo {
    pub section: String,
    pub insn: usize,
    pub root: String,
    pub path: Vec<Step>,
    pub local_offset: u32,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("BTF truncated at byte {at}"))
}

fn string(strings: &[u8], off: u32) -> Result<String, String> {
    let s = strings
        .get(off as usize..)
        .ok_or_else(|| format!("BTF string offset {off} out of range"))?;
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    Ok(String::from_utf8_lossy(&s[..end]).into_owned())
}

struct Btf {
    types: Vec<Ty>,
    strings: Vec<u8>,
}

fn parse_btf(b: &[u8]) -> Result<Btf, String> {
    if b.len() < 24 || u16::from_le_bytes([b[0], b[1]]) != 0xeb9f {
        return Err("`.BTF` has no BTF header".into());
    }
    let hdr = u32_at(b, 4)? as usize;
    let (type_off, type_len) = (u32_at(b, 8)? as usize, u32_at(b, 12)? as usize);
    let (str_off, str_len) = (u32_at(b, 16)? as usize, u32_at(b, 20)? as usize);
    let strings = b
        .get(hdr + str_off..hdr + str_off + str_len)
        .ok_or("BTF string section out of range")?
        .to_vec();
    let t = b
        .get(hdr + type_off..hdr + type_off + type_len)
        .ok_or("BTF type section out of range")?;
    // Type id 0 is void.
    let mut types = vec![Ty::Other];
    let mut at = 0;
    while at < t.len() {
        let (name_off, info, size_type) = (u32_at(t, at)?, u32_at(t, at + 4)?, u32_at(t, at + 8)?);
        at += 12;
        let vlen = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        let (ty, extra) = match kind {
            1 => (Ty::Int(size_type), 4),
            3 => (
                Ty::Array {
                    elem: u32_at(t, at)?,
                    elem_size: 0,
                    len: u32_at(t, at + 8)?,
                },
                12,
            ),
            4 | 5 => {
                let mut members = Vec::new();
                for i in 0..vlen {
                    let m = at + 12 * i;
                    let bits = u32_at(t, m + 8)?;
                    // Bit-field members carry a size in the high byte (kflag); ours have none.
                    members.push((
                        string(&strings, u32_at(t, m)?)?,
                        u32_at(t, m + 4)?,
                        bits / 8,
                    ));
                }
                let name = string(&strings, name_off)?;
                let size = size_type;
                (
                    Ty::Struct {
                        name,
                        members,
                        size,
                    },
                    12 * vlen,
                )
            }
            6 => (Ty::Other, 8 * vlen),
            8..=11 | 18 => (Ty::Modifier(size_type), 0),
            13 => (Ty::Other, 8 * vlen),
            14 => {
                let name = string(&strings, name_off)?;
                (
                    Ty::Var {
                        name,
                        ty: size_type,
                    },
                    4,
                )
            }
            17 => (Ty::Other, 4),
            15 | 19 => (Ty::Other, 12 * vlen),
            2 => (Ty::Ptr(size_type), 0),
            7 | 12 | 16 => (Ty::Other, 0),
            k => return Err(format!("BTF kind {k} unknown")),
        };
        at += extra;
        types.push(ty);
    }
    let mut btf = Btf { types, strings };
    // Array element sizes, once every type is known.
    for i in 0..btf.types.len() {
        if let Ty::Array { elem, len, .. } = btf.types[i] {
            let size = btf.size(elem)?;
            btf.types[i] = Ty::Array {
                elem,
                elem_size: size,
                len,
            };
        }
    }
    Ok(btf)
}

impl Btf {
    fn get(&self, id: u32) -> Result<&Ty, String> {
        let mut ty = self
            .types
            .get(id as usize)
            .ok_or_else(|| format!("BTF type {id} out of range"))?;
        for _ in 0..32 {
            match ty {
                Ty::Modifier(t) => {
                    ty = self
                        .types
                        .get(*t as usize)
                        .ok_or_else(|| format!("BTF type {t} out of range"))?
                }
                t => return Ok(t),
            }
        }
        Err("BTF modifier chain too long".into())
    }

    fn size(&self, id: u32) -> Result<u32, String> {
        Ok(match self.get(id)? {
            Ty::Int(s) => *s,
            Ty::Struct { size, .. } => *size,
            Ty::Array { .. } | Ty::Modifier(_) | Ty::Ptr(_) | Ty::Var { .. } | Ty::Other => 8,
        })
    }
}

/// The BTF-defined maps (every VAR of the object's BTF is one: guard writes no other), as
/// aya-obj's `parse_btf_map_struct` reads them: `type`, `max_entries` and `map_flags` are
/// pointers to arrays of that many elements, `key` and `value` pointers to their types.
pub fn btf_maps(btf: &[u8]) -> Result<Vec<(String, crate::elf::MapDef)>, String> {
    let btf = parse_btf(btf)?;
    let mut out = Vec::new();
    for ty in &btf.types {
        let Ty::Var { name, ty } = ty else {
            continue;
        };
        let Ty::Struct { members, .. } = btf.get(*ty)? else {
            return Err(format!("map `{name}` is not a struct"));
        };
        let mut def = crate::elf::MapDef {
            map_type: 0,
            key_size: 0,
            value_size: 0,
            max_entries: 0,
            map_flags: 0,
        };
        for (member, t, _) in members {
            let Ty::Ptr(to) = btf.get(*t)? else {
                return Err(format!("map `{name}`: `{member}` is not a pointer"));
            };
            let len = || match btf.get(*to) {
                Ok(Ty::Array { len, .. }) => Ok(*len),
                _ => Err(format!(
                    "map `{name}`: `{member}` is not a pointer to an array"
                )),
            };
            match member.as_str() {
                "type" => def.map_type = len()?,
                "max_entries" => def.max_entries = len()?,
                "map_flags" => def.map_flags = len()?,
                "key" => def.key_size = btf.size(*to)?,
                "value" => def.value_size = btf.size(*to)?,
                other => return Err(format!("map `{name}`: member `{other}`")),
            }
        }
        out.push((name.clone(), def));
    }
    Ok(out)
}

/// Decodes every CO-RE relocation of the object's `.BTF.ext`.
pub fn core_relocs(btf: &[u8], ext: &[u8]) -> Result<Vec<CoreRelo>, String> {
    let btf = parse_btf(btf)?;
    if ext.len() < 32 || u16::from_le_bytes([ext[0], ext[1]]) != 0xeb9f {
        return Err("`.BTF.ext` has no header with CO-RE records".into());
    }
    let hdr = u32_at(ext, 4)? as usize;
    let (off, len) = (u32_at(ext, 24)? as usize, u32_at(ext, 28)? as usize);
    let block = ext
        .get(hdr + off..hdr + off + len)
        .ok_or("CO-RE block out of range")?;
    let mut out = Vec::new();
    if block.is_empty() {
        return Ok(out);
    }
    let rec = u32_at(block, 0)? as usize;
    if rec < 16 {
        return Err(format!("CO-RE record size {rec}"));
    }
    let mut at = 4;
    while at < block.len() {
        let section = string(&btf.strings, u32_at(block, at)?)?;
        let n = u32_at(block, at + 4)? as usize;
        at += 8;
        for _ in 0..n {
            let (insn_off, type_id) = (u32_at(block, at)?, u32_at(block, at + 4)?);
            let access = string(&btf.strings, u32_at(block, at + 8)?)?;
            let kind = u32_at(block, at + 12)?;
            at += rec;
            if kind != crate::btf::CORE_FIELD_BYTE_OFFSET {
                return Err(format!(
                    "CO-RE relocation kind {kind} is not a field offset"
                ));
            }
            let Ty::Struct { name: root, .. } = btf.get(type_id)? else {
                return Err(format!("CO-RE root type {type_id} is not a struct"));
            };
            let (path, local_offset) = walk(&btf, type_id, &access)?;
            out.push(CoreRelo {
                section: section.clone(),
                insn: insn_off as usize / 8,
                root: root.clone(),
                path,
                local_offset,
            });
        }
    }
    Ok(out)
}

/// Follows access string `0:i:j...` from type `root` through the local BTF: member names
/// (matched by name in the target, as aya does) and array indices, and the local offset.
fn walk(btf: &Btf, root: u32, access: &str) -> Result<(Vec<Step>, u32), String> {
    let mut idx = access.split(':').map(|p| {
        p.parse::<u32>()
            .map_err(|_| format!("access string `{access}`"))
    });
    if idx.next() != Some(Ok(0)) {
        return Err(format!("access string `{access}` must start with 0"));
    }
    let (mut ty, mut off, mut path) = (root, 0u32, Vec::new());
    for i in idx {
        let i = i?;
        match btf.get(ty)? {
            Ty::Struct { members, name, .. } => {
                let (m, t, o) = members
                    .get(i as usize)
                    .ok_or_else(|| format!("`{name}` has no member #{i}"))?;
                path.push(Step::Name(m.clone()));
                off += o;
                ty = *t;
            }
            Ty::Array {
                elem, elem_size, ..
            } => {
                path.push(Step::Index(i));
                off += elem_size * i;
                ty = *elem;
            }
            other => return Err(format!("access `{access}` steps into {other:?}")),
        }
    }
    Ok((path, off))
}

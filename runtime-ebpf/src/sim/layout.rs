//! The simulator's own layout of the kernel structs the programs read: the "target BTF" the
//! object's CO-RE relocations are resolved against, as aya resolves them against vmlinux.
//!
//! It deliberately differs from the object's local layout ([`crate::ktypes`]): members come in
//! reverse order, each after an 8-byte gap, so an instruction whose offset was not relocated
//! reads the wrong member (usually a gap of zeroes) and a test notices. Two things keep the
//! kernel's shape because the programs rely on them without a relocation:
//! * `struct upid` is 16 bytes with `nr` first (`identity.rs` indexes `pid.numbers[level]`
//!   with a constant stride of 16, as the kernel's layout has been since 2.6.24);
//! * a struct's last member, when it is an array (`pid.numbers`), stays last, as a flexible
//!   array does in the kernel, so an object can be allocated with more elements.

use crate::ktypes::{self, KStruct, KType};

/// One step of a member path: a member name, or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Name(String),
    Index(u32),
}

fn strip(ty: &KType) -> &KType {
    match ty {
        KType::Const(t) => strip(t),
        t => t,
    }
}

fn find(name: &str) -> Result<&'static KStruct, String> {
    ktypes::find_struct(name).ok_or_else(|| format!("the mocked kernel has no struct `{name}`"))
}

/// Size of a type in the mocked kernel.
pub fn type_size(ty: &KType) -> Result<u32, String> {
    Ok(match strip(ty) {
        KType::Void => 0,
        KType::Int(i) => i.size(),
        KType::Ptr(_) => 8,
        KType::Struct(s) => struct_layout(s)?.0,
        KType::Array(t, n) => type_size(t)? * n,
        KType::Const(_) => unreachable!("stripped"),
    })
}

/// The mocked kernel's `(size, member offsets in local member order)` of struct `name`.
pub fn struct_layout(name: &str) -> Result<(u32, Vec<u32>), String> {
    let s = find(name)?;
    if name == "upid" {
        // Kernel layout: { int nr; struct pid_namespace *ns; }.
        return Ok((16, s.members.iter().map(|_| 0).collect()));
    }
    let n = s.members.len();
    let flexible = s
        .members
        .last()
        .is_some_and(|m| matches!(strip(&m.ty), KType::Array(..)));
    let mut order: Vec<usize> = (0..n).rev().collect();
    if flexible {
        order.retain(|&i| i != n - 1);
        order.push(n - 1);
    }
    let mut offsets = vec![0; n];
    let mut at = 8u32;
    for i in order {
        at = at.next_multiple_of(8);
        offsets[i] = at;
        at += type_size(&s.members[i].ty)? + 8;
    }
    Ok((at.next_multiple_of(8), offsets))
}

/// Offset and size of the member reached by `path` from struct `root` in the mocked kernel,
/// matching members by name as aya does.
pub fn offset_of(root: &str, path: &[Step]) -> Result<(u32, u32), String> {
    let mut ty = KType::Struct(find(root)?.name);
    let mut off = 0u32;
    for step in path {
        match (strip(&ty), step) {
            (KType::Struct(s), Step::Name(m)) => {
                let st = find(s)?;
                let i = st
                    .members
                    .iter()
                    .position(|x| x.name == m)
                    .ok_or_else(|| format!("the mocked `{s}` has no member `{m}`"))?;
                off += struct_layout(s)?.1[i];
                ty = st.members[i].ty;
            }
            (KType::Array(elem, _), Step::Index(i)) => {
                off += type_size(elem)? * i;
                ty = **elem;
            }
            (t, s) => return Err(format!("cannot take {s:?} of {t:?} in `{root}`")),
        }
    }
    Ok((off, type_size(&ty)?))
}

/// [`offset_of`] for a path of member names (array indices written as numbers).
pub fn offset(root: &str, path: &[&str]) -> Result<u32, String> {
    let steps: Vec<Step> = path
        .iter()
        .map(|p| match p.parse() {
            Ok(i) => Step::Index(i),
            Err(_) => Step::Name(p.to_string()),
        })
        .collect();
    Ok(offset_of(root, &steps)?.0)
}

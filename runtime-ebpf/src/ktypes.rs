//! Local descriptions of the kernel structs our programs read, for CO-RE.
//!
//! These are *not* the kernel's layouts. They list only the members we access, at offsets of
//! our own choosing. The object carries them as `.BTF` plus one `bpf_core_relo` per accessing
//! instruction; at load time aya-obj (`Object::relocate_btf`, aya-obj 0.3 btf/relocation.rs)
//! finds each root struct in vmlinux BTF by *name*, then matches every member of the access
//! string by *name* (`match_member`), descending through anonymous struct/union members of the
//! kernel type (so `qstr.len`, which sits in `union { struct { u32 hash; u32 len; }; u64
//! hash_len; }`, and `file.f_path`, which 6.18 wraps in an anonymous union, both match), and
//! rewrites the instruction's offset. Member order, offsets and sizes here only have to be
//! self-consistent and acceptable to the kernel's BTF verifier, which requires (kernel
//! `btf_struct_check_meta`) members in non-decreasing offset order and inside the struct size:
//! [`validate`] checks exactly that and the unit tests run it.
//!
//! Two things do have to agree with the kernel:
//! * member *names* and the root struct *name* (C names, exactly);
//! * member *kinds* (aya's `fields_are_compatible`: int vs int, pointer vs pointer, struct vs
//!   struct/union) and, for fields read with `LDX`, the size: aya refuses a relocated load whose
//!   local and target sizes differ unless both are pointers or both are unsigned ints.

use std::fmt::Write as _;

/// The integer types our members use (BTF `INT`; names follow C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KInt {
    Int,
    UInt,
    ULong,
    UChar,
    Char,
}

impl KInt {
    pub const fn name(self) -> &'static str {
        match self {
            KInt::Int => "int",
            KInt::UInt => "unsigned int",
            KInt::ULong => "unsigned long",
            KInt::UChar => "unsigned char",
            KInt::Char => "char",
        }
    }

    pub const fn size(self) -> u32 {
        match self {
            KInt::Int | KInt::UInt => 4,
            KInt::ULong => 8,
            KInt::UChar | KInt::Char => 1,
        }
    }

    pub const fn signed(self) -> bool {
        matches!(self, KInt::Int)
    }
}

/// A member type. Struct references are by name and must name an entry of [`structs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KType {
    Void,
    Int(KInt),
    /// Pointer to the given type (`Ptr(&Void)` is `void *`).
    Ptr(&'static KType),
    Const(&'static KType),
    Struct(&'static str),
    /// Element type and element count.
    Array(&'static KType, u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KMember {
    pub name: &'static str,
    pub ty: KType,
    /// Local byte offset.
    pub offset: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KStruct {
    pub name: &'static str,
    pub size: u32,
    /// Sorted by offset (the kernel BTF verifier rejects decreasing member offsets); the index
    /// in this slice is the member index used in CO-RE access strings.
    pub members: &'static [KMember],
}

/// One CO-RE field access: the `bpf_core_relo` the object needs (root + access string) and the
/// local offset/size the instruction should be emitted with before relocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreField {
    pub root: &'static str,
    pub access: String,
    pub local_offset: i32,
    pub size: u32,
}

const fn m(name: &'static str, ty: KType, offset: u32) -> KMember {
    KMember { name, ty, offset }
}

// Pointer types are `const`s so that `&T` is promoted to `'static`.
const P_TASK: KType = KType::Ptr(&KType::Struct("task_struct"));
const P_MM: KType = KType::Ptr(&KType::Struct("mm_struct"));
const P_FILES: KType = KType::Ptr(&KType::Struct("files_struct"));
const P_FS: KType = KType::Ptr(&KType::Struct("fs_struct"));
const P_PID: KType = KType::Ptr(&KType::Struct("pid"));
const P_FDTABLE: KType = KType::Ptr(&KType::Struct("fdtable"));
const PP_FILE: KType = KType::Ptr(&KType::Ptr(&KType::Struct("file")));
const P_VFSMOUNT: KType = KType::Ptr(&KType::Struct("vfsmount"));
const P_DENTRY: KType = KType::Ptr(&KType::Struct("dentry"));
const P_MOUNT: KType = KType::Ptr(&KType::Struct("mount"));
const P_FILE: KType = KType::Ptr(&KType::Struct("file"));
const P_SIGNAL: KType = KType::Ptr(&KType::Struct("signal_struct"));
const P_TTY: KType = KType::Ptr(&KType::Struct("tty_struct"));
const P_CONST_UCHAR: KType = KType::Ptr(&KType::Const(&KType::Int(KInt::UChar)));
const P_CONST_CHAR: KType = KType::Ptr(&KType::Const(&KType::Int(KInt::Char)));
const INT: KType = KType::Int(KInt::Int);
const UINT: KType = KType::Int(KInt::UInt);
const ULONG: KType = KType::Int(KInt::ULong);

// Local layouts are deliberately compact (not the kernel's), so a missing relocation shows up
// as a wrong offset instead of passing by accident.
static STRUCTS: &[KStruct] = &[
    KStruct {
        name: "task_struct",
        size: 80,
        members: &[
            m("pid", INT, 0),
            m("tgid", INT, 4),
            m("real_parent", P_TASK, 8),
            m("mm", P_MM, 16),
            m("files", P_FILES, 24),
            m("fs", P_FS, 32),
            m("thread_pid", P_PID, 40),
            m("signal", P_SIGNAL, 48),
            // `char comm[16]`: the parent's name for alerts (`proc.pname`).
            m("comm", KType::Array(&KType::Int(KInt::UChar), 16), 56),
            // The thread group's leader: after an exec the exec'ing thread is the leader
            // (`de_thread`), so the exec check asks the leader what the task will be.
            m("group_leader", P_TASK, 72),
        ],
    },
    KStruct {
        // Only its address is compared with NULL: a task has a controlling terminal when
        // `task->signal->tty` is set (what Falco's `proc.tty` reads too).
        name: "tty_struct",
        size: 8,
        members: &[m("index", INT, 0)],
    },
    KStruct {
        name: "signal_struct",
        size: 8,
        members: &[m("tty", P_TTY, 0)],
    },
    KStruct {
        // The exec in progress. `file` is the file the current `bprm_check_security` call is
        // about (a script, then its interpreter); `filename` the name the exec was asked for
        // (the process name is its last component); `interp` the name the next argv[0]
        // replacement comes from (`filename` until a script's interpreter takes over); `buf` the
        // first bytes of `file` (`#!` and the interpreter line of a script); `argc` the
        // number of arguments the new image gets.
        name: "linux_binprm",
        size: 288,
        members: &[
            m("file", P_FILE, 0),
            m("argc", INT, 8),
            m("filename", P_CONST_CHAR, 16),
            m("interp", P_CONST_CHAR, 24),
            m("buf", KType::Array(&KType::Int(KInt::Char), 256), 32),
        ],
    },
    KStruct {
        name: "mm_struct",
        size: 16,
        members: &[m("arg_start", ULONG, 0), m("arg_end", ULONG, 8)],
    },
    KStruct {
        name: "files_struct",
        size: 8,
        members: &[m("fdt", P_FDTABLE, 0)],
    },
    KStruct {
        name: "fdtable",
        size: 16,
        members: &[m("max_fds", UINT, 0), m("fd", PP_FILE, 8)],
    },
    KStruct {
        name: "file",
        size: 24,
        members: &[
            m("f_path", KType::Struct("path"), 0),
            // fmode_t: FMODE_READ 0x1, FMODE_WRITE 0x2.
            m("f_mode", UINT, 16),
        ],
    },
    KStruct {
        name: "path",
        size: 16,
        members: &[m("mnt", P_VFSMOUNT, 0), m("dentry", P_DENTRY, 8)],
    },
    KStruct {
        name: "dentry",
        size: 24,
        members: &[
            m("d_parent", P_DENTRY, 0),
            m("d_name", KType::Struct("qstr"), 8),
        ],
    },
    KStruct {
        // Kernel: `union { struct { HASH_LEN_DECLARE; }; u64 hash_len; }; const unsigned char
        // *name;` -- aya finds `len` through the anonymous members.
        name: "qstr",
        size: 16,
        members: &[m("len", UINT, 0), m("name", P_CONST_UCHAR, 8)],
    },
    KStruct {
        name: "vfsmount",
        size: 8,
        members: &[m("mnt_root", P_DENTRY, 0)],
    },
    KStruct {
        // `struct mount` is private to fs/ (fs/mount.h) but is in vmlinux BTF; programs get
        // from a `vfsmount *` to its `mount` with container_of, i.e. minus offset(mount.mnt).
        name: "mount",
        size: 24,
        members: &[
            m("mnt_parent", P_MOUNT, 0),
            m("mnt_mountpoint", P_DENTRY, 8),
            m("mnt", KType::Struct("vfsmount"), 16),
        ],
    },
    KStruct {
        name: "fs_struct",
        size: 16,
        members: &[m("root", KType::Struct("path"), 0)],
    },
    KStruct {
        // Kernel: `struct upid numbers[];` is a flexible array (BTF nelems 0) and the last
        // member; aya accepts any index into it when it is the last member (var_len check in
        // `match_candidate`). Locally it has one element so "numbers[0]" is a valid access.
        name: "pid",
        size: 24,
        members: &[
            m("level", UINT, 0),
            m("numbers", KType::Array(&KType::Struct("upid"), 1), 8),
        ],
    },
    KStruct {
        // size 16 like the kernel's { int nr; struct pid_namespace *ns; }; only `nr` is read.
        name: "upid",
        size: 16,
        members: &[m("nr", INT, 0)],
    },
];

/// All local struct descriptions, in the order the BTF encoder emits them (struct `i` gets
/// BTF type id `i + 1`).
pub fn structs() -> &'static [KStruct] {
    STRUCTS
}

pub fn find_struct(name: &str) -> Option<&'static KStruct> {
    STRUCTS.iter().find(|s| s.name == name)
}

/// Local size of a type in bytes. `void` has size 0.
pub fn type_size(ty: &KType) -> u32 {
    match ty {
        KType::Void => 0,
        KType::Int(i) => i.size(),
        KType::Ptr(_) => 8,
        KType::Const(t) => type_size(t),
        KType::Struct(name) => find_struct(name).map_or(0, |s| s.size),
        KType::Array(elem, n) => type_size(elem) * n,
    }
}

fn type_align(ty: &KType) -> u32 {
    match ty {
        KType::Void => 1,
        KType::Int(i) => i.size(),
        KType::Ptr(_) => 8,
        KType::Const(t) | KType::Array(t, _) => type_align(t),
        KType::Struct(name) => find_struct(name).map_or(1, |s| {
            s.members
                .iter()
                .map(|m| type_align(&m.ty))
                .max()
                .unwrap_or(1)
        }),
    }
}

fn describe(ty: &KType) -> String {
    match ty {
        KType::Void => "void".into(),
        KType::Int(i) => i.name().into(),
        KType::Ptr(t) => format!("{} *", describe(t)),
        KType::Const(t) => format!("const {}", describe(t)),
        KType::Struct(n) => format!("struct {n}"),
        KType::Array(t, n) => format!("{}[{n}]", describe(t)),
    }
}

/// One step of a field path: a member (by name, or by index for access strings) or an array
/// element (by index).
enum Step<'a> {
    Name(&'a str),
    Index(usize),
}

/// Where a walk from a root struct has got to.
struct Walked {
    access: String,
    offset: u32,
    ty: KType,
}

fn start(root: &str) -> Result<Walked, String> {
    let s = find_struct(root).ok_or_else(|| format!("unknown struct `{root}` (not in ktypes)"))?;
    Ok(Walked {
        access: "0".into(),
        offset: 0,
        ty: KType::Struct(s.name),
    })
}

fn strip_const(mut ty: KType) -> KType {
    while let KType::Const(inner) = ty {
        ty = *inner;
    }
    ty
}

/// Advances `w` by one step. `Index` selects a member by position in a struct (access-string
/// semantics) or an element of an array; `Name` selects a struct member by name.
fn advance(w: &mut Walked, step: Step<'_>) -> Result<(), String> {
    match (strip_const(w.ty), step) {
        (KType::Struct(name), step) => {
            let st = find_struct(name).ok_or_else(|| format!("unknown struct `{name}`"))?;
            let mut members = st.members.iter().enumerate();
            let (idx, mem) = match step {
                Step::Name(n) => members
                    .find(|(_, m)| m.name == n)
                    .ok_or_else(|| format!("struct `{name}` has no member `{n}` in ktypes"))?,
                Step::Index(i) => members
                    .nth(i)
                    .ok_or_else(|| format!("member index {i} out of range for struct `{name}`"))?,
            };
            w.offset += mem.offset;
            w.ty = mem.ty;
            let _ = write!(w.access, ":{idx}");
        }
        (KType::Array(elem, n), Step::Index(i)) => {
            if i >= n as usize {
                return Err(format!("index {i} out of bounds for an array of {n}"));
            }
            w.offset += type_size(elem) * i as u32;
            w.ty = *elem;
            let _ = write!(w.access, ":{i}");
        }
        (KType::Array(..), Step::Name(n)) => {
            return Err(format!("expected an array index, got `{n}`"));
        }
        (ptr @ KType::Ptr(_), _) => {
            return Err(format!(
                "cannot step through a pointer ({}): CO-RE offsets stop at pointers; load the \
                 pointer and start a new field() at the struct it points to",
                describe(&ptr)
            ));
        }
        (other, _) => return Err(format!("`{}` has no members", describe(&other))),
    }
    Ok(())
}

/// The CO-RE description of `root.path[0].path[1]...`, e.g. `field("file", &["f_path",
/// "dentry"])` is root `file`, access `"0:0:1"`, the local offset of `file.f_path.dentry`, size 8.
/// After an array member the next element is a decimal index (`field("pid", &["numbers", "0",
/// "nr"])`). Paths stop at pointers: a pointer member must be loaded and a new field() started
/// at the struct it points to.
///
/// # Panics
/// On an unknown struct or member, a bad array index, or a path through a pointer. These are
/// programmer errors in the program templates (the set of structs is fixed at build time), so
/// they fail loudly instead of producing an object the verifier would reject later; the tests
/// call field() for every member described here.
#[track_caller]
pub fn field(root: &'static str, path: &[&str]) -> CoreField {
    // The panics are in this body (not in a closure) so #[track_caller] reports the caller.
    let mut w = match start(root) {
        Ok(w) => w,
        Err(e) => panic!("ktypes::field(\"{root}\", {path:?}): {e}"),
    };
    for p in path {
        // Numbers are only array indices: on a struct, "member #n" is never what a template
        // author means, so a numeric step there is looked up as a (nonexistent) name.
        let step = match (strip_const(w.ty), p.parse::<usize>()) {
            (KType::Array(..), Ok(i)) => Step::Index(i),
            _ => Step::Name(p),
        };
        if let Err(e) = advance(&mut w, step) {
            panic!("ktypes::field(\"{root}\", {path:?}): {e}");
        }
    }
    CoreField {
        root,
        access: w.access,
        local_offset: w.offset as i32,
        size: type_size(&w.ty),
    }
}

/// Checks that `access` (a CO-RE access string such as `"0:0:1"`) is valid for local struct
/// `root` and returns the local (offset, size). Used by the BTF encoder to reject relocation
/// records aya would fail on (`AccessSpec::new` errors on out-of-range indices).
pub fn resolve_access(root: &str, access: &str) -> Result<(u32, u32), String> {
    let mut parts = access.split(':').map(|p| {
        p.parse::<usize>()
            .map_err(|_| format!("access string `{access}`: `{p}` is not a number"))
    });
    match parts.next() {
        Some(Ok(0)) => {}
        // A non-zero first index means "root pointer used as an array", which our programs
        // never do; refuse rather than encode something untested.
        _ => return Err(format!("access string `{access}` must start with `0`")),
    }
    let mut w = start(root)?;
    for p in parts {
        advance(&mut w, Step::Index(p?))?;
    }
    Ok((w.offset, type_size(&w.ty)))
}

/// Checks the invariants the BTF encoder and the kernel's BTF verifier rely on: unique struct
/// names, every referenced struct described, members sorted by offset, aligned, non-overlapping
/// and inside the struct, and struct sizes a multiple of their alignment.
pub fn validate() -> Result<(), String> {
    fn check_ty(ty: &KType, ctx: &str) -> Result<(), String> {
        match ty {
            KType::Struct(n) if find_struct(n).is_none() => {
                Err(format!("{ctx}: references undescribed struct `{n}`"))
            }
            KType::Ptr(t) | KType::Const(t) | KType::Array(t, _) => check_ty(t, ctx),
            _ => Ok(()),
        }
    }
    for (i, s) in STRUCTS.iter().enumerate() {
        if STRUCTS[..i].iter().any(|o| o.name == s.name) {
            return Err(format!("struct `{}` described twice", s.name));
        }
        if s.size % type_align(&KType::Struct(s.name)) != 0 {
            return Err(format!(
                "struct `{}` size not a multiple of its alignment",
                s.name
            ));
        }
        let mut end = 0;
        for (j, mem) in s.members.iter().enumerate() {
            let ctx = format!("{}.{}", s.name, mem.name);
            check_ty(&mem.ty, &ctx)?;
            if s.members[..j].iter().any(|o| o.name == mem.name) {
                return Err(format!("{ctx}: duplicate member"));
            }
            if mem.offset < end {
                return Err(format!("{ctx}: overlaps or precedes the previous member"));
            }
            if mem.offset % type_align(&mem.ty) != 0 {
                return Err(format!("{ctx}: misaligned"));
            }
            end = mem.offset + type_size(&mem.ty);
            if end > s.size {
                return Err(format!("{ctx}: extends past the struct size {}", s.size));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_layouts_are_valid() {
        validate().unwrap();
    }

    #[test]
    fn field_builds_access_strings() {
        let f = field("file", &["f_path", "dentry"]);
        assert_eq!(
            (f.root, f.access.as_str(), f.local_offset, f.size),
            ("file", "0:0:1", 8, 8)
        );
        let f = field("pid", &["numbers", "0", "nr"]);
        assert_eq!(
            (f.access.as_str(), f.local_offset, f.size),
            ("0:1:0:0", 8, 4)
        );
        assert_eq!(resolve_access("pid", "0:1:0:0"), Ok((8, 4)));
        assert!(resolve_access("pid", "0:1:1").is_err());
        assert!(resolve_access("task_struct", "1:0").is_err());
    }

    #[test]
    #[should_panic(expected = "struct `task_struct` has no member `cred`")]
    fn unknown_member_panics() {
        field("task_struct", &["cred"]);
    }

    #[test]
    #[should_panic(expected = "cannot step through a pointer")]
    fn path_through_pointer_panics() {
        field("task_struct", &["mm", "arg_start"]);
    }
}

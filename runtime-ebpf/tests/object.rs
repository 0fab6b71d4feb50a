//! Object writer tests: the written ELF is parsed by aya-obj 0.3 (the loader the runtime uses),
//! relocated by it against fake map fds, against our own BTF and against this kernel's BTF, and
//! its `.BTF`/`.BTF.ext` are decoded with an independent minimal parser (aya-obj keeps its CO-RE
//! records crate-private).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use aya_obj::btf::Btf;
use aya_obj::generated::bpf_insn;
use aya_obj::{EbpfSectionKind, Object, ProgramSection};
use guard_ebpf::elf::{
    CoreReloc, ElfError, MapDef, MapReloc, ObjectSpec, ProgramObject, read_metadata, read_section,
    write_object,
};
use guard_ebpf::ktypes::{self, KType};

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";
const POISON: i32 = 0xBAD2310; // aya-obj btf/relocation.rs `poison_insn`: `call 0xbad2310`
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_RINGBUF: u32 = 27;
const BPF_F_RDONLY_PROG: u32 = 1 << 7;

// ---- instruction encoding ---------------------------------------------------------------

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Vec<u8> {
    let mut v = vec![code, dst | (src << 4)];
    v.extend_from_slice(&off.to_le_bytes());
    v.extend_from_slice(&imm.to_le_bytes());
    v
}

fn ld_imm64(dst: u8, imm: i32) -> Vec<u8> {
    [insn(0x18, dst, 0, 0, imm), insn(0, 0, 0, 0, 0)].concat()
}

/// `dst = *(size *)(src + off)`: LDX MEM with size B, H, W or DW.
fn ldx(size: u32, dst: u8, src: u8, off: i16) -> Vec<u8> {
    let code = [0x71, 0x69, 0, 0x61, 0, 0, 0, 0x79][size as usize - 1];
    insn(code, dst, src, off, 0)
}

/// `dst += imm` (ALU64 ADD K).
fn add_imm(dst: u8, imm: i32) -> Vec<u8> {
    insn(0x07, dst, 0, 0, imm)
}

fn exit0() -> Vec<u8> {
    [insn(0xb7, 0, 0, 0, 0), insn(0x95, 0, 0, 0, 0)].concat()
}

// ---- the spec under test ------------------------------------------------------------------

const TP_SECTION: &str = "tracepoint/syscalls/sys_exit_openat";
const BTF_SECTION: &str = "tp_btf/sched_process_exec";

/// (program, section, legacy map, rodata section) of the two programs under test.
const PROGRAMS: [(&str, &str, &str, &str); 2] = [
    ("on_openat_exit", TP_SECTION, "EVENTS", ".rodata.pdfa"),
    ("on_exec", BTF_SECTION, "SEEN", ".rodata.cdfa"),
];

/// One program: ld_imm64 map (insns 0-1), ld_imm64 rodata@16 (2-3), CO-RE `ldxw` of
/// task_struct.tgid (4), CO-RE `add` of file.f_path.dentry (5), `r0 = 0; exit` (6-7). CO-RE
/// instructions carry `offsets` (the local ones, or placeholders).
fn program((name, section, map, ro): (&str, &str, &str, &str), offs: (i16, i32)) -> ProgramObject {
    let tgid = ktypes::field("task_struct", &["tgid"]);
    let dentry = ktypes::field("file", &["f_path", "dentry"]);
    let code = [
        ld_imm64(1, 0),
        ld_imm64(2, 16),
        ldx(4, 3, 6, offs.0),
        add_imm(4, offs.1),
        exit0(),
    ]
    .concat();
    let mut p = prog(name, section, code, vec![core(4, tgid), core(5, dentry)]);
    p.map_relocs = vec![map_reloc(0, map), map_reloc(2, ro)];
    p
}

fn map_reloc(insn_index: usize, symbol: &str) -> MapReloc {
    let symbol = symbol.into();
    MapReloc { insn_index, symbol }
}

fn core(insn_index: usize, f: ktypes::CoreField) -> CoreReloc {
    let (root, access) = (f.root, f.access);
    CoreReloc {
        insn_index,
        root,
        access,
    }
}

fn prog(name: &str, section: &str, code: Vec<u8>, core_relocs: Vec<CoreReloc>) -> ProgramObject {
    let (name, section, map_relocs) = (name.into(), section.into(), vec![]);
    ProgramObject {
        name,
        section,
        code,
        map_relocs,
        core_relocs,
    }
}

fn spec_with(offsets: (i16, i32)) -> ObjectSpec {
    let def = |map_type, key_size, value_size, max_entries| MapDef {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags: 0,
    };
    ObjectSpec {
        license: "GPL".into(),
        programs: PROGRAMS.map(|p| program(p, offsets)).to_vec(),
        maps: vec![
            ("SEEN".into(), def(BPF_MAP_TYPE_HASH, 4, 8, 1024)),
            ("EVENTS".into(), def(BPF_MAP_TYPE_RINGBUF, 0, 0, 256 * 1024)),
        ],
        btf_maps: Vec::new(),
        rodata: vec![
            (".rodata.pdfa".into(), (0..64).collect()),
            (".rodata.cdfa".into(), (100..132).collect()),
        ],
        metadata: br#"{"format":1,"rules":[]}"#.to_vec(),
    }
}

fn local_offsets() -> (i16, i32) {
    let tgid = ktypes::field("task_struct", &["tgid"]).local_offset;
    let dentry = ktypes::field("file", &["f_path", "dentry"]).local_offset;
    (tgid as i16, dentry)
}

fn spec() -> ObjectSpec {
    spec_with(local_offsets())
}

fn insns<'a>(obj: &'a Object, program: &str) -> &'a [bpf_insn] {
    let p = &obj.programs[program];
    &obj.functions[&p.function_key()].instructions
}

fn is_poisoned(i: &bpf_insn) -> bool {
    i.code == 0x85 && i.imm == POISON
}

/// The CO-RE value aya wrote: `off` for loads/stores, `imm` for ALU.
fn core_value(i: &bpf_insn) -> i64 {
    if i.code & 0x07 == 0x01 {
        i64::from(i.off)
    } else {
        i64::from(i.imm)
    }
}

/// Returns the target BTF, or None (after saying why) when this machine has none. In CI
/// (`CI` set) a missing vmlinux BTF is a failure, not a skip.
fn vmlinux() -> Option<(Btf, MiniBtf)> {
    if !Path::new(VMLINUX).exists() {
        assert!(std::env::var_os("CI").is_none(), "{VMLINUX} missing in CI");
        eprintln!("skipping: {VMLINUX} does not exist (kernel without CONFIG_DEBUG_INFO_BTF)");
        return None;
    }
    let data = std::fs::read(VMLINUX).unwrap();
    Some((Btf::from_sys_fs().unwrap(), MiniBtf::parse(&data)))
}

// ---- an independent minimal BTF reader ------------------------------------------------------

#[derive(Default)]
struct Ty {
    name: String,
    kind: u32,
    size_or_type: u32,
    members: Vec<(String, u32, u32)>, // name, type, bit offset
    array: (u32, u32),                // element type, nelems
}

struct MiniBtf {
    types: Vec<Ty>,
    strings: Vec<u8>,
}

fn u32_at(d: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(d[off..off + 4].try_into().unwrap())
}

impl MiniBtf {
    fn parse(d: &[u8]) -> Self {
        assert_eq!(&d[..4], &[0x9f, 0xeb, 1, 0], "BTF magic/version/flags");
        let hdr = u32_at(d, 4) as usize;
        let (toff, tlen) = (hdr + u32_at(d, 8) as usize, u32_at(d, 12) as usize);
        let (soff, slen) = (hdr + u32_at(d, 16) as usize, u32_at(d, 20) as usize);
        let strings = d[soff..soff + slen].to_vec();
        let mut btf = MiniBtf {
            types: vec![Ty::default()],
            strings,
        };
        let mut p = toff;
        while p < toff + tlen {
            let info = u32_at(d, p + 4);
            let (kind, vlen, kflag) = ((info >> 24) & 0x1f, (info & 0xffff) as usize, info >> 31);
            let (name, size_or_type) = (btf.str(u32_at(d, p)), u32_at(d, p + 8));
            let mut ty = Ty {
                name,
                kind,
                size_or_type,
                ..Ty::default()
            };
            p += 12;
            p += match kind {
                1 | 14 | 17 => 4,
                3 => {
                    ty.array = (u32_at(d, p), u32_at(d, p + 8));
                    12
                }
                4 | 5 => {
                    for i in 0..vlen {
                        let q = p + 12 * i;
                        let off = u32_at(d, q + 8);
                        let bits = if kflag == 1 { off & 0xff_ffff } else { off };
                        ty.members
                            .push((btf.str(u32_at(d, q)), u32_at(d, q + 4), bits));
                    }
                    12 * vlen
                }
                6 | 13 => 8 * vlen,
                15 | 19 => 12 * vlen,
                _ => 0,
            };
            btf.types.push(ty);
        }
        btf
    }

    fn str(&self, off: u32) -> String {
        let s = &self.strings[off as usize..];
        String::from_utf8(s[..s.iter().position(|&b| b == 0).unwrap()].to_vec()).unwrap()
    }

    /// Skips typedef, volatile, const, restrict and type tags.
    fn resolve(&self, mut id: u32) -> u32 {
        while matches!(self.types[id as usize].kind, 8..=11 | 18) {
            id = self.types[id as usize].size_or_type;
        }
        id
    }

    fn size(&self, id: u32) -> u32 {
        let t = &self.types[self.resolve(id) as usize];
        match t.kind {
            2 => 8,
            3 => t.array.1 * self.size(t.array.0),
            _ => t.size_or_type,
        }
    }

    /// Member `name` of struct/union `id`, looking through anonymous members like the kernel's
    /// `qstr.len` or 6.18's `file.f_path`: (bit offset, type).
    fn member(&self, id: u32, name: &str) -> Option<(u32, u32)> {
        for (n, ty, bits) in &self.types[self.resolve(id) as usize].members {
            if n == name {
                return Some((*bits, *ty));
            }
            if n.is_empty()
                && let Some((b, t)) = self.member(*ty, name)
            {
                return Some((bits + b, t));
            }
        }
        None
    }

    /// Byte offset and size of `root.path...` in this BTF (numeric steps index arrays).
    fn offset_of(&self, root: &str, path: &[&str]) -> Option<(u32, u32)> {
        let mut cur = self
            .types
            .iter()
            .position(|t| t.kind == 4 && t.name == root)? as u32;
        let mut bits = 0;
        for step in path {
            if let Ok(i) = step.parse::<u32>() {
                let elem = self.types[self.resolve(cur) as usize].array.0;
                bits += i * self.size(elem) * 8;
                cur = elem;
            } else {
                let (b, t) = self.member(cur, step)?;
                bits += b;
                cur = t;
            }
        }
        Some((bits / 8, self.size(cur)))
    }
}

/// `.BTF.ext` core_relo records per section: (insn byte offset, root type name, access, kind).
type CoreRecords = BTreeMap<String, Vec<(u32, String, String, u32)>>;

fn decode_btf_ext(ext: &[u8], btf: &MiniBtf) -> CoreRecords {
    let hdr = u32_at(ext, 4) as usize;
    // magic, version 1, flags 0; hdr_len 32, so the header includes the core_relo fields.
    assert_eq!((&ext[..4], hdr), (&[0x9f, 0xeb, 1, 0][..], 32));
    let block = |i: usize| {
        let (off, len) = (u32_at(ext, 8 + 8 * i), u32_at(ext, 12 + 8 * i));
        (hdr + off as usize, len as usize)
    };
    let [func, line, core] = [0, 1, 2].map(block);
    // func_info and line_info hold only their rec_size; core_relo records are 16 bytes.
    let rec_sizes = [func, line, core].map(|(off, _)| u32_at(ext, off));
    assert_eq!((func.1, line.1, rec_sizes), (4, 4, [8, 16, 16]));
    let mut out = CoreRecords::new();
    let mut p = core.0 + 4;
    while p < core.0 + core.1 {
        let (sec, n) = (btf.str(u32_at(ext, p)), u32_at(ext, p + 4) as usize);
        for rec in ext[p + 8..p + 8 + 16 * n].chunks(16) {
            let [off, ty, access, kind] = [0, 4, 8, 12].map(|i| u32_at(rec, i));
            let root = btf.types[ty as usize].name.clone();
            let recs = out.entry(sec.clone()).or_default();
            recs.push((off, root, btf.str(access), kind));
        }
        p += 8 + 16 * n;
    }
    assert_eq!(p, core.0 + core.1, "core_relo block fully consumed");
    out
}

// ---- tests ----------------------------------------------------------------------------------

#[test]
fn aya_parses_programs_maps_rodata_and_relocations() {
    let bytes = write_object(&spec()).unwrap();
    let mut obj = Object::parse(&bytes).expect("aya-obj parses the object");

    assert_eq!(obj.license.to_str().unwrap(), "GPL");
    let kind = |p: &str| obj.programs[p].section.clone();
    assert!(matches!(kind("on_openat_exit"), ProgramSection::TracePoint));
    assert!(matches!(kind("on_exec"), ProgramSection::BtfTracePoint));
    assert_eq!(obj.programs.len(), 2);
    for (p, ..) in PROGRAMS {
        assert_eq!(insns(&obj, p).len(), 8, "{p}: instruction count");
    }

    // Legacy maps with their defs; rodata sections as frozen-array maps carrying their data;
    // nothing for .guard.meta (aya ignores unknown non-executable sections).
    let mut names: Vec<_> = obj.maps.keys().cloned().collect();
    names.sort();
    assert_eq!(names, [".rodata.cdfa", ".rodata.pdfa", "EVENTS", "SEEN"]);
    for (name, def) in spec().maps {
        let m = &obj.maps[&name];
        let got = (m.map_type(), m.key_size(), m.value_size(), m.max_entries());
        let want = (def.map_type, def.key_size, def.value_size, def.max_entries);
        assert_eq!((got, m.map_flags()), (want, def.map_flags), "{name}");
        assert_eq!(m.section_kind(), EbpfSectionKind::Maps);
    }
    for (name, data) in &spec().rodata {
        let m = &obj.maps[name];
        assert_eq!(m.section_kind(), EbpfSectionKind::Rodata);
        assert_eq!(m.data(), &data[..], "{name} data");
        let want = (data.len() as u32, BPF_F_RDONLY_PROG);
        assert_eq!((m.value_size(), m.map_flags()), want);
    }

    // The rodata symbol spans its section, so `EbpfLoader::override_global(".rodata.x", ..)`
    // (aya's `patch_map_data`) can replace a whole blob at load time.
    let new = [0xee; 32];
    let globals = HashMap::from([(".rodata.cdfa", (&new[..], true))]);
    obj.patch_map_data(globals).unwrap();
    assert_eq!(obj.maps[".rodata.cdfa"].data(), &new[..]);

    // Map relocations: let aya apply them with fake fds and check which instructions changed.
    let maps = obj.maps.clone();
    let fd = |name: &str| 100 + names.iter().position(|n| n == name).unwrap() as i32;
    let fds = maps.iter().map(|(n, m)| (n.as_str(), fd(n), m));
    obj.relocate_maps(fds, &HashSet::new()).unwrap();
    for (p, _, map, ro) in PROGRAMS {
        let i = insns(&obj, p);
        // BPF_PSEUDO_MAP_FD, then BPF_PSEUDO_MAP_VALUE with our imm (16) + symbol value (0).
        assert_eq!((i[0].src_reg(), i[0].imm), (1, fd(map)), "{p}");
        assert_eq!((i[2].src_reg(), i[2].imm, i[3].imm), (2, fd(ro), 16), "{p}");
        // Untouched neighbours: addend 0 kept object from writing over them.
        assert_eq!((i[4].code, i[6].code), (0x61, 0xb7), "{p}");
    }

    // .BTF / .BTF.ext: aya parsed both and sees CO-RE relocations; the records say what we meant.
    assert!(obj.btf.is_some() && obj.btf_ext.is_some());
    assert!(obj.has_btf_relocations());
    let btf = MiniBtf::parse(&read_section(&bytes, ".BTF").unwrap());
    let records = decode_btf_ext(&read_section(&bytes, ".BTF.ext").unwrap(), &btf);
    let expected = vec![
        (32, "task_struct".to_string(), "0:1".to_string(), 0),
        (40, "file".to_string(), "0:0:1".to_string(), 0),
    ];
    let sections: Vec<_> = records.keys().collect();
    assert_eq!(sections, [BTF_SECTION, TP_SECTION]);
    assert_eq!(records[TP_SECTION], expected);
    assert_eq!(records[BTF_SECTION], expected);
    // Local BTF: pointers to structs point at the struct (void* would be type 0).
    let task = btf.types.iter().position(|t| t.name == "task_struct");
    let task = task.unwrap() as u32;
    let (_, parent) = btf.member(task, "real_parent").unwrap();
    let parent = &btf.types[parent as usize];
    assert_eq!((parent.kind, parent.size_or_type), (2, task));
    assert_eq!(read_metadata(&bytes).unwrap(), spec().metadata);
}

#[test]
fn core_relocations_against_own_btf_restore_local_offsets() {
    // Placeholder offsets: relocating against the object's own BTF must write the local ones,
    // which proves the records point at the right instructions, types and members.
    let bytes = write_object(&spec_with((0x555, 0x555))).unwrap();
    let mut obj = Object::parse(&bytes).unwrap();
    let own = obj.btf.clone().unwrap();
    obj.relocate_btf(&own).expect("relocate against own BTF");
    let (tgid, dentry) = local_offsets();
    for (p, ..) in PROGRAMS {
        let i = insns(&obj, p);
        // ldxw task_struct.tgid, add file.f_path.dentry
        let got = (i[4].code, i[4].off, i[5].code, i[5].imm);
        assert_eq!(got, (0x61, tgid, 0x07, dentry), "{p}");
    }
}

#[test]
fn core_relocations_against_this_kernel() {
    let Some((target, vmlinux)) = vmlinux() else {
        return;
    };
    let bytes = write_object(&spec()).unwrap();
    let mut obj = Object::parse(&bytes).unwrap();
    obj.relocate_btf(&target).expect("relocate");
    let (want_tgid, _) = vmlinux.offset_of("task_struct", &["tgid"]).unwrap();
    let (want_dentry, _) = vmlinux.offset_of("file", &["f_path", "dentry"]).unwrap();
    let (local_tgid, local_dentry) = local_offsets();
    for (p, ..) in PROGRAMS {
        let i = insns(&obj, p);
        let poisoned = is_poisoned(&i[4]) || is_poisoned(&i[5]);
        assert!(!poisoned, "{p}: poisoned CO-RE insn");
        assert_eq!(i[4].off as u32, want_tgid, "{p}: task_struct.tgid");
        assert_eq!(i[5].imm as u32, want_dentry, "{p}: file.f_path.dentry");
        println!("{p}: task_struct.tgid {local_tgid} -> {}", i[4].off);
        println!("{p}: file.f_path.dentry {local_dentry} -> {}", i[5].imm);
    }
    // The layout really was relocated (our local task_struct is compact).
    assert_ne!(i64::from(want_tgid), i64::from(local_tgid));
}

/// Every field the brief lists, plus the nested paths the templates use (`root.member...`;
/// numbers index arrays).
const FIELDS: &str = "
    task_struct.pid task_struct.tgid task_struct.real_parent task_struct.mm task_struct.files
    task_struct.fs task_struct.thread_pid mm_struct.arg_start mm_struct.arg_end files_struct.fdt
    fdtable.max_fds fdtable.fd file.f_path file.f_path.mnt file.f_path.dentry path.mnt
    path.dentry dentry.d_parent dentry.d_name dentry.d_name.len dentry.d_name.name qstr.len
    qstr.name vfsmount.mnt_root mount.mnt_parent mount.mnt_mountpoint mount.mnt
    mount.mnt.mnt_root fs_struct.root fs_struct.root.mnt fs_struct.root.dentry pid.level
    pid.numbers pid.numbers.0.nr upid.nr task_struct.signal signal_struct.tty tty_struct.index
    linux_binprm.file file.f_mode task_struct.comm task_struct.group_leader linux_binprm.argc
    linux_binprm.filename linux_binprm.interp linux_binprm.buf";

/// FIELDS as (root, path): the root is `'static` because CoreReloc wants it.
fn fields() -> Vec<(&'static str, Vec<&'static str>)> {
    let split = |f: &'static str| f.split_once('.').unwrap();
    let field = |(root, path): (&'static str, &'static str)| (root, path.split('.').collect());
    FIELDS.split_whitespace().map(split).map(field).collect()
}

/// Whether the field is a scalar/pointer (read with LDX) rather than an embedded struct/array
/// (whose address is computed with ADD): aya refuses LDX relocations whose sizes differ.
fn is_loadable(root: &str, path: &[&str]) -> bool {
    let mut ty = KType::Struct(ktypes::find_struct(root).unwrap().name);
    for step in path {
        ty = match ty {
            KType::Struct(s) => {
                let members = ktypes::find_struct(s).unwrap().members;
                members.iter().find(|m| m.name == *step).unwrap().ty
            }
            KType::Array(elem, _) => *elem,
            other => panic!("{other:?}"),
        };
    }
    matches!(ty, KType::Int(_) | KType::Ptr(_))
}

#[test]
fn every_ktypes_field_resolves_and_relocates() {
    // The list covers every described member (so a new ktypes member needs a line here) ...
    let list = fields();
    for s in ktypes::structs() {
        for m in s.members {
            let covered = list.contains(&(s.name, vec![m.name]));
            assert!(covered, "{}.{} not tested", s.name, m.name);
        }
    }
    // ... and field() agrees with hand-computed local layouts for a few.
    let get = |root, path: &[&str]| {
        let f = ktypes::field(root, path);
        (f.root, f.access, f.local_offset, f.size)
    };
    let want = |root, access: &str, offset, size| (root, access.to_string(), offset, size);
    assert_eq!(
        get("file", &["f_path", "dentry"]),
        want("file", "0:0:1", 8, 8)
    );
    assert_eq!(
        get("dentry", &["d_name", "len"]),
        want("dentry", "0:1:0", 8, 4)
    );
    assert_eq!(
        get("pid", &["numbers", "0", "nr"]),
        want("pid", "0:1:0:0", 8, 4)
    );

    // One program with one CO-RE instruction per field, emitted with a placeholder offset.
    let fields: Vec<_> = list.iter().map(|(r, p)| ktypes::field(r, p)).collect();
    let mut code = Vec::new();
    let mut core_relocs = Vec::new();
    for (i, ((root, path), f)) in list.iter().zip(&fields).enumerate() {
        if is_loadable(root, path) {
            code.extend(ldx(f.size, 1, 2, 0x7ff));
        } else {
            code.extend(add_imm(1, 0x7ff));
        }
        core_relocs.push(core(i, f.clone()));
    }
    code.extend(exit0());
    let spec = ObjectSpec {
        license: "GPL".into(),
        programs: vec![prog("all_fields", BTF_SECTION, code, core_relocs)],
        maps: vec![],
        btf_maps: Vec::new(),
        rodata: vec![],
        metadata: vec![],
    };
    let bytes = write_object(&spec).unwrap();

    // Against our own BTF every record resolves to the local offset.
    let mut obj = Object::parse(&bytes).unwrap();
    obj.relocate_btf(&obj.btf.clone().unwrap()).unwrap();
    let relocated = insns(&obj, "all_fields");
    for (i, f) in fields.iter().enumerate() {
        let want = i64::from(f.local_offset);
        assert_eq!(core_value(&relocated[i]), want, "{f:?}");
    }

    // Against this kernel: no poison, and the offsets an independent BTF walk finds.
    let Some((target, vmlinux)) = vmlinux() else {
        return;
    };
    let mut obj = Object::parse(&bytes).unwrap();
    obj.relocate_btf(&target).expect("relocate every field");
    let relocated = insns(&obj, "all_fields");
    for (i, ((root, path), f)) in list.iter().zip(&fields).enumerate() {
        let name = format!("{root}.{}", path.join("."));
        assert!(!is_poisoned(&relocated[i]), "{name}: poisoned (no match)");
        let (want, kernel_size) = vmlinux.offset_of(root, path).expect(&name);
        assert_eq!(core_value(&relocated[i]), i64::from(want), "{name}");
        if is_loadable(root, path) {
            assert_eq!(kernel_size, f.size, "{name}: local size != kernel's");
        }
        let (access, local) = (&f.access, f.local_offset);
        println!("{name:28} access {access:8} local {local:3} -> kernel {want}");
    }
}

#[test]
fn output_is_deterministic() {
    let a = write_object(&spec()).unwrap();
    let b = write_object(&spec().clone()).unwrap();
    assert!(a == b, "two writes of the same spec differ");
    let other = write_object(&spec_with((0, 0))).unwrap();
    assert!(a != other, "the input actually matters");
}

type Mutation = &'static dyn Fn(&mut ObjectSpec);

#[test]
fn write_object_rejects_bad_specs() {
    // Each error message carries the values that identify the problem, so matching the text
    // checks the variant and its fields.
    #[rustfmt::skip]
    let cases: [(Mutation, &str); 13] = [
        (&|s| s.programs[0].code.push(0), "code length 65 is not a multiple of 8"),
        (&|s| s.programs[0].map_relocs[0].symbol = "NOPE".into(), "data section `NOPE`"),
        (&|s| s.programs[0].map_relocs[0].insn_index = 7, "7 out of range (8 instructions)"),
        (&|s| s.programs[0].map_relocs[0].insn_index = 4, "4 is not on an ld_imm64 (opcode 0x61)"),
        // rodata offset 64 of a 64-byte blob
        (&|s| s.programs[0].code[16 + 4] = 64, "offset 64 of `.rodata.pdfa`, which"),
        (&|s| s.programs[0].core_relocs[0].insn_index = 7, "instruction 7 needs LDX/ST/STX"),
        (&|s| s.programs[0].core_relocs[0].insn_index = 0, "two relocations on instruction 0"),
        (&|s| s.programs[0].core_relocs[0].access = "0:42".into(), "member index 42 out of range"),
        (&|s| s.maps[0].0 = "on_exec".into(), "duplicate symbol `on_exec`"),
        (&|s| s.programs[1].section = TP_SECTION.into(), "duplicate section `tracepoint/"),
        (&|s| s.rodata[0].0 = ".data.pdfa".into(), "must start with `.rodata`"),
        (&|s| s.programs[0].section = "maps/x".into(), "`maps/x`: is reserved"),
        (&|s| s.license = "GPL\0".into(), "license `GPL\0` must be non-empty"),
    ];
    for (mutate, want) in cases {
        let mut s = spec();
        mutate(&mut s);
        let e = write_object(&s).expect_err(want).to_string();
        assert!(e.contains(want), "got `{e}`, want `{want}`");
    }
}

#[test]
fn read_metadata_errors() {
    let bytes = write_object(&spec()).unwrap();
    let cdfa = read_section(&bytes, ".rodata.cdfa").unwrap();
    assert_eq!(cdfa, spec().rodata[1].1);

    let e = read_metadata(b"#!/bin/sh\n").unwrap_err();
    assert!(matches!(e, ElfError::NotElf), "{e}");
    assert_eq!(e.to_string(), "not an ELF file");

    let e = read_metadata(&bytes[..40]).unwrap_err();
    assert!(matches!(e, ElfError::Malformed(_)), "{e}");

    let mut x86 = bytes.clone();
    x86[18..20].copy_from_slice(&62u16.to_le_bytes()); // e_machine = EM_X86_64
    let e = read_metadata(&x86).unwrap_err();
    assert!(matches!(e, ElfError::NotBpf { machine: 62 }), "{e}");

    // Rename the section in .shstrtab: the object is otherwise intact.
    let mut renamed = bytes.clone();
    let at = renamed.windows(11).position(|w| w == b".guard.meta");
    let at = at.unwrap();
    renamed[at + 1] = b'G';
    Object::parse(&renamed).expect("still a valid object");
    let e = read_metadata(&renamed).unwrap_err();
    assert!(matches!(e, ElfError::MissingSection(_)), "{e}");
    assert_eq!(e.to_string(), "no `.guard.meta` section in the object");
}

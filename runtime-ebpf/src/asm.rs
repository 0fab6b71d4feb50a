//! A small BPF assembler: instructions with named registers, symbolic labels resolved once the
//! list is final, map and CO-RE relocations recorded next to the instruction that needs them,
//! and comments carried along so `guardc --emit asm` can print an annotated listing.
//!
//! Only the instructions the templates use are exposed; each method emits exactly one
//! instruction (two slots for `ld_imm64`), so the listing maps one-to-one onto the bytecode.

use std::fmt::Write as _;

use crate::elf::{CoreReloc, MapReloc};
use crate::ktypes::CoreField;

/// A BPF register. `R10` is the read-only frame pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg(pub u8);

pub const R0: Reg = Reg(0);
pub const R1: Reg = Reg(1);
pub const R2: Reg = Reg(2);
pub const R3: Reg = Reg(3);
pub const R4: Reg = Reg(4);
pub const R5: Reg = Reg(5);
pub const R6: Reg = Reg(6);
pub const R7: Reg = Reg(7);
pub const R8: Reg = Reg(8);
pub const R9: Reg = Reg(9);
pub const FP: Reg = Reg(10);

/// Width of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    fn code(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }

    fn c_type(self) -> &'static str {
        match self {
            Size::B => "u8",
            Size::H => "u16",
            Size::W => "u32",
            Size::DW => "u64",
        }
    }

    pub fn bytes(self) -> u32 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }
}

/// 64-bit ALU operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alu {
    Add,
    Sub,
    Mul,
    Div,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    Xor,
    Mov,
    Arsh,
}

impl Alu {
    fn code(self) -> u8 {
        match self {
            Alu::Add => 0x00,
            Alu::Sub => 0x10,
            Alu::Mul => 0x20,
            Alu::Div => 0x30,
            Alu::Or => 0x40,
            Alu::And => 0x50,
            Alu::Lsh => 0x60,
            Alu::Rsh => 0x70,
            Alu::Mod => 0x90,
            Alu::Xor => 0xa0,
            Alu::Mov => 0xb0,
            Alu::Arsh => 0xc0,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Alu::Add => "+=",
            Alu::Sub => "-=",
            Alu::Mul => "*=",
            Alu::Div => "/=",
            Alu::Or => "|=",
            Alu::And => "&=",
            Alu::Lsh => "<<=",
            Alu::Rsh => ">>=",
            Alu::Mod => "%=",
            Alu::Xor => "^=",
            Alu::Mov => "=",
            Alu::Arsh => "s>>=",
        }
    }
}

/// Conditional jumps (64-bit compares).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    Eq,
    Gt,
    Ge,
    Set,
    Ne,
    Sgt,
    Sge,
    Lt,
    Le,
    Slt,
    Sle,
}

impl Cond {
    fn code(self) -> u8 {
        match self {
            Cond::Eq => 0x10,
            Cond::Gt => 0x20,
            Cond::Ge => 0x30,
            Cond::Set => 0x40,
            Cond::Ne => 0x50,
            Cond::Sgt => 0x60,
            Cond::Sge => 0x70,
            Cond::Lt => 0xa0,
            Cond::Le => 0xb0,
            Cond::Slt => 0xc0,
            Cond::Sle => 0xd0,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Cond::Eq => "==",
            Cond::Gt => ">",
            Cond::Ge => ">=",
            Cond::Set => "&",
            Cond::Ne => "!=",
            Cond::Sgt => "s>",
            Cond::Sge => "s>=",
            Cond::Lt => "<",
            Cond::Le => "<=",
            Cond::Slt => "s<",
            Cond::Sle => "s<=",
        }
    }
}

/// The kernel helpers the templates call (numbers from `include/uapi/linux/bpf.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Helper {
    MapLookupElem = 1,
    MapUpdateElem = 2,
    MapDeleteElem = 3,
    GetCurrentPidTgid = 14,
    GetCurrentUidGid = 15,
    GetCurrentComm = 16,
    GetCurrentCgroupId = 80,
    SendSignal = 109,
    ProbeReadUser = 112,
    ProbeReadKernel = 113,
    ProbeReadUserStr = 114,
    ProbeReadKernelStr = 115,
    KtimeGetBootNs = 125,
    RingbufReserve = 131,
    RingbufSubmit = 132,
    TaskStorageGet = 156,
    GetCurrentTaskBtf = 158,
}

impl Helper {
    fn name(self) -> &'static str {
        match self {
            Helper::MapLookupElem => "bpf_map_lookup_elem",
            Helper::MapUpdateElem => "bpf_map_update_elem",
            Helper::MapDeleteElem => "bpf_map_delete_elem",
            Helper::GetCurrentPidTgid => "bpf_get_current_pid_tgid",
            Helper::GetCurrentUidGid => "bpf_get_current_uid_gid",
            Helper::GetCurrentComm => "bpf_get_current_comm",
            Helper::GetCurrentCgroupId => "bpf_get_current_cgroup_id",
            Helper::SendSignal => "bpf_send_signal",
            Helper::ProbeReadUser => "bpf_probe_read_user",
            Helper::ProbeReadKernel => "bpf_probe_read_kernel",
            Helper::ProbeReadUserStr => "bpf_probe_read_user_str",
            Helper::ProbeReadKernelStr => "bpf_probe_read_kernel_str",
            Helper::KtimeGetBootNs => "bpf_ktime_get_boot_ns",
            Helper::RingbufReserve => "bpf_ringbuf_reserve",
            Helper::RingbufSubmit => "bpf_ringbuf_submit",
            Helper::TaskStorageGet => "bpf_task_storage_get",
            Helper::GetCurrentTaskBtf => "bpf_get_current_task_btf",
        }
    }
}

/// A jump target, bound to a position with [`Asm::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label(u32);

/// One encoded instruction slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    /// The inverse of [`Insn::to_bytes`], for an 8-byte slot (the simulator decodes objects).
    pub fn from_bytes(b: &[u8]) -> Insn {
        Insn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

enum Item {
    /// A finished instruction and its listing text.
    Insn(Insn, String),
    /// A jump whose offset is known once labels are bound.
    Jump(Insn, Label, String),
    /// `ld_imm64` (two slots), optionally relocated against a map or data section.
    Wide(Insn, Insn, Option<String>, String),
    Bind(Label),
    Comment(String),
}

/// Errors found when the instruction list is finalised: these are bugs in a template, never
/// caused by a policy, so they are reported with the program name for the developer.
#[derive(Debug, thiserror::Error)]
pub enum AsmError {
    #[error("program `{0}`: label {1} is used but never bound")]
    UnboundLabel(String, u32),
    #[error("program `{0}`: jump to label {1} is out of range ({2} instructions)")]
    JumpTooFar(String, u32, i64),
}

/// A finished program: bytecode, relocations and its annotated listing.
#[derive(Clone, Debug)]
pub struct Assembled {
    pub name: String,
    pub code: Vec<u8>,
    pub map_relocs: Vec<MapReloc>,
    pub core_relocs: Vec<CoreReloc>,
    pub listing: String,
}

impl Assembled {
    pub fn insn_count(&self) -> usize {
        self.code.len() / 8
    }
}

/// The instruction list under construction.
pub struct Asm {
    name: String,
    items: Vec<Item>,
    labels: u32,
    /// CO-RE relocations, by index into `items`.
    core: Vec<(usize, CoreField)>,
}

impl Asm {
    pub fn new(name: &str) -> Asm {
        Asm {
            name: name.to_string(),
            items: Vec::new(),
            labels: 0,
            core: Vec::new(),
        }
    }

    pub fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels)
    }

    pub fn bind(&mut self, label: Label) {
        self.items.push(Item::Bind(label));
    }

    pub fn comment(&mut self, text: impl Into<String>) {
        self.items.push(Item::Comment(text.into()));
    }

    fn push(&mut self, insn: Insn, text: String) {
        self.items.push(Item::Insn(insn, text));
    }

    /// `dst op= imm` (64-bit).
    pub fn alu_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        let insn = Insn {
            code: 0x07 | op.code(),
            dst: dst.0,
            imm,
            ..Insn::default()
        };
        self.push(insn, format!("r{} {} {}", dst.0, op.symbol(), imm));
    }

    /// `dst op= src` (64-bit).
    pub fn alu_reg(&mut self, op: Alu, dst: Reg, src: Reg) {
        let insn = Insn {
            code: 0x0f | op.code(),
            dst: dst.0,
            src: src.0,
            ..Insn::default()
        };
        self.push(insn, format!("r{} {} r{}", dst.0, op.symbol(), src.0));
    }

    pub fn mov_imm(&mut self, dst: Reg, imm: i32) {
        self.alu_imm(Alu::Mov, dst, imm);
    }

    pub fn mov(&mut self, dst: Reg, src: Reg) {
        self.alu_reg(Alu::Mov, dst, src);
    }

    /// `dst = *(size *)(src + off)`.
    pub fn ldx(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        let insn = Insn {
            code: 0x61 | size.code(),
            dst: dst.0,
            src: src.0,
            off,
            imm: 0,
        };
        let text = format!("r{} = *({} *)(r{} {:+})", dst.0, size.c_type(), src.0, off);
        self.push(insn, text);
    }

    /// `*(size *)(dst + off) = src`.
    pub fn stx(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        let insn = Insn {
            code: 0x63 | size.code(),
            dst: dst.0,
            src: src.0,
            off,
            imm: 0,
        };
        let text = format!("*({} *)(r{} {:+}) = r{}", size.c_type(), dst.0, off, src.0);
        self.push(insn, text);
    }

    /// `*(size *)(dst + off) = imm`.
    pub fn st(&mut self, size: Size, dst: Reg, off: i16, imm: i32) {
        let insn = Insn {
            code: 0x62 | size.code(),
            dst: dst.0,
            src: 0,
            off,
            imm,
        };
        let text = format!("*({} *)(r{} {:+}) = {}", size.c_type(), dst.0, off, imm);
        self.push(insn, text);
    }

    /// `dst = *(size *)(src + offsetof(field))`, with a CO-RE relocation on the offset.
    pub fn ldx_field(&mut self, size: Size, dst: Reg, src: Reg, field: CoreField) {
        let off = i16::try_from(field.local_offset).unwrap_or(i16::MAX);
        self.ldx(size, dst, src, off);
        self.note_core(field);
    }

    /// `dst += offsetof(field)`, with a CO-RE relocation on the immediate.
    pub fn add_field(&mut self, dst: Reg, field: CoreField) {
        self.alu_imm(Alu::Add, dst, field.local_offset);
        self.note_core(field);
    }

    fn note_core(&mut self, field: CoreField) {
        let idx = self.items.len() - 1;
        if let Some(Item::Insn(_, text)) = self.items.get_mut(idx) {
            let _ = write!(text, "    ; CO-RE {}:{}", field.root, field.access);
        }
        self.core.push((idx, field));
    }

    pub fn jmp(&mut self, target: Label) {
        let insn = Insn {
            code: 0x05,
            ..Insn::default()
        };
        self.items
            .push(Item::Jump(insn, target, "goto".to_string()));
    }

    /// `if dst <cond> imm goto target`.
    pub fn jmp_imm(&mut self, cond: Cond, dst: Reg, imm: i32, target: Label) {
        let insn = Insn {
            code: 0x05 | cond.code(),
            dst: dst.0,
            imm,
            ..Insn::default()
        };
        let text = format!("if r{} {} {} goto", dst.0, cond.symbol(), imm);
        self.items.push(Item::Jump(insn, target, text));
    }

    /// `if dst <cond> src goto target`.
    pub fn jmp_reg(&mut self, cond: Cond, dst: Reg, src: Reg, target: Label) {
        let insn = Insn {
            code: 0x0d | cond.code(),
            dst: dst.0,
            src: src.0,
            ..Insn::default()
        };
        let text = format!("if r{} {} r{} goto", dst.0, cond.symbol(), src.0);
        self.items.push(Item::Jump(insn, target, text));
    }

    pub fn call(&mut self, helper: Helper) {
        let insn = Insn {
            code: 0x85,
            imm: helper as i32,
            ..Insn::default()
        };
        self.push(insn, format!("call {}", helper.name()));
    }

    pub fn exit(&mut self) {
        let insn = Insn {
            code: 0x95,
            ..Insn::default()
        };
        self.push(insn, "exit".to_string());
    }

    /// `dst = imm64`.
    pub fn ld_imm64(&mut self, dst: Reg, value: u64) {
        let (lo, hi) = (value as u32 as i32, (value >> 32) as u32 as i32);
        let a = Insn {
            code: 0x18,
            dst: dst.0,
            imm: lo,
            ..Insn::default()
        };
        let b = Insn {
            imm: hi,
            ..Insn::default()
        };
        let text = format!("r{} = {:#x} ll", dst.0, value);
        self.items.push(Item::Wide(a, b, None, text));
    }

    /// `dst = &map` (a map handle for helpers), relocated against the map's symbol.
    pub fn ld_map(&mut self, dst: Reg, map: &str) {
        let a = Insn {
            code: 0x18,
            dst: dst.0,
            ..Insn::default()
        };
        let text = format!("r{} = map[{}] ll", dst.0, map);
        self.items
            .push(Item::Wide(a, Insn::default(), Some(map.to_string()), text));
    }

    /// `dst = &section[offset]`: a direct pointer into a read-only data section's map value.
    pub fn ld_data(&mut self, dst: Reg, section: &str, offset: i32) {
        let a = Insn {
            code: 0x18,
            dst: dst.0,
            imm: offset,
            ..Insn::default()
        };
        let text = format!("r{} = &{}[{}] ll", dst.0, section, offset);
        self.items.push(Item::Wide(
            a,
            Insn::default(),
            Some(section.to_string()),
            text,
        ));
    }

    /// Resolves labels and produces the bytecode, the relocations and the listing.
    pub fn finish(self) -> Result<Assembled, AsmError> {
        // First pass: the slot index of every item and every label.
        let mut slot = 0usize;
        let mut slots = Vec::with_capacity(self.items.len());
        let mut bound = std::collections::HashMap::new();
        for item in &self.items {
            slots.push(slot);
            match item {
                Item::Insn(..) | Item::Jump(..) => slot += 1,
                Item::Wide(..) => slot += 2,
                Item::Bind(l) => {
                    bound.insert(*l, slot);
                }
                Item::Comment(_) => {}
            }
        }
        let mut code = Vec::with_capacity(slot * 8);
        let mut map_relocs = Vec::new();
        let mut listing = String::new();
        let label_names: std::collections::HashMap<Label, usize> = bound.clone();
        for (i, item) in self.items.iter().enumerate() {
            let at = slots[i];
            match item {
                Item::Insn(insn, text) => {
                    code.extend_from_slice(&insn.to_bytes());
                    let _ = writeln!(listing, "{at:5}: {text}");
                }
                Item::Jump(insn, target, text) => {
                    let dest = *bound
                        .get(target)
                        .ok_or(AsmError::UnboundLabel(self.name.clone(), target.0))?;
                    let rel = dest as i64 - at as i64 - 1;
                    let off = i16::try_from(rel)
                        .map_err(|_| AsmError::JumpTooFar(self.name.clone(), target.0, rel))?;
                    let mut insn = *insn;
                    insn.off = off;
                    code.extend_from_slice(&insn.to_bytes());
                    let name = label_names.get(target).copied().unwrap_or(0);
                    let _ = writeln!(listing, "{at:5}: {text} {off:+} <L{name}>");
                }
                Item::Wide(a, b, reloc, text) => {
                    code.extend_from_slice(&a.to_bytes());
                    code.extend_from_slice(&b.to_bytes());
                    if let Some(symbol) = reloc {
                        map_relocs.push(MapReloc {
                            insn_index: at,
                            symbol: symbol.clone(),
                        });
                    }
                    let _ = writeln!(listing, "{at:5}: {text}");
                }
                Item::Bind(_) => {
                    let _ = writeln!(listing, "L{at}:");
                }
                Item::Comment(text) => {
                    let _ = writeln!(listing, "       ; {text}");
                }
            }
        }
        let core_relocs = self
            .core
            .into_iter()
            .map(|(idx, field)| CoreReloc {
                insn_index: slots[idx],
                root: field.root,
                access: field.access,
            })
            .collect();
        Ok(Assembled {
            name: self.name,
            code,
            map_relocs,
            core_relocs,
            listing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_kernel_macros() {
        let mut a = Asm::new("t");
        a.mov_imm(R0, 7); // BPF_MOV64_IMM(BPF_REG_0, 7) = b7 00 00 00 07 00 00 00
        a.ldx(Size::W, R2, R1, 16); // BPF_LDX_MEM(BPF_W, 2, 1, 16) = 61 12 10 00 ...
        a.exit();
        let p = a.finish().unwrap();
        assert_eq!(
            p.code,
            vec![
                0xb7, 0, 0, 0, 7, 0, 0, 0, //
                0x61, 0x12, 16, 0, 0, 0, 0, 0, //
                0x95, 0, 0, 0, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn resolves_forward_and_backward_jumps_across_wide_insns() {
        let mut a = Asm::new("t");
        let top = a.label();
        let out = a.label();
        a.bind(top);
        a.ld_map(R1, "M"); // slots 0-1
        a.jmp_imm(Cond::Eq, R1, 0, out); // slot 2 -> 4: off +1
        a.jmp(top); // slot 3 -> 0: off -4
        a.bind(out);
        a.exit(); // slot 4
        let p = a.finish().unwrap();
        let off = |slot: usize| i16::from_le_bytes([p.code[slot * 8 + 2], p.code[slot * 8 + 3]]);
        assert_eq!(off(2), 1);
        assert_eq!(off(3), -4);
        assert_eq!(p.map_relocs.len(), 1);
        assert_eq!(p.map_relocs[0].insn_index, 0);
        assert!(p.listing.contains("map[M]"), "{}", p.listing);
    }

    #[test]
    fn unbound_label_is_an_error() {
        let mut a = Asm::new("t");
        let l = a.label();
        a.jmp(l);
        assert!(matches!(a.finish(), Err(AsmError::UnboundLabel(..))));
    }
}

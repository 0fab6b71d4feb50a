//! Instruction sequences shared by the program templates.
//!
//! Conventions: helpers clobber r0-r5, so state that must survive a call lives in r6-r9, on
//! the stack, or in a scratch map value. Every sequence here says which registers it uses.

use crate::abi::DfaShape;
use crate::asm::{Alu, Asm, Cond, FP, Helper, Label, R0, R1, R2, R3, R4, R5, Reg, Size};
use crate::dfa_table::{Layout, TRANS_OFF};
use crate::ktypes::CoreField;

/// `*(fp + dst) = *(size *)(src + field)` through `bpf_probe_read_kernel`; jumps to `fail` if
/// the read faults. Uses r0-r3. `src` must not be r1 or r2.
pub fn read_kernel_to_stack(
    a: &mut Asm,
    dst: i16,
    size: u32,
    src: Reg,
    field: Option<CoreField>,
    fail: Label,
) {
    a.mov(R3, src);
    if let Some(field) = field {
        a.add_field(R3, field);
    }
    a.mov(R1, FP);
    a.alu_imm(Alu::Add, R1, i32::from(dst));
    a.mov_imm(R2, size as i32);
    a.call(Helper::ProbeReadKernel);
    a.jmp_imm(Cond::Ne, R0, 0, fail);
}

/// `*(u64 *)(base + dst) = *(u64 *)(src + field)` where `base` points into a map value.
/// Uses r0-r3; `base` must be callee-saved (r6-r9) and `src` not r1/r2.
pub fn read_kernel_to_map(
    a: &mut Asm,
    base: Reg,
    dst: i16,
    src: Reg,
    field: Option<CoreField>,
    fail: Label,
) {
    a.mov(R3, src);
    if let Some(field) = field {
        a.add_field(R3, field);
    }
    a.mov(R1, base);
    a.alu_imm(Alu::Add, R1, i32::from(dst));
    a.mov_imm(R2, 8);
    a.call(Helper::ProbeReadKernel);
    a.jmp_imm(Cond::Ne, R0, 0, fail);
}

/// `r0 = bpf_map_lookup_elem(map, fp + key_slot)`. Uses r0-r5.
pub fn map_lookup(a: &mut Asm, map: &str, key_slot: i16) {
    a.ld_map(R1, map);
    a.mov(R2, FP);
    a.alu_imm(Alu::Add, R2, i32::from(key_slot));
    a.call(Helper::MapLookupElem);
}

/// Looks up key 0 of a per-CPU scratch map; the value pointer ends in `dst` (callee-saved).
/// Uses r0-r2 and the stack slot at `key_slot`.
pub fn scratch(a: &mut Asm, map: &str, key_slot: i16, dst: Reg, fail: Label) {
    a.st(Size::W, FP, key_slot, 0);
    map_lookup(a, map, key_slot);
    a.jmp_imm(Cond::Eq, R0, 0, fail);
    a.mov(dst, R0);
}

/// Adds one to a per-CPU counter. Uses r0-r2 and the stack slot at `key_slot`.
pub fn count(a: &mut Asm, map: &str, counter: u32, key_slot: i16) {
    let skip = a.label();
    a.st(Size::W, FP, key_slot, counter as i32);
    map_lookup(a, map, key_slot);
    a.jmp_imm(Cond::Eq, R0, 0, skip);
    a.ldx(Size::DW, R1, R0, 0);
    a.alu_imm(Alu::Add, R1, 1);
    a.stx(Size::DW, R0, 0, R1);
    a.bind(skip);
}

/// Where the arrays of a DFA table of this shape lie (the same [`Layout`] the reference runner
/// and the runtime's validation use).
pub fn dfa_layout(shape: DfaShape) -> Layout {
    Layout::new(
        shape.n_states,
        shape.n_classes,
        shape.state_bits,
        shape.class_bits,
    )
}

/// One DFA transition: `state = trans[(state & (S-1)) << class_bits | class[byte] & (C-1)]` in
/// the narrow layout, `state = state < n_states ? trans[state * n_classes + (class[byte] &
/// (C-1))] : 0` in the wide one.
///
/// INVARIANT: this is the layout of `guard_ebpf::dfa_table` (classes at 0, transitions at 256,
/// row-major). The masks, and in the wide layout the compare, are what lets the verifier prove
/// every table access in bounds whatever the state and byte registers hold. `state` and `byte`
/// are read and `state` is written; uses r4 and r5 as temporaries (so neither may be r4/r5).
pub fn dfa_step(a: &mut Asm, section: &str, shape: DfaShape, state: Reg, byte: Reg) {
    let c_mask = (1i32 << shape.class_bits) - 1;
    a.ld_data(R5, section, 0);
    a.alu_imm(Alu::And, byte, 0xff);
    a.alu_reg(Alu::Add, R5, byte);
    a.ldx(Size::B, R4, R5, 0);
    a.alu_imm(Alu::And, R4, c_mask);
    if dfa_layout(shape).wide {
        return wide_step(a, section, shape, state);
    }
    let s_mask = (1i32 << shape.state_bits) - 1;
    a.alu_imm(Alu::And, state, s_mask);
    a.alu_imm(Alu::Lsh, state, shape.class_bits as i32);
    a.alu_reg(Alu::Add, state, R4);
    a.alu_imm(Alu::Lsh, state, 1);
    a.ld_data(R5, section, 0);
    a.alu_reg(Alu::Add, R5, state);
    a.ldx(Size::H, state, R5, TRANS_OFF as i16);
}

/// The rest of [`dfa_step`] for a wide table, the class in r4.
///
/// A state past the table is dead (the table holds none, but the verifier cannot know). That
/// side is the fall-through: it reaches the caller's dead-state exit at once, so the verifier
/// pops the state it left pending on the live side right away instead of piling them up over
/// the iterations of a walk.
fn wide_step(a: &mut Asm, section: &str, shape: DfaShape, state: Reg) {
    let live = a.label();
    let done = a.label();
    a.jmp_imm(Cond::Lt, state, shape.n_states as i32, live);
    a.mov_imm(state, 0);
    a.jmp(done);
    a.bind(live);
    a.alu_imm(Alu::Mul, state, shape.n_classes as i32);
    a.alu_reg(Alu::Add, state, R4);
    a.alu_imm(Alu::Lsh, state, 2);
    a.ld_data(R5, section, 0);
    a.alu_reg(Alu::Add, R5, state);
    a.ldx(Size::W, state, R5, TRANS_OFF as i16);
    a.bind(done);
}

/// `dst = info[state & (S-1)]` (u64) in the narrow layout, `dst = state < n_states ?
/// info[state] : 0` in the wide one. Uses r5; `state` is clobbered.
pub fn dfa_info(a: &mut Asm, section: &str, shape: DfaShape, state: Reg, dst: Reg) {
    let layout = dfa_layout(shape);
    let done = layout.wide.then(|| {
        // As in `wide_step`: past the table is dead, and the dead state's info is 0.
        let live = a.label();
        let done = a.label();
        a.jmp_imm(Cond::Lt, state, shape.n_states as i32, live);
        a.mov_imm(dst, 0);
        a.jmp(done);
        a.bind(live);
        done
    });
    if !layout.wide {
        a.alu_imm(Alu::And, state, (1i32 << shape.state_bits) - 1);
    }
    a.alu_imm(Alu::Lsh, state, 3);
    if let Ok(off) = i16::try_from(layout.info_off) {
        a.ld_data(R5, section, 0);
        a.alu_reg(Alu::Add, R5, state);
        a.ldx(Size::DW, dst, R5, off);
    } else {
        // Past the reach of a load's i16 offset (a narrow table of 2^14 transitions or more, and
        // every wide one): the pointer itself starts at the info array.
        a.ld_data(R5, section, layout.info_off as i32);
        a.alu_reg(Alu::Add, R5, state);
        a.ldx(Size::DW, dst, R5, 0);
    }
    if let Some(done) = done {
        a.bind(done);
    }
}

/// Total size of a DFA table of this shape.
pub fn table_size(shape: DfaShape) -> usize {
    dfa_layout(shape).len
}

/// `dst = tid of current` (the low half of `bpf_get_current_pid_tgid`). Uses r0.
pub fn current_tid(a: &mut Asm, dst_slot: i16) {
    a.call(Helper::GetCurrentPidTgid);
    a.stx(Size::W, FP, dst_slot, R0);
}

/// `dst = lists[r2]`, a u16 of the rule-list table, jumping to `past` when r2 is not an index
/// into it. The bound is checked here, on the register the access uses, because a verifier may
/// not carry a range over from an earlier check (6.1 forgets it across a stack spill). Uses r2
/// and r3; `dst` must be neither.
pub fn list_load(a: &mut Asm, list_len: u32, dst: Reg, past: Label) {
    a.jmp_imm(Cond::Ge, R2, list_len as i32, past);
    a.alu_imm(Alu::Lsh, R2, 1);
    a.ld_data(R3, crate::abi::RODATA_RULE_LISTS, 0);
    a.alu_reg(Alu::Add, R3, R2);
    a.ldx(Size::H, dst, R3, 0);
}

#[cfg(test)]
mod tests;

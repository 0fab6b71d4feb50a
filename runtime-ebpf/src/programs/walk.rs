//! The dentry walk shared by the programs that judge a file: from the file up to the task's
//! root, crossing mounts, feeding the path's bytes last to first to the reversed path DFA and
//! copying them into the scratch buffer (for the event).
//!
//! Why a reversed DFA: the walk visits the leaf first. Feeding the path last byte first lets the
//! DFA reach its dead state after a few bytes for almost every file no rule covers, and the walk
//! stops there: the cost of an uncovered open is a handful of reads, not a full path.
//!
//! Why the loop state lives in the scratch map and not in registers: the verifier explores a
//! bounded loop once per iteration, and prunes the paths inside one iteration only when the
//! states they reach are equivalent. Values loaded from a map are unknown to it, so every path
//! through the body arrives at the loop head with the same state and is pruned; values it could
//! track exactly (positions, lengths) would multiply the states per iteration.

use super::Params;
use super::common::{dfa_step, read_kernel_to_map};
use crate::abi;
use crate::asm::{Alu, Asm, Cond, Helper, Label, R0, R1, R2, R3, R6, R7, R8, R9, Size};
use crate::ktypes::field;

/// Header of the per-CPU scratch value (u64 slots), followed by the path buffer.
pub const H_DENTRY: i16 = 0;
pub const H_VFSMNT: i16 = 8;
pub const H_MOUNT: i16 = 16;
pub const H_ROOT_D: i16 = 24;
pub const H_ROOT_M: i16 = 32;
pub const H_POS: i16 = 40;
pub const H_REM: i16 = 48;
pub const H_STATE: i16 = 56;
pub const H_FLAGS: i16 = 64;
pub const H_FD: i16 = 72;
pub const H_PARENT: i16 = 80;
pub const H_NAME: i16 = 88;
pub const H_LEN: i16 = 96;
/// `OP_*` bits of the operation being judged (open mode, or exec).
pub const H_OPS: i16 = 104;
pub const HEADER: i32 = 128;
/// Offsets into the buffer are masked with this, so any position the verifier cannot bound
/// still lands inside the value.
pub const BUF_MASK: i32 = 8191;
/// The path ends (exclusive) at this buffer offset; it grows downwards from here.
pub const PATH_END: i32 = (abi::PATH_SLACK + abi::PATH_BUF) as i32;
/// Size of the scratch value: header, masked buffer, and room for one more component.
pub const SCRATCH_SIZE: u32 = HEADER as u32 + BUF_MASK as u32 + 1 + 256;

/// Walks the file in r9 (any pointer to a `struct file`) for the task in r8 (a BTF task
/// pointer), with r6 the scratch value. Ends at `walked` (the root was reached; the DFA state is
/// in `H_STATE`), at `truncated` (too deep or unreadable: judge fail closed), or at `dead` (the
/// DFA died: no rule can match). Clobbers r0-r5, r7-r9.
pub fn walk(a: &mut Asm, p: &Params, dead: Label, walked: Label, truncated: Label) {
    // A start that cannot be read is judged fail closed, like a path too deep to read.
    let out = truncated;
    a.comment("the walk starts at the file's dentry and mount and stops at the task's root");
    a.st(Size::DW, R6, H_POS, PATH_END);
    a.st(Size::DW, R6, H_REM, 0);
    a.st(Size::DW, R6, H_STATE, 1);
    a.st(Size::DW, R6, H_FLAGS, 0);

    read_kernel_to_map(
        a,
        R6,
        H_DENTRY,
        R9,
        Some(field("file", &["f_path", "dentry"])),
        out,
    );
    read_kernel_to_map(
        a,
        R6,
        H_VFSMNT,
        R9,
        Some(field("file", &["f_path", "mnt"])),
        out,
    );
    a.ldx(Size::DW, R1, R6, H_VFSMNT);
    a.mov_imm(R2, 0);
    a.add_field(R2, field("mount", &["mnt"]));
    a.alu_reg(Alu::Sub, R1, R2);
    a.stx(Size::DW, R6, H_MOUNT, R1);
    a.ldx_field(Size::DW, R9, R8, field("task_struct", &["fs"]));
    read_kernel_to_map(
        a,
        R6,
        H_ROOT_D,
        R9,
        Some(field("fs_struct", &["root", "dentry"])),
        out,
    );
    read_kernel_to_map(
        a,
        R6,
        H_ROOT_M,
        R9,
        Some(field("fs_struct", &["root", "mnt"])),
        out,
    );

    a.comment("outer loop: one step up the tree per iteration (a component, or a mount crossing)");
    a.mov_imm(R8, 0);
    let top = a.label();
    a.bind(top);
    a.jmp_imm(Cond::Ge, R8, abi::PATH_MAX_DEPTH as i32, truncated);
    a.alu_imm(Alu::Add, R8, 1);
    let at_root = a.label();
    fetch_component(a, at_root, truncated, top);
    feed_component(a, p, top, dead);

    a.bind(at_root);
    a.comment("at the root; the path of the root itself is \"/\"");
    a.ldx(Size::DW, R1, R6, H_POS);
    a.jmp_imm(Cond::Ne, R1, PATH_END, walked);
    put_byte(a, p, b'/', walked);
    a.jmp(dead);
}

/// Moves the walk one step up: to the parent dentry (reading its name into the buffer), or
/// across a mount to the dentry it is mounted on. Jumps to `walked` at the root.
fn fetch_component(a: &mut Asm, walked: Label, truncated: Label, top: Label) {
    let not_root = a.label();
    let cross = a.label();
    let component = a.label();
    a.ldx(Size::DW, R1, R6, H_DENTRY);
    a.ldx(Size::DW, R2, R6, H_ROOT_D);
    a.jmp_reg(Cond::Ne, R1, R2, not_root);
    a.ldx(Size::DW, R1, R6, H_VFSMNT);
    a.ldx(Size::DW, R2, R6, H_ROOT_M);
    a.jmp_reg(Cond::Eq, R1, R2, walked);
    a.bind(not_root);
    a.ldx(Size::DW, R7, R6, H_VFSMNT);
    read_kernel_to_map(
        a,
        R6,
        H_PARENT,
        R7,
        Some(field("vfsmount", &["mnt_root"])),
        truncated,
    );
    a.ldx(Size::DW, R1, R6, H_PARENT);
    a.ldx(Size::DW, R2, R6, H_DENTRY);
    a.jmp_reg(Cond::Eq, R1, R2, cross);
    a.ldx(Size::DW, R7, R6, H_DENTRY);
    read_kernel_to_map(
        a,
        R6,
        H_PARENT,
        R7,
        Some(field("dentry", &["d_parent"])),
        truncated,
    );
    a.ldx(Size::DW, R1, R6, H_PARENT);
    a.ldx(Size::DW, R2, R6, H_DENTRY);
    a.jmp_reg(Cond::Ne, R1, R2, component);

    a.bind(cross);
    a.comment("top of a mount: continue from the dentry it is mounted on, in the parent mount");
    a.ldx(Size::DW, R7, R6, H_MOUNT);
    read_kernel_to_map(
        a,
        R6,
        H_PARENT,
        R7,
        Some(field("mount", &["mnt_parent"])),
        truncated,
    );
    a.ldx(Size::DW, R1, R6, H_PARENT);
    a.jmp_reg(Cond::Eq, R1, R7, walked);
    a.jmp_imm(Cond::Eq, R1, 0, walked);
    read_kernel_to_map(
        a,
        R6,
        H_DENTRY,
        R7,
        Some(field("mount", &["mnt_mountpoint"])),
        truncated,
    );
    a.ldx(Size::DW, R1, R6, H_PARENT);
    a.stx(Size::DW, R6, H_MOUNT, R1);
    a.mov_imm(R2, 0);
    a.add_field(R2, field("mount", &["mnt"]));
    a.alu_reg(Alu::Add, R1, R2);
    a.stx(Size::DW, R6, H_VFSMNT, R1);
    a.jmp(top);

    a.bind(component);
    a.comment("read the name just below the current position; feeding it comes next");
    a.ldx(Size::DW, R7, R6, H_DENTRY);
    a.st(Size::DW, R6, H_LEN, 0);
    a.mov(R3, R7);
    a.add_field(R3, field("dentry", &["d_name", "len"]));
    a.mov(R1, R6);
    a.alu_imm(Alu::Add, R1, i32::from(H_LEN));
    a.mov_imm(R2, 4);
    a.call(Helper::ProbeReadKernel);
    a.jmp_imm(Cond::Ne, R0, 0, truncated);
    read_kernel_to_map(
        a,
        R6,
        H_NAME,
        R7,
        Some(field("dentry", &["d_name", "name"])),
        truncated,
    );
    a.ldx(Size::DW, R1, R6, H_LEN);
    a.jmp_imm(Cond::Eq, R1, 0, truncated);
    a.jmp_imm(Cond::Gt, R1, 255, truncated);
    a.ldx(Size::DW, R2, R6, H_POS);
    a.mov(R3, R1);
    a.alu_imm(Alu::Add, R3, abi::PATH_SLACK as i32 + 1);
    a.jmp_reg(Cond::Lt, R2, R3, truncated);
    a.alu_reg(Alu::Sub, R2, R1);
    a.alu_imm(Alu::And, R2, BUF_MASK);
    a.mov(R1, R6);
    a.alu_imm(Alu::Add, R1, HEADER);
    a.alu_reg(Alu::Add, R1, R2);
    a.ldx(Size::DW, R2, R6, H_LEN);
    a.alu_imm(Alu::And, R2, 255);
    a.ldx(Size::DW, R3, R6, H_NAME);
    a.call(Helper::ProbeReadKernel);
    a.jmp_imm(Cond::Ne, R0, 0, truncated);
    a.ldx(Size::DW, R1, R6, H_LEN);
    a.stx(Size::DW, R6, H_REM, R1);
    a.ldx(Size::DW, R1, R6, H_PARENT);
    a.stx(Size::DW, R6, H_DENTRY, R1);
    // Falls through into feeding the component.
}

/// Feeds the component just read (right to left) to the DFA, then the `/` before it. Exits
/// allowing the open as soon as the DFA dies.
///
/// Branch layout is chosen for the verifier: where one side leaves for `out`, that side is the
/// fall-through, so the state left pending on the jump side is popped right away instead of
/// piling up across iterations (the verifier caps pending branches at 8192).
fn feed_component(a: &mut Asm, p: &Params, top: Label, out: Label) {
    let inner = a.label();
    let body = a.label();
    let done = a.label();
    let alive = a.label();
    a.mov_imm(R9, 0);
    a.bind(inner);
    a.jmp_imm(Cond::Ge, R9, 255, done);
    a.ldx(Size::DW, R1, R6, H_REM);
    a.jmp_reg(Cond::Lt, R9, R1, body);
    a.jmp(done);
    a.bind(body);
    a.ldx(Size::DW, R2, R6, H_POS);
    a.alu_imm(Alu::Sub, R2, 1);
    a.stx(Size::DW, R6, H_POS, R2);
    a.alu_imm(Alu::And, R2, BUF_MASK);
    a.alu_reg(Alu::Add, R2, R6);
    a.ldx(Size::B, R3, R2, HEADER as i16);
    a.ldx(Size::DW, R7, R6, H_STATE);
    dfa_step(a, abi::RODATA_PATH_DFA, p.path_dfa, R7, R3);
    a.stx(Size::DW, R6, H_STATE, R7);
    a.alu_imm(Alu::Add, R9, 1);
    a.jmp_imm(Cond::Ne, R7, 0, inner);
    a.comment("dead state: no rule can match this path, allow without walking further");
    a.jmp(out);
    a.bind(done);
    a.st(Size::DW, R6, H_REM, 0);
    put_byte(a, p, b'/', alive);
    a.jmp(out);
    a.bind(alive);
    a.jmp(top);
}

/// Writes `byte` just below the current position and feeds it to the DFA; jumps to `alive`
/// unless the DFA died (then falls through).
fn put_byte(a: &mut Asm, p: &Params, byte: u8, alive: Label) {
    a.ldx(Size::DW, R2, R6, H_POS);
    a.alu_imm(Alu::Sub, R2, 1);
    a.stx(Size::DW, R6, H_POS, R2);
    a.alu_imm(Alu::And, R2, BUF_MASK);
    a.alu_reg(Alu::Add, R2, R6);
    a.st(Size::B, R2, HEADER as i16, i32::from(byte));
    a.mov_imm(R3, i32::from(byte));
    a.ldx(Size::DW, R7, R6, H_STATE);
    dfa_step(a, abi::RODATA_PATH_DFA, p.path_dfa, R7, R3);
    a.stx(Size::DW, R6, H_STATE, R7);
    a.jmp_imm(Cond::Ne, R7, 0, alive);
}

//! The identity a task gets from an exec: what it inherits, whether it is the init of its pid
//! namespace, the identities its new command line matches and those its executable matches.
//!
//! Two programs compute it. The exec tracking program does, after the exec, from the command
//! line the new image holds (on both backends). The LSM backend's exec check needs it before
//! the exec, when the new image does not exist yet: the `execve` tracepoints compute it from the
//! `argv` the caller passed, with these same sequences, so that a subject means the same thing
//! on both sides of the exec. INVARIANT: command line normalisation and inheritance here match
//! `guard_runtime::procscan`, which computes the same for processes running before guard.
//!
//! The record being computed is an [`ExecArgs`] at [`ARGS`] in the program's scratch value (r6),
//! after the walk's header and buffer. Not on the stack: the verifier compares stack slots when
//! it prunes the walk's loop, and the record's constant-valued flags would multiply its states
//! (the 6.1 verifier ran out of its million instructions); a map value is opaque to it.

use core::mem::offset_of;

use super::Params;
use super::common::{dfa_info, dfa_step, list_load, read_kernel_to_stack};
use super::{store, walk};
use crate::abi::{self, ExecArgs, TaskInfo, task_flags};
use crate::asm::{Alu, Asm, Cond, FP, Label, R0, R1, R2, R3, R4, R6, R7, R8, R9, Reg, Size};
use crate::ktypes::field;

/// Where the [`ExecArgs`] record starts in the scratch value.
pub const ARGS: i32 = walk::SCRATCH_SIZE as i32;

/// Scratch bytes the record occupies, with room behind the command line for a string helper's
/// worst-case write as the verifier counts it (a command line almost full, plus a whole
/// argument's size limit).
pub const ARGS_ROOM: u32 = {
    let record = core::mem::size_of::<ExecArgs>() as u32;
    let worst = 2 * abi::CMDLINE_MAX as u32 + 8;
    if record > worst { record } else { worst }
};

/// Offset in the scratch value of a field of the record.
pub const fn args(off: usize) -> i16 {
    (ARGS + off as i32) as i16
}

/// Offset in the scratch value of a field of the record's [`TaskInfo`].
pub const fn info(off: usize) -> i16 {
    args(offset_of!(ExecArgs, info) + off)
}

/// The command line's first byte.
pub const CMDLINE: i16 = args(offset_of!(ExecArgs, cmdline));
pub const CMDLINE_LEN: i16 = args(offset_of!(ExecArgs, cmdline_len));
pub const ARGC: i16 = args(offset_of!(ExecArgs, argc));
pub const XFLAGS: i16 = args(offset_of!(ExecArgs, flags));
pub const CHECKS: i16 = args(offset_of!(ExecArgs, checks));
pub const JUDGED_FILE: i16 = args(offset_of!(ExecArgs, judged_file));
pub const NAME: i16 = args(offset_of!(ExecArgs, name));
pub const FLAGS: i16 = info(offset_of!(TaskInfo, flags));

/// Stack slots these sequences use (a program using them keeps nothing else there).
pub const TMP: i16 = -80;
pub const TMP2: i16 = -88;
pub const LEN: i16 = -96;

/// Zeroes the record (command line bytes aside: only `cmdline_len` of them are ever read).
pub fn reset(a: &mut Asm) {
    let start = offset_of!(ExecArgs, info);
    for off in (start..core::mem::size_of::<ExecArgs>()).step_by(8) {
        a.st(Size::DW, R6, args(off), 0);
    }
}

/// Sets `info.flags |= bits`. Uses r1.
pub fn set_flag(a: &mut Asm, slot: i16, bits: u64) {
    a.ldx(Size::DW, R1, R6, slot);
    a.alu_imm(Alu::Or, R1, bits as i32);
    a.stx(Size::DW, R6, slot, R1);
}

/// The bits inherited across the exec, from the identity of `task` (hash store: the entry
/// under the u32 key at stack slot `key`): the identities (command lines and executables) of the ancestors and of the
/// namespace's init, and whether the task was entered from outside (which stays true across
/// exec). A task unknown to guard inherits none. Uses r0-r5.
pub fn inherit(a: &mut Asm, p: &Params, key: i16, task: store::Task) {
    let no_entry = a.label();
    store::lookup(a, p, key, task);
    a.jmp_imm(Cond::Eq, R0, 0, no_entry);
    for off in [
        offset_of!(TaskInfo, inh_anc),
        offset_of!(TaskInfo, inh_pid1),
        offset_of!(TaskInfo, inh_anc_exe),
        offset_of!(TaskInfo, inh_pid1_exe),
    ] {
        a.ldx(Size::DW, R1, R0, off as i16);
        a.stx(Size::DW, R6, info(off), R1);
    }
    a.ldx(Size::DW, R1, R0, offset_of!(TaskInfo, flags) as i16);
    a.alu_imm(Alu::And, R1, task_flags::ENTERED as i32);
    a.stx(Size::DW, R6, FLAGS, R1);
    a.bind(no_entry);
}

/// Sets `NS_INIT` if `task` (a BTF task pointer in a callee-saved register other than r6) is
/// the init of its pid namespace. Uses r0-r4 and the TMP/TMP2 stack slots.
pub fn ns_init(a: &mut Asm, task: Reg) {
    let not_init = a.label();
    a.comment("is this task the init of its pid namespace? pid->numbers[pid->level].nr == 1");
    ns_init_check(a, task, not_init);
    set_flag(a, FLAGS, task_flags::NS_INIT);
    a.bind(not_init);
}

/// Falls through if `task` (a BTF task pointer in a callee-saved register) is the init of its
/// pid namespace, else jumps to `no`. Uses r0-r4 and the TMP/TMP2 stack slots.
pub fn ns_init_check(a: &mut Asm, task: Reg, no: Label) {
    // The pid's `numbers` array is indexed by a runtime value (the namespace level), which the
    // verifier does not allow on a BTF pointer, so the address is computed as a plain number
    // and read with bpf_probe_read_kernel.
    read_kernel_to_stack(
        a,
        TMP,
        8,
        task,
        Some(field("task_struct", &["thread_pid"])),
        no,
    );
    a.ldx(Size::DW, R4, FP, TMP);
    a.jmp_imm(Cond::Eq, R4, 0, no);
    read_kernel_to_stack(a, TMP2, 4, R4, Some(field("pid", &["level"])), no);
    a.ldx(Size::DW, R4, FP, TMP);
    a.add_field(R4, field("pid", &["numbers"]));
    a.ldx(Size::W, R1, FP, TMP2);
    a.alu_imm(Alu::And, R1, 0xff);
    a.alu_imm(Alu::Mul, R1, 16); // sizeof(struct upid), unchanged since 2.6.24
    a.alu_reg(Alu::Add, R4, R1);
    a.st(Size::DW, FP, TMP2, 0);
    read_kernel_to_stack(a, TMP2, 4, R4, Some(field("upid", &["nr"])), no);
    a.ldx(Size::W, R1, FP, TMP2);
    a.jmp_imm(Cond::Ne, R1, 1, no);
}

/// The identities of the command line in the record, and those that follow from them:
/// `self` is what the identity DFA accepts over the arguments joined by single spaces (none
/// when the command line was longer than guard reads: fail closed); `anc` adds the inherited
/// ones; `pid1` and `img_pid1` add `self` when the task is its namespace's init (a new image
/// starts there). Idempotent: the exec check runs it again after rewriting the command line
/// for a script's interpreter. Uses r0-r5, r8, r9 and the LEN stack slot.
pub fn cmdline_identity(a: &mut Asm, p: &Params) {
    let no_identity = a.label();
    let derive = a.label();
    a.st(Size::DW, R6, info(offset_of!(TaskInfo, self_ids)), 0);
    a.ldx(Size::DW, R1, R6, FLAGS);
    a.jmp_imm(
        Cond::Set,
        R1,
        task_flags::CMDLINE_TRUNCATED as i32,
        no_identity,
    );
    a.ldx(Size::DW, R1, R6, CMDLINE_LEN);
    a.stx(Size::DW, FP, LEN, R1);

    a.comment("drop the NUL that ends the last argument");
    let keep = a.label();
    a.jmp_imm(Cond::Eq, R1, 0, keep);
    a.alu_imm(Alu::Sub, R1, 1);
    a.alu_imm(Alu::And, R1, abi::CMDLINE_MAX as i32 - 1);
    a.mov(R2, R6);
    a.alu_reg(Alu::Add, R2, R1);
    a.ldx(Size::B, R3, R2, CMDLINE);
    a.jmp_imm(Cond::Ne, R3, 0, keep);
    a.stx(Size::DW, FP, LEN, R1);
    a.bind(keep);

    a.comment("run the identity DFA over the command line, NULs read as spaces");
    let top = a.label();
    let done = a.label();
    let not_nul = a.label();
    a.mov_imm(R8, 1);
    a.mov_imm(R9, 0);
    a.bind(top);
    a.jmp_imm(Cond::Ge, R9, abi::CMDLINE_MAX as i32, done);
    a.ldx(Size::DW, R1, FP, LEN);
    a.jmp_reg(Cond::Ge, R9, R1, done);
    a.mov(R2, R6);
    a.alu_reg(Alu::Add, R2, R9);
    a.ldx(Size::B, R3, R2, CMDLINE);
    a.jmp_imm(Cond::Ne, R3, 0, not_nul);
    a.mov_imm(R3, i32::from(b' '));
    a.bind(not_nul);
    dfa_step(a, abi::RODATA_CMDLINE_DFA, p.cmdline_dfa, R8, R3);
    a.jmp_imm(Cond::Eq, R8, 0, done);
    a.alu_imm(Alu::Add, R9, 1);
    a.jmp(top);
    a.bind(done);
    dfa_info(a, abi::RODATA_CMDLINE_DFA, p.cmdline_dfa, R8, R1);
    a.stx(Size::DW, R6, info(offset_of!(TaskInfo, self_ids)), R1);
    a.jmp(derive);

    a.bind(no_identity);
    a.bind(derive);
    a.comment(
        "anc = inherited | self; pid1 = inherited | (self if this task is its namespace's init);",
    );
    a.comment("img_pid1 = self if this task is its namespace's init (a new image starts here)");
    a.ldx(Size::DW, R1, R6, info(offset_of!(TaskInfo, self_ids)));
    a.ldx(Size::DW, R2, R6, info(offset_of!(TaskInfo, inh_anc)));
    a.alu_reg(Alu::Or, R2, R1);
    a.stx(Size::DW, R6, info(offset_of!(TaskInfo, anc_ids)), R2);
    let keep_pid1 = a.label();
    a.ldx(Size::DW, R2, R6, info(offset_of!(TaskInfo, inh_pid1)));
    a.ldx(Size::DW, R3, R6, FLAGS);
    a.jmp_imm(Cond::Set, R3, task_flags::NS_INIT as i32, keep_pid1);
    a.mov_imm(R1, 0);
    a.bind(keep_pid1);
    a.stx(Size::DW, R6, info(offset_of!(TaskInfo, img_pid1)), R1);
    a.alu_reg(Alu::Or, R2, R1);
    a.stx(Size::DW, R6, info(offset_of!(TaskInfo, pid1_ids)), R2);
}

/// The ancestry words of the executable's identities, once `exe_ids` is known (on every path,
/// also when the executable's path could not be read and `exe_ids` is empty): `anc_exe` adds
/// the inherited ones, `pid1_exe` too when the task is its namespace's init (a new image
/// starts there). The same derivation as [`cmdline_identity`]'s for `anc` and `pid1`.
/// Idempotent. Uses r1-r3.
pub fn exe_ancestry(a: &mut Asm) {
    let exe_ids = info(offset_of!(TaskInfo, exe_ids));
    a.comment("anc_exe = inherited | exe; pid1_exe = inherited | (exe if this task is its namespace's init)");
    a.ldx(Size::DW, R1, R6, exe_ids);
    a.ldx(Size::DW, R2, R6, info(offset_of!(TaskInfo, inh_anc_exe)));
    a.alu_reg(Alu::Or, R2, R1);
    a.stx(Size::DW, R6, info(offset_of!(TaskInfo, anc_exe)), R2);
    let keep = a.label();
    a.ldx(Size::DW, R2, R6, info(offset_of!(TaskInfo, inh_pid1_exe)));
    a.ldx(Size::DW, R3, R6, FLAGS);
    a.jmp_imm(Cond::Set, R3, task_flags::NS_INIT as i32, keep);
    a.mov_imm(R1, 0);
    a.bind(keep);
    a.alu_reg(Alu::Or, R2, R1);
    a.stx(Size::DW, R6, info(offset_of!(TaskInfo, pid1_exe)), R2);
}

/// The executable's identities: the entries from `EXE_TAG_BASE` on in the rule list whose
/// index is in the stack slot `list` (the list the walk of the executable's path selected),
/// into `info.exe_ids`. Jumps to `done` when finished; the caller derives the ancestry words
/// there ([`exe_ancestry`]). Uses r0-r5, r8, r9.
pub fn exe_identity(a: &mut Asm, p: &Params, list: i16, done: Label) {
    let top = a.label();
    let next = a.label();
    a.st(Size::DW, R6, info(offset_of!(TaskInfo, exe_ids)), 0);
    a.ldx(Size::DW, R8, FP, list);
    a.jmp_imm(Cond::Eq, R8, 0, done);
    a.jmp_imm(Cond::Ge, R8, p.rule_list_len as i32, done);
    a.mov_imm(R9, 0);
    a.bind(top);
    a.jmp_imm(Cond::Ge, R9, p.max_list as i32, done);
    a.ldx(Size::DW, R8, FP, list);
    a.mov(R2, R8);
    list_load(a, p.rule_list_len, R1, done);
    a.jmp_reg(Cond::Ge, R9, R1, done);
    a.mov(R2, R8);
    a.alu_reg(Alu::Add, R2, R9);
    a.alu_imm(Alu::Add, R2, 1);
    list_load(a, p.rule_list_len, R1, done);
    a.jmp_imm(Cond::Lt, R1, abi::EXE_TAG_BASE as i32, next);
    a.alu_imm(Alu::Sub, R1, abi::EXE_TAG_BASE as i32);
    a.jmp_imm(Cond::Ge, R1, abi::MAX_EXE_IDS as i32, next);
    a.mov_imm(R2, 1);
    a.alu_reg(Alu::Lsh, R2, R1);
    let exe_ids = info(offset_of!(TaskInfo, exe_ids));
    a.ldx(Size::DW, R1, R6, exe_ids);
    a.alu_reg(Alu::Or, R1, R2);
    a.stx(Size::DW, R6, exe_ids, R1);
    a.bind(next);
    a.alu_imm(Alu::Add, R9, 1);
    a.jmp(top);
}

/// Walks the executable being run (r9: its `struct file`, r8: the task) and takes its
/// executable identities into the record, leaving in the stack slot `list` the rule list its
/// path selects. A path too long to read whole gets no executable identity, is flagged
/// truncated, and selects every exec rule that could match it (fail closed); a file the walk
/// cannot read selects none. Falls through when done. Shared by the tracking program (after the
/// exec) and the LSM exec check (before it), so that both judge the same file the same way.
pub fn walk_executable(a: &mut Asm, p: &Params, list: i16) {
    let walked = a.label();
    let truncated = a.label();
    let dead = a.label();
    let done = a.label();
    a.st(Size::DW, R6, info(offset_of!(TaskInfo, exe_ids)), 0);
    a.st(Size::DW, R6, walk::H_FD, -1);
    a.st(Size::DW, R6, walk::H_OPS, abi::OP_EXEC as i32);
    walk::walk(a, p, dead, walked, truncated);

    a.bind(walked);
    a.ldx(Size::DW, R7, R6, walk::H_STATE);
    dfa_info(a, abi::RODATA_PATH_DFA, p.path_dfa, R7, R8);
    a.alu_imm(Alu::Lsh, R8, 32);
    a.alu_imm(Alu::Rsh, R8, 32);
    a.stx(Size::DW, FP, list, R8);
    a.comment("executable identities: list entries from EXE_TAG_BASE on");
    exe_identity(a, p, list, done);

    a.bind(truncated);
    a.comment("the path could not be read whole: no executable identity, and every exec rule that could match judges it");
    set_flag(
        a,
        walk::H_FLAGS,
        u64::from(abi::event_flags::PATH_TRUNCATED),
    );
    a.ldx(Size::DW, R7, R6, walk::H_STATE);
    dfa_info(a, abi::RODATA_PATH_DFA, p.path_dfa, R7, R8);
    a.alu_imm(Alu::Rsh, R8, 32);
    a.stx(Size::DW, FP, list, R8);
    a.jmp(done);

    a.bind(dead);
    a.st(Size::DW, FP, list, 0);
    a.bind(done);
}

//! The open programs: the tracepoint backend's (after an open succeeds, find the file that the
//! descriptor now refers to) and the LSM backend's (the file being opened). Both walk the file
//! (see [`super::walk`]), so both match the same path strings, and judge the rules the path DFA
//! selects for the mode the file was opened with.

use super::common::{count, dfa_info, read_kernel_to_stack, scratch};
use super::verdict::{self, Enforce, Subject};
use super::walk::{H_FD, H_FLAGS, H_OPS, H_STATE, walk};
use super::{Params, Program};
use crate::abi::{self, Counter};
use crate::asm::{
    Alu, Asm, AsmError, Cond, FP, Helper, Label, R0, R1, R2, R3, R6, R7, R8, R9, Size,
};
use crate::ktypes::field;

const KEY: i16 = -4;
const FILE: i16 = -16;
/// The LSM program's return value (0, or -EPERM when the verdict refuses the open).
const RET: i16 = -392;

pub fn program(p: &Params) -> Result<Program, AsmError> {
    let mut a = Asm::new(&p.program_name("guard_open"));
    let out = a.label();

    a.comment("only successful opens: ret is the new descriptor");
    a.ldx(Size::DW, R7, R1, 16);
    a.jmp_imm(Cond::Slt, R7, 0, out);
    scratch(&mut a, abi::MAP_OPEN_SCRATCH, KEY, R6, out);
    a.stx(Size::DW, R6, H_FD, R7);

    a.comment("file = current->files->fdt->fd[ret]");
    a.call(Helper::GetCurrentTaskBtf);
    a.mov(R8, R0);
    a.ldx_field(Size::DW, R1, R8, field("task_struct", &["files"]));
    a.ldx_field(Size::DW, R2, R1, field("files_struct", &["fdt"]));
    a.ldx_field(Size::W, R3, R2, field("fdtable", &["max_fds"]));
    a.jmp_reg(Cond::Ge, R7, R3, out);
    a.ldx_field(Size::DW, R9, R2, field("fdtable", &["fd"]));
    a.alu_imm(Alu::Lsh, R7, 3);
    a.alu_reg(Alu::Add, R9, R7);
    read_kernel_to_stack(&mut a, FILE, 8, R9, None, out);
    a.ldx(Size::DW, R9, FP, FILE);
    a.jmp_imm(Cond::Eq, R9, 0, out);
    judge_file(&mut a, p, out, Enforce::Signal)?;
    a.bind(out);
    a.mov_imm(R0, 0);
    a.exit();
    let points = [
        "sys_exit_open",
        "sys_exit_openat",
        "sys_exit_openat2",
        "sys_exit_creat",
    ]
    .iter()
    .map(|n| ("syscalls".to_string(), n.to_string()))
    .collect();
    Program::finish(
        a,
        &p.section_name("tracepoint/syscalls/sys_exit_openat"),
        abi::Attach::Tracepoint { points },
        Some(abi::Backend::Tracepoint),
    )
}

/// The open check of the BPF LSM backend: `file_open` runs inside the open, after the path was
/// resolved and before a descriptor exists, for every way into the kernel (open, openat2,
/// io_uring, execve's interpreter lookups...). Returning `-EPERM` makes the open fail.
pub fn lsm_program(p: &Params) -> Result<Program, AsmError> {
    let mut a = Asm::new(&p.program_name("guard_lsm_open"));
    let out = a.label();
    a.st(Size::DW, FP, RET, 0);
    a.comment("file_open(struct file *file): the file being opened");
    a.ldx(Size::DW, R9, R1, 0);
    scratch(&mut a, abi::MAP_OPEN_SCRATCH, KEY, R6, out);
    a.comment("no descriptor exists yet");
    a.st(Size::DW, R6, H_FD, -1);
    a.call(Helper::GetCurrentTaskBtf);
    a.mov(R8, R0);
    judge_file(&mut a, p, out, Enforce::Lsm { ret: RET })?;
    a.bind(out);
    a.ldx(Size::DW, R0, FP, RET);
    a.exit();
    Program::finish(
        a,
        &p.section_name("lsm/file_open"),
        abi::Attach::Lsm {
            hook: "file_open".into(),
        },
        Some(abi::Backend::Lsm),
    )
}

/// Judges the open of the file in r9 by the task in r8 (a BTF task pointer), r6 the scratch
/// value: the open mode selects the rules, the walk the path.
fn judge_file(a: &mut Asm, p: &Params, out: Label, enforce: Enforce) -> Result<(), AsmError> {
    let walked = a.label();
    let truncated = a.label();
    let judge = a.label();
    a.comment("the mode the file was opened with selects the rules: read, write or both");
    read_kernel_to_stack(a, FILE + 8, 4, R9, Some(field("file", &["f_mode"])), out);
    a.ldx(Size::W, R1, FP, FILE + 8);
    a.alu_imm(Alu::And, R1, (abi::OP_READ | abi::OP_WRITE) as i32);
    a.jmp_imm(Cond::Eq, R1, 0, out);
    a.stx(Size::DW, R6, H_OPS, R1);
    walk(a, p, out, walked, truncated);

    a.bind(walked);
    a.ldx(Size::DW, R7, R6, H_STATE);
    dfa_info(a, abi::RODATA_PATH_DFA, p.path_dfa, R7, R8);
    a.alu_imm(Alu::Lsh, R8, 32);
    a.alu_imm(Alu::Rsh, R8, 32);
    a.jmp(judge);

    a.bind(truncated);
    a.comment("the path could not be read whole: judge it by every rule that could still match (fail closed)");
    a.ldx(Size::DW, R1, R6, H_FLAGS);
    a.alu_imm(Alu::Or, R1, abi::event_flags::PATH_TRUNCATED as i32);
    a.stx(Size::DW, R6, H_FLAGS, R1);
    count(a, abi::MAP_COUNTERS, Counter::PathTruncated as u32, KEY);
    a.ldx(Size::DW, R7, R6, H_STATE);
    dfa_info(a, abi::RODATA_PATH_DFA, p.path_dfa, R7, R8);
    a.alu_imm(Alu::Rsh, R8, 32);

    a.bind(judge);
    verdict::judge_and_act(a, p, R8, abi::EVENT_OPEN, out, enforce, Subject::Current)
}

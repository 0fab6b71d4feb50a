//! The LSM backend's exec check: exec rules decided before the new program runs.
//!
//! `bprm_check_security` runs inside `execve` for each file the kernel is about to run (a
//! script, then its interpreter), before the point of no return: returning `-EPERM` makes the
//! `execve` fail and the caller lives on. The rules must judge the task as the program it is
//! becoming (the identities the tracking program gives it once the new image runs), but at
//! that point the new command line only exists in the new image's memory, which a BPF program
//! cannot read. So the decision is made in three steps:
//!
//! 1. `sys_enter_execve` and `sys_enter_execveat` copy the `argv` the caller passed (user
//!    memory of the still-current image, the very bytes the kernel copies next) and compute the
//!    new identity from it with the tracking program's own sequences
//!    ([`super::identity`]), into a record per thread ([`abi::ExecArgs`]).
//! 2. The check takes the process name from the name the exec was asked for (what the kernel
//!    puts in `comm`), rewrites the command line as the kernel will for a `#!` script
//!    ([`super::shebang`]), walks the file as the open check does, judges the exec rules
//!    against the record, and marks it judged.
//! 3. After the exec, the tracking program computes the identity from the new image as always,
//!    and judges the exec itself unless the record says this very file was judged with this
//!    very identity: no double alert, and whatever the check could not foresee (an exec the
//!    kernel started, a `binfmt_misc` handler) is judged after the fact, as on the tracepoint
//!    backend.
//!
//! Another thread of the caller can change the `argv` strings between the copy and the
//! kernel's: that gives an attacker nothing that `exec -a` (any `argv[0]` it likes) would not,
//! since a command line is whatever its caller makes it, and step 3 judges again whenever the
//! identity the new image really got differs from the one judged.

use super::common::{current_tid, map_lookup, scratch};
use super::identity::{self, ARGC, CHECKS, CMDLINE, CMDLINE_LEN, FLAGS, JUDGED_FILE, NAME, XFLAGS};
use super::store::Task;
use super::verdict::{self, Enforce, Subject};
use super::walk::{self, HEADER};
use super::{Params, Program, shebang};
use crate::abi::{self, ExecArgs, exec_flags, task_flags};
use crate::asm::{
    Alu, Asm, AsmError, Cond, FP, Helper, Label, R0, R1, R2, R3, R4, R6, R7, R8, R9, Size,
};
use crate::ktypes::field;

/// Stack slots. The identity sequences use -80..-96, the verdict -240..-392.
const KEY: i16 = -4;
const KEY2: i16 = -8;
const ARGV: i16 = -104; // the caller's argv (user pointer)
const PTR: i16 = -112; // argv[i] (user pointer)
/// The check's return value (0, or -EPERM when the verdict refuses the exec).
const RET: i16 = -392;
const BPRM: i16 = -400; // the linux_binprm (BTF pointer, spilled)
const TID: i16 = -408; // u32 key of the exec record
const LIST: i16 = -416; // rule list of the file's path

/// The argv program of one system call: `sys_enter_execve` (argv is argument 1) or
/// `sys_enter_execveat` (argument 2). Arguments start at offset 16 of a syscall tracepoint's
/// record, 8 bytes each, on every architecture.
pub fn argv_program(p: &Params, syscall: &str, argv_arg: usize) -> Result<Program, AsmError> {
    let mut a = Asm::new(&p.program_name(&format!("guard_argv_{syscall}")));
    let out = a.label();
    a.ldx(Size::DW, R7, R1, (16 + 8 * argv_arg) as i16);
    a.stx(Size::DW, FP, ARGV, R7);
    scratch(&mut a, abi::MAP_EXEC_SCRATCH, KEY2, R6, out);
    identity::reset(&mut a);

    a.comment("inherited bits: from the thread group leader's identity, since after the exec the");
    a.comment("exec'ing thread is the group's leader (de_thread), under the leader's pid");
    a.call(Helper::GetCurrentTaskBtf);
    a.ldx_field(Size::DW, R7, R0, field("task_struct", &["group_leader"]));
    a.call(Helper::GetCurrentPidTgid);
    a.alu_imm(Alu::Rsh, R0, 32);
    a.stx(Size::W, FP, KEY, R0);
    identity::inherit(&mut a, p, KEY, Task::Reg(R7));
    identity::ns_init(&mut a, R7);

    read_argv(&mut a);
    identity::cmdline_identity(&mut a, p);

    a.comment("the record, for the exec check of this thread");
    current_tid(&mut a, KEY);
    a.ld_map(R1, abi::MAP_EXEC_ARGS);
    a.mov(R2, FP);
    a.alu_imm(Alu::Add, R2, i32::from(KEY));
    a.mov(R3, R6);
    a.alu_imm(Alu::Add, R3, identity::ARGS);
    a.mov_imm(R4, 0); // BPF_ANY
    a.call(Helper::MapUpdateElem);
    a.bind(out);
    a.mov_imm(R0, 0);
    a.exit();
    let section = p.section_name(&format!("tracepoint/syscalls/sys_enter_{syscall}"));
    Program::finish(
        a,
        &section,
        abi::Attach::Tracepoint {
            points: vec![("syscalls".into(), format!("sys_enter_{syscall}"))],
        },
        Some(abi::Backend::Lsm),
    )
}

/// Copies the caller's arguments into the record as the kernel lays them out in the new image
/// (each with its NUL, back to back), counting them. A command line longer than guard reads,
/// or one it cannot read, is marked truncated: no identity (fail closed, as after the exec).
/// The first bytes stay in the buffer for the event.
fn read_argv(a: &mut Asm) {
    let top = a.label();
    let end = a.label();
    let counted = a.label();
    let too_long = a.label();
    let unreadable = a.label();
    let done = a.label();
    let max = abi::CMDLINE_MAX as i32;
    a.comment("r8: arguments so far, r9: bytes so far");
    a.mov_imm(R8, 0);
    a.mov_imm(R9, 0);
    a.bind(top);
    a.comment("each argument takes a byte at least: more of them than bytes cannot fit");
    a.jmp_imm(Cond::Ge, R8, max + 1, too_long);
    a.mov(R3, R8);
    a.alu_imm(Alu::Lsh, R3, 3);
    a.ldx(Size::DW, R1, FP, ARGV);
    a.alu_reg(Alu::Add, R3, R1);
    a.mov(R1, FP);
    a.alu_imm(Alu::Add, R1, i32::from(PTR));
    a.mov_imm(R2, 8);
    a.call(Helper::ProbeReadUser);
    a.jmp_imm(Cond::Ne, R0, 0, unreadable);
    a.ldx(Size::DW, R3, FP, PTR);
    a.jmp_imm(Cond::Eq, R3, 0, end);
    a.comment("one byte more than is left: an argument that does not fit shows as one");
    a.mov(R1, R6);
    a.alu_reg(Alu::Add, R1, R9);
    a.alu_imm(Alu::Add, R1, i32::from(CMDLINE));
    a.mov_imm(R2, max + 1);
    a.alu_reg(Alu::Sub, R2, R9);
    a.call(Helper::ProbeReadUserStr);
    a.jmp_imm(Cond::Slt, R0, 1, unreadable);
    a.alu_reg(Alu::Add, R9, R0);
    a.jmp_imm(Cond::Gt, R9, max, too_long);
    a.alu_imm(Alu::Add, R8, 1);
    a.jmp(top);

    a.bind(end);
    a.jmp_imm(Cond::Ne, R8, 0, counted);
    a.comment("no arguments at all: the kernel gives the new image one empty argument");
    a.st(Size::B, R6, CMDLINE, 0);
    a.mov_imm(R8, 1);
    a.mov_imm(R9, 1);
    a.bind(counted);
    a.stx(Size::DW, R6, CMDLINE_LEN, R9);
    a.stx(Size::DW, R6, ARGC, R8);
    a.jmp(done);

    a.bind(too_long);
    a.st(Size::DW, R6, CMDLINE_LEN, max);
    identity::set_flag(a, FLAGS, task_flags::CMDLINE_TRUNCATED);
    a.jmp(done);
    a.bind(unreadable);
    a.comment("the kernel fails this execve (EFAULT); nothing to grant");
    a.st(Size::DW, R6, CMDLINE_LEN, 0);
    identity::set_flag(a, FLAGS, task_flags::CMDLINE_TRUNCATED);
    a.bind(done);
}

/// The exec check: `lsm/bprm_check_security(struct linux_binprm *bprm)`.
pub fn lsm_program(p: &Params) -> Result<Program, AsmError> {
    let mut a = Asm::new("guard_lsm_exec");
    let out = a.label();
    let defer = a.label();
    let later = a.label();
    let argc = a.label();
    a.st(Size::DW, FP, RET, 0);
    a.ldx(Size::DW, R2, R1, 0);
    a.stx(Size::DW, FP, BPRM, R2);
    current_tid(&mut a, TID);
    a.comment("the record the execve tracepoint made; an exec the kernel started has none and is");
    a.comment("judged after it happened");
    map_lookup(&mut a, abi::MAP_EXEC_ARGS, TID);
    a.jmp_imm(Cond::Eq, R0, 0, out);
    a.mov(R7, R0);
    scratch(&mut a, abi::MAP_BPRM_SCRATCH, KEY2, R6, out);
    a.comment(
        "work on a copy in the scratch value (the identity sequences' layout); written back once",
    );
    a.mov(R1, R6);
    a.alu_imm(Alu::Add, R1, identity::ARGS);
    a.mov_imm(R2, core::mem::size_of::<ExecArgs>() as i32);
    a.mov(R3, R7);
    a.call(Helper::ProbeReadKernel);
    a.jmp_imm(Cond::Ne, R0, 0, out);
    a.ldx(Size::DW, R1, R6, XFLAGS);
    a.jmp_imm(Cond::Set, R1, exec_flags::DEFER as i32, out);

    a.ldx(Size::DW, R1, R6, CHECKS);
    a.jmp_imm(Cond::Ne, R1, 0, later);
    process_name(&mut a, p, defer);
    a.jmp(argc);
    a.bind(later);
    a.comment("a later check is for an interpreter: only a #! script's is foreseen (binfmt_misc's is not)");
    a.ldx(Size::DW, R1, R6, XFLAGS);
    a.jmp_imm(Cond::Set, R1, exec_flags::SCRIPT as i32, argc);
    a.jmp(defer);

    a.bind(argc);
    a.comment("the kernel's argument count must be the record's (else argv changed under us)");
    let counted = a.label();
    a.ldx(Size::DW, R1, R6, FLAGS);
    a.jmp_imm(Cond::Set, R1, task_flags::CMDLINE_TRUNCATED as i32, counted);
    a.ldx(Size::DW, R2, FP, BPRM);
    a.ldx_field(Size::W, R1, R2, field("linux_binprm", &["argc"]));
    a.ldx(Size::DW, R2, R6, ARGC);
    a.jmp_reg(Cond::Ne, R1, R2, defer);
    a.bind(counted);
    a.ldx(Size::DW, R1, R6, CHECKS);
    a.alu_imm(Alu::Add, R1, 1);
    a.stx(Size::DW, R6, CHECKS, R1);
    a.ldx(Size::DW, R1, R6, XFLAGS);
    a.alu_imm(Alu::And, R1, !(exec_flags::SCRIPT as i32));
    a.stx(Size::DW, R6, XFLAGS, R1);

    shebang::rewrite(&mut a, p, BPRM, defer);
    judge_file(&mut a, p, out)?;

    a.bind(defer);
    a.comment("the new identity cannot be told here: judged after the exec instead");
    identity::set_flag(&mut a, XFLAGS, exec_flags::DEFER);
    write_back(&mut a);
    a.bind(out);
    a.ldx(Size::DW, R0, FP, RET);
    a.exit();
    Program::finish(
        a,
        "lsm/bprm_check_security",
        abi::Attach::Lsm {
            hook: "bprm_check_security".into(),
        },
        Some(abi::Backend::Lsm),
    )
}

/// `GUARD_EXECARGS[tid] = the scratch copy`. Uses r0-r4.
fn write_back(a: &mut Asm) {
    a.ld_map(R1, abi::MAP_EXEC_ARGS);
    a.mov(R2, FP);
    a.alu_imm(Alu::Add, R2, i32::from(TID));
    a.mov(R3, R6);
    a.alu_imm(Alu::Add, R3, identity::ARGS);
    a.mov_imm(R4, 0); // BPF_ANY
    a.call(Helper::MapUpdateElem);
}

/// The process name the exec gives: the last component of the name the exec was asked for,
/// cut to 15 bytes (what the kernel copies into `comm`). Once per exec: a script's interpreter
/// does not change it. Read into the walk's buffer, which the walk overwrites later.
fn process_name(a: &mut Asm, p: &Params, defer: Label) {
    let top = a.label();
    let found = a.label();
    let named = a.label();
    a.ldx(Size::DW, R3, FP, BPRM);
    a.ldx_field(Size::DW, R3, R3, field("linux_binprm", &["filename"]));
    a.mov(R1, R6);
    a.alu_imm(Alu::Add, R1, HEADER);
    a.mov_imm(R2, abi::PATH_BUF as i32);
    a.call(Helper::ProbeReadKernelStr);
    a.jmp_imm(Cond::Slt, R0, 1, defer);
    a.comment("the last '/' before the NUL; a component is at most 255 bytes, so it is among the last 256");
    a.comment("(the loop's results go through the scratch value: the verifier then sees one state after it)");
    a.mov(R8, R0);
    a.alu_imm(Alu::Sub, R8, 2);
    a.mov_imm(R9, 0);
    a.bind(top);
    a.stx(Size::DW, R6, walk::H_POS, R8);
    a.jmp_imm(Cond::Ge, R9, 256, found);
    a.jmp_imm(Cond::Slt, R8, 0, found);
    a.mov(R2, R8);
    a.alu_imm(Alu::And, R2, walk::BUF_MASK);
    a.alu_reg(Alu::Add, R2, R6);
    a.ldx(Size::B, R3, R2, HEADER as i16);
    a.jmp_imm(Cond::Eq, R3, i32::from(b'/'), found);
    a.alu_imm(Alu::Sub, R8, 1);
    a.alu_imm(Alu::Add, R9, 1);
    a.jmp(top);
    a.bind(found);
    a.ldx(Size::DW, R8, R6, walk::H_POS);
    a.alu_imm(Alu::Add, R8, 1);
    a.alu_imm(Alu::And, R8, walk::BUF_MASK);
    a.stx(Size::DW, R6, walk::H_POS, R8);
    a.st(Size::DW, R6, NAME, 0);
    a.st(Size::DW, R6, NAME + 8, 0);
    a.mov(R1, R6);
    a.alu_imm(Alu::Add, R1, i32::from(NAME));
    a.mov_imm(R2, 16);
    a.mov(R3, R6);
    a.alu_imm(Alu::Add, R3, HEADER);
    a.alu_reg(Alu::Add, R3, R8);
    a.call(Helper::ProbeReadKernelStr);
    if p.n_names > 0 {
        // An exec of an open descriptor (fexecve, execveat with AT_EMPTY_PATH) is asked for
        // as "/dev/fd/N"; newer kernels (6.14, and stable updates of older ones: Debian's 6.1
        // does) name the process after the file instead of "N", so its name is not known here.
        a.comment(
            "an exec of an open descriptor (\"/dev/fd/N\"): its process name is not known here",
        );
        a.ldx(Size::DW, R1, R6, walk::H_POS);
        a.jmp_imm(Cond::Ne, R1, 8, named);
        a.ldx(Size::W, R1, R6, HEADER as i16);
        a.jmp_imm(Cond::Ne, R1, i32::from_le_bytes(*b"/dev"), named);
        a.ldx(Size::W, R1, R6, HEADER as i16 + 4);
        a.jmp_imm(Cond::Eq, R1, i32::from_le_bytes(*b"/fd/"), defer);
    }
    a.bind(named);
}

/// Walks the file this check is about, takes its executable identities, records that it was
/// judged (and the record with it), then judges the exec rules its path selects.
fn judge_file(a: &mut Asm, p: &Params, out: Label) -> Result<(), AsmError> {
    a.call(Helper::GetCurrentTaskBtf);
    a.mov(R8, R0);
    a.ldx(Size::DW, R9, FP, BPRM);
    a.ldx_field(Size::DW, R9, R9, field("linux_binprm", &["file"]));
    identity::walk_executable(a, p, LIST);
    identity::exe_ancestry(a);
    a.ldx(Size::DW, R1, FP, BPRM);
    a.ldx_field(Size::DW, R1, R1, field("linux_binprm", &["file"]));
    a.stx(Size::DW, R6, JUDGED_FILE, R1);
    write_back(a);
    a.ldx(Size::DW, R8, FP, LIST);
    verdict::judge_and_act(
        a,
        p,
        R8,
        abi::EVENT_EXEC,
        out,
        Enforce::Lsm { ret: RET },
        Subject::Exec,
    )?;
    a.jmp(out);
    Ok(())
}

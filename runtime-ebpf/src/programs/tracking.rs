//! Identity tracking: exec computes a process's identity bits from its command line and its
//! place in its pid namespace, fork hands them to the child, exit forgets the task.
//!
//! The same computation is done in user space for processes that were already running when
//! the policy was loaded (`guard-run`'s `/proc` scan), and before the exec by the LSM
//! backend's exec check; the sequences are shared in [`super::identity`]. INVARIANT: command
//! line normalisation and inheritance here match `guard_runtime::procscan`.

use core::mem::offset_of;

use super::common::{count, current_tid, map_lookup, scratch};
use super::identity::{self, CMDLINE, CMDLINE_LEN};
use super::store::{self, Task};
use super::verdict::{self, Enforce, Subject};
use super::{Params, Program};
use crate::abi::{self, Counter, ExecArgs, TaskInfo, exec_flags, task_flags};
use crate::asm::{Alu, Asm, AsmError, Cond, FP, Helper, R0, R1, R2, R3, R6, R7, R8, R9, Size};
use crate::ktypes::field;

/// Stack layout shared by the tracking programs. The identity sequences use -80..-96
/// ([`identity::TMP`], [`identity::TMP2`], [`identity::LEN`]).
const KEY: i16 = -4; // u32 tid of the task being written
const KEY2: i16 = -8; // u32 second key (parent tid, scratch key)
const ARG_START: i16 = -104;
const TASK: i16 = -112; // the exec'ing task (BTF pointer, spilled)
const BPRM: i16 = -120; // its linux_binprm (BTF pointer, spilled)
const LIST: i16 = -128; // rule list of the executable's path
const OLD_PID: i16 = -136; // u32 tid of the thread that called execve (before de_thread)
/// The child's TaskInfo being built (fork), below every other slot.
const INFO: i16 = OLD_PID - core::mem::size_of::<TaskInfo>() as i16;

fn info_field(offset: usize) -> i16 {
    INFO + offset as i16
}

/// The exec program: `tp_btf/sched_process_exec`, args `(task, old_pid, bprm)`. Computes the
/// task's identities for its new image, then judges the exec rules that the executable's path
/// selects, unless the LSM backend's exec check already judged this exec before it happened.
pub fn exec(p: &Params) -> Result<Program, AsmError> {
    let mut a = Asm::new(&p.program_name("guard_exec"));
    let out = a.label();
    let truncated = a.label();
    let read = a.label();

    a.comment(
        "the task that just exec'd, the thread that called execve, and the binprm (BTF pointers from the tracepoint's arguments)",
    );
    a.ldx(Size::DW, R2, R1, 0);
    a.stx(Size::DW, FP, TASK, R2);
    a.ldx(Size::DW, R2, R1, 8);
    a.stx(Size::W, FP, OLD_PID, R2);
    a.ldx(Size::DW, R2, R1, 16);
    a.stx(Size::DW, FP, BPRM, R2);
    scratch(&mut a, abi::MAP_EXEC_SCRATCH, KEY2, R6, out);
    identity::reset(&mut a);
    current_tid(&mut a, KEY);

    a.comment(
        "inherited identities come from the entry fork made; a task unknown to guard inherits none",
    );
    identity::inherit(&mut a, p, KEY, Task::Slot(TASK));
    a.ldx(Size::DW, R7, FP, TASK);
    identity::ns_init(&mut a, R7);

    a.comment("the command line: argv as laid out by exec, between mm->arg_start and mm->arg_end");
    a.ldx(Size::DW, R7, FP, TASK);
    a.ldx_field(Size::DW, R1, R7, field("task_struct", &["mm"]));
    a.ldx_field(Size::DW, R2, R1, field("mm_struct", &["arg_start"]));
    a.ldx_field(Size::DW, R3, R1, field("mm_struct", &["arg_end"]));
    a.stx(Size::DW, FP, ARG_START, R2);
    a.alu_reg(Alu::Sub, R3, R2);
    a.comment("longer than we read: fail closed, grant no identity");
    a.jmp_imm(Cond::Gt, R3, abi::CMDLINE_MAX as i32, truncated);
    a.stx(Size::DW, R6, CMDLINE_LEN, R3);
    a.mov(R1, R6);
    a.alu_imm(Alu::Add, R1, i32::from(CMDLINE));
    a.mov(R2, R3);
    a.ldx(Size::DW, R3, FP, ARG_START);
    a.call(Helper::ProbeReadUser);
    a.jmp_imm(Cond::Eq, R0, 0, read);
    a.bind(truncated);
    identity::set_flag(&mut a, identity::FLAGS, task_flags::CMDLINE_TRUNCATED);
    a.bind(read);
    identity::cmdline_identity(&mut a, p);

    exe_walk(&mut a, p, out)?;
    Program::finish(
        a,
        &p.section_name("tp_btf/sched_process_exec"),
        abi::Attach::BtfTracepoint {
            name: "sched_process_exec".into(),
        },
        None,
    )
}

/// The second half of the exec program: walk the new executable's path (fail closed when it
/// cannot be read whole), take its executable identities, store the task's entry, then judge
/// the exec rules the path selected.
fn exe_walk(a: &mut Asm, p: &Params, out: crate::asm::Label) -> Result<(), AsmError> {
    if p.walks_executables() {
        a.ldx(Size::DW, R8, FP, TASK);
        a.ldx(Size::DW, R9, FP, BPRM);
        a.ldx_field(Size::DW, R9, R9, field("linux_binprm", &["file"]));
        identity::walk_executable(a, p, LIST);
    } else {
        a.comment("no rule reads the executable: no walk, no executable identity, no exec rule");
        a.st(
            Size::DW,
            R6,
            identity::info(offset_of!(TaskInfo, exe_ids)),
            0,
        );
        a.st(Size::DW, FP, LIST, 0);
    }
    identity::exe_ancestry(a);
    a.comment("the entry is written before judging: the exec rules see the new image's identities");
    store::write(a, p, KEY, Task::Slot(TASK), R6, identity::info(0));
    judged_before(a, out);
    a.ldx(Size::DW, R8, FP, LIST);
    verdict::judge_and_act(
        a,
        p,
        R8,
        abi::EVENT_EXEC,
        out,
        Enforce::Signal,
        Subject::Current,
    )?;
    a.bind(out);
    a.mov_imm(R0, 0);
    a.exit();
    Ok(())
}

/// Jumps to `judged` if the LSM backend's exec check judged this exec before it happened: its
/// record says it judged this very executable with the very identity just computed. Anything
/// else (no record: the tracepoint backend, or an exec the kernel started; a record the check
/// gave up on; a command line another thread changed while the kernel copied it) is judged
/// here, after the exec, as the tracepoint backend does. The record is consumed either way.
fn judged_before(a: &mut Asm, judged: crate::asm::Label) {
    let judge = a.label();
    let differs = a.label();
    let forget = a.label();
    map_lookup(a, abi::MAP_EXEC_ARGS, OLD_PID);
    a.jmp_imm(Cond::Eq, R0, 0, judge);
    a.mov(R7, R0);
    a.mov_imm(R9, 0);
    a.ldx(Size::DW, R1, R7, offset_of!(ExecArgs, flags) as i16);
    a.jmp_imm(Cond::Set, R1, exec_flags::DEFER as i32, differs);
    a.ldx(Size::DW, R1, R7, offset_of!(ExecArgs, judged_file) as i16);
    a.ldx(Size::DW, R2, FP, BPRM);
    a.ldx_field(Size::DW, R2, R2, field("linux_binprm", &["file"]));
    a.jmp_reg(Cond::Ne, R1, R2, differs);
    for off in (0..core::mem::size_of::<TaskInfo>()).step_by(8) {
        let theirs = (offset_of!(ExecArgs, info) + off) as i16;
        a.ldx(Size::DW, R1, R7, theirs);
        a.ldx(Size::DW, R2, R6, identity::info(off));
        a.jmp_reg(Cond::Ne, R1, R2, differs);
    }
    a.mov_imm(R9, 1);
    a.jmp(forget);
    a.bind(differs);
    count(a, abi::MAP_COUNTERS, Counter::ExecJudgedAfter as u32, KEY2);
    a.bind(forget);
    a.ld_map(R1, abi::MAP_EXEC_ARGS);
    a.mov(R2, FP);
    a.alu_imm(Alu::Add, R2, i32::from(OLD_PID));
    a.call(Helper::MapDeleteElem);
    a.jmp_imm(Cond::Ne, R9, 0, judged);
    a.bind(judge);
}

/// The fork program: `tp_btf/sched_process_fork`, args `(parent, child)`.
pub fn fork(p: &Params) -> Result<Program, AsmError> {
    let mut a = Asm::new(&p.program_name("guard_fork"));
    let out = a.label();
    a.comment("r6: the parent, r7: the child (BTF pointers from the tracepoint's arguments)");
    a.ldx(Size::DW, R6, R1, 0);
    a.ldx(Size::DW, R7, R1, 8);
    a.ldx_field(Size::W, R1, R6, field("task_struct", &["pid"]));
    a.stx(Size::W, FP, KEY2, R1);
    a.ldx_field(Size::W, R1, R7, field("task_struct", &["pid"]));
    a.stx(Size::W, FP, KEY, R1);

    a.comment("a parent unknown to guard hands down nothing");
    store::lookup(&mut a, p, KEY2, Task::Reg(R6));
    a.jmp_imm(Cond::Eq, R0, 0, out);
    let copy = [
        (
            offset_of!(TaskInfo, self_ids),
            offset_of!(TaskInfo, self_ids),
        ),
        (offset_of!(TaskInfo, anc_ids), offset_of!(TaskInfo, anc_ids)),
        (
            offset_of!(TaskInfo, pid1_ids),
            offset_of!(TaskInfo, pid1_ids),
        ),
        (offset_of!(TaskInfo, anc_ids), offset_of!(TaskInfo, inh_anc)),
        (
            offset_of!(TaskInfo, pid1_ids),
            offset_of!(TaskInfo, inh_pid1),
        ),
        // The child runs the parent's image: the same executable, and the init's image if the
        // parent ran it (the whole entry is written: nothing is left to the stack's garbage).
        (
            offset_of!(TaskInfo, img_pid1),
            offset_of!(TaskInfo, img_pid1),
        ),
        (offset_of!(TaskInfo, exe_ids), offset_of!(TaskInfo, exe_ids)),
        (offset_of!(TaskInfo, anc_exe), offset_of!(TaskInfo, anc_exe)),
        (
            offset_of!(TaskInfo, pid1_exe),
            offset_of!(TaskInfo, pid1_exe),
        ),
        (
            offset_of!(TaskInfo, anc_exe),
            offset_of!(TaskInfo, inh_anc_exe),
        ),
        (
            offset_of!(TaskInfo, pid1_exe),
            offset_of!(TaskInfo, inh_pid1_exe),
        ),
    ];
    for (from, to) in copy {
        a.ldx(Size::DW, R1, R0, from as i16);
        a.stx(Size::DW, FP, info_field(to), R1);
    }
    a.comment("the child runs the parent's image: same command line, same truncation flag;");
    a.comment("within one pid namespace, a descendant of an entered task is entered too");
    a.ldx(Size::DW, R1, R0, offset_of!(TaskInfo, flags) as i16);
    a.alu_imm(
        Alu::And,
        R1,
        (task_flags::CMDLINE_TRUNCATED | task_flags::ENTERED) as i32,
    );
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, flags)), R1);

    a.comment("a child in another pid namespace than its parent does not descend from that");
    a.comment(
        "namespace's init: it is a new namespace's init, or it was entered from outside (setns)",
    );
    let same_ns = a.label();
    let not_init = a.label();
    a.ldx_field(Size::DW, R1, R6, field("task_struct", &["thread_pid"]));
    a.ldx_field(Size::W, R8, R1, field("pid", &["level"]));
    a.ldx_field(Size::DW, R1, R7, field("task_struct", &["thread_pid"]));
    a.ldx_field(Size::W, R9, R1, field("pid", &["level"]));
    a.jmp_reg(Cond::Eq, R8, R9, same_ns);
    a.st(Size::DW, FP, info_field(offset_of!(TaskInfo, inh_pid1)), 0);
    a.st(Size::DW, FP, info_field(offset_of!(TaskInfo, pid1_ids)), 0);
    a.st(Size::DW, FP, info_field(offset_of!(TaskInfo, img_pid1)), 0);
    a.st(
        Size::DW,
        FP,
        info_field(offset_of!(TaskInfo, inh_pid1_exe)),
        0,
    );
    a.st(Size::DW, FP, info_field(offset_of!(TaskInfo, pid1_exe)), 0);
    a.ldx(Size::DW, R1, FP, info_field(offset_of!(TaskInfo, flags)));
    a.alu_imm(Alu::And, R1, !(task_flags::ENTERED as i32));
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, flags)), R1);
    identity::ns_init_check(&mut a, R7, not_init);
    a.ldx(Size::DW, R1, FP, info_field(offset_of!(TaskInfo, self_ids)));
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, pid1_ids)), R1);
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, img_pid1)), R1);
    a.ldx(Size::DW, R1, FP, info_field(offset_of!(TaskInfo, exe_ids)));
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, pid1_exe)), R1);
    a.ldx(Size::DW, R1, FP, info_field(offset_of!(TaskInfo, flags)));
    a.alu_imm(Alu::Or, R1, task_flags::NS_INIT as i32);
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, flags)), R1);
    a.jmp(same_ns);
    a.bind(not_init);
    a.comment("in a deeper pid namespace without being its init: entered from outside (setns)");
    a.ldx(Size::DW, R1, FP, info_field(offset_of!(TaskInfo, flags)));
    a.alu_imm(Alu::Or, R1, task_flags::ENTERED as i32);
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, flags)), R1);
    a.bind(same_ns);
    a.comment("the child's entry (task storage: created here, from the parent's bits)");
    store::write(&mut a, p, KEY, Task::Reg(R7), FP, INFO);
    a.bind(out);
    a.mov_imm(R0, 0);
    a.exit();
    Program::finish(
        a,
        &p.section_name("tp_btf/sched_process_fork"),
        abi::Attach::BtfTracepoint {
            name: "sched_process_fork".into(),
        },
        None,
    )
}

/// The exit program: `tp_btf/sched_process_exit`; forgets the exiting thread.
pub fn exit(p: &Params) -> Result<Program, AsmError> {
    let mut a = Asm::new(&p.program_name("guard_exit"));
    current_tid(&mut a, KEY);
    store::forget(&mut a, p, KEY);
    a.comment("and the record of an exec it started that failed");
    a.ld_map(R1, abi::MAP_EXEC_ARGS);
    a.mov(R2, FP);
    a.alu_imm(Alu::Add, R2, i32::from(KEY));
    a.call(Helper::MapDeleteElem);
    a.mov_imm(R0, 0);
    a.exit();
    Program::finish(
        a,
        &p.section_name("tp_btf/sched_process_exit"),
        abi::Attach::BtfTracepoint {
            name: "sched_process_exit".into(),
        },
        None,
    )
}

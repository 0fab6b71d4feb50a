//! Identity tracking: exec computes a process's identity bits from its command line and its
//! place in its pid namespace, fork hands them to the child, exit forgets the task.
//!
//! The same computation is done in user space for processes that were already running when
//! the policy was loaded (`guard-run`'s `/proc` scan); the two must agree. INVARIANT: command
//! line normalisation and inheritance here match `guard_runtime::procscan`.

use core::mem::offset_of;

use super::common::{
    current_tid, dfa_info, dfa_step, list_load, map_lookup, read_kernel_to_stack, scratch,
    zero_stack,
};
use super::{Params, Program, verdict, walk};
use crate::abi::{self, TaskInfo, task_flags};
use crate::asm::{Alu, Asm, AsmError, Cond, FP, Helper, R0, R1, R2, R3, R4, R6, R7, R8, R9, Size};
use crate::ktypes::field;

/// Stack layout shared by the tracking programs.
const KEY: i16 = -4; // u32 tid of the task being written
const KEY2: i16 = -8; // u32 second key (parent tid, scratch key)
const INFO: i16 = -72; // TaskInfo, 64 bytes: -72..-8
const TMP: i16 = -80;
const TMP2: i16 = -88;
const LEN: i16 = -96;
const ARG_START: i16 = -104;
const TASK: i16 = -112; // the exec'ing task (BTF pointer, spilled)
const BPRM: i16 = -120; // its linux_binprm (BTF pointer, spilled)
const LIST: i16 = -128; // rule list of the executable's path

fn info_field(offset: usize) -> i16 {
    INFO + offset as i16
}

/// Where the exec program keeps the command line in its scratch value, after the walk's
/// header and path buffer.
const CMD_OFF: i32 = walk::SCRATCH_SIZE as i32;

/// Where the exec program keeps the task's new entry during the walk, after the command line.
/// Not on the stack: the verifier compares stack slots when it prunes the walk's loop, and the
/// entry's constant-valued flags would multiply its states (the 6.1 verifier ran out of its
/// million instructions); a map value is opaque to it.
const INFO_OFF: i32 = CMD_OFF + abi::CMDLINE_MAX as i32;

/// The exec program: `tp_btf/sched_process_exec`, args `(task, old_pid, bprm)`. Computes the
/// task's identities for its new image, then judges the exec rules that the executable's path
/// selects.
pub fn exec(p: &Params) -> Result<Program, AsmError> {
    let mut a = Asm::new("guard_exec");
    let out = a.label();
    let no_identity = a.label();
    let identity_done = a.label();
    let not_init = a.label();

    a.comment(
        "the task that just exec'd and its binprm (BTF pointers from the tracepoint's arguments)",
    );
    a.ldx(Size::DW, R2, R1, 0);
    a.stx(Size::DW, FP, TASK, R2);
    a.ldx(Size::DW, R2, R1, 16);
    a.stx(Size::DW, FP, BPRM, R2);
    current_tid(&mut a, KEY);
    zero_stack(&mut a, INFO, 64);

    a.comment(
        "inherited identities come from the entry fork made; a task unknown to guard inherits none",
    );
    let no_entry = a.label();
    map_lookup(&mut a, abi::MAP_TASKS, KEY);
    a.jmp_imm(Cond::Eq, R0, 0, no_entry);
    for off in [
        offset_of!(TaskInfo, inh_anc),
        offset_of!(TaskInfo, inh_pid1),
    ] {
        a.ldx(Size::DW, R1, R0, off as i16);
        a.stx(Size::DW, FP, info_field(off), R1);
    }
    a.comment("entered from outside stays true across exec");
    a.ldx(Size::DW, R1, R0, offset_of!(TaskInfo, flags) as i16);
    a.alu_imm(Alu::And, R1, task_flags::ENTERED as i32);
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, flags)), R1);
    a.bind(no_entry);

    a.comment("is this task the init of its pid namespace? pid->numbers[pid->level].nr == 1");
    a.ldx(Size::DW, R7, FP, TASK);
    ns_init_check(&mut a, R7, not_init);
    a.ldx(Size::DW, R1, FP, info_field(offset_of!(TaskInfo, flags)));
    a.alu_imm(Alu::Or, R1, task_flags::NS_INIT as i32);
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, flags)), R1);
    a.bind(not_init);

    a.comment("the command line: argv as laid out by exec, between mm->arg_start and mm->arg_end");
    scratch(&mut a, abi::MAP_EXEC_SCRATCH, KEY2, R6, out);
    a.ldx(Size::DW, R7, FP, TASK);
    a.ldx_field(Size::DW, R1, R7, field("task_struct", &["mm"]));
    a.ldx_field(Size::DW, R2, R1, field("mm_struct", &["arg_start"]));
    a.ldx_field(Size::DW, R3, R1, field("mm_struct", &["arg_end"]));
    a.stx(Size::DW, FP, ARG_START, R2);
    a.alu_reg(Alu::Sub, R3, R2);
    a.comment("longer than we read: fail closed, grant no identity");
    a.jmp_imm(Cond::Gt, R3, abi::CMDLINE_MAX as i32, no_identity);
    a.stx(Size::DW, FP, LEN, R3);
    a.mov(R1, R6);
    a.alu_imm(Alu::Add, R1, CMD_OFF);
    a.mov(R2, R3);
    a.ldx(Size::DW, R3, FP, ARG_START);
    a.call(Helper::ProbeReadUser);
    a.jmp_imm(Cond::Ne, R0, 0, no_identity);

    a.comment("drop the NUL that ends the last argument");
    let keep = a.label();
    a.ldx(Size::DW, R1, FP, LEN);
    a.jmp_imm(Cond::Eq, R1, 0, keep);
    a.alu_imm(Alu::Sub, R1, 1);
    a.alu_imm(Alu::And, R1, abi::CMDLINE_MAX as i32 - 1);
    a.mov(R2, R6);
    a.alu_reg(Alu::Add, R2, R1);
    a.ldx(Size::B, R3, R2, CMD_OFF as i16);
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
    a.ldx(Size::B, R3, R2, CMD_OFF as i16);
    a.jmp_imm(Cond::Ne, R3, 0, not_nul);
    a.mov_imm(R3, i32::from(b' '));
    a.bind(not_nul);
    dfa_step(&mut a, abi::RODATA_CMDLINE_DFA, p.cmdline_dfa, R8, R3);
    a.jmp_imm(Cond::Eq, R8, 0, done);
    a.alu_imm(Alu::Add, R9, 1);
    a.jmp(top);
    a.bind(done);
    dfa_info(&mut a, abi::RODATA_CMDLINE_DFA, p.cmdline_dfa, R8, R1);
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, self_ids)), R1);
    a.jmp(identity_done);

    a.bind(no_identity);
    a.ldx(Size::DW, R1, FP, info_field(offset_of!(TaskInfo, flags)));
    a.alu_imm(Alu::Or, R1, task_flags::CMDLINE_TRUNCATED as i32);
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, flags)), R1);

    a.bind(identity_done);
    a.comment(
        "anc = inherited | self; pid1 = inherited | (self if this task is its namespace's init);",
    );
    a.comment("img_pid1 = self if this task is its namespace's init (a new image starts here)");
    a.ldx(Size::DW, R1, FP, info_field(offset_of!(TaskInfo, self_ids)));
    a.ldx(Size::DW, R2, FP, info_field(offset_of!(TaskInfo, inh_anc)));
    a.alu_reg(Alu::Or, R2, R1);
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, anc_ids)), R2);
    let keep_pid1 = a.label();
    a.ldx(Size::DW, R2, FP, info_field(offset_of!(TaskInfo, inh_pid1)));
    a.ldx(Size::DW, R3, FP, info_field(offset_of!(TaskInfo, flags)));
    a.jmp_imm(Cond::Set, R3, task_flags::NS_INIT as i32, keep_pid1);
    a.mov_imm(R1, 0);
    a.bind(keep_pid1);
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, img_pid1)), R1);
    a.alu_reg(Alu::Or, R2, R1);
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, pid1_ids)), R2);

    exe_walk(&mut a, p, out)?;
    Program::finish(
        a,
        "tp_btf/sched_process_exec",
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
    let walked = a.label();
    let truncated = a.label();
    let dead = a.label();
    let store = a.label();
    a.comment("the entry moves to the scratch value for the walk (see INFO_OFF)");
    for off in (0..core::mem::size_of::<TaskInfo>()).step_by(8) {
        a.ldx(Size::DW, R1, FP, info_field(off));
        a.stx(Size::DW, R6, (INFO_OFF + off as i32) as i16, R1);
    }
    a.st(Size::DW, R6, walk::H_FD, -1);
    a.st(Size::DW, R6, walk::H_OPS, abi::OP_EXEC as i32);
    a.ldx(Size::DW, R8, FP, TASK);
    a.ldx(Size::DW, R9, FP, BPRM);
    a.ldx_field(Size::DW, R9, R9, field("linux_binprm", &["file"]));
    walk::walk(a, p, dead, walked, truncated);

    a.bind(walked);
    a.ldx(Size::DW, R7, R6, walk::H_STATE);
    dfa_info(a, abi::RODATA_PATH_DFA, p.path_dfa, R7, R8);
    a.alu_imm(Alu::Lsh, R8, 32);
    a.alu_imm(Alu::Rsh, R8, 32);
    a.stx(Size::DW, FP, LIST, R8);
    a.comment("executable identities: list entries from EXE_TAG_BASE on");
    let top = a.label();
    let next = a.label();
    let ids_done = a.label();
    a.jmp_imm(Cond::Eq, R8, 0, store);
    a.jmp_imm(Cond::Ge, R8, p.rule_list_len as i32, store);
    a.mov_imm(R9, 0);
    a.bind(top);
    a.jmp_imm(Cond::Ge, R9, abi::MAX_RULES_PER_LIST as i32, ids_done);
    a.ldx(Size::DW, R8, FP, LIST);
    a.mov(R2, R8);
    list_load(a, p.rule_list_len, R1, ids_done);
    a.jmp_reg(Cond::Ge, R9, R1, ids_done);
    a.mov(R2, R8);
    a.alu_reg(Alu::Add, R2, R9);
    a.alu_imm(Alu::Add, R2, 1);
    list_load(a, p.rule_list_len, R1, ids_done);
    a.jmp_imm(Cond::Lt, R1, abi::EXE_TAG_BASE as i32, next);
    a.alu_imm(Alu::Sub, R1, abi::EXE_TAG_BASE as i32);
    a.jmp_imm(Cond::Ge, R1, abi::MAX_EXE_IDS as i32, next);
    a.mov_imm(R2, 1);
    a.alu_reg(Alu::Lsh, R2, R1);
    let exe_ids = (INFO_OFF + offset_of!(TaskInfo, exe_ids) as i32) as i16;
    a.ldx(Size::DW, R1, R6, exe_ids);
    a.alu_reg(Alu::Or, R1, R2);
    a.stx(Size::DW, R6, exe_ids, R1);
    a.bind(next);
    a.alu_imm(Alu::Add, R9, 1);
    a.jmp(top);
    a.bind(ids_done);
    a.jmp(store);

    a.bind(truncated);
    a.comment("the executable's path could not be read whole: no executable identity, and every exec rule that could match judges it");
    a.ldx(Size::DW, R1, R6, walk::H_FLAGS);
    a.alu_imm(Alu::Or, R1, abi::event_flags::PATH_TRUNCATED as i32);
    a.stx(Size::DW, R6, walk::H_FLAGS, R1);
    a.ldx(Size::DW, R7, R6, walk::H_STATE);
    dfa_info(a, abi::RODATA_PATH_DFA, p.path_dfa, R7, R8);
    a.alu_imm(Alu::Rsh, R8, 32);
    a.stx(Size::DW, FP, LIST, R8);
    a.jmp(store);

    a.bind(dead);
    a.st(Size::DW, FP, LIST, 0);

    a.bind(store);
    a.comment("the entry is written before judging: the exec rules see the new image's identities");
    a.ld_map(R1, abi::MAP_TASKS);
    a.mov(R2, FP);
    a.alu_imm(Alu::Add, R2, i32::from(KEY));
    a.mov(R3, R6);
    a.alu_imm(Alu::Add, R3, INFO_OFF);
    a.mov_imm(crate::asm::R4, 0); // BPF_ANY
    a.call(Helper::MapUpdateElem);
    a.ldx(Size::DW, R8, FP, LIST);
    verdict::judge_and_act(a, p, R8, abi::EVENT_EXEC, out, verdict::Enforce::Signal)?;
    a.bind(out);
    a.mov_imm(R0, 0);
    a.exit();
    Ok(())
}

/// The fork program: `tp_btf/sched_process_fork`, args `(parent, child)`.
pub fn fork(_p: &Params) -> Result<Program, AsmError> {
    let mut a = Asm::new("guard_fork");
    let out = a.label();
    a.ldx(Size::DW, R6, R1, 0);
    a.ldx(Size::DW, R7, R1, 8);
    a.ldx_field(Size::W, R1, R6, field("task_struct", &["pid"]));
    a.stx(Size::W, FP, KEY2, R1);
    a.ldx_field(Size::W, R1, R7, field("task_struct", &["pid"]));
    a.stx(Size::W, FP, KEY, R1);

    a.comment("a parent unknown to guard hands down nothing");
    map_lookup(&mut a, abi::MAP_TASKS, KEY2);
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
    a.ldx(Size::DW, R1, FP, info_field(offset_of!(TaskInfo, flags)));
    a.alu_imm(Alu::And, R1, !(task_flags::ENTERED as i32));
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, flags)), R1);
    ns_init_check(&mut a, R7, not_init);
    a.ldx(Size::DW, R1, FP, info_field(offset_of!(TaskInfo, self_ids)));
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, pid1_ids)), R1);
    a.stx(Size::DW, FP, info_field(offset_of!(TaskInfo, img_pid1)), R1);
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
    update_tasks(&mut a, KEY);
    a.bind(out);
    a.mov_imm(R0, 0);
    a.exit();
    Program::finish(
        a,
        "tp_btf/sched_process_fork",
        abi::Attach::BtfTracepoint {
            name: "sched_process_fork".into(),
        },
        None,
    )
}

/// The exit program: `tp_btf/sched_process_exit`; forgets the exiting thread.
pub fn exit(_p: &Params) -> Result<Program, AsmError> {
    let mut a = Asm::new("guard_exit");
    current_tid(&mut a, KEY);
    a.ld_map(R1, abi::MAP_TASKS);
    a.mov(R2, FP);
    a.alu_imm(Alu::Add, R2, i32::from(KEY));
    a.call(Helper::MapDeleteElem);
    a.mov_imm(R0, 0);
    a.exit();
    Program::finish(
        a,
        "tp_btf/sched_process_exit",
        abi::Attach::BtfTracepoint {
            name: "sched_process_exit".into(),
        },
        None,
    )
}

/// Falls through if `task` (a BTF task pointer in a callee-saved register) is the init of its
/// pid namespace, else jumps to `no`. Uses r0-r4 and the TMP/TMP2 stack slots.
fn ns_init_check(a: &mut Asm, task: crate::asm::Reg, no: crate::asm::Label) {
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

/// `GUARD_TASKS[key] = info` (from the stack).
fn update_tasks(a: &mut Asm, key: i16) {
    a.ld_map(R1, abi::MAP_TASKS);
    a.mov(R2, FP);
    a.alu_imm(Alu::Add, R2, i32::from(key));
    a.mov(R3, FP);
    a.alu_imm(Alu::Add, R3, i32::from(INFO));
    a.mov_imm(crate::asm::R4, 0); // BPF_ANY
    a.call(Helper::MapUpdateElem);
}

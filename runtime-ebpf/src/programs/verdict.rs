//! Judging the rules a path selected, acting on the verdict, and reporting it.
//!
//! Combination: every rule that covers the operation (its `ops` include the operation and one
//! of its patterns matched) must allow it. Among the rules that refuse it, the most severe action
//! wins (kill > deny > alert); on a tie the rule listed first (lowest id, i.e. first in the
//! source) is the one reported.
//!
//! A rule `guard-run` switched off ([`abi::MAP_RULE_OFF`]: the safety valve) refuses at
//! `alert` level, so another rule's kill or deny of the same operation still wins; the event
//! reports the off rule's own action with [`event_flags::NOT_ENFORCED`]. In audit mode nothing
//! is carried out and every refusal is reported that way. The map's value is looked up once,
//! before the rules: a bit test per rule costs the verifier far less than a lookup per rule.

use core::mem::{offset_of, size_of};

use super::common::{count, dfa_info, dfa_step, list_load, map_lookup};
use super::walk::{BUF_MASK, H_FD, H_FLAGS, H_OPS, H_POS, HEADER, PATH_END};
use super::{Params, identity, store};
use crate::abi::{
    self, Action, Counter, Event, IdentityStore, RULE_COUNTER_KINDS, RuleCounter, RuleEntry,
    RuleOff, TaskInfo, Term, event_flags,
};
use crate::asm::{
    Alu, Asm, AsmError, Cond, FP, Helper, Label, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, Reg, Size,
};
use crate::ktypes::field;

const KEY: i16 = -4;
const CKEY: i16 = -8;
/// The identity words, `N_WORDS` u64s: -328..-240.
const BITS: i16 = -328;
const BEST: i16 = -336;
const BEST_RULE: i16 = -344;
const LEN: i16 = -352;
const COMM: i16 = -376; // 16 bytes + 8 spare: -376..-352
const CGROUP: i16 = -384;
/// The action the best refusal would have had if its rule were enforced (= `BEST` unless the
/// safety valve switched the rule off).
const BEST_WOULD: i16 = -424;
/// u32 key 0 of the rule-off map.
const OFF_KEY: i16 = -432;

// The per-rule counter index is `rule << 2 | kind`.
const _: () = assert!(RULE_COUNTER_KINDS == 4);
// The event's entered flag is the identity word's, shifted (see `emit_event`).
const _: () = assert!(abi::FLAG_ENTERED << 5 == event_flags::ENTERED as u64);

fn word(w: usize) -> i16 {
    BITS + 8 * w as i16
}

/// Whose identity the rules are judged against, and what the event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// The current task as guard knows it: its entry in the task map, its `comm` and its
    /// command line, read now.
    Current,
    /// A task in the middle of an exec, judged as the program it is about to become: the
    /// identity, process name and command line of the [`abi::ExecArgs`] record in the scratch
    /// value (see [`super::identity`]). The uid, terminal and cgroup are the task's own: an
    /// exec does not change them.
    Exec,
}

/// How a refusal is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforce {
    /// After the fact (syscall and scheduler tracepoints): `bpf_send_signal(SIGKILL)` for kill
    /// and for deny (the loader accepts deny rules here only when told to kill instead).
    Signal,
    /// Before the operation (BPF LSM): deny and kill store `-EPERM` in the u64 stack slot
    /// `ret` for the program to return; kill also sends SIGKILL.
    Lsm { ret: i16 },
}

/// `list` (a callee-saved register) holds the index of the rule list to judge; r6 points at the
/// scratch value (path buffer and header, `H_OPS` holding the operation's `OP_*` bits).
/// `kind` is the event kind reported, `subject` whose identity is judged.
pub fn judge_and_act(
    a: &mut Asm,
    p: &Params,
    list: Reg,
    kind: u32,
    out: Label,
    enforce: Enforce,
    subject: Subject,
) -> Result<(), AsmError> {
    let decided = a.label();
    a.jmp_imm(Cond::Eq, list, 0, out);
    a.jmp_imm(Cond::Ge, list, p.rule_list_len as i32, out);
    a.mov(R7, list);
    match subject {
        Subject::Current => entry_words(a, p),
        Subject::Exec => exec_words(a),
    }
    computed_words(a, p, subject);

    a.comment("r8: which rules are switched off (audit mode, safety valve)");
    a.st(Size::W, FP, OFF_KEY, 0);
    map_lookup(a, abi::MAP_RULE_OFF, OFF_KEY);
    a.jmp_imm(Cond::Eq, R0, 0, out);
    a.mov(R8, R0);
    a.st(Size::DW, FP, BEST, Action::Allow as i32);
    a.st(Size::DW, FP, BEST_WOULD, Action::Allow as i32);
    a.st(Size::DW, FP, BEST_RULE, 0);
    a.comment("len = lists[list]");
    a.mov(R2, R7);
    list_load(a, p.rule_list_len, R1, out);
    a.stx(Size::DW, FP, LEN, R1);

    let top = a.label();
    let next = a.label();
    a.mov_imm(R9, 0);
    a.bind(top);
    a.jmp_imm(Cond::Ge, R9, p.max_list as i32, decided);
    a.ldx(Size::DW, R1, FP, LEN);
    a.jmp_reg(Cond::Ge, R9, R1, decided);
    a.mov(R2, R7);
    a.alu_reg(Alu::Add, R2, R9);
    a.alu_imm(Alu::Add, R2, 1);
    list_load(a, p.rule_list_len, R0, decided);
    a.comment("entries past the rules are executable identities, not rules");
    a.jmp_imm(Cond::Ge, R0, p.n_rules as i32, next);
    a.mov(R4, R0);
    a.alu_imm(Alu::Mul, R4, size_of::<RuleEntry>() as i32);
    a.ld_data(R3, abi::RODATA_RULES, 0);
    a.alu_reg(Alu::Add, R4, R3);
    a.comment("a rule covers only its operations");
    a.ldx(Size::W, R1, R4, offset_of!(RuleEntry, ops) as i16);
    a.ldx(Size::DW, R2, R6, H_OPS);
    a.alu_reg(Alu::And, R1, R2);
    a.jmp_imm(Cond::Eq, R1, 0, next);
    judge_rule(a, next);
    a.bind(next);
    a.alu_imm(Alu::Add, R9, 1);
    a.jmp(top);

    a.bind(decided);
    let emit = a.label();
    let unenforced = a.label();
    let refused = a.label();
    a.ldx(Size::DW, R1, FP, BEST);
    a.jmp_imm(Cond::Ne, R1, Action::Allow as i32, refused);
    a.comment("allowed: reported only while an agent records (`guard-run load --record`)");
    a.ldx(Size::W, R1, R8, offset_of!(RuleOff, record) as i16);
    a.jmp_imm(Cond::Eq, R1, 0, out);
    a.jmp(emit);
    a.bind(refused);
    count(a, abi::MAP_COUNTERS, Counter::Refused as u32, CKEY);
    a.comment("the deciding rule matched (its condition refused the operation, as a Falco rule");
    a.comment("matches); counted here, once, not per rule in the loop: a helper call there");
    a.comment("multiplies the verifier's work past its limit");
    a.ldx(Size::DW, R1, FP, BEST_RULE);
    a.alu_imm(Alu::Lsh, R1, 2);
    a.alu_imm(Alu::Or, R1, RuleCounter::Matched as i32);
    count_rule(a, R1);
    let alert_only = a.label();
    a.comment("the best refusal is a kill or deny the safety valve switched off");
    a.ldx(Size::DW, R1, FP, BEST_WOULD);
    a.ldx(Size::DW, R2, FP, BEST);
    a.jmp_reg(Cond::Ne, R1, R2, unenforced);
    a.jmp_imm(Cond::Lt, R2, Action::Deny as i32, alert_only);
    a.comment("audit mode: nothing is carried out");
    a.ldx(Size::W, R1, R8, offset_of!(RuleOff, audit) as i16);
    a.jmp_imm(Cond::Ne, R1, 0, unenforced);
    count_decision(a, enforce);
    match enforce {
        Enforce::Signal => {
            a.comment("kill (this backend cannot deny: guard-run refuses deny rules here unless told to kill instead)");
        }
        Enforce::Lsm { ret } => {
            a.comment("deny and kill: the operation fails with EPERM; only kill signals");
            a.st(Size::DW, FP, ret, -1);
            a.ldx(Size::DW, R1, FP, BEST);
            a.jmp_imm(Cond::Lt, R1, Action::Kill as i32, emit);
        }
    }
    a.mov_imm(R1, 9);
    a.call(Helper::SendSignal);
    a.jmp_imm(Cond::Eq, R0, 0, emit);
    a.ldx(Size::DW, R1, R6, H_FLAGS);
    a.alu_imm(Alu::Or, R1, event_flags::KILL_FAILED as i32);
    a.stx(Size::DW, R6, H_FLAGS, R1);
    count(a, abi::MAP_COUNTERS, Counter::KillFailed as u32, CKEY);
    a.jmp(emit);

    a.bind(alert_only);
    count_decision(a, enforce);
    a.jmp(emit);

    a.bind(unenforced);
    a.comment("not carried out: the rule's counters count an alert");
    a.ldx(Size::DW, R1, FP, BEST_RULE);
    a.alu_imm(Alu::Lsh, R1, 2);
    a.alu_imm(Alu::Or, R1, RuleCounter::Alerted as i32);
    count_rule(a, R1);
    let would_deny = a.label();
    a.ldx(Size::DW, R1, R6, H_FLAGS);
    a.alu_imm(Alu::Or, R1, event_flags::NOT_ENFORCED as i32);
    a.stx(Size::DW, R6, H_FLAGS, R1);
    a.ldx(Size::DW, R1, FP, BEST_WOULD);
    a.jmp_imm(Cond::Ne, R1, Action::Kill as i32, would_deny);
    count(a, abi::MAP_COUNTERS, Counter::WouldKill as u32, CKEY);
    a.jmp(emit);
    a.bind(would_deny);
    count(a, abi::MAP_COUNTERS, Counter::WouldDeny as u32, CKEY);

    a.bind(emit);
    emit_event(a, kind, out, subject);
    Ok(())
}

/// Adds one to the per-rule counter whose index (`rule * RULE_COUNTER_KINDS + kind`) is in
/// `key`. An index past the map (an object loaded without sizing it) finds no entry and counts
/// nothing. Uses r0-r2 and the `CKEY` slot.
fn count_rule(a: &mut Asm, key: Reg) {
    let skip = a.label();
    a.stx(Size::W, FP, CKEY, key);
    map_lookup(a, abi::MAP_RULE_COUNTS, CKEY);
    a.jmp_imm(Cond::Eq, R0, 0, skip);
    a.ldx(Size::DW, R1, R0, 0);
    a.alu_imm(Alu::Add, R1, 1);
    a.stx(Size::DW, R0, 0, R1);
    a.bind(skip);
}

/// Counts the refusal against the rule that decided it, by what it does: kill, deny (the
/// tracepoint backend carries a deny out by killing) or alert.
fn count_decision(a: &mut Asm, enforce: Enforce) {
    let kind_known = a.label();
    let deny = match enforce {
        Enforce::Signal => RuleCounter::Killed,
        Enforce::Lsm { .. } => RuleCounter::Denied,
    };
    a.ldx(Size::DW, R1, FP, BEST);
    a.mov_imm(R2, RuleCounter::Killed as i32);
    a.jmp_imm(Cond::Ge, R1, Action::Kill as i32, kind_known);
    a.mov_imm(R2, deny as i32);
    a.jmp_imm(Cond::Ge, R1, Action::Deny as i32, kind_known);
    a.mov_imm(R2, RuleCounter::Alerted as i32);
    a.bind(kind_known);
    a.ldx(Size::DW, R1, FP, BEST_RULE);
    a.alu_imm(Alu::Lsh, R1, 2);
    a.alu_reg(Alu::Or, R1, R2);
    count_rule(a, R1);
}

/// Fills the identity words on the stack from the current task's identity (see
/// [`store::lookup`]). A task guard does not know holds no identity (fail closed).
fn entry_words(a: &mut Asm, p: &Params) {
    let known = a.label();
    let entry_done = a.label();
    for w in 0..abi::N_WORDS {
        a.st(Size::DW, FP, word(w), 0);
    }
    if p.store == IdentityStore::Hash {
        a.call(Helper::GetCurrentPidTgid);
        a.stx(Size::W, FP, KEY, R0);
    }
    store::lookup(a, p, KEY, store::Task::Current);
    a.jmp_imm(Cond::Ne, R0, 0, known);
    a.ldx(Size::DW, R1, R6, H_FLAGS);
    a.alu_imm(Alu::Or, R1, event_flags::NO_TASK_INFO as i32);
    a.stx(Size::DW, R6, H_FLAGS, R1);
    a.jmp(entry_done);
    a.bind(known);
    copy_words(a, R0, 0);
    a.bind(entry_done);
}

/// Copies the identity words of the `TaskInfo` at `base + at` onto the stack, and its
/// `ENTERED` flag into the flags word. Uses r1.
fn copy_words(a: &mut Asm, base: Reg, at: i16) {
    for (w, off) in FROM_ENTRY {
        a.ldx(Size::DW, R1, base, at + off as i16);
        a.stx(Size::DW, FP, word(w), R1);
    }
    let not_entered = a.label();
    a.ldx(Size::DW, R1, base, at + offset_of!(TaskInfo, flags) as i16);
    a.alu_imm(Alu::And, R1, abi::task_flags::ENTERED as i32);
    a.jmp_imm(Cond::Eq, R1, 0, not_entered);
    a.st(
        Size::DW,
        FP,
        word(abi::WORD_FLAGS),
        abi::FLAG_ENTERED as i32,
    );
    a.bind(not_entered);
}

/// The identity words a task's entry holds, and where.
const FROM_ENTRY: [(usize, usize); 7] = [
    (abi::WORD_SELF, offset_of!(TaskInfo, self_ids)),
    (abi::WORD_ANC, offset_of!(TaskInfo, anc_ids)),
    (abi::WORD_PID1, offset_of!(TaskInfo, pid1_ids)),
    (abi::WORD_IMG_PID1, offset_of!(TaskInfo, img_pid1)),
    (abi::WORD_EXE, offset_of!(TaskInfo, exe_ids)),
    (abi::WORD_ANC_EXE, offset_of!(TaskInfo, anc_exe)),
    (abi::WORD_PID1_EXE, offset_of!(TaskInfo, pid1_exe)),
];

/// The same words from the exec record in the scratch value: the entry the task will have.
fn exec_words(a: &mut Asm) {
    for w in 0..abi::N_WORDS {
        a.st(Size::DW, FP, word(w), 0);
    }
    copy_words(a, R6, identity::info(0));
}

/// The identity words computed at the decision: scopes, process name, uid, terminal.
fn computed_words(a: &mut Asm, p: &Params, subject: Subject) {
    if p.n_scopes > 0 {
        a.comment("scope identities: the task's cgroup v2 id in the cgroup map");
        let none = a.label();
        a.call(Helper::GetCurrentCgroupId);
        a.stx(Size::DW, FP, CGROUP, R0);
        map_lookup(a, abi::MAP_CGROUPS, CGROUP);
        a.jmp_imm(Cond::Eq, R0, 0, none);
        a.ldx(Size::DW, R1, R0, 0);
        a.stx(Size::DW, FP, word(abi::WORD_SCOPES), R1);
        a.bind(none);
    }

    if p.n_names > 0 {
        for off in [0, 8, 16] {
            a.st(Size::DW, FP, COMM + off, 0);
        }
        match subject {
            Subject::Current => {
                a.comment("process name identities: the name DFA over comm, now (comm can change)");
                a.mov(R1, FP);
                a.alu_imm(Alu::Add, R1, i32::from(COMM));
                a.mov_imm(R2, 16);
                a.call(Helper::GetCurrentComm);
            }
            Subject::Exec => {
                a.comment("process name identities: the name DFA over the name the exec gives");
                for off in [0, 8] {
                    a.ldx(Size::DW, R1, R6, identity::NAME + off);
                    a.stx(Size::DW, FP, COMM + off, R1);
                }
            }
        }
        let top = a.label();
        let done = a.label();
        a.mov_imm(R8, 1);
        a.mov_imm(R9, 0);
        a.bind(top);
        a.jmp_imm(Cond::Ge, R9, 16, done);
        a.mov(R2, FP);
        a.alu_imm(Alu::Add, R2, i32::from(COMM));
        a.alu_reg(Alu::Add, R2, R9);
        a.ldx(Size::B, R3, R2, 0);
        a.jmp_imm(Cond::Eq, R3, 0, done);
        dfa_step(a, abi::RODATA_NAME_DFA, p.name_dfa, R8, R3);
        a.alu_imm(Alu::Add, R9, 1);
        a.jmp_imm(Cond::Ne, R8, 0, top);
        a.bind(done);
        dfa_info(a, abi::RODATA_NAME_DFA, p.name_dfa, R8, R1);
        a.stx(Size::DW, FP, word(abi::WORD_NAMES), R1);
    }

    if p.n_uids > 0 {
        a.comment("uid identities: the real uid against the uid table");
        a.call(Helper::GetCurrentUidGid);
        a.alu_imm(Alu::Lsh, R0, 32);
        a.alu_imm(Alu::Rsh, R0, 32);
        a.mov_imm(R4, 0);
        a.ld_data(R3, abi::RODATA_UIDS, 4);
        for i in 0..p.n_uids.min(abi::MAX_UIDS as u32) {
            let miss = a.label();
            a.ldx(Size::W, R1, R3, (4 * i) as i16);
            a.jmp_reg(Cond::Ne, R1, R0, miss);
            a.alu_imm(Alu::Or, R4, 1 << i);
            a.bind(miss);
        }
        a.stx(Size::DW, FP, word(abi::WORD_UIDS), R4);
    }

    if p.uses_tty {
        a.comment("a controlling terminal: current->signal->tty");
        let no_tty = a.label();
        a.call(Helper::GetCurrentTaskBtf);
        a.ldx_field(Size::DW, R1, R0, field("task_struct", &["signal"]));
        a.ldx_field(Size::DW, R1, R1, field("signal_struct", &["tty"]));
        a.jmp_imm(Cond::Eq, R1, 0, no_tty);
        a.ldx(Size::DW, R1, FP, word(abi::WORD_FLAGS));
        a.alu_imm(Alu::Or, R1, abi::FLAG_TTY as i32);
        a.stx(Size::DW, FP, word(abi::WORD_FLAGS), R1);
        a.bind(no_tty);
    }
}

/// r4 points at the rule's entry and r0 holds its id. Falls through when the rule refuses
/// (after recording it as the best refusal so far if it is the most severe), jumps to
/// `allowed` when one of its terms holds. r8 points at the rule-off value. Uses r1-r5.
fn judge_rule(a: &mut Asm, allowed: Label) {
    let refused = a.label();
    let n_terms = offset_of!(RuleEntry, n_terms) as i16;
    // A term holds when every word has its `must` bits and none of its `must_not` bits. The
    // mismatches of all words are or-ed together and tested once: a branch per word would
    // give the verifier two paths per word and term in every iteration of the rule loop (it
    // took Debian 6.1's verifier past its million instructions on the exec program).
    for t in 0..abi::MAX_TERMS {
        let fail = a.label();
        a.ldx(Size::W, R3, R4, n_terms);
        a.jmp_imm(Cond::Le, R3, t as i32, refused);
        let term = (offset_of!(RuleEntry, terms) + t * size_of::<Term>()) as i16;
        for w in 0..abi::N_WORDS {
            let must = term + (offset_of!(Term, must) + 8 * w) as i16;
            let must_not = term + (offset_of!(Term, must_not) + 8 * w) as i16;
            a.ldx(Size::DW, R1, FP, word(w));
            a.ldx(Size::DW, R2, R4, must);
            a.mov(R3, R1);
            a.alu_reg(Alu::And, R3, R2);
            a.jmp_reg(Cond::Ne, R3, R2, fail);
            a.ldx(Size::DW, R2, R4, must_not);
            a.alu_reg(Alu::And, R1, R2);
            a.jmp_imm(Cond::Ne, R1, 0, fail);
        }
        a.jmp(allowed);
        a.bind(fail);
    }
    a.bind(refused);
    a.comment("r1: the rule's action, lowered to alert if the safety valve switched the rule off");
    a.comment("(bit id of r8's rules); computed without a branch, which would double the");
    a.comment("verifier's paths through every iteration");
    a.ldx(Size::W, R1, R4, offset_of!(RuleEntry, action) as i16);
    a.mov(R2, R1);
    a.mov(R3, R0);
    a.alu_imm(Alu::Rsh, R3, 3);
    a.alu_imm(Alu::And, R3, (abi::RULE_OFF_BITS / 8 - 1) as i32);
    a.alu_reg(Alu::Add, R3, R8);
    a.ldx(Size::B, R3, R3, offset_of!(RuleOff, rules) as i16);
    a.mov(R5, R0);
    a.alu_imm(Alu::And, R5, 7);
    a.alu_reg(Alu::Rsh, R3, R5);
    a.alu_imm(Alu::And, R3, 1);
    a.mov(R5, R1);
    a.alu_imm(Alu::Sub, R5, Action::Alert as i32);
    a.alu_reg(Alu::Mul, R5, R3);
    a.alu_reg(Alu::Sub, R1, R5);
    a.ldx(Size::DW, R3, FP, BEST);
    a.jmp_reg(Cond::Le, R1, R3, allowed);
    a.stx(Size::DW, FP, BEST, R1);
    a.stx(Size::DW, FP, BEST_WOULD, R2);
    a.stx(Size::DW, FP, BEST_RULE, R0);
}

/// Reserves an event in the ring buffer, fills it and submits it. r6 = scratch.
fn emit_event(a: &mut Asm, kind: u32, out: Label, subject: Subject) {
    let o = |off: usize| off as i16;
    a.ld_map(R1, abi::MAP_EVENTS);
    a.mov_imm(R2, size_of::<Event>() as i32);
    a.mov_imm(R3, 0);
    a.call(Helper::RingbufReserve);
    let reserved = a.label();
    a.jmp_imm(Cond::Ne, R0, 0, reserved);
    count(a, abi::MAP_COUNTERS, Counter::EventsDropped as u32, CKEY);
    a.jmp(out);
    a.bind(reserved);
    a.mov(R7, R0);
    a.call(Helper::KtimeGetBootNs);
    a.stx(Size::DW, R7, o(offset_of!(Event, boot_ns)), R0);
    a.call(Helper::GetCurrentCgroupId);
    a.stx(Size::DW, R7, o(offset_of!(Event, cgroup_id)), R0);
    a.st(Size::W, R7, o(offset_of!(Event, kind)), kind as i32);
    a.ldx(Size::DW, R1, FP, BEST_WOULD);
    a.stx(Size::W, R7, o(offset_of!(Event, action)), R1);
    a.ldx(Size::DW, R1, FP, BEST_RULE);
    a.stx(Size::W, R7, o(offset_of!(Event, rule)), R1);
    a.comment("flags: the walk's and the verdict's, the operation, and the identity's entered bit");
    a.ldx(Size::DW, R1, R6, H_OPS);
    a.alu_imm(
        Alu::And,
        R1,
        (abi::OP_READ | abi::OP_WRITE | abi::OP_EXEC) as i32,
    );
    a.alu_imm(Alu::Lsh, R1, event_flags::OPS_SHIFT as i32);
    a.ldx(Size::DW, R2, R6, H_FLAGS);
    a.alu_reg(Alu::Or, R1, R2);
    a.ldx(Size::DW, R2, FP, word(abi::WORD_FLAGS));
    a.alu_imm(Alu::And, R2, abi::FLAG_ENTERED as i32);
    // FLAG_ENTERED is bit 1 and ENTERED bit 6.
    a.alu_imm(Alu::Lsh, R2, 5);
    a.alu_reg(Alu::Or, R1, R2);
    a.stx(Size::W, R7, o(offset_of!(Event, flags)), R1);
    a.ldx(Size::DW, R1, R6, H_FD);
    a.stx(Size::W, R7, o(offset_of!(Event, fd)), R1);
    a.call(Helper::GetCurrentPidTgid);
    a.stx(Size::W, R7, o(offset_of!(Event, tid)), R0);
    a.alu_imm(Alu::Rsh, R0, 32);
    a.stx(Size::W, R7, o(offset_of!(Event, pid)), R0);
    a.call(Helper::GetCurrentUidGid);
    a.stx(Size::W, R7, o(offset_of!(Event, uid)), R0);
    a.alu_imm(Alu::Rsh, R0, 32);
    a.stx(Size::W, R7, o(offset_of!(Event, gid)), R0);
    a.call(Helper::GetCurrentTaskBtf);
    a.mov(R8, R0);
    a.ldx_field(Size::DW, R1, R8, field("task_struct", &["real_parent"]));
    a.ldx_field(Size::W, R1, R1, field("task_struct", &["tgid"]));
    a.stx(Size::W, R7, o(offset_of!(Event, ppid)), R1);
    a.comment(
        "the pid namespace's depth (current->thread_pid->level): recorded activity carries it",
    );
    a.ldx_field(Size::DW, R1, R8, field("task_struct", &["thread_pid"]));
    a.ldx_field(Size::W, R1, R1, field("pid", &["level"]));
    a.alu_imm(Alu::And, R1, 0x3f);
    a.alu_imm(Alu::Lsh, R1, event_flags::NS_LEVEL_SHIFT as i32);
    a.ldx(Size::W, R2, R7, o(offset_of!(Event, flags)));
    a.alu_reg(Alu::Or, R1, R2);
    a.stx(Size::W, R7, o(offset_of!(Event, flags)), R1);
    a.comment("a controlling terminal (current->signal->tty): recorded activity carries it");
    let no_tty = a.label();
    a.ldx_field(Size::DW, R1, R8, field("task_struct", &["signal"]));
    a.ldx_field(Size::DW, R1, R1, field("signal_struct", &["tty"]));
    a.jmp_imm(Cond::Eq, R1, 0, no_tty);
    a.ldx(Size::W, R1, R7, o(offset_of!(Event, flags)));
    a.alu_imm(Alu::Or, R1, event_flags::TTY as i32);
    a.stx(Size::W, R7, o(offset_of!(Event, flags)), R1);
    a.bind(no_tty);
    a.comment("the parent's name (proc.pname): it may exit before user space could ask");
    a.ldx_field(Size::DW, R3, R8, field("task_struct", &["real_parent"]));
    a.add_field(R3, field("task_struct", &["comm"]));
    a.mov(R1, R7);
    a.alu_imm(Alu::Add, R1, offset_of!(Event, pcomm) as i32);
    a.mov_imm(R2, 16);
    a.call(Helper::ProbeReadKernel);
    match subject {
        Subject::Current => {
            a.mov(R1, R7);
            a.alu_imm(Alu::Add, R1, offset_of!(Event, comm) as i32);
            a.mov_imm(R2, 16);
            a.call(Helper::GetCurrentComm);
            current_cmdline(a);
        }
        Subject::Exec => exec_cmdline(a),
    }

    a.comment("the path, from the walk's buffer");
    let clamp_done = a.label();
    a.ldx(Size::DW, R1, R6, H_POS);
    a.mov_imm(R2, PATH_END);
    a.alu_reg(Alu::Sub, R2, R1);
    a.alu_imm(Alu::And, R2, BUF_MASK);
    a.jmp_imm(Cond::Le, R2, abi::PATH_BUF as i32, clamp_done);
    a.mov_imm(R2, abi::PATH_BUF as i32);
    a.bind(clamp_done);
    a.stx(Size::W, R7, o(offset_of!(Event, path_len)), R2);
    a.ldx(Size::DW, R3, R6, H_POS);
    a.alu_imm(Alu::And, R3, BUF_MASK);
    a.alu_reg(Alu::Add, R3, R6);
    a.alu_imm(Alu::Add, R3, HEADER);
    a.mov(R1, R7);
    a.alu_imm(Alu::Add, R1, offset_of!(Event, path) as i32);
    a.call(Helper::ProbeReadKernel);
    a.mov(R1, R7);
    a.mov_imm(R2, 0);
    a.call(Helper::RingbufSubmit);
}

/// The current task's command line into the event at r7 (r8: the task), as the process laid
/// it out (the process may be gone by the time user space reads the event).
fn current_cmdline(a: &mut Asm) {
    let o = |off: usize| off as i16;
    let fits = a.label();
    a.ldx_field(Size::DW, R1, R8, field("task_struct", &["mm"]));
    a.ldx_field(Size::DW, R9, R1, field("mm_struct", &["arg_start"]));
    a.ldx_field(Size::DW, R2, R1, field("mm_struct", &["arg_end"]));
    a.alu_reg(Alu::Sub, R2, R9);
    a.jmp_imm(Cond::Le, R2, abi::CMDLINE_MAX as i32, fits);
    a.ldx(Size::W, R1, R7, o(offset_of!(Event, flags)));
    a.alu_imm(Alu::Or, R1, event_flags::CMDLINE_TRUNCATED as i32);
    a.stx(Size::W, R7, o(offset_of!(Event, flags)), R1);
    a.mov_imm(R2, abi::CMDLINE_MAX as i32);
    a.bind(fits);
    a.stx(Size::W, R7, o(offset_of!(Event, cmdline_len)), R2);
    a.mov(R1, R7);
    a.alu_imm(Alu::Add, R1, offset_of!(Event, cmdline) as i32);
    a.mov(R3, R9);
    a.call(Helper::ProbeReadUser);
    let cmdline_ok = a.label();
    a.jmp_imm(Cond::Eq, R0, 0, cmdline_ok);
    a.st(Size::W, R7, o(offset_of!(Event, cmdline_len)), 0);
    a.bind(cmdline_ok);
}

/// The exec record's process name and command line into the event at r7: what the task is
/// about to run, as it will show once it runs.
fn exec_cmdline(a: &mut Asm) {
    let o = |off: usize| off as i16;
    for off in [0, 8] {
        a.ldx(Size::DW, R1, R6, identity::NAME + off);
        a.stx(Size::DW, R7, o(offset_of!(Event, comm)) + off, R1);
    }
    let fits = a.label();
    let whole = a.label();
    a.ldx(Size::DW, R1, R6, identity::FLAGS);
    a.jmp_imm(
        Cond::Set,
        R1,
        abi::task_flags::CMDLINE_TRUNCATED as i32,
        whole,
    );
    a.ldx(Size::DW, R2, R6, identity::CMDLINE_LEN);
    a.jmp_imm(Cond::Le, R2, abi::CMDLINE_MAX as i32, fits);
    a.bind(whole);
    a.ldx(Size::W, R1, R7, o(offset_of!(Event, flags)));
    a.alu_imm(Alu::Or, R1, event_flags::CMDLINE_TRUNCATED as i32);
    a.stx(Size::W, R7, o(offset_of!(Event, flags)), R1);
    a.mov_imm(R2, abi::CMDLINE_MAX as i32);
    a.bind(fits);
    a.stx(Size::W, R7, o(offset_of!(Event, cmdline_len)), R2);
    a.mov(R1, R7);
    a.alu_imm(Alu::Add, R1, offset_of!(Event, cmdline) as i32);
    a.mov_imm(R2, abi::CMDLINE_MAX as i32);
    a.mov(R3, R6);
    a.alu_imm(Alu::Add, R3, i32::from(identity::CMDLINE));
    a.call(Helper::ProbeReadKernel);
}

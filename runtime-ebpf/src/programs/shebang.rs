//! A `#!` script's command line, as the kernel will give it to the interpreter.
//!
//! When the exec check sees a script, the kernel (`fs/binfmt_script.c`) is about to replace
//! `argv[0]` with the interpreter's name, its optional argument and the name the previous
//! program was run as (`bprm->interp`: the name the exec was asked for, or an enclosing
//! script's interpreter). The interpreter's image then starts with that command line, and the
//! identity the tracking program gives it comes from it. The check must judge the script, and
//! then its interpreter, with that identity, so it parses the `#!` line exactly as the kernel
//! does, from the same bytes (`bprm->buf`, the file's first 256 bytes), and rebuilds the
//! command line in the exec record. The kernel's own argument count, checked at the
//! interpreter's check, and the identity comparison after the exec catch any difference.
//!
//! Every loop leaves its result in the scratch value and nothing in registers: the verifier
//! then reaches the code after a loop with one state, whatever iteration left it.

use super::Params;
use super::identity::{self, ARGC, CMDLINE, CMDLINE_LEN, FLAGS, XFLAGS};
use super::walk::HEADER;
use crate::abi::{self, exec_flags, task_flags};
use crate::asm::{Alu, Asm, Cond, FP, Helper, Label, R0, R1, R2, R3, R6, R7, R8, R9, Size};
use crate::ktypes::field;

/// The script's first bytes (`bprm->buf`), with a NUL after them.
const SB: i32 = identity::ARGS + identity::ARGS_ROOM as i32;
/// The new command line as it is built, with room for a string helper's worst-case write as
/// the verifier counts it (a line almost full, plus a whole line's size limit).
const NEW: i32 = SB + 264;
const VARS: i32 = NEW + 2 * abi::CMDLINE_MAX as i32 + 8;
/// Positions in the first bytes: the end of the `#!` line, the interpreter's name, the blank
/// after it, its argument; whether it has one; bytes of the new command line so far; bytes of
/// the arguments kept from the old one.
const P_END: i16 = VARS as i16;
const P_NAME: i16 = P_END + 8;
const P_SEP: i16 = P_END + 16;
const P_ARG: i16 = P_END + 24;
const P_HASARG: i16 = P_END + 32;
const P_OFF: i16 = P_END + 40;
const P_REST: i16 = P_END + 48;

/// Size of the exec check's scratch value: the walk's, the exec record, and the above.
pub const SCRATCH_SIZE: u32 = VARS as u32 + 56;

const MAX: i32 = abi::CMDLINE_MAX as i32;

/// If the file being checked is a `#!` script, rewrites the record's command line as the
/// kernel will for its interpreter, recomputes the identity from it and marks the record so
/// that the interpreter's check is expected. Falls through when done or when the file is no
/// script; jumps to `defer` when the kernel would refuse the line, or when the old command line
/// was not read whole. `bprm` is the stack slot holding the binprm.
pub fn rewrite(a: &mut Asm, p: &Params, bprm: i16, defer: Label) {
    let not_script = a.label();
    a.comment("a script? its first bytes, as the kernel read them for this check");
    a.ldx(Size::DW, R3, FP, bprm);
    a.add_field(R3, field("linux_binprm", &["buf"]));
    a.mov(R1, R6);
    a.alu_imm(Alu::Add, R1, SB);
    a.mov_imm(R2, 256);
    a.call(Helper::ProbeReadKernel);
    a.jmp_imm(Cond::Ne, R0, 0, defer);
    a.st(Size::B, R6, (SB + 256) as i16, 0);
    a.ldx(Size::H, R1, R6, SB as i16);
    a.jmp_imm(
        Cond::Ne,
        R1,
        i32::from(u16::from_le_bytes(*b"#!")),
        not_script,
    );
    a.ldx(Size::DW, R1, R6, FLAGS);
    a.jmp_imm(Cond::Set, R1, task_flags::CMDLINE_TRUNCATED as i32, defer);
    parse(a, defer);
    build(a, bprm, defer);
    identity::cmdline_identity(a, p);
    identity::set_flag(a, XFLAGS, exec_flags::SCRIPT);
    a.bind(not_script);
}

#[derive(Clone, Copy)]
enum Pos {
    At(i32),
    Var(i16),
}

#[derive(Clone, Copy)]
enum Want {
    /// A newline or a NUL (the kernel's `strnchr` stops at a NUL).
    LineEnd,
    /// Neither a space nor a tab.
    NotBlank,
    /// A space, a tab or a NUL.
    Terminator,
}

/// The first position in `[from, to]` (both inclusive, as in the kernel) of a byte that is
/// what `want` says, into the scratch slot `found`; jumps to `none` if there is none.
fn scan(a: &mut Asm, from: Pos, to: Pos, want: Want, found: i16, none: Label) {
    let top = a.label();
    let next = a.label();
    let hit = a.label();
    a.mov_imm(R9, 0);
    a.bind(top);
    a.jmp_imm(Cond::Ge, R9, 256, none);
    match from {
        Pos::At(c) => a.jmp_imm(Cond::Lt, R9, c, next),
        Pos::Var(s) => {
            a.ldx(Size::DW, R1, R6, s);
            a.jmp_reg(Cond::Lt, R9, R1, next);
        }
    }
    match to {
        Pos::At(c) => a.jmp_imm(Cond::Gt, R9, c, none),
        Pos::Var(s) => {
            a.ldx(Size::DW, R1, R6, s);
            a.jmp_reg(Cond::Gt, R9, R1, none);
        }
    }
    a.mov(R2, R6);
    a.alu_reg(Alu::Add, R2, R9);
    a.ldx(Size::B, R3, R2, SB as i16);
    match want {
        Want::LineEnd => {
            a.jmp_imm(Cond::Eq, R3, i32::from(b'\n'), hit);
            a.jmp_imm(Cond::Eq, R3, 0, hit);
        }
        Want::NotBlank => {
            a.jmp_imm(Cond::Eq, R3, i32::from(b' '), next);
            a.jmp_imm(Cond::Eq, R3, i32::from(b'\t'), next);
            a.jmp(hit);
        }
        Want::Terminator => {
            a.jmp_imm(Cond::Eq, R3, i32::from(b' '), hit);
            a.jmp_imm(Cond::Eq, R3, i32::from(b'\t'), hit);
            a.jmp_imm(Cond::Eq, R3, 0, hit);
        }
    }
    a.bind(next);
    a.alu_imm(Alu::Add, R9, 1);
    a.jmp(top);
    a.bind(hit);
    a.stx(Size::DW, R6, found, R9);
}

/// `r3 = first[slot]`, the position masked into the buffer. Uses r1, r2.
fn byte_at(a: &mut Asm, slot: i16) {
    a.ldx(Size::DW, R1, R6, slot);
    a.alu_imm(Alu::And, R1, 255);
    a.mov(R2, R6);
    a.alu_reg(Alu::Add, R2, R1);
    a.ldx(Size::B, R3, R2, SB as i16);
}

/// `first[slot] = 0`. Uses r1, r2.
fn terminate_at(a: &mut Asm, slot: i16) {
    a.ldx(Size::DW, R1, R6, slot);
    a.alu_imm(Alu::And, R1, 255);
    a.mov(R2, R6);
    a.alu_reg(Alu::Add, R2, R1);
    a.st(Size::B, R2, SB as i16, 0);
}

/// `load_script`'s parse: the line ends at the first newline (or, without one, at the end of
/// the buffer, provided the name ends before it), trailing blanks trimmed; the name is the
/// first non-blank run after `#!`; an argument, if any, is the rest of the line after the
/// blanks that follow the name. The NULs the kernel writes are written too, so each string
/// ends where the kernel's does.
fn parse(a: &mut Asm, defer: Label) {
    let no_newline = a.label();
    let have_end = a.label();
    let no_arg = a.label();
    scan(
        a,
        Pos::At(0),
        Pos::At(255),
        Want::LineEnd,
        P_END,
        no_newline,
    );
    byte_at(a, P_END);
    a.jmp_imm(Cond::Eq, R3, i32::from(b'\n'), have_end);
    a.bind(no_newline);
    a.comment("no newline: the name must end within the buffer, else the kernel refuses the line");
    scan(a, Pos::At(2), Pos::At(255), Want::NotBlank, P_NAME, defer);
    scan(
        a,
        Pos::Var(P_NAME),
        Pos::At(255),
        Want::Terminator,
        P_SEP,
        defer,
    );
    a.st(Size::DW, R6, P_END, 255);
    a.bind(have_end);
    trim_end(a, defer);
    scan(
        a,
        Pos::At(2),
        Pos::Var(P_END),
        Want::NotBlank,
        P_NAME,
        defer,
    );
    a.ldx(Size::DW, R1, R6, P_NAME);
    a.ldx(Size::DW, R2, R6, P_END);
    a.jmp_reg(Cond::Eq, R1, R2, defer);
    a.st(Size::DW, R6, P_HASARG, 0);
    scan(
        a,
        Pos::Var(P_NAME),
        Pos::Var(P_END),
        Want::Terminator,
        P_SEP,
        no_arg,
    );
    byte_at(a, P_SEP);
    a.jmp_imm(Cond::Eq, R3, 0, no_arg);
    scan(
        a,
        Pos::Var(P_SEP),
        Pos::Var(P_END),
        Want::NotBlank,
        P_ARG,
        no_arg,
    );
    a.st(Size::DW, R6, P_HASARG, 1);
    terminate_at(a, P_SEP);
    a.bind(no_arg);
    terminate_at(a, P_END);
}

/// Moves the line's end back over trailing blanks (`#!` stops it at 2 at the latest).
fn trim_end(a: &mut Asm, defer: Label) {
    let top = a.label();
    let next = a.label();
    let hit = a.label();
    a.mov_imm(R9, 0);
    a.bind(top);
    a.jmp_imm(Cond::Ge, R9, 256, defer);
    a.ldx(Size::DW, R1, R6, P_END);
    a.alu_imm(Alu::Sub, R1, 1);
    a.alu_reg(Alu::Sub, R1, R9);
    a.jmp_imm(Cond::Slt, R1, 1, defer);
    a.alu_imm(Alu::And, R1, 255);
    a.mov(R2, R6);
    a.alu_reg(Alu::Add, R2, R1);
    a.ldx(Size::B, R3, R2, SB as i16);
    a.jmp_imm(Cond::Eq, R3, i32::from(b' '), next);
    a.jmp_imm(Cond::Eq, R3, i32::from(b'\t'), next);
    a.jmp(hit);
    a.bind(next);
    a.alu_imm(Alu::Add, R9, 1);
    a.jmp(top);
    a.bind(hit);
    a.alu_imm(Alu::Add, R1, 1);
    a.stx(Size::DW, R6, P_END, R1);
}

/// The interpreter's command line: its name, its argument if any, the name the previous
/// program was run as, then the old arguments after the first. Longer than guard reads: the
/// first bytes are kept for the event and the identity is none (as after the exec).
fn build(a: &mut Asm, bprm: i16, defer: Label) {
    let too_long = a.label();
    let installed = a.label();
    let no_arg = a.label();
    a.st(Size::DW, R6, P_OFF, 0);
    a.comment("argv[0]: the interpreter's name");
    from_first(a, P_NAME);
    append(a, too_long, defer);
    a.ldx(Size::DW, R1, R6, P_HASARG);
    a.jmp_imm(Cond::Eq, R1, 0, no_arg);
    a.comment("its argument");
    from_first(a, P_ARG);
    append(a, too_long, defer);
    a.bind(no_arg);
    a.comment("the name the script was run as (bprm->interp, the kernel's choice)");
    a.ldx(Size::DW, R7, FP, bprm);
    a.ldx_field(Size::DW, R7, R7, field("linux_binprm", &["interp"]));
    append(a, too_long, defer);

    a.comment(
        "then the old arguments after the first: the first one's length, from a throwaway copy",
    );
    a.mov(R1, R6);
    a.alu_imm(Alu::Add, R1, HEADER);
    a.mov_imm(R2, MAX + 1);
    a.mov(R3, R6);
    a.alu_imm(Alu::Add, R3, i32::from(CMDLINE));
    a.call(Helper::ProbeReadKernelStr);
    a.jmp_imm(Cond::Slt, R0, 1, defer);
    a.mov(R8, R0);
    a.ldx(Size::DW, R2, R6, CMDLINE_LEN);
    a.alu_reg(Alu::Sub, R2, R8);
    a.jmp_imm(Cond::Gt, R2, MAX, defer);
    a.stx(Size::DW, R6, P_REST, R2);
    let fits = a.label();
    a.ldx(Size::DW, R9, R6, P_OFF);
    a.jmp_imm(Cond::Gt, R9, MAX, too_long);
    a.mov_imm(R1, MAX);
    a.alu_reg(Alu::Sub, R1, R9);
    a.jmp_reg(Cond::Le, R2, R1, fits);
    a.mov(R2, R1);
    a.bind(fits);
    a.mov(R1, R6);
    a.alu_reg(Alu::Add, R1, R9);
    a.alu_imm(Alu::Add, R1, NEW);
    a.mov(R3, R6);
    a.alu_reg(Alu::Add, R3, R8);
    a.alu_imm(Alu::Add, R3, i32::from(CMDLINE));
    a.call(Helper::ProbeReadKernel);
    a.jmp_imm(Cond::Ne, R0, 0, defer);
    a.ldx(Size::DW, R1, R6, P_REST);
    a.alu_reg(Alu::Add, R9, R1);
    a.jmp_imm(Cond::Gt, R9, MAX, too_long);
    a.stx(Size::DW, R6, P_OFF, R9);

    a.comment("install it");
    a.mov(R1, R6);
    a.alu_imm(Alu::Add, R1, i32::from(CMDLINE));
    a.mov(R2, R9);
    a.mov(R3, R6);
    a.alu_imm(Alu::Add, R3, NEW);
    a.call(Helper::ProbeReadKernel);
    a.jmp_imm(Cond::Ne, R0, 0, defer);
    a.ldx(Size::DW, R1, R6, P_OFF);
    a.stx(Size::DW, R6, CMDLINE_LEN, R1);
    a.jmp(installed);

    a.bind(too_long);
    a.mov(R1, R6);
    a.alu_imm(Alu::Add, R1, i32::from(CMDLINE));
    a.mov_imm(R2, MAX);
    a.mov(R3, R6);
    a.alu_imm(Alu::Add, R3, NEW);
    a.call(Helper::ProbeReadKernel);
    a.st(Size::DW, R6, CMDLINE_LEN, MAX);
    identity::set_flag(a, FLAGS, task_flags::CMDLINE_TRUNCATED);

    a.bind(installed);
    a.comment(
        "the kernel counts the arguments it adds: the name, the argument, the script's name,",
    );
    a.comment("less the replaced argv[0]");
    a.ldx(Size::DW, R1, R6, ARGC);
    a.ldx(Size::DW, R2, R6, P_HASARG);
    a.alu_reg(Alu::Add, R1, R2);
    a.alu_imm(Alu::Add, R1, 1);
    a.stx(Size::DW, R6, ARGC, R1);
}

/// `r7 = &first[slot]`. Uses r1.
fn from_first(a: &mut Asm, slot: i16) {
    a.ldx(Size::DW, R1, R6, slot);
    a.alu_imm(Alu::And, R1, 255);
    a.mov(R7, R6);
    a.alu_reg(Alu::Add, R7, R1);
    a.alu_imm(Alu::Add, R7, SB);
}

/// Appends the string at r7 (any kernel address) with its NUL to the new command line. Jumps
/// to `too_long` when it does not fit. Uses r0-r5, r9.
fn append(a: &mut Asm, too_long: Label, defer: Label) {
    a.ldx(Size::DW, R9, R6, P_OFF);
    a.jmp_imm(Cond::Gt, R9, MAX, too_long);
    a.mov(R1, R6);
    a.alu_reg(Alu::Add, R1, R9);
    a.alu_imm(Alu::Add, R1, NEW);
    a.mov_imm(R2, MAX + 1);
    a.alu_reg(Alu::Sub, R2, R9);
    a.mov(R3, R7);
    a.call(Helper::ProbeReadKernelStr);
    a.jmp_imm(Cond::Slt, R0, 1, defer);
    a.alu_reg(Alu::Add, R9, R0);
    a.stx(Size::DW, R6, P_OFF, R9);
    a.jmp_imm(Cond::Gt, R9, MAX, too_long);
}

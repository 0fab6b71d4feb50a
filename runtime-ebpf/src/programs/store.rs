//! The identity store ([`abi::MAP_TASKS`]) as the templates reach it: one sequence per access,
//! emitted for the store [`Params::store`] names, so both variants of a program come from the
//! same template code.
//!
//! * [`IdentityStore::Task`]: BPF task storage, reached with `bpf_task_storage_get` and a BTF
//!   task pointer (the verifier insists on one). A thread guard never saw fork (one that was
//!   running before the load: on Linux 6.1 a pidfd names a thread-group leader only, so
//!   `guard-run` can seed leaders only) is judged with its thread group leader's identity:
//!   the threads of a process share its image and command line.
//! * [`IdentityStore::Hash`]: the hash map keyed by the u32 thread id at a stack slot, which
//!   `guard-run` seeds for every thread.

use super::Params;
use super::common::map_lookup;
use crate::abi::{self, IdentityStore, TaskInfo};
use crate::asm::{Alu, Asm, Cond, FP, Helper, R0, R1, R2, R3, R4, Reg, Size};
use crate::ktypes::field;

/// `BPF_LOCAL_STORAGE_GET_F_CREATE`.
const F_CREATE: i32 = 1;

/// Where a sequence finds the task whose identity it reads or writes (task storage only; the
/// hash store uses the key slot instead).
#[derive(Clone, Copy, Debug)]
pub enum Task {
    /// `bpf_get_current_task_btf()`.
    Current,
    /// A BTF task pointer spilled to this stack slot.
    Slot(i16),
    /// A BTF task pointer in this callee-saved register (r6-r9).
    Reg(Reg),
}

/// `r2 = task`. Uses r0 for [`Task::Current`].
fn task_into_r2(a: &mut Asm, task: Task) {
    match task {
        Task::Current => {
            a.call(Helper::GetCurrentTaskBtf);
            a.mov(R2, R0);
        }
        Task::Slot(slot) => a.ldx(Size::DW, R2, FP, slot),
        Task::Reg(r) => a.mov(R2, r),
    }
}

/// `r0 = bpf_task_storage_get(GUARD_TASKS, r2, NULL, flags)`.
fn storage_get(a: &mut Asm, flags: i32) {
    a.ld_map(R1, abi::MAP_TASKS);
    a.mov_imm(R3, 0);
    a.mov_imm(R4, flags);
    a.call(Helper::TaskStorageGet);
}

/// `r0` = the task's [`TaskInfo`], or 0 when guard knows no identity for it. Hash store: the
/// entry under the u32 thread id at stack slot `key` (which the caller filled). Uses r0-r5.
pub fn lookup(a: &mut Asm, p: &Params, key: i16, task: Task) {
    match p.store {
        IdentityStore::Hash => map_lookup(a, abi::MAP_TASKS, key),
        IdentityStore::Task => {
            let found = a.label();
            task_into_r2(a, task);
            storage_get(a, 0);
            a.jmp_imm(Cond::Ne, R0, 0, found);
            a.comment("a thread running since before the load: its thread group leader's identity");
            task_into_r2(a, task);
            a.ldx_field(Size::DW, R2, R2, field("task_struct", &["group_leader"]));
            storage_get(a, 0);
            a.bind(found);
        }
    }
}

/// Stores the [`TaskInfo`] at `src + at` (`src`: the frame pointer or a callee-saved register)
/// as the task's identity. Hash store: under the u32 thread id at stack slot `key`. Task store:
/// the task's storage, created if it has none; if the kernel cannot allocate it, the task is
/// left without identity and judged fail-closed, as a full hash map would leave it. Uses r0-r5.
pub fn write(a: &mut Asm, p: &Params, key: i16, task: Task, src: Reg, at: i16) {
    match p.store {
        IdentityStore::Hash => {
            a.ld_map(R1, abi::MAP_TASKS);
            a.mov(R2, FP);
            a.alu_imm(Alu::Add, R2, i32::from(key));
            a.mov(R3, src);
            a.alu_imm(Alu::Add, R3, i32::from(at));
            a.mov_imm(R4, 0); // BPF_ANY
            a.call(Helper::MapUpdateElem);
        }
        IdentityStore::Task => {
            let none = a.label();
            task_into_r2(a, task);
            storage_get(a, F_CREATE);
            a.jmp_imm(Cond::Eq, R0, 0, none);
            for off in (0..core::mem::size_of::<TaskInfo>()).step_by(8) {
                a.ldx(Size::DW, R1, src, at + off as i16);
                a.stx(Size::DW, R0, off as i16, R1);
            }
            a.bind(none);
        }
    }
}

/// Forgets the exiting thread's identity: the hash store's entry. Task storage needs nothing:
/// the kernel frees it with the task. Uses r0-r5.
pub fn forget(a: &mut Asm, p: &Params, key: i16) {
    if p.store == IdentityStore::Hash {
        a.ld_map(R1, abi::MAP_TASKS);
        a.mov(R2, FP);
        a.alu_imm(Alu::Add, R2, i32::from(key));
        a.call(Helper::MapDeleteElem);
    }
}

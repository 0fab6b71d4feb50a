//! The DFA sequences of the template, executed over real tables by a tiny interpreter of the
//! instructions they use, against the reference runner: the template and
//! [`crate::dfa_table`] must agree for both layouts, every state and every byte.

use super::{dfa_info, dfa_step};
use crate::abi::DfaShape;
use crate::asm::{Asm, R3, R7, R8};
use crate::dfa_table::DfaTable;
use crate::elf::MapDef;
use crate::sim::vm::PSEUDO_MAP_VALUE;
use crate::sim::{Program, Sim, World};

/// Runs straight-line-or-forward-jumping code on the simulator ([`crate::sim`]), with
/// `table` as the frozen data section `t` (an `ld_imm64` of `&t[off]` becomes the
/// `BPF_PSEUDO_MAP_VALUE` load the kernel would see) and registers `regs`; fails on an
/// instruction it does not know or a load outside the table (which the verifier would refuse).
fn exec(code: &[u8], table: &[u8], regs: &mut [u64; 11]) {
    let mut sim = Sim::new(World::new()).expect("empty world");
    let def = MapDef {
        map_type: crate::sim::MAP_ARRAY,
        key_size: 4,
        value_size: table.len() as u32,
        max_entries: 1,
        map_flags: 0,
    };
    let map = sim.add_map("t", def, Some(table)).expect("table map");
    // The sequences fall off their end; an EXIT makes them a program.
    let mut code = code.to_vec();
    code.extend_from_slice(&[0x95, 0, 0, 0, 0, 0, 0, 0]);
    let mut prog = Program::from_code("seq", "test", &code).expect("whole instructions");
    for i in 0..prog.insns.len() {
        if prog.insns[i].code == 0x18 {
            prog.insns[i + 1].imm = prog.insns[i].imm;
            prog.insns[i].imm = map as i32;
            prog.insns[i].src = PSEUDO_MAP_VALUE;
        }
    }
    sim.run_regs(&prog, regs).unwrap_or_else(|e| panic!("{e}"));
}

fn shape(t: &DfaTable) -> DfaShape {
    DfaShape {
        n_states: t.n_states,
        n_classes: t.n_classes,
        state_bits: t.state_bits,
        class_bits: t.class_bits,
    }
}

/// The template's step and info for `state` (any value, not only a state of the table).
fn template(t: &DfaTable, state: u64, byte: u64) -> (u64, u64) {
    let mut a = Asm::new("step");
    dfa_step(&mut a, "t", shape(t), R7, R3);
    let step = a.finish().expect("assembles");
    let mut a = Asm::new("info");
    dfa_info(&mut a, "t", shape(t), R7, R8);
    let info = a.finish().expect("assembles");
    let mut regs = [0u64; 11];
    (regs[7], regs[3]) = (state, byte);
    exec(&step.code, t.bytes(), &mut regs);
    let next = regs[7];
    let mut regs = [0u64; 11];
    regs[7] = state;
    exec(&info.code, t.bytes(), &mut regs);
    (next, regs[8])
}

/// A random DFA of `n_states` over `n_classes`, state 0 dead, info `state * 3 + 1`.
fn random_parts(n_states: u32, n_classes: u32, seed: u64) -> ([u8; 256], Vec<u32>, Vec<u64>) {
    let mut x = seed;
    let mut next = |n: u32| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % u64::from(n)) as u32
    };
    let class_of = std::array::from_fn(|_| next(n_classes) as u8);
    let trans = (0..n_states * n_classes)
        .map(|i| if i < n_classes { 0 } else { next(n_states) })
        .collect();
    let info = (0..n_states)
        .map(|s| if s == 0 { 0 } else { u64::from(s) * 3 + 1 })
        .collect();
    (class_of, trans, info)
}

fn agree(t: &DfaTable, states: impl Iterator<Item = u64>) {
    for state in states {
        for byte in 0..=255u8 {
            let (next, info) = template(t, state, u64::from(byte));
            assert_eq!(
                next,
                u64::from(t.step(state as u32, byte)),
                "step({state}, {byte})"
            );
            assert_eq!(info, t.info(state as u32), "info({state})");
        }
    }
}

#[test]
fn narrow_template_runs_like_the_table() {
    let (class_of, trans, info) = random_parts(13, 5, 7);
    let t = DfaTable::from_parts(&class_of, 5, &trans, &info).expect("narrow");
    assert!(!t.layout().wide);
    // Past the last state the narrow layout masks, like the reference runner.
    agree(&t, 0..20);
}

/// 3,000 states of 3 classes: the info array starts past 32,767, beyond a load's i16 offset.
#[test]
fn narrow_template_reaches_a_far_info_array() {
    let (class_of, trans, info) = random_parts(3000, 3, 11);
    let t = DfaTable::from_parts(&class_of, 3, &trans, &info).expect("narrow");
    assert!(!t.layout().wide && t.layout().info_off > i16::MAX as usize);
    agree(&t, (0..40).chain(2980..3010));
}

#[test]
fn wide_template_runs_like_the_table() {
    for (n, k, seed) in [(13, 5, 3), (40, 4, 5), (9, 17, 9)] {
        let (class_of, trans, info) = random_parts(n, k, seed);
        let t = DfaTable::pack(&class_of, k, &trans, &info, 17).expect("wide");
        assert!(t.layout().wide);
        // Past the last state the wide layout is dead, info 0.
        agree(
            &t,
            (0..u64::from(n) + 3).chain([u64::from(u32::MAX), u64::MAX]),
        );
    }
}

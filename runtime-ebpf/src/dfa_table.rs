//! The DFA table that guard's BPF programs walk over file paths and command
//! lines, and its reference runner.
//!
//! INVARIANT: the byte layout below is an ABI shared with the BPF program
//! template (which indexes it with the same masks) and with the runtime (which
//! decodes it from an object file through [`DfaTable::from_bytes`]). Changing it
//! requires changing the template in lock step.
//!
//! With `S = 1 << state_bits` (`S >= n_states`, `state_bits >= 1`) and
//! `C = 1 << class_bits` (`C >= n_classes`, `class_bits >= 2`), all integers
//! little endian:
//!
//! | offset                  | size      | contents                                           |
//! |-------------------------|-----------|----------------------------------------------------|
//! | `0`                     | `256`     | `class[b]: u8` for each input byte `b`             |
//! | `256`                   | `2*S*C`   | `trans[(state << class_bits) \| class]: u16`        |
//! | `256 + 2*S*C`           | `8*S`     | `info[state]: u64`                                 |
//!
//! Rows (states) `>= n_states` and columns (classes) `>= n_classes` of `trans`
//! and `info` entries `>= n_states` are zero. State 0 is the dead state: its
//! transitions all lead to 0 and its info is 0. State 1 is the start state.
//! Every transition is `< n_states` and every `class[b] < n_classes`.
//!
//! Per input byte the BPF program does
//! `state = trans[((state & (S-1)) << class_bits) | (class[b] & (C-1))]`
//! and stops as soon as `state == 0`; [`DfaTable::step`] and
//! [`DfaTable::run`] do exactly that.

use thiserror::Error;

/// Size of the byte → class map at the start of the table.
pub const CLASS_MAP_LEN: usize = 256;
/// The dead state: absorbing, info 0.
pub const DEAD_STATE: u32 = 0;
/// The start state.
pub const START_STATE: u32 = 1;
/// Largest `state_bits` (transitions are u16).
pub const MAX_STATE_BITS: u32 = 16;
/// Largest `class_bits` (class ids are u8).
pub const MAX_CLASS_BITS: u32 = 8;
/// Smallest `class_bits`.
pub const MIN_CLASS_BITS: u32 = 2;
/// Smallest `state_bits`.
pub const MIN_STATE_BITS: u32 = 1;

/// Why a table was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DfaTableError {
    #[error("state_bits {0} outside {MIN_STATE_BITS}..={MAX_STATE_BITS}")]
    StateBits(u32),
    #[error("class_bits {0} outside {MIN_CLASS_BITS}..={MAX_CLASS_BITS}")]
    ClassBits(u32),
    #[error("{n_states} states do not fit in {state_bits} state bits (need at least 2 states)")]
    StateCount { n_states: u32, state_bits: u32 },
    #[error("{n_classes} classes do not fit in {class_bits} class bits (need at least 1 class)")]
    ClassCount { n_classes: u32, class_bits: u32 },
    #[error("table is {actual} bytes, layout requires {expected}")]
    Size { expected: usize, actual: usize },
    #[error("byte {byte} maps to class {class}, but there are {n_classes} classes")]
    ClassOutOfRange { byte: u8, class: u8, n_classes: u32 },
    #[error("transition ({state}, {class}) leads to {target}, but there are {n_states} states")]
    TransitionOutOfRange {
        state: u32,
        class: u32,
        target: u32,
        n_states: u32,
    },
    #[error("padding entry for state {state}, class {class} is not zero")]
    NonZeroPadding { state: u32, class: u32 },
    #[error("the dead state 0 must have only transitions to 0 and info 0")]
    DeadStateNotDead,
    #[error("transition array has {actual} entries, expected n_states * n_classes = {expected}")]
    TransitionCount { expected: usize, actual: usize },
}

/// A packed DFA table. See the module documentation for the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DfaTable {
    pub n_states: u32,
    pub n_classes: u32,
    pub state_bits: u32,
    pub class_bits: u32,
    bytes: Vec<u8>,
}

/// Smallest `bits >= min` with `1 << bits >= n`.
fn bits_for(n: u32, min: u32) -> u32 {
    let mut bits = min;
    while (1u64 << bits) < u64::from(n) {
        bits += 1;
    }
    bits
}

fn table_len(state_bits: u32, class_bits: u32) -> usize {
    let s = 1usize << state_bits;
    let c = 1usize << class_bits;
    CLASS_MAP_LEN + 2 * s * c + 8 * s
}

impl DfaTable {
    /// Packs a DFA given as `class_of[b]` (`< n_classes`), row-major
    /// transitions `trans[state * n_classes + class]` for `n_states =
    /// info.len()` states, and one `info` word per state. Chooses the
    /// smallest `state_bits`/`class_bits` allowed. State 0 must be dead.
    pub fn from_parts(
        class_of: &[u8; 256],
        n_classes: u32,
        trans: &[u16],
        info: &[u64],
    ) -> Result<Self, DfaTableError> {
        let n_states = u32::try_from(info.len()).map_err(|_| DfaTableError::StateCount {
            n_states: u32::MAX,
            state_bits: MAX_STATE_BITS,
        })?;
        let state_bits = bits_for(n_states, MIN_STATE_BITS);
        let class_bits = bits_for(n_classes, MIN_CLASS_BITS);
        check_dims(n_states, n_classes, state_bits, class_bits)?;
        let expected = info.len() * n_classes as usize;
        if trans.len() != expected {
            return Err(DfaTableError::TransitionCount {
                expected,
                actual: trans.len(),
            });
        }
        let mut bytes = vec![0u8; table_len(state_bits, class_bits)];
        bytes[..CLASS_MAP_LEN].copy_from_slice(class_of);
        let trans_off = CLASS_MAP_LEN;
        let info_off = trans_off + (2usize << (state_bits + class_bits));
        for (state, row) in trans.chunks(n_classes.max(1) as usize).enumerate() {
            for (class, &target) in row.iter().enumerate() {
                let at = trans_off + 2 * ((state << class_bits) | class);
                bytes[at..at + 2].copy_from_slice(&target.to_le_bytes());
            }
        }
        for (state, &word) in info.iter().enumerate() {
            let at = info_off + 8 * state;
            bytes[at..at + 8].copy_from_slice(&word.to_le_bytes());
        }
        Self::from_bytes(n_states, n_classes, state_bits, class_bits, bytes)
    }

    /// Decodes and validates a table (e.g. read from an object file): size,
    /// class map, every transition `< n_states`, zero padding, dead state 0.
    pub fn from_bytes(
        n_states: u32,
        n_classes: u32,
        state_bits: u32,
        class_bits: u32,
        bytes: Vec<u8>,
    ) -> Result<Self, DfaTableError> {
        check_dims(n_states, n_classes, state_bits, class_bits)?;
        let expected = table_len(state_bits, class_bits);
        if bytes.len() != expected {
            return Err(DfaTableError::Size {
                expected,
                actual: bytes.len(),
            });
        }
        let table = DfaTable {
            n_states,
            n_classes,
            state_bits,
            class_bits,
            bytes,
        };
        for (byte, &class) in table.bytes[..CLASS_MAP_LEN].iter().enumerate() {
            if u32::from(class) >= n_classes {
                return Err(DfaTableError::ClassOutOfRange {
                    byte: byte as u8,
                    class,
                    n_classes,
                });
            }
        }
        for state in 0..(1u32 << state_bits) {
            for class in 0..(1u32 << class_bits) {
                let target = u32::from(table.trans_at(state, class));
                if state >= n_states || class >= n_classes {
                    if target != 0 {
                        return Err(DfaTableError::NonZeroPadding { state, class });
                    }
                } else if target >= n_states {
                    return Err(DfaTableError::TransitionOutOfRange {
                        state,
                        class,
                        target,
                        n_states,
                    });
                } else if state == DEAD_STATE && target != DEAD_STATE {
                    return Err(DfaTableError::DeadStateNotDead);
                }
            }
            if state >= n_states && table.info(state) != 0 {
                return Err(DfaTableError::NonZeroPadding { state, class: 0 });
            }
        }
        if table.info(DEAD_STATE) != 0 {
            return Err(DfaTableError::DeadStateNotDead);
        }
        Ok(table)
    }

    /// The whole table, as laid out in the module documentation.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `(class_off, trans_off, info_off)`: byte offsets of the three arrays.
    pub fn offsets(&self) -> (usize, usize, usize) {
        let trans_off = CLASS_MAP_LEN;
        (
            0,
            trans_off,
            trans_off + (2usize << (self.state_bits + self.class_bits)),
        )
    }

    /// The class of input byte `byte`, masked as the BPF program masks it.
    pub fn class_of(&self, byte: u8) -> u32 {
        let mask = (1u32 << self.class_bits) - 1;
        u32::from(self.bytes.get(usize::from(byte)).copied().unwrap_or(0)) & mask
    }

    fn trans_at(&self, state: u32, class: u32) -> u16 {
        let (_, trans_off, _) = self.offsets();
        let state = state & ((1u32 << self.state_bits) - 1);
        let class = class & ((1u32 << self.class_bits) - 1);
        let at = trans_off + 2 * (((state << self.class_bits) | class) as usize);
        match self.bytes.get(at..at + 2) {
            Some(b) => u16::from_le_bytes([b[0], b[1]]),
            None => 0,
        }
    }

    /// One step, exactly as the BPF program computes it.
    pub fn step(&self, state: u32, byte: u8) -> u32 {
        u32::from(self.trans_at(state, self.class_of(byte)))
    }

    /// Runs from `start` over `input`, stopping early in the dead state.
    pub fn run(&self, start: u32, input: &[u8]) -> u32 {
        let mut state = start;
        for &byte in input {
            if state == DEAD_STATE {
                break;
            }
            state = self.step(state, byte);
        }
        state
    }

    /// The info word of `state` (masked to the table like the BPF program).
    pub fn info(&self, state: u32) -> u64 {
        let (_, _, info_off) = self.offsets();
        let state = (state & ((1u32 << self.state_bits) - 1)) as usize;
        let at = info_off + 8 * state;
        match self.bytes.get(at..at + 8) {
            Some(b) => {
                let mut word = [0u8; 8];
                word.copy_from_slice(b);
                u64::from_le_bytes(word)
            }
            None => 0,
        }
    }
}

fn check_dims(
    n_states: u32,
    n_classes: u32,
    state_bits: u32,
    class_bits: u32,
) -> Result<(), DfaTableError> {
    if !(MIN_STATE_BITS..=MAX_STATE_BITS).contains(&state_bits) {
        return Err(DfaTableError::StateBits(state_bits));
    }
    if !(MIN_CLASS_BITS..=MAX_CLASS_BITS).contains(&class_bits) {
        return Err(DfaTableError::ClassBits(class_bits));
    }
    if n_states < 2 || u64::from(n_states) > (1u64 << state_bits) {
        return Err(DfaTableError::StateCount {
            n_states,
            state_bits,
        });
    }
    if n_classes < 1 || u64::from(n_classes) > (1u64 << class_bits) {
        return Err(DfaTableError::ClassCount {
            n_classes,
            class_bits,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `ab*` over {a, b}; everything else is class 2.
    /// States: 0 dead, 1 start, 2 after `a` (accepting, info 7).
    fn ab_star() -> DfaTable {
        let mut class_of = [2u8; 256];
        class_of[usize::from(b'a')] = 0;
        class_of[usize::from(b'b')] = 1;
        let trans = [0, 0, 0, 2, 0, 0, 0, 2, 0];
        DfaTable::from_parts(&class_of, 3, &trans, &[0, 0, 7]).expect("valid table")
    }

    #[test]
    fn layout_and_offsets() {
        let t = ab_star();
        assert_eq!(
            (t.n_states, t.n_classes, t.state_bits, t.class_bits),
            (3, 3, 2, 2)
        );
        // S = 4, C = 4: 256 + 2*16 + 8*4
        assert_eq!(t.bytes().len(), 256 + 32 + 32);
        assert_eq!(t.offsets(), (0, 256, 288));
        assert_eq!(t.bytes()[usize::from(b'b')], 1);
        // trans[(1 << 2) | 0] = 2, little endian
        assert_eq!(&t.bytes()[256 + 2 * 4..256 + 2 * 4 + 2], &[2, 0]);
        assert_eq!(&t.bytes()[288 + 16..288 + 24], &7u64.to_le_bytes());
    }

    #[test]
    fn run_step_info() {
        let t = ab_star();
        assert_eq!(t.step(START_STATE, b'a'), 2);
        assert_eq!(t.step(START_STATE, b'b'), 0);
        assert_eq!(t.run(START_STATE, b"abbb"), 2);
        assert_eq!(t.info(t.run(START_STATE, b"abbb")), 7);
        assert_eq!(t.run(START_STATE, b"abba"), 0);
        assert_eq!(t.run(START_STATE, b""), 1);
        assert_eq!(t.run(START_STATE, b"ba"), 0);
        assert_eq!(t.info(0), 0);
        assert_eq!(t.info(1), 0);
    }

    #[test]
    fn round_trip() {
        let t = ab_star();
        let back = DfaTable::from_bytes(3, 3, 2, 2, t.bytes().to_vec()).expect("round trip");
        assert_eq!(back, t);
    }

    #[test]
    fn rejects_bad_tables() {
        let t = ab_star();
        let (_, trans_off, info_off) = t.offsets();
        let good = t.bytes().to_vec();
        let mut short = good.clone();
        short.pop();
        assert!(matches!(
            DfaTable::from_bytes(3, 3, 2, 2, short),
            Err(DfaTableError::Size { .. })
        ));
        assert!(matches!(
            DfaTable::from_bytes(3, 3, 2, 2, Vec::new()),
            Err(DfaTableError::Size { .. })
        ));
        // Transition (2, 1) -> 3 with only 3 states.
        let mut out = good.clone();
        out[trans_off + 2 * ((2 << 2) | 1)] = 3;
        assert!(matches!(
            DfaTable::from_bytes(3, 3, 2, 2, out),
            Err(DfaTableError::TransitionOutOfRange {
                state: 2,
                class: 1,
                target: 3,
                ..
            })
        ));
        // High byte of a transition.
        let mut out = good.clone();
        out[trans_off + 2 * (1 << 2) + 1] = 1;
        assert!(matches!(
            DfaTable::from_bytes(3, 3, 2, 2, out),
            Err(DfaTableError::TransitionOutOfRange { target: 258, .. })
        ));
        let mut class = good.clone();
        class[9] = 3;
        assert!(matches!(
            DfaTable::from_bytes(3, 3, 2, 2, class),
            Err(DfaTableError::ClassOutOfRange {
                byte: 9,
                class: 3,
                ..
            })
        ));
        let mut pad = good.clone();
        pad[trans_off + 2 * ((1 << 2) | 3)] = 1;
        assert!(matches!(
            DfaTable::from_bytes(3, 3, 2, 2, pad),
            Err(DfaTableError::NonZeroPadding { state: 1, class: 3 })
        ));
        let mut dead = good.clone();
        dead[trans_off] = 1;
        assert_eq!(
            DfaTable::from_bytes(3, 3, 2, 2, dead),
            Err(DfaTableError::DeadStateNotDead)
        );
        let mut dead_info = good.clone();
        dead_info[info_off] = 1;
        assert_eq!(
            DfaTable::from_bytes(3, 3, 2, 2, dead_info),
            Err(DfaTableError::DeadStateNotDead)
        );
        assert_eq!(
            DfaTable::from_bytes(3, 3, 0, 2, good.clone()),
            Err(DfaTableError::StateBits(0))
        );
        assert_eq!(
            DfaTable::from_bytes(3, 3, 2, 1, good.clone()),
            Err(DfaTableError::ClassBits(1))
        );
        assert!(matches!(
            DfaTable::from_bytes(5, 3, 2, 2, good.clone()),
            Err(DfaTableError::StateCount { .. })
        ));
        assert!(matches!(
            DfaTable::from_bytes(3, 5, 2, 2, good),
            Err(DfaTableError::ClassCount { .. })
        ));
    }

    #[test]
    fn from_parts_checks_shape() {
        let class_of = [0u8; 256];
        assert!(matches!(
            DfaTable::from_parts(&class_of, 1, &[0, 1], &[0, 0, 0]),
            Err(DfaTableError::TransitionCount {
                expected: 3,
                actual: 2
            })
        ));
        assert!(matches!(
            DfaTable::from_parts(&class_of, 1, &[0], &[0]),
            Err(DfaTableError::StateCount { .. })
        ));
        let big = vec![0u16; 65537];
        assert!(DfaTable::from_parts(&class_of, 1, &big, &vec![0; 65537]).is_err());
    }
}

//! The DFA table that guard's BPF programs walk over file paths and command
//! lines, and its reference runner.
//!
//! INVARIANT: the byte layout below is an ABI shared with the BPF program
//! template (which indexes it the same way, see [`Layout`]) and with the
//! runtime (which decodes it from an object file through
//! [`DfaTable::from_bytes`]). Changing it requires changing the template in
//! lock step.
//!
//! All integers are little endian; `C = 1 << class_bits` (`C >= n_classes`,
//! `class_bits >= 2`). `state_bits` (`1 << state_bits >= n_states`) picks one
//! of two layouts.
//!
//! **Narrow**, `state_bits <= 16` (tables of up to 65,536 states), with
//! `S = 1 << state_bits`:
//!
//! | offset                  | size      | contents                                           |
//! |-------------------------|-----------|----------------------------------------------------|
//! | `0`                     | `256`     | `class[b]: u8` for each input byte `b`             |
//! | `256`                   | `2*S*C`   | `trans[(state << class_bits) \| class]: u16`        |
//! | `256 + 2*S*C`           | `8*S`     | `info[state]: u64`                                 |
//!
//! Rows (states) `>= n_states` and columns (classes) `>= n_classes` of `trans`
//! and `info` entries `>= n_states` are zero. Per input byte the BPF program
//! does `state = trans[((state & (S-1)) << class_bits) | (class[b] & (C-1))]`:
//! the masks alone prove every access in bounds to the verifier.
//!
//! **Wide**, `state_bits > 16`, with `N = n_states`, `K = n_classes` and
//! `T = N*K + (C - K)`:
//!
//! | offset                  | size      | contents                                           |
//! |-------------------------|-----------|----------------------------------------------------|
//! | `0`                     | `256`     | `class[b]: u8` for each input byte `b`             |
//! | `256`                   | `4*T`     | `trans[state * K + class]: u32`, then `C - K` zeros |
//! | `info_off`              | `8*N`     | `info[state]: u64`                                 |
//!
//! where `info_off` is `256 + 4*T` rounded up to a multiple of 8 (the gap is
//! zero). Per input byte the BPF program does `state = state < N ?
//! trans[state * K + (class[b] & (C-1))] : 0`, and reads `info[state]` only
//! for `state < N`. Why not the narrow layout with u32 entries: a 10,000-rule
//! policy has about 90,000 states over 20 classes, which padded to 2^17 rows
//! of 32 columns is 17.8 MB; unpadded it is 7.9 MB. A compare bounds the state
//! for the verifier instead of a mask, and the `C - K` zeros after the last row
//! keep the masked class of the last state in bounds.
//!
//! In both layouts state 0 is the dead state: its transitions all lead to 0
//! and its info is 0. State 1 is the start state. Every transition is
//! `< n_states` and every `class[b] < n_classes`. [`DfaTable::step`] and
//! [`DfaTable::run`] do exactly what the BPF program does, stopping as soon as
//! `state == 0`.

use thiserror::Error;

/// Size of the byte → class map at the start of the table.
pub const CLASS_MAP_LEN: usize = 256;
/// Byte offset of the transition array.
pub const TRANS_OFF: usize = CLASS_MAP_LEN;
/// The dead state: absorbing, info 0.
pub const DEAD_STATE: u32 = 0;
/// The start state.
pub const START_STATE: u32 = 1;
/// Largest `state_bits` (4,194,304 states).
pub const MAX_STATE_BITS: u32 = 22;
/// Largest `state_bits` of the narrow layout (transitions are u16).
pub const MAX_NARROW_STATE_BITS: u32 = 16;
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
    #[error("byte {offset}, between the transitions and the info words, is not zero")]
    NonZeroGap { offset: usize },
    #[error("the dead state 0 must have only transitions to 0 and info 0")]
    DeadStateNotDead,
    #[error("transition array has {actual} entries, expected n_states * n_classes = {expected}")]
    TransitionCount { expected: usize, actual: usize },
}

/// Where the arrays of a table lie, as the BPF template and the reference
/// runner both index them. Only meaningful for dimensions that passed
/// validation (`n_classes <= 1 << class_bits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// `state_bits > 16`: u32 transitions, unpadded rows bounded by a compare.
    pub wide: bool,
    /// Bytes per transition: 2 (narrow) or 4 (wide).
    pub entry: usize,
    /// Transitions from the start of one row to the next: `C` (narrow) or
    /// `n_classes` (wide).
    pub row_stride: usize,
    /// Rows of `trans` and entries of `info`: `S` (narrow) or `n_states` (wide).
    pub rows: usize,
    /// Entries of `trans`, padding included.
    pub entries: usize,
    /// Byte offset of `info`.
    pub info_off: usize,
    /// Size of the whole table.
    pub len: usize,
}

impl Layout {
    pub fn new(n_states: u32, n_classes: u32, state_bits: u32, class_bits: u32) -> Layout {
        let c = 1usize << class_bits;
        if state_bits <= MAX_NARROW_STATE_BITS {
            let s = 1usize << state_bits;
            let info_off = TRANS_OFF + 2 * s * c;
            return Layout {
                wide: false,
                entry: 2,
                row_stride: c,
                rows: s,
                entries: s * c,
                info_off,
                len: info_off + 8 * s,
            };
        }
        let (n, k) = (n_states as usize, n_classes as usize);
        let entries = n * k + c.saturating_sub(k);
        let info_off = (TRANS_OFF + 4 * entries).next_multiple_of(8);
        Layout {
            wide: true,
            entry: 4,
            row_stride: k,
            rows: n,
            entries,
            info_off,
            len: info_off + 8 * n,
        }
    }

    /// The `(state, class)` of transition entry `index`, or `None` for the
    /// zeros after the last row of a wide table.
    fn cell(&self, index: usize) -> Option<(u32, u32)> {
        if self.wide && index >= self.rows * self.row_stride {
            return None;
        }
        Some((
            (index / self.row_stride) as u32,
            (index % self.row_stride) as u32,
        ))
    }
}

/// A packed DFA table. See the module documentation for the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DfaTable {
    pub n_states: u32,
    pub n_classes: u32,
    pub state_bits: u32,
    pub class_bits: u32,
    layout: Layout,
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

impl DfaTable {
    /// Packs a DFA given as `class_of[b]` (`< n_classes`), row-major
    /// transitions `trans[state * n_classes + class]` for `n_states =
    /// info.len()` states, and one `info` word per state. Chooses the
    /// smallest `state_bits`/`class_bits` allowed, so the narrow layout
    /// whenever the states fit in it. State 0 must be dead.
    pub fn from_parts(
        class_of: &[u8; 256],
        n_classes: u32,
        trans: &[u32],
        info: &[u64],
    ) -> Result<Self, DfaTableError> {
        let n_states = u32::try_from(info.len()).unwrap_or(u32::MAX);
        Self::pack(
            class_of,
            n_classes,
            trans,
            info,
            bits_for(n_states, MIN_STATE_BITS),
        )
    }

    /// [`DfaTable::from_parts`] with the given `state_bits` (at least the
    /// smallest that fits): lets tests pack a small DFA in the wide layout.
    pub(crate) fn pack(
        class_of: &[u8; 256],
        n_classes: u32,
        trans: &[u32],
        info: &[u64],
        state_bits: u32,
    ) -> Result<Self, DfaTableError> {
        let n_states = u32::try_from(info.len()).map_err(|_| DfaTableError::StateCount {
            n_states: u32::MAX,
            state_bits: MAX_STATE_BITS,
        })?;
        let class_bits = bits_for(n_classes, MIN_CLASS_BITS);
        check_dims(n_states, n_classes, state_bits, class_bits)?;
        let expected = info.len() * n_classes as usize;
        if trans.len() != expected {
            return Err(DfaTableError::TransitionCount {
                expected,
                actual: trans.len(),
            });
        }
        let layout = Layout::new(n_states, n_classes, state_bits, class_bits);
        let mut bytes = vec![0u8; layout.len];
        bytes[..CLASS_MAP_LEN].copy_from_slice(class_of);
        let k = n_classes.max(1) as usize;
        for (state, row) in trans.chunks(k).enumerate() {
            for (class, &target) in row.iter().enumerate() {
                // Checked here as well as in `from_bytes`: a narrow entry would
                // truncate the target and hide it.
                if target >= n_states {
                    return Err(DfaTableError::TransitionOutOfRange {
                        state: state as u32,
                        class: class as u32,
                        target,
                        n_states,
                    });
                }
                let at = TRANS_OFF + layout.entry * (state * layout.row_stride + class);
                bytes[at..at + layout.entry].copy_from_slice(&target.to_le_bytes()[..layout.entry]);
            }
        }
        for (state, &word) in info.iter().enumerate() {
            let at = layout.info_off + 8 * state;
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
        let layout = Layout::new(n_states, n_classes, state_bits, class_bits);
        if bytes.len() != layout.len {
            return Err(DfaTableError::Size {
                expected: layout.len,
                actual: bytes.len(),
            });
        }
        let table = DfaTable {
            n_states,
            n_classes,
            state_bits,
            class_bits,
            layout,
            bytes,
        };
        table.validate()?;
        Ok(table)
    }

    fn validate(&self) -> Result<(), DfaTableError> {
        let (n_states, n_classes) = (self.n_states, self.n_classes);
        for (byte, &class) in self.bytes[..CLASS_MAP_LEN].iter().enumerate() {
            if u32::from(class) >= n_classes {
                return Err(DfaTableError::ClassOutOfRange {
                    byte: byte as u8,
                    class,
                    n_classes,
                });
            }
        }
        let row_end = self.layout.rows * self.layout.row_stride;
        for index in 0..self.layout.entries {
            let target = self.entry(index);
            let Some((state, class)) = self.layout.cell(index) else {
                if target != 0 {
                    return Err(DfaTableError::NonZeroPadding {
                        state: n_states,
                        class: (index - row_end) as u32,
                    });
                }
                continue;
            };
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
        let gap = TRANS_OFF + self.layout.entry * self.layout.entries..self.layout.info_off;
        if let Some(offset) = gap.clone().find(|&at| self.bytes[at] != 0) {
            return Err(DfaTableError::NonZeroGap { offset });
        }
        for state in n_states..self.layout.rows as u32 {
            if self.info_at(state as usize) != 0 {
                return Err(DfaTableError::NonZeroPadding { state, class: 0 });
            }
        }
        if self.info_at(DEAD_STATE as usize) != 0 {
            return Err(DfaTableError::DeadStateNotDead);
        }
        Ok(())
    }

    /// The whole table, as laid out in the module documentation.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Where the arrays lie.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// `(class_off, trans_off, info_off)`: byte offsets of the three arrays.
    pub fn offsets(&self) -> (usize, usize, usize) {
        (0, TRANS_OFF, self.layout.info_off)
    }

    /// The class of input byte `byte`, masked as the BPF program masks it.
    pub fn class_of(&self, byte: u8) -> u32 {
        let mask = (1u32 << self.class_bits) - 1;
        u32::from(self.bytes.get(usize::from(byte)).copied().unwrap_or(0)) & mask
    }

    /// Transition entry `index` (0 past the end).
    fn entry(&self, index: usize) -> u32 {
        let at = TRANS_OFF + self.layout.entry * index;
        match self.bytes.get(at..at + self.layout.entry) {
            Some(&[a, b]) => u32::from(u16::from_le_bytes([a, b])),
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
            _ => 0,
        }
    }

    fn trans_at(&self, state: u32, class: u32) -> u32 {
        let class = class & ((1u32 << self.class_bits) - 1);
        if self.layout.wide {
            if state >= self.n_states {
                return DEAD_STATE;
            }
            return self.entry(state as usize * self.layout.row_stride + class as usize);
        }
        let state = state & ((1u32 << self.state_bits) - 1);
        self.entry(((state << self.class_bits) | class) as usize)
    }

    /// One step, exactly as the BPF program computes it.
    pub fn step(&self, state: u32, byte: u8) -> u32 {
        self.trans_at(state, self.class_of(byte))
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

    /// The info word of `state`, bounded to the table like the BPF program
    /// bounds it (masked in the narrow layout, 0 past the last state in the
    /// wide one).
    pub fn info(&self, state: u32) -> u64 {
        if self.layout.wide {
            if state >= self.n_states {
                return 0;
            }
            return self.info_at(state as usize);
        }
        self.info_at((state & ((1u32 << self.state_bits) - 1)) as usize)
    }

    fn info_at(&self, state: usize) -> u64 {
        let at = self.layout.info_off + 8 * state;
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
mod tests;

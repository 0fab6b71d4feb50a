//! Glob patterns → minimised DFA → [`DfaTable`] for the BPF programs.
//!
//! Pipeline: [`parse_glob`] each pattern → one epsilon-NFA (a trie over the
//! patterns' items, read last to first when reversed; edges over byte sets)
//! → byte classes of the
//! NFA's edge sets → subset construction over those classes → Hopcroft
//! minimisation (states start partitioned by accept tag set) → renumbering
//! (dead = 0, start = 1, the rest in breadth-first order over classes); when
//! the subset construction blows up, the same for each half of the patterns
//! and a product of the two (see `compose.rs`), which gives the same DFA →
//! merging byte classes whose columns are identical → per-state "possible"
//! tag sets (tags accepted by some state reachable from it, itself included).
//! The output depends only on the input: same patterns, same table bytes.
//!
//! Glob syntax: see [`glob`]. Tags must be `< 65536`; the minimised DFA may
//! have at most [`MAX_STATES`] states, each unminimised one (the subset
//! construction's, or each piece and product of `compose.rs`) at most
//! 2^18 states (and 2^22 class transitions) — beyond either, [`build`]
//! returns an error instead of allocating without bound. The limits keep the
//! worst case to a fraction of a second (a fuzzed single pattern,
//! `/m?{47}=?{39}k8s_sa_token*`, took 5.6 s and made a 51 MB object under
//! 2^20) while 10,000 distinct rules stay far below them. The transition
//! limit also bounds the packed table: at most 2^22 u32 transitions, 16 MiB.

mod compose;
pub mod glob;
mod minimize;
mod nfa;
mod subset;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use guard_ebpf::dfa_table::DfaTable;
use thiserror::Error;

pub use glob::{GlobError, GlobErrorKind, GlobItem, Mode, parse_glob};

/// Most states a packed table can hold. Up to 65,536 the table has u16
/// transitions, above that u32 ones (see [`guard_ebpf::dfa_table`]).
pub const MAX_STATES: usize = 1 << guard_ebpf::dfa_table::MAX_STATE_BITS;
/// Tags must be below this.
pub const MAX_TAG: u32 = 1 << 16;
/// The dead state.
pub const DEAD: u32 = 0;
/// The start state.
pub const START: u32 = 1;

/// One pattern to compile: `text` is a glob in `mode`; reaching the end of
/// an input it matches puts `tag` in the accept set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatternSpec<'a> {
    pub text: &'a str,
    pub tag: u32,
    pub mode: Mode,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DfaError {
    #[error("pattern {index} ({text:?}): {error}")]
    Glob {
        index: usize,
        text: String,
        error: GlobError,
    },
    #[error("pattern {index}: tag {tag} is out of range (must be < {MAX_TAG})")]
    TagOutOfRange { index: usize, tag: u32 },
    #[error("the DFA has {states} states after minimisation; a table holds at most {max}")]
    TooManyStates { states: usize, max: usize },
    #[error(
        "the unminimised DFA exceeded {states} states (limits: {} states, {} transitions)",
        subset::MAX_RAW_STATES,
        subset::MAX_RAW_TRANSITIONS
    )]
    Blowup { states: usize },
}

/// A minimised DFA over bytes. State [`DEAD`] (0) is absorbing and accepts
/// nothing; [`START`] (1) is the start state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dfa {
    n_classes: usize,
    class_of: [u8; 256],
    /// `trans[state * n_classes + class]`
    trans: Vec<u32>,
    accept: Vec<u32>,
    possible: Vec<u32>,
    sets: SetInterner,
    /// States of the largest unminimised DFA built (the one from subset
    /// construction, or the largest piece or product when built by halves),
    /// the dead state included.
    pub states_before_min: usize,
}

impl Dfa {
    pub fn n_states(&self) -> usize {
        self.accept.len()
    }

    /// Byte classes after merging bytes that behave alike in every state.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    pub fn class_of(&self, byte: u8) -> usize {
        usize::from(self.class_of[usize::from(byte)])
    }

    /// The successor of `state` on `byte` (dead for an out-of-range state).
    pub fn next(&self, state: u32, byte: u8) -> u32 {
        let at = state as usize * self.n_classes + self.class_of(byte);
        self.trans.get(at).copied().unwrap_or(DEAD)
    }

    /// Runs from `state` over `input`, stopping early in the dead state.
    pub fn run_from(&self, mut state: u32, input: &[u8]) -> u32 {
        for &b in input {
            if state == DEAD {
                break;
            }
            state = self.next(state, b);
        }
        state
    }

    /// Runs from [`START`] over `input`.
    pub fn run(&self, input: &[u8]) -> u32 {
        self.run_from(START, input)
    }

    /// Tags of the patterns that match exactly the input read so far
    /// (ascending).
    pub fn accepts(&self, state: u32) -> &[u32] {
        self.accept
            .get(state as usize)
            .map_or(&[], |&id| self.sets.get(id))
    }

    /// Tags accepted by some state reachable from `state`, `state` included
    /// (ascending): the tags some continuation of the input could still match.
    pub fn possible(&self, state: u32) -> &[u32] {
        self.possible
            .get(state as usize)
            .map_or(&[], |&id| self.sets.get(id))
    }

    /// Packs the DFA. `info(accepts, possible)` gives each state's info word;
    /// the dead state's info is always 0 (the layout requires it).
    pub fn to_table(&self, info: impl Fn(&[u32], &[u32]) -> u64) -> DfaTable {
        let Ok(table) = self.try_to_table(|accept, possible| {
            Ok::<_, std::convert::Infallible>(info(accept.tags, possible.tags))
        });
        table
    }

    /// [`Dfa::to_table`] with a fallible `info` that also sees the sets'
    /// ids, called once per distinct pair of sets, in the order of the first
    /// live state (from 1 up) that has it. Why once, and why ids: with 10,000
    /// rules under `/x/**`, 90,000 states share one 10,000-tag possible set;
    /// per state, that is a billion tags to copy and hash, and the caller
    /// can tell a set it has seen by its id.
    pub fn try_to_table<E>(
        &self,
        mut info: impl FnMut(Tags, Tags) -> Result<u64, E>,
    ) -> Result<DfaTable, E> {
        let tags = |id: u32| Tags {
            id,
            tags: self.sets.get(id),
        };
        let mut words: HashMap<(u32, u32), u64, FxBuild> = HashMap::default();
        let mut infos = vec![0u64; self.n_states()];
        let pairs = self.accept.iter().zip(&self.possible);
        for (word, (&accept, &possible)) in infos.iter_mut().zip(pairs).skip(1) {
            *word = match words.get(&(accept, possible)) {
                Some(&word) => word,
                None => {
                    let computed = info(tags(accept), tags(possible))?;
                    words.insert((accept, possible), computed);
                    computed
                }
            };
        }
        Ok(
            DfaTable::from_parts(&self.class_of, self.n_classes as u32, &self.trans, &infos)
                .expect("a built Dfa has 2..=MAX_STATES states, <= 256 classes and a dead state 0"),
        )
    }
}

/// A set of tags of a [`Dfa`] (ascending), and its id: within one DFA, equal
/// ids are equal sets and the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tags<'a> {
    pub id: u32,
    pub tags: &'a [u32],
}

/// Compiles `patterns` into one minimised DFA. With `reversed`, the DFA
/// recognises the reversed inputs: run over the bytes of an input last to
/// first, it accepts exactly the tags whose (forward) pattern matches it.
pub fn build(patterns: &[PatternSpec], reversed: bool) -> Result<Dfa, DfaError> {
    build_limited(patterns, reversed, MAX_STATES)
}

/// [`build`] refusing more than `max_states` minimised states. In practice
/// the unminimised limits are reached before [`MAX_STATES`]; a smaller limit
/// lets the tests reach this one.
pub(crate) fn build_limited(
    patterns: &[PatternSpec],
    reversed: bool,
    max_states: usize,
) -> Result<Dfa, DfaError> {
    build_with(patterns, reversed, max_states, compose::Strategy::Auto)
}

/// [`build_limited`] the way `strategy` says; every strategy gives the same
/// DFA, unless one stops at a limit.
pub(crate) fn build_with(
    patterns: &[PatternSpec],
    reversed: bool,
    max_states: usize,
    strategy: compose::Strategy,
) -> Result<Dfa, DfaError> {
    let mut parsed: Vec<compose::Pattern> = Vec::with_capacity(patterns.len());
    for (index, p) in patterns.iter().enumerate() {
        if p.tag >= MAX_TAG {
            return Err(DfaError::TagOutOfRange { index, tag: p.tag });
        }
        let items = parse_glob(p.text, p.mode).map_err(|error| DfaError::Glob {
            index,
            text: p.text.to_owned(),
            error,
        })?;
        parsed.push((items, p.tag));
    }
    let nfa = compose::nfa_of(&parsed, reversed);
    let classes = nfa::classes(&nfa.sets);
    let mut sets = SetInterner::default();
    let built = compose::build(&parsed, reversed, nfa, &classes, strategy, &mut sets)
        .map_err(|states| DfaError::Blowup { states })?;
    let states_before_min = built.largest_raw;
    let machine = built.machine;
    if machine.start == DEAD {
        // Empty language: a start state that goes nowhere.
        return Ok(Dfa {
            n_classes: 1,
            class_of: [0; 256],
            trans: vec![DEAD; 2],
            accept: vec![0; 2],
            possible: vec![0; 2],
            sets,
            states_before_min,
        });
    }
    let n = machine.n_states();
    if n > max_states {
        return Err(DfaError::TooManyStates {
            states: n,
            max: max_states,
        });
    }
    let k = machine.k;
    let trans_k = machine.trans;
    let accept = machine.accept;

    // Merge classes with identical columns; number them by smallest byte.
    let tk = &trans_k;
    let column = |c: usize| (0..n).map(move |s| tk[s * k + c]);
    let mut final_of = vec![u32::MAX; k];
    let mut keep: Vec<usize> = Vec::new();
    let mut by_hash: HashMap<u64, Vec<u32>, FxBuild> = HashMap::default();
    let mut class_of = [0u8; 256];
    for (b, &pre) in classes.class_of.iter().enumerate() {
        let pre = pre as usize;
        if final_of[pre] == u32::MAX {
            let mut h = FxHasher::default();
            column(pre).for_each(|t| h.write_u32(t));
            let candidates = by_hash.entry(h.finish()).or_default();
            let found = candidates
                .iter()
                .copied()
                .find(|&f| column(keep[f as usize]).eq(column(pre)));
            final_of[pre] = found.unwrap_or_else(|| {
                candidates.push(keep.len() as u32);
                keep.push(pre);
                keep.len() as u32 - 1
            });
        }
        class_of[b] = final_of[pre] as u8;
    }
    let kf = keep.len();
    let trans: Vec<u32> = (0..n)
        .flat_map(|s| keep.iter().map(move |&c| s * k + c))
        .map(|at| trans_k[at])
        .collect();
    let possible = possible_sets(kf, &trans, &accept, &mut sets);
    Ok(Dfa {
        n_classes: kf,
        class_of,
        trans,
        accept,
        possible,
        sets,
        states_before_min,
    })
}

/// For each state, the interned union of the accept sets of all states
/// reachable from it (Tarjan's SCCs, which come out sinks first).
fn possible_sets(k: usize, trans: &[u32], accept: &[u32], sets: &mut SetInterner) -> Vec<u32> {
    const UNSEEN: u32 = u32::MAX;
    let n = accept.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut possible = vec![UNSEEN; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut call: Vec<(u32, usize)> = Vec::new();
    let mut counter = 0u32;
    let mut members: Vec<u32> = Vec::new();
    let mut ids: Vec<u32> = Vec::new();
    let mut merged: Vec<u32> = Vec::new();
    // Unions already made, by the ids they joined: in a reversed DFA where every rule under a
    // `**` is possible almost everywhere, thousands of states join the same few large sets.
    let mut unions: HashMap<Vec<u32>, u32, FxBuild> = HashMap::default();
    for root in 0..n as u32 {
        if index[root as usize] != UNSEEN {
            continue;
        }
        call.push((root, 0));
        index[root as usize] = counter;
        low[root as usize] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root as usize] = true;
        while let Some(&mut (v, ref mut ci)) = call.last_mut() {
            let vu = v as usize;
            if *ci < k {
                let w = trans[vu * k + *ci] as usize;
                *ci += 1;
                if index[w] == UNSEEN {
                    index[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w as u32);
                    on_stack[w] = true;
                    call.push((w as u32, 0));
                } else if on_stack[w] {
                    low[vu] = low[vu].min(index[w]);
                }
                continue;
            }
            call.pop();
            if let Some(&(p, _)) = call.last() {
                low[p as usize] = low[p as usize].min(low[vu]);
            }
            if low[vu] != index[vu] {
                continue;
            }
            members.clear();
            while let Some(w) = stack.pop() {
                on_stack[w as usize] = false;
                members.push(w);
                if w == v {
                    break;
                }
            }
            // Successor SCCs are finished; members of this one are UNSEEN.
            ids.clear();
            for &m in &members {
                ids.push(accept[m as usize]);
                for &w in &trans[m as usize * k..(m as usize + 1) * k] {
                    let p = possible[w as usize];
                    if p != UNSEEN {
                        ids.push(p);
                    }
                }
            }
            ids.sort_unstable();
            ids.dedup();
            ids.retain(|&id| id != 0);
            let id = match ids.as_slice() {
                [] => 0,
                [one] => *one,
                many => match unions.get(many) {
                    Some(&id) => id,
                    None => {
                        let id = union(many, sets, &mut merged);
                        unions.insert(many.to_vec(), id);
                        id
                    }
                },
            };
            for &m in &members {
                possible[m as usize] = id;
            }
        }
    }
    possible
}

/// The id of the union of the sets `ids` (at least two), through `merged` as scratch.
fn union(ids: &[u32], sets: &mut SetInterner, merged: &mut Vec<u32>) -> u32 {
    merged.clear();
    for &id in ids {
        merged.extend_from_slice(sets.get(id));
    }
    // Sorted runs, often thousands of tags long: the stable sort merges runs in linear time
    // where the unstable one sorts from scratch.
    merged.sort();
    merged.dedup();
    sets.intern(merged)
}

/// Interned sorted tag sets; id 0 is the empty set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetInterner {
    sets: Vec<Vec<u32>>,
    ids: HashMap<Vec<u32>, u32, FxBuild>,
}

impl Default for SetInterner {
    fn default() -> Self {
        let mut ids = HashMap::default();
        ids.insert(Vec::new(), 0);
        SetInterner {
            sets: vec![Vec::new()],
            ids,
        }
    }
}

impl SetInterner {
    pub(crate) fn intern(&mut self, set: &[u32]) -> u32 {
        if let Some(&id) = self.ids.get(set) {
            return id;
        }
        let id = self.sets.len() as u32;
        self.sets.push(set.to_vec());
        self.ids.insert(set.to_vec(), id);
        id
    }

    pub(crate) fn get(&self, id: u32) -> &[u32] {
        self.sets.get(id as usize).map_or(&[], Vec::as_slice)
    }
}

/// A small, fast, deterministic hasher (the multiplicative mix of rustc's
/// FxHasher); only used for in-process tables.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let mut w = [0u8; 8];
        let rest = chunks.remainder();
        w[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

//! Subset construction over byte classes.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use super::nfa::{Classes, NO_TAG, Nfa};
use super::{FxBuild, FxHasher, SetInterner};

/// A complete DFA over byte classes, before minimisation. State 0 is the
/// empty NFA set (dead); the start state is `start` (1, or 0 if the start
/// set is empty).
pub(crate) struct RawDfa {
    pub n_states: usize,
    pub n_classes: usize,
    /// `trans[state * n_classes + class]`
    pub trans: Vec<u32>,
    /// Interned accept tag set per state.
    pub accept: Vec<u32>,
    pub start: u32,
}

/// Limits on the unminimised DFA, against exponential blow-up.
pub(crate) const MAX_RAW_STATES: usize = 1 << 18;
pub(crate) const MAX_RAW_TRANSITIONS: usize = 1 << 22;

struct Closure {
    mark: Vec<u32>,
    generation: u32,
    stack: Vec<u32>,
}

impl Closure {
    /// Sorted epsilon closure of `seeds`.
    fn of(&mut self, nfa: &Nfa, seeds: &[u32]) -> Vec<u32> {
        self.generation += 1;
        let generation = self.generation;
        let mut out = Vec::with_capacity(seeds.len());
        for &s in seeds {
            if self.mark[s as usize] != generation {
                self.mark[s as usize] = generation;
                self.stack.push(s);
            }
        }
        while let Some(q) = self.stack.pop() {
            out.push(q);
            for &t in nfa.eps(q) {
                if self.mark[t as usize] != generation {
                    self.mark[t as usize] = generation;
                    self.stack.push(t);
                }
            }
        }
        out.sort_unstable();
        out
    }
}

/// Returns `Err(states_so_far)` when the DFA gets more than `max_states`
/// states (at most [`MAX_RAW_STATES`] counts) or more than
/// [`MAX_RAW_TRANSITIONS`] transitions.
pub(crate) fn determinize(
    nfa: &Nfa,
    classes: &Classes,
    tag_sets: &mut SetInterner,
    max_states: usize,
) -> Result<RawDfa, usize> {
    let max_states = max_states.min(MAX_RAW_STATES);
    let k = classes.n_classes;
    let mut closure = Closure {
        mark: vec![0; nfa.n_states()],
        generation: 0,
        stack: Vec::new(),
    };
    let mut ids: HashMap<Rc<[u32]>, u32, FxBuild> = HashMap::default();
    let mut pending: Vec<Rc<[u32]>> = Vec::new();
    let empty: Rc<[u32]> = Rc::from(Vec::new());
    ids.insert(empty.clone(), 0);
    pending.push(empty.clone());
    let start_set: Rc<[u32]> = Rc::from(closure.of(nfa, &nfa.starts));
    let start = match ids.get(&start_set) {
        Some(&id) => id,
        None => {
            ids.insert(start_set.clone(), 1);
            pending.push(start_set);
            1
        }
    };
    let mut trans: Vec<u32> = Vec::new();
    let mut accept: Vec<u32> = Vec::new();
    let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); k];
    let mut touched: Vec<u32> = Vec::new();
    let mut keyed: Vec<(u64, u32)> = Vec::new();
    let mut tags: Vec<u32> = Vec::new();
    let mut i = 0;
    while i < pending.len() {
        let set = std::mem::replace(&mut pending[i], empty.clone());
        tags.clear();
        for &q in set.iter() {
            let t = nfa.tag[q as usize];
            if t != NO_TAG {
                tags.push(t);
            }
            for &(sid, target) in nfa.edges(q) {
                for &c in &classes.of_set[sid as usize] {
                    let bucket = &mut buckets[c as usize];
                    if bucket.is_empty() {
                        touched.push(c);
                    }
                    bucket.push(target);
                }
            }
        }
        tags.sort_unstable();
        tags.dedup();
        accept.push(tag_sets.intern(&tags));
        let row = trans.len();
        trans.resize(row + k, 0);
        // Classes with identical buckets (common: every class but one or
        // two follows the same loops) share one closure and lookup; equal
        // buckets have equal hashes, so they end up adjacent.
        keyed.clear();
        keyed.extend(touched.iter().map(|&c| {
            let mut h = FxHasher::default();
            buckets[c as usize].hash(&mut h);
            (h.finish(), c)
        }));
        keyed.sort_unstable();
        let mut prev: Option<(u64, u32, u32)> = None; // (hash, class, state id)
        for &(h, c) in &keyed {
            let id = match prev {
                Some((ph, p, id)) if ph == h && buckets[p as usize] == buckets[c as usize] => id,
                _ => {
                    let next = closure.of(nfa, &buckets[c as usize]);
                    match ids.get(next.as_slice()) {
                        Some(&id) => id,
                        None => {
                            let id = pending.len() as u32;
                            let next: Rc<[u32]> = Rc::from(next);
                            ids.insert(next.clone(), id);
                            pending.push(next);
                            id
                        }
                    }
                }
            };
            trans[row + c as usize] = id;
            prev = Some((h, c, id));
        }
        for c in touched.drain(..) {
            buckets[c as usize].clear();
        }
        if pending.len() > max_states || pending.len().saturating_mul(k) > MAX_RAW_TRANSITIONS {
            return Err(pending.len());
        }
        i += 1;
    }
    Ok(RawDfa {
        n_states: pending.len(),
        n_classes: k,
        trans,
        accept,
        start,
    })
}

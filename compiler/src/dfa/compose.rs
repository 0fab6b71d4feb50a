//! Which way the DFA of many patterns is built: directly, or, when that
//! blows up, piece by piece.
//!
//! The direct way (one NFA for all patterns, subset construction, Hopcroft)
//! is the fast one, but its unminimised DFA can be exponential in the number
//! of patterns where the minimal one is tiny. Reversed, `/*/**/etc/shadow`
//! and `/*/**/root/.ssh/**` each read their suffix and then reach the
//! `.*` loop of their `**`, which stays in every later subset: the subsets
//! record which of the patterns got that far, 2^n combinations, although
//! with one tag for all of them (one rule's list) the minimal DFA only needs
//! "some did". Thirteen such patterns make 108,558 subsets for 177 minimal
//! states.
//!
//! So the direct construction gets a budget: [`BUDGET_FACTOR`] times the NFA
//! states, and at least [`BUDGET_FLOOR`]. Past it, the patterns are split in
//! two halves, each half built the same way (recursively, with the factor
//! halved at each level and no floor), and the two minimal DFAs merged by a
//! product construction over the shared byte classes, then minimised. A
//! product state pairs the two halves' states; its accept set is the union
//! of theirs. The pieces stay small when the final DFA is small: with
//! disjoint tags, a half's minimal DFA has at most as many states as the
//! whole's (its accept sets are the whole's restricted to its tags), and the
//! product is minimal as it is (see [`product`]). With shared tags there is
//! no such bound, but a half is no harder than the whole (fewer patterns of
//! the same kinds): 13 patterns under one tag make pieces of at most 257
//! states.
//!
//! Why the result is the same table either way:
//! - on an input `w`, the product is in `(a, b)` with `a`, `b` the halves'
//!   states after `w`, so it accepts the tags of the patterns of either half
//!   that match `w`: the union's language with its tags, as the direct
//!   DFA's; minimising keeps that language;
//! - every piece is over the byte classes of the NFA of all patterns (each
//!   piece's edge sets are some of its edge sets, so unions of its classes),
//!   and [`minimal`] numbers a minimal DFA by a breadth-first walk over those
//!   classes: one language, one numbering, one table;
//! - the minimiser needs that no live state is equivalent to the dead one:
//!   every state of a minimal piece but 0 reaches a non-empty accept set, so
//!   every product state but (0, 0) does too (through its non-dead side).
//!
//! The limits: each subset construction and each product stops past the
//! unminimised limits ([`MAX_RAW_STATES`], [`MAX_RAW_TRANSITIONS`]), which
//! is then the caller's `Blowup` error; a single pattern gets no budget
//! (splitting cannot help it), only those limits. A failed direct attempt
//! costs at most its budget in raw states; the groups of one level split the
//! patterns, and the factor halves per level, so all failed attempts
//! together cost at most twice [`BUDGET_FACTOR`] times the patterns' NFA
//! states, plus the floor once.

use std::collections::HashMap;

use super::glob::GlobItem;
use super::minimize::{Machine, minimal};
use super::nfa::{self, Classes, Nfa};
use super::subset::{self, MAX_RAW_STATES, MAX_RAW_TRANSITIONS, RawDfa};
use super::{DEAD, FxBuild, SetInterner, union};

/// One parsed pattern and its tag.
pub(crate) type Pattern = (Vec<GlobItem>, u32);

/// Raw states a direct construction may make per NFA state before the
/// patterns are split. A trie of literal-ish patterns makes about one subset
/// per NFA state (10,000 `/srv/app{i}/secrets/*`: 90,122 subsets for about
/// 100,000 NFA states); 8 leaves room for `*` and `**` loops that double a
/// few of them.
pub(crate) const BUDGET_FACTOR: usize = 8;
/// The top-level budget is at least this, so that small policies take the
/// direct way whatever their NFA. Low, because a failed attempt is wasted
/// time: the subsets of a blow-up are large (policies/node-credentials.grd
/// spends about 2 µs per raw state), and the pieces cost little.
pub(crate) const BUDGET_FLOOR: usize = 4096;

/// How [`build`] goes about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// Directly within the budget, else split (see the module documentation).
    Auto,
    /// Directly, whatever the size (the tests' reference).
    #[cfg(test)]
    Direct,
    /// Split down to single patterns (the tests' other way).
    #[cfg(test)]
    Split,
}

impl Strategy {
    /// Raw states a direct construction from `nfa_states` NFA states may
    /// make before its patterns are split (`None`: never split), `depth`
    /// splits down from all the patterns.
    fn budget(self, nfa_states: usize, depth: u32) -> Option<usize> {
        match self {
            Strategy::Auto if depth == 0 => {
                Some(nfa_states.saturating_mul(BUDGET_FACTOR).max(BUDGET_FLOOR))
            }
            Strategy::Auto => Some(
                nfa_states
                    .saturating_mul(BUDGET_FACTOR)
                    .checked_shr(depth)
                    .unwrap_or(0),
            ),
            #[cfg(test)]
            Strategy::Direct => None,
            #[cfg(test)]
            Strategy::Split => Some(0),
        }
    }
}

/// A minimal DFA, and the states of the largest unminimised DFA made on the
/// way (the one the unminimised limits were checked against).
pub(crate) struct Built {
    pub machine: Machine,
    pub largest_raw: usize,
}

/// The NFA of `patterns` (see [`nfa::Builder`]).
pub(crate) fn nfa_of(patterns: &[Pattern], reversed: bool) -> Nfa {
    let mut builder = nfa::Builder::new(reversed);
    for (items, tag) in patterns {
        builder.add(items, *tag);
    }
    builder.finish()
}

/// The minimal DFA of `patterns`, whose NFA is `nfa` and whose byte classes
/// are `classes`; `Err(states)` when an unminimised DFA exceeds the limits.
pub(crate) fn build(
    patterns: &[Pattern],
    reversed: bool,
    nfa: Nfa,
    classes: &Classes,
    strategy: Strategy,
    sets: &mut SetInterner,
) -> Result<Built, usize> {
    let mut builder = Composer {
        reversed,
        classes,
        strategy,
        sets,
        largest_raw: 0,
    };
    let machine = builder.attempt(patterns, nfa, 0)?;
    Ok(Built {
        machine,
        largest_raw: builder.largest_raw,
    })
}

struct Composer<'a> {
    reversed: bool,
    /// The partition only: each NFA has its own edge sets.
    classes: &'a Classes,
    strategy: Strategy,
    sets: &'a mut SetInterner,
    largest_raw: usize,
}

impl Composer<'_> {
    /// The minimal DFA of `patterns`, whose NFA is `nfa`: directly within
    /// the budget, else as the product of its halves'.
    fn attempt(&mut self, patterns: &[Pattern], nfa: Nfa, depth: u32) -> Result<Machine, usize> {
        let budget = match self.strategy.budget(nfa.n_states(), depth) {
            Some(budget) if patterns.len() > 1 => Some(budget),
            _ => None, // splitting cannot help a single pattern
        };
        let own = self.classes.for_nfa(&nfa);
        let direct = subset::determinize(&nfa, &own, self.sets, budget.unwrap_or(MAX_RAW_STATES));
        drop((nfa, own));
        match direct {
            Ok(raw) => return Ok(self.minimal(&raw)),
            Err(states) if budget.is_none() => return Err(states),
            Err(_) => {}
        }
        let (left, right) = patterns.split_at(patterns.len() / 2);
        let a = self.attempt(left, nfa_of(left, self.reversed), depth + 1)?;
        let b = self.attempt(right, nfa_of(right, self.reversed), depth + 1)?;
        let raw = product(&a, &b, self.sets)?;
        if disjoint_tags(left, right) {
            // Then `raw` is minimal already (see `product`), and minimising
            // it would take most of the time spent here.
            self.largest_raw = self.largest_raw.max(raw.n_states);
            return Ok(Machine {
                k: raw.n_classes,
                trans: raw.trans,
                accept: raw.accept,
                start: raw.start,
            });
        }
        Ok(self.minimal(&raw))
    }

    fn minimal(&mut self, raw: &RawDfa) -> Machine {
        self.largest_raw = self.largest_raw.max(raw.n_states);
        minimal(raw)
    }
}

/// No tag of `a` is a tag of `b`.
fn disjoint_tags(a: &[Pattern], b: &[Pattern]) -> bool {
    let tags = |patterns: &[Pattern]| {
        let mut tags: Vec<u32> = patterns.iter().map(|(_, tag)| *tag).collect();
        tags.sort_unstable();
        tags.dedup();
        tags
    };
    let (a, b) = (tags(a), tags(b));
    !a.iter().any(|t| b.binary_search(t).is_ok())
}

/// The product of two DFAs over the same classes, reachable pairs only:
/// state 0 is the pair of dead states, accept sets are unions.
/// `Err(states)` past the unminimised limits.
///
/// The pairs are numbered as they are found, breadth first from the start,
/// classes in ascending order: the [`Machine`] numbering. And when `a` and
/// `b` are minimal with disjoint tags, so is the product: if `(p, q)` and
/// `(p', q')` accepted the same tags after every input, then keeping only
/// `a`'s tags, `p` and `p'` would too, so `p = p'`, and likewise `q = q'`.
/// Such a product is therefore a [`Machine`] as it is.
fn product(a: &Machine, b: &Machine, sets: &mut SetInterner) -> Result<RawDfa, usize> {
    debug_assert_eq!(a.k, b.k);
    let k = a.k;
    let mut ids: HashMap<(u32, u32), u32, FxBuild> = HashMap::default();
    let mut pairs: Vec<(u32, u32)> = vec![(DEAD, DEAD)];
    ids.insert((DEAD, DEAD), 0);
    let start = if (a.start, b.start) == (DEAD, DEAD) {
        0
    } else {
        ids.insert((a.start, b.start), 1);
        pairs.push((a.start, b.start));
        1
    };
    let mut unions: HashMap<(u32, u32), u32, FxBuild> = HashMap::default();
    let mut merged = Vec::new();
    let mut trans: Vec<u32> = Vec::new();
    let mut accept: Vec<u32> = Vec::new();
    let mut i = 0;
    while i < pairs.len() {
        let (p, q) = pairs[i];
        let (x, y) = (a.accept[p as usize], b.accept[q as usize]);
        accept.push(match (x, y) {
            (0, id) | (id, 0) => id,
            _ if x == y => x,
            _ => *unions
                .entry((x, y))
                .or_insert_with(|| union(&[x, y], sets, &mut merged)),
        });
        let (row_a, row_b) = (p as usize * k, q as usize * k);
        for c in 0..k {
            let pair = (a.trans[row_a + c], b.trans[row_b + c]);
            let next = pairs.len() as u32;
            let id = *ids.entry(pair).or_insert(next);
            if id == next {
                pairs.push(pair);
            }
            trans.push(id);
        }
        if pairs.len() > MAX_RAW_STATES || pairs.len().saturating_mul(k) > MAX_RAW_TRANSITIONS {
            return Err(pairs.len());
        }
        i += 1;
    }
    Ok(RawDfa {
        n_states: pairs.len(),
        n_classes: k,
        trans,
        accept,
        start,
    })
}

//! Glob items → NFA (optionally reversed), and the byte alphabet partition.

use std::collections::HashMap;

use super::FxBuild;
use super::glob::GlobItem;

/// A set of bytes, bit `b` of word `b / 64`.
pub(crate) type ByteSet = [u64; 4];

pub(crate) const NO_TAG: u32 = u32::MAX;

fn singleton(b: u8) -> ByteSet {
    let mut s = [0; 4];
    s[usize::from(b >> 6)] |= 1u64 << (b & 63);
    s
}

pub(crate) fn contains(set: &ByteSet, b: u8) -> bool {
    set[usize::from(b >> 6)] >> (b & 63) & 1 == 1
}

const ANY: ByteSet = [u64::MAX; 4];

fn not_slash() -> ByteSet {
    let mut s = ANY;
    s[usize::from(b'/' >> 6)] &= !(1u64 << (b'/' & 63));
    s
}

/// An epsilon-NFA in compressed-row form. Edges are labelled with indices
/// into `sets`.
pub(crate) struct Nfa {
    pub edge_off: Vec<u32>,
    /// `(set id, target)`
    pub edges: Vec<(u32, u32)>,
    pub eps_off: Vec<u32>,
    pub eps: Vec<u32>,
    /// Tag accepted in each state, or [`NO_TAG`].
    pub tag: Vec<u32>,
    /// Initial states (before epsilon closure).
    pub starts: Vec<u32>,
    pub sets: Vec<ByteSet>,
}

impl Nfa {
    pub fn n_states(&self) -> usize {
        self.tag.len()
    }

    pub fn edges(&self, q: u32) -> &[(u32, u32)] {
        let q = q as usize;
        &self.edges[self.edge_off[q] as usize..self.edge_off[q + 1] as usize]
    }

    pub fn eps(&self, q: u32) -> &[u32] {
        let q = q as usize;
        &self.eps[self.eps_off[q] as usize..self.eps_off[q + 1] as usize]
    }
}

/// A trie edge: one glob item, or the epsilon edge to a pattern's accepting
/// leaf.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    Item(GlobItem),
    Accept(u32),
}

/// Builds one NFA out of many patterns, as a trie over their item sequences
/// (read last to first when `reversed`): patterns with a common prefix share
/// its states, so e.g. the leading `.*` of thousands of reversed `/x{i}/**`
/// patterns is a single NFA state instead of thousands that stay live in
/// every subset.
///
/// Trie node N = "matched item prefix P": only N's own item edges leave it.
/// A `*` therefore gets its own node (entered by epsilon, with the
/// self-loop), so sharing P with a pattern that continues differently does
/// not add the loop to that pattern.
pub(crate) struct Builder {
    reversed: bool,
    n: u32,
    /// `(from, set id, to)`
    edges: Vec<(u32, u32, u32)>,
    eps: Vec<(u32, u32)>,
    tag: Vec<u32>,
    set_ids: HashMap<ByteSet, u32, FxBuild>,
    sets: Vec<ByteSet>,
    children: HashMap<(u32, Step), u32, FxBuild>,
}

impl Builder {
    /// The root (start) state is state 0.
    pub fn new(reversed: bool) -> Self {
        let mut b = Builder {
            reversed,
            n: 0,
            edges: Vec::new(),
            eps: Vec::new(),
            tag: Vec::new(),
            set_ids: HashMap::default(),
            sets: Vec::new(),
            children: HashMap::default(),
        };
        b.state();
        b
    }

    fn state(&mut self) -> u32 {
        self.tag.push(NO_TAG);
        self.n += 1;
        self.n - 1
    }

    fn set(&mut self, set: ByteSet) -> u32 {
        let next = self.sets.len() as u32;
        *self.set_ids.entry(set).or_insert_with(|| {
            self.sets.push(set);
            next
        })
    }

    fn edge(&mut self, from: u32, set: ByteSet, to: u32) {
        let id = self.set(set);
        self.edges.push((from, id, to));
    }

    /// The trie child of `cur` along `step`, creating its states and edges.
    fn child(&mut self, cur: u32, step: Step) -> u32 {
        if let Some(&next) = self.children.get(&(cur, step)) {
            return next;
        }
        let next = self.state();
        let slash = |cross: bool| if cross { ANY } else { not_slash() };
        match step {
            Step::Item(GlobItem::Byte(b)) => self.edge(cur, singleton(b), next),
            Step::Item(GlobItem::One { cross_slash }) => self.edge(cur, slash(cross_slash), next),
            Step::Item(GlobItem::Run { cross_slash }) => {
                self.eps.push((cur, next));
                self.edge(next, slash(cross_slash), next);
            }
            // Forward (.*/)?, reversed (/.*)?: the empty string, or any
            // string ending (reversed: starting) with `/`.
            Step::Item(GlobItem::Dirs) => {
                let inner = self.state();
                self.eps.push((cur, next));
                if self.reversed {
                    self.edge(cur, singleton(b'/'), inner);
                    self.edge(inner, ANY, inner);
                    self.eps.push((inner, next));
                } else {
                    self.eps.push((cur, inner));
                    self.edge(inner, ANY, inner);
                    self.edge(inner, singleton(b'/'), next);
                }
            }
            Step::Accept(tag) => {
                self.eps.push((cur, next));
                self.tag[next as usize] = tag;
            }
        }
        self.children.insert((cur, step), next);
        next
    }

    pub fn add(&mut self, items: &[GlobItem], tag: u32) {
        let mut cur = 0;
        if self.reversed {
            for item in items.iter().rev() {
                cur = self.child(cur, Step::Item(*item));
            }
        } else {
            for item in items {
                cur = self.child(cur, Step::Item(*item));
            }
        }
        self.child(cur, Step::Accept(tag));
    }

    /// The NFA of the union of all added patterns (or of their reversals).
    pub fn finish(self) -> Nfa {
        let n = self.n as usize;
        let (edge_off, edges) = csr(n, &self.edges, |e| (e.0, (e.1, e.2)));
        let (eps_off, eps) = csr(n, &self.eps, |e| (e.0, e.1));
        Nfa {
            edge_off,
            edges,
            eps_off,
            eps,
            tag: self.tag,
            starts: vec![0],
            sets: self.sets,
        }
    }
}

/// Groups `items` by source state (stable), returning offsets and payloads.
fn csr<T, P: Copy + Default>(
    n: usize,
    items: &[T],
    split: impl Fn(&T) -> (u32, P),
) -> (Vec<u32>, Vec<P>) {
    let mut off = vec![0u32; n + 1];
    for it in items {
        off[split(it).0 as usize + 1] += 1;
    }
    for i in 0..n {
        off[i + 1] += off[i];
    }
    let mut fill = off.clone();
    let mut out = vec![P::default(); items.len()];
    for it in items {
        let (src, payload) = split(it);
        out[fill[src as usize] as usize] = payload;
        fill[src as usize] += 1;
    }
    (off, out)
}

/// The coarsest partition of bytes such that every edge set is a union of
/// classes. Classes are numbered in order of their smallest byte.
pub(crate) struct Classes {
    pub class_of: [u32; 256],
    pub n_classes: usize,
    /// For each edge set, the classes it contains (ascending).
    pub of_set: Vec<Vec<u32>>,
}

pub(crate) fn classes(sets: &[ByteSet]) -> Classes {
    let mut class_of = [0u32; 256];
    let mut n_classes = 1usize;
    for set in sets {
        let mut renum = vec![[u32::MAX; 2]; n_classes];
        let mut next = 0u32;
        for b in 0..=255u8 {
            let slot = &mut renum[class_of[usize::from(b)] as usize][usize::from(contains(set, b))];
            if *slot == u32::MAX {
                *slot = next;
                next += 1;
            }
            class_of[usize::from(b)] = *slot;
        }
        n_classes = next as usize;
    }
    let mut classes = Classes {
        class_of,
        n_classes,
        of_set: Vec::new(),
    };
    classes.of_set = classes.split(sets);
    classes
}

impl Classes {
    /// For each of `sets`, the classes it contains (ascending). Each set must
    /// be a union of classes: one of the sets the partition was made from,
    /// as the edge sets of an NFA over some of the same patterns are.
    pub fn split(&self, sets: &[ByteSet]) -> Vec<Vec<u32>> {
        sets.iter()
            .map(|set| {
                let mut cs: Vec<u32> = (0..=255u8)
                    .filter(|&b| contains(set, b))
                    .map(|b| self.class_of[usize::from(b)])
                    .collect();
                cs.dedup();
                cs.sort_unstable();
                cs.dedup();
                cs
            })
            .collect()
    }

    /// The same partition, with `of_set` for the edge sets of `nfa`
    /// (see [`Classes::split`]).
    pub fn for_nfa(&self, nfa: &Nfa) -> Classes {
        Classes {
            class_of: self.class_of,
            n_classes: self.n_classes,
            of_set: self.split(&nfa.sets),
        }
    }
}

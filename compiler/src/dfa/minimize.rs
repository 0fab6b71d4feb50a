//! Hopcroft minimisation, in the formulation of A. Valmari, "Fast brief
//! practical DFA minimization" (IPL 112, 2012): refinable partitions of the
//! states ("blocks") and of the transitions ("cords"), O(m log n).
//!
//! Transitions into the dead state 0 are left out (a partial DFA: fewer
//! transitions to refine). That is sound: the initial cords are whole labels
//! and are processed as splitters, which separates states that have an
//! `a`-transition from states that have none; and with deterministic
//! transitions, stability under a processed cord and under its smaller split
//! half implies stability under the other half, so block 0 of the initial
//! partition never needs to be a splitter. The result is the coarsest
//! partition where same-block states have the same label and, per class,
//! either no transition or transitions into the same block. It is the
//! language equivalence provided no state other than 0 is equivalent to the
//! dead state — true for subset construction over this NFA, where every NFA
//! state can reach an accepting one (checked by the minimality tests), and
//! for products of minimal DFAs (see [`super::compose`]).

use super::subset::RawDfa;

/// A refinable partition of `0..n`.
struct Partition {
    elems: Vec<u32>,
    loc: Vec<u32>,
    set: Vec<u32>,
    first: Vec<u32>,
    past: Vec<u32>,
    marked: Vec<u32>,
    touched: Vec<u32>,
}

impl Partition {
    /// `elems` listed in order, with set boundaries at `bounds` (ends of sets).
    fn new(elems: Vec<u32>, bounds: &[u32]) -> Self {
        let n = elems.len();
        let mut loc = vec![0u32; n];
        let mut set = vec![0u32; n];
        let mut first = Vec::with_capacity(bounds.len());
        let mut past = Vec::with_capacity(bounds.len());
        let mut start = 0u32;
        for (s, &end) in bounds.iter().enumerate() {
            for i in start..end {
                let e = elems[i as usize] as usize;
                loc[e] = i;
                set[e] = s as u32;
            }
            first.push(start);
            past.push(end);
            start = end;
        }
        let marked = vec![0; first.len()];
        Partition {
            elems,
            loc,
            set,
            first,
            past,
            marked,
            touched: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.first.len()
    }

    fn members(&self, s: usize) -> &[u32] {
        &self.elems[self.first[s] as usize..self.past[s] as usize]
    }

    fn mark(&mut self, e: u32) {
        let s = self.set[e as usize] as usize;
        let i = self.loc[e as usize];
        let j = self.first[s] + self.marked[s];
        if i < j {
            return; // already marked
        }
        let other = self.elems[j as usize];
        self.elems[i as usize] = other;
        self.loc[other as usize] = i;
        self.elems[j as usize] = e;
        self.loc[e as usize] = j;
        if self.marked[s] == 0 {
            self.touched.push(s as u32);
        }
        self.marked[s] += 1;
    }

    /// Splits every touched set into its marked and unmarked parts; the
    /// smaller part gets the new set index.
    fn split(&mut self) {
        while let Some(s) = self.touched.pop() {
            let s = s as usize;
            let j = self.first[s] + self.marked[s];
            self.marked[s] = 0;
            if j == self.past[s] {
                continue;
            }
            let z = self.first.len();
            if j - self.first[s] <= self.past[s] - j {
                self.first.push(self.first[s]);
                self.past.push(j);
                self.first[s] = j;
            } else {
                self.first.push(j);
                self.past.push(self.past[s]);
                self.past[s] = j;
            }
            self.marked.push(0);
            for i in self.first[z]..self.past[z] {
                self.set[self.elems[i as usize] as usize] = z as u32;
            }
        }
    }
}

/// Coarsest partition of the states of the DFA `trans` (`n_states * k`,
/// row-major, state 0 dead) that refines `label` and is compatible with the
/// transitions. Returns the block of every state.
pub(crate) fn minimize(k: usize, trans: &[u32], label: &[u32]) -> Vec<u32> {
    let n = label.len();
    if n == 0 || k == 0 {
        return vec![0; n];
    }

    // Initial blocks: states grouped by label, largest group first (it is
    // the one never used as a splitter).
    let mut by_label: Vec<(u32, u32)> = label
        .iter()
        .enumerate()
        .map(|(s, &l)| (l, s as u32))
        .collect();
    by_label.sort_unstable();
    let mut groups: Vec<(usize, usize)> = Vec::new(); // (start, end) in by_label
    for i in 0..n {
        if i == 0 || by_label[i].0 != by_label[i - 1].0 {
            groups.push((i, i));
        }
        if let Some(g) = groups.last_mut() {
            g.1 = i + 1;
        }
    }
    groups.sort_by_key(|&(start, end)| (std::cmp::Reverse(end - start), start));
    let mut elems = Vec::with_capacity(n);
    let mut bounds = Vec::with_capacity(groups.len());
    for &(start, end) in &groups {
        elems.extend(by_label[start..end].iter().map(|&(_, s)| s));
        bounds.push(elems.len() as u32);
    }
    let mut blocks = Partition::new(elems, &bounds);

    // Transitions into a live state, label-major: `tail[t]`, and the
    // initial cords (one per class) are contiguous ranges of `t`.
    let mut tail: Vec<u32> = Vec::new();
    let mut head: Vec<u32> = Vec::new();
    let mut bounds = Vec::with_capacity(k);
    for c in 0..k {
        for s in 0..n {
            let h = trans[s * k + c];
            if h != 0 {
                tail.push(s as u32);
                head.push(h);
            }
        }
        if bounds.last().copied().unwrap_or(0) != tail.len() as u32 {
            bounds.push(tail.len() as u32);
        }
    }
    let m = tail.len();
    let mut cords = Partition::new((0..m as u32).collect(), &bounds);

    // Transitions by head state.
    let mut in_off = vec![0u32; n + 1];
    for &h in &head {
        in_off[h as usize + 1] += 1;
    }
    for q in 0..n {
        in_off[q + 1] += in_off[q];
    }
    let mut incoming = vec![0u32; m];
    {
        let mut fill = in_off.clone();
        for (t, &h) in head.iter().enumerate() {
            incoming[fill[h as usize] as usize] = t as u32;
            fill[h as usize] += 1;
        }
    }
    drop(head);

    let mut b = 1;
    let mut c = 0;
    while c < cords.len() {
        for &t in cords.members(c) {
            blocks.mark(tail[t as usize]);
        }
        blocks.split();
        c += 1;
        while b < blocks.len() {
            for &q in blocks.members(b) {
                let q = q as usize;
                for &t in &incoming[in_off[q] as usize..in_off[q + 1] as usize] {
                    cords.mark(t);
                }
            }
            cords.split();
            b += 1;
        }
    }
    blocks.set
}

/// A minimal DFA over the classes it was built on (`trans[state * k +
/// class]`): state 0 is dead, `start` is 1 (0 when the language is empty),
/// and the other states are numbered breadth first from the start, classes
/// in ascending order. That numbering depends only on the language (with its
/// tags) and the classes, not on how the DFA was obtained: a minimal DFA is
/// unique up to renaming, and the breadth-first walk fixes the names.
pub(crate) struct Machine {
    pub k: usize,
    pub trans: Vec<u32>,
    /// Interned accept tag set per state.
    pub accept: Vec<u32>,
    pub start: u32,
}

impl Machine {
    pub fn n_states(&self) -> usize {
        self.accept.len()
    }
}

/// The minimal DFA equivalent to `raw`, numbered as [`Machine`] says.
/// `raw` must have no live state equivalent to its dead state 0 (see the
/// module documentation).
pub(crate) fn minimal(raw: &RawDfa) -> Machine {
    let k = raw.n_classes;
    let block = minimize(k, &raw.trans, &raw.accept);
    let n_blocks = block.iter().map(|&b| b as usize + 1).max().unwrap_or(1);
    let mut new_id = vec![u32::MAX; n_blocks];
    let mut rep: Vec<u32> = vec![0]; // a raw state of each new state
    new_id[block[0] as usize] = 0;
    let start_block = block[raw.start as usize] as usize;
    if new_id[start_block] == 0 {
        return Machine {
            k,
            trans: vec![0; k],
            accept: vec![0],
            start: 0,
        };
    }
    new_id[start_block] = 1;
    rep.push(raw.start);
    let mut i = 1;
    while i < rep.len() {
        let row = rep[i] as usize * k;
        for &t in &raw.trans[row..row + k] {
            let b = block[t as usize] as usize;
            if new_id[b] == u32::MAX {
                new_id[b] = rep.len() as u32;
                rep.push(t);
            }
        }
        i += 1;
    }
    let trans = rep
        .iter()
        .flat_map(|&r| {
            let row = r as usize * k;
            raw.trans[row..row + k]
                .iter()
                .map(|&t| new_id[block[t as usize] as usize])
        })
        .collect();
    let accept = rep.iter().map(|&r| raw.accept[r as usize]).collect();
    Machine {
        k,
        trans,
        accept,
        start: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_equivalent_states() {
        // Classes {x, y}. 0 dead; 1 -x-> 2, 1 -y-> 3; 2, 3 -any-> 4 (label 1);
        // 4 -any-> 4. States 2 and 3 are equivalent.
        let trans = [0, 0, 2, 3, 4, 4, 4, 4, 4, 4];
        let blocks = minimize(2, &trans, &[0, 0, 0, 0, 1]);
        assert_eq!(blocks[2], blocks[3]);
        let mut distinct = blocks.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 4);
    }

    #[test]
    fn separates_by_distance_to_accept() {
        // A chain 1 -> 2 -> 3 -> 4 (accepting) -> 0; all non-accepting
        // chain states are distinct (different distance to acceptance).
        let trans = [0, 2, 3, 4, 0];
        let blocks = minimize(1, &trans, &[0, 0, 0, 0, 1]);
        let mut distinct = blocks.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 5);
    }
}

//! Lowering: a checked policy becomes the tables the kernel programs read.
//!
//! - the **path DFA**: every rule's objects (tagged with the rule id) and every `exe(…)` pattern
//!   (tagged `EXE_TAG_BASE + i`), reversed (the kernel feeds a path last byte first); each
//!   state's info word points at two lists (tags accepting here, rules that could still accept);
//! - the **identity DFA** over command lines (`ancestor`, `image`, `cmdline` atoms), the **name
//!   DFA** over `comm` (`name` atoms) and the **uid table** (`uid` atoms): each atom is one bit;
//! - the **verdict table**: one [`RuleEntry`] per rule, its subject in disjunctive normal form
//!   over the identity words, its operations and its action.

use std::collections::HashMap;

use guard_ebpf::abi::{self, Action, RuleEntry};
use guard_ebpf::dfa_table::DfaTable;

use crate::checked::{self, Enforce, Operation, Which};
use crate::dfa::{self, Mode, PatternSpec};
use crate::span::Span;

mod lints;
mod subject;

pub use lints::LowerWarning;
use subject::{Atoms, UidRef};

/// The tables of one policy.
#[derive(Debug)]
pub struct Lowered {
    pub path_dfa: DfaTable,
    pub cmdline_dfa: DfaTable,
    pub name_dfa: DfaTable,
    pub rules: Vec<RuleEntry>,
    /// Flat `u16` lists: `[len, tag…]` per list, list 0 empty.
    pub rule_lists: Vec<u16>,
    /// Identity `i` of each table, as written in the policy.
    pub identities: Vec<String>,
    pub exes: Vec<String>,
    pub names: Vec<String>,
    /// The uid table; `user(…)` entries hold [`abi::UNRESOLVED_UID`] and are listed in `users`.
    pub uids: Vec<u32>,
    pub users: Vec<abi::UserSlot>,
    pub uses_tty: bool,
    pub scopes: Vec<abi::Scope>,
    /// Rules the compiler added after the policy's own (ids from `policy.rules.len()` on).
    pub synthetic: Vec<SyntheticRule>,
    pub warnings: Vec<LowerWarning>,
    pub stats: Stats,
}

/// Sizes worth reporting (`guardc compile --stats`, benchmarks).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub path_states_before_min: usize,
    pub path_states: usize,
    pub path_classes: usize,
    pub cmdline_states: usize,
}

/// A policy the checker accepted but the tables cannot express.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    #[error("the policy uses more than {max} {what}; at most {max} are supported")]
    TooMany {
        what: &'static str,
        max: usize,
        span: Span,
    },
    #[error("this subject has more than {max} alternatives once expanded; simplify it", max = abi::MAX_TERMS)]
    SubjectTooComplex { span: Span },
    #[error("{count} rules could apply to one path; at most {max} are supported", max = abi::MAX_RULES_PER_LIST)]
    TooManyRulesPerPath { count: usize },
    #[error("the patterns do not fit in a table: {0}")]
    Dfa(String),
}

impl LowerError {
    pub fn span(&self) -> Option<Span> {
        match self {
            LowerError::TooMany { span, .. } | LowerError::SubjectTooComplex { span } => {
                Some(*span)
            }
            _ => None,
        }
    }
}

/// The operations a rule covers.
pub fn ops_of(op: Operation) -> u32 {
    match op {
        Operation::Open => abi::OP_READ | abi::OP_WRITE,
        Operation::Read => abi::OP_READ,
        Operation::Write => abi::OP_WRITE,
        Operation::Exec => abi::OP_EXEC,
    }
}

pub fn lower(policy: &checked::Policy) -> Result<Lowered, LowerError> {
    let mut atoms = Atoms::default();
    for rule in &policy.rules {
        atoms.collect(&rule.subject)?;
    }

    let mut rules = Vec::with_capacity(policy.rules.len());
    let mut all_terms = Vec::with_capacity(policy.rules.len());
    for rule in &policy.rules {
        let terms = subject::dnf(&rule.subject, &atoms, rule.span)?;
        let mut entry = RuleEntry {
            n_terms: terms.len() as u32,
            action: action_of(rule.enforce) as u32,
            ops: ops_of(rule.operation),
            ..RuleEntry::default()
        };
        entry.terms[..terms.len()].copy_from_slice(&terms);
        rules.push(entry);
        all_terms.push(terms);
    }

    // Path DFA, reversed: rule objects, then executable identities.
    let mut specs: Vec<PatternSpec> = Vec::new();
    for (id, rule) in policy.rules.iter().enumerate() {
        for o in &rule.objects {
            specs.push(PatternSpec {
                text: &o.pattern,
                tag: id as u32,
                mode: Mode::Path,
            });
        }
    }
    for (i, patterns) in atoms.exes.iter().enumerate() {
        for p in patterns {
            specs.push(PatternSpec {
                text: p,
                tag: abi::EXE_TAG_BASE + i as u32,
                mode: Mode::Path,
            });
        }
    }
    let path = dfa::build(&specs, true).map_err(|e| LowerError::Dfa(e.to_string()))?;
    let n_rules = policy.rules.len() as u32;
    let mut synthetic = Synthetic::new(n_rules);
    let mut lists = ListBuilder::new();
    // The list of a possible set, by set id: thousands of states pair one large possible set
    // with different accept sets.
    let mut possible_lists: HashMap<u32, u32> = HashMap::new();
    let path_dfa = path.try_to_table(|accept, possible| {
        let accept_list = lists.intern(accept.tags)?;
        if let Some(&list) = possible_lists.get(&possible.id) {
            return Ok(abi::path_info(accept_list, list));
        }
        // A path cut short grants no executable identity: only rules judge it.
        let mut possible_rules: Vec<u32> = possible
            .tags
            .iter()
            .copied()
            .filter(|&t| t < n_rules)
            .collect();
        if possible_rules.len() > abi::MAX_RULES_PER_LIST {
            // Too many rules could match this path for the kernel to judge them one by one
            // when it is cut short: one synthetic rule refuses it with the most severe of
            // their actions, whoever asks (fail closed).
            possible_rules = vec![synthetic.refuse_all(&rules, &possible_rules)];
        }
        let list = lists.intern(&possible_rules)?;
        possible_lists.insert(possible.id, list);
        Ok(abi::path_info(accept_list, list))
    })?;

    let cmdline = text_dfa(&atoms.cmdline_patterns())?;
    let cmdline_dfa = cmdline.to_table(|accept, _| mask(accept));
    let name_specs: Vec<Vec<String>> = atoms
        .names
        .iter()
        .map(|set| set.iter().map(|n| escape_glob(n)).collect())
        .collect();
    let names = text_dfa(&name_specs)?;
    let name_dfa = names.to_table(|accept, _| mask(accept));

    let warnings = lints::check(policy, &all_terms, &path);
    let synthetic = synthetic.finish();
    rules.extend(synthetic.iter().map(|s| s.entry));
    let stats = Stats {
        path_states_before_min: path.states_before_min,
        path_states: path.n_states(),
        path_classes: path.n_classes(),
        cmdline_states: cmdline.n_states(),
    };
    Ok(Lowered {
        path_dfa,
        cmdline_dfa,
        name_dfa,
        rules,
        rule_lists: lists.finish(),
        identities: atoms.identity_texts(),
        exes: atoms.exes.iter().map(|p| p.join(" ")).collect(),
        names: atoms.names.iter().map(|n| n.join(" ")).collect(),
        uids: atoms
            .uids
            .iter()
            .map(|u| match u {
                UidRef::Number(n) => *n,
                UidRef::Name(_) => abi::UNRESOLVED_UID,
            })
            .collect(),
        users: atoms
            .uids
            .iter()
            .enumerate()
            .filter_map(|(slot, u)| match u {
                UidRef::Name(name) => Some(abi::UserSlot {
                    slot: slot as u32,
                    name: name.clone(),
                }),
                UidRef::Number(_) => None,
            })
            .collect(),
        uses_tty: atoms.tty,
        scopes: atoms.scopes.clone(),
        synthetic,
        warnings,
        stats,
    })
}

fn mask(accept: &[u32]) -> u64 {
    accept.iter().fold(0u64, |m, &i| m | (1 << (i & 63)))
}

/// A forward Text-mode DFA where identity `i` is any of `sets[i]`.
fn text_dfa(sets: &[Vec<String>]) -> Result<dfa::Dfa, LowerError> {
    let specs: Vec<PatternSpec> = sets
        .iter()
        .enumerate()
        .flat_map(|(i, set)| {
            set.iter().map(move |text| PatternSpec {
                text,
                tag: i as u32,
                mode: Mode::Text,
            })
        })
        .collect();
    dfa::build(&specs, false).map_err(|e| LowerError::Dfa(e.to_string()))
}

fn action_of(enforce: Enforce) -> Action {
    match enforce {
        Enforce::Kill => Action::Kill,
        Enforce::Deny => Action::Deny,
        Enforce::None => Action::Alert,
    }
}

/// Exact strings go into Text-mode globs escaped.
pub(crate) fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Which word an `ancestor`/`image` atom lands in.
fn ancestry_word(image: bool, which: Which) -> usize {
    match (image, which) {
        (false, Which::Pid1) => abi::WORD_PID1,
        (false, Which::Any) => abi::WORD_ANC,
        (true, Which::Pid1) => abi::WORD_IMG_PID1,
        // A process forked without exec has its parent's command line: `image(any, X)` is the
        // process's own command line being X.
        (true, Which::Any) => abi::WORD_SELF,
    }
}

/// A rule the compiler adds: today only "refuse whoever opens a path too long to judge
/// precisely, when more rules could match it than the kernel judges one by one".
#[derive(Clone, Copy, Debug)]
pub struct SyntheticRule {
    pub entry: RuleEntry,
    /// How many of the policy's rules it stands for.
    pub covers: usize,
}

struct Synthetic {
    first_id: u32,
    rules: Vec<SyntheticRule>,
    by_shape: HashMap<(u32, u32), u32>,
}

impl Synthetic {
    fn new(first_id: u32) -> Synthetic {
        Synthetic {
            first_id,
            rules: Vec::new(),
            by_shape: HashMap::new(),
        }
    }

    /// The id of a subject-less rule with the most severe action and all the operations of
    /// `ids`.
    fn refuse_all(&mut self, rules: &[RuleEntry], ids: &[u32]) -> u32 {
        let action = ids
            .iter()
            .map(|&i| rules[i as usize].action)
            .max()
            .unwrap_or(0);
        let ops = ids.iter().fold(0, |o, &i| o | rules[i as usize].ops);
        let next = self.first_id + self.rules.len() as u32;
        let id = *self.by_shape.entry((action, ops)).or_insert(next);
        if id == next {
            self.rules.push(SyntheticRule {
                entry: RuleEntry {
                    n_terms: 0,
                    action,
                    ops,
                    ..RuleEntry::default()
                },
                covers: ids.len(),
            });
        } else if let Some(r) = self.rules.get_mut((id - self.first_id) as usize) {
            r.covers = r.covers.max(ids.len());
        }
        id
    }

    fn finish(self) -> Vec<SyntheticRule> {
        self.rules
    }
}

/// Interns tag lists into the flat `u16` table.
struct ListBuilder {
    flat: Vec<u16>,
    index: HashMap<Vec<u32>, u32>,
}

impl ListBuilder {
    fn new() -> ListBuilder {
        ListBuilder {
            flat: vec![0],
            index: HashMap::new(),
        }
    }

    fn intern(&mut self, tags: &[u32]) -> Result<u32, LowerError> {
        if tags.is_empty() {
            return Ok(0);
        }
        if tags.len() > abi::MAX_RULES_PER_LIST {
            return Err(LowerError::TooManyRulesPerPath { count: tags.len() });
        }
        if let Some(&i) = self.index.get(tags) {
            return Ok(i);
        }
        let at = self.flat.len() as u32;
        self.flat.push(tags.len() as u16);
        self.flat.extend(tags.iter().map(|&r| r as u16));
        self.index.insert(tags.to_vec(), at);
        Ok(at)
    }

    fn finish(self) -> Vec<u16> {
        self.flat
    }
}

#[cfg(test)]
mod tests;

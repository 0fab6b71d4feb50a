//! Lowering: a checked policy becomes the tables the kernel programs read.
//!
//! - the **path DFA**: every rule's path patterns, reversed (the kernel feeds a path last byte
//!   first), tagged with the rule id; each state's info word points at two rule lists (rules
//!   accepting here, rules that could still accept from here);
//! - the **identity table**: the command lines the subjects name, as a forward DFA whose
//!   states' info words are identity bitmasks;
//! - the **verdict table**: one [`RuleEntry`] per rule, its subject in disjunctive normal form
//!   over the task's identity words, and its action.

use std::collections::HashMap;

use guard_ebpf::abi::{self, Action, RuleEntry, Term};
use guard_ebpf::dfa_table::DfaTable;

use crate::checked::{self, Enforce, Subject, Which};
use crate::dfa::{self, Mode, PatternSpec};
use crate::span::Span;

/// Identities a policy may name (one bit each in a 64-bit word).
pub const MAX_IDENTITIES: usize = 64;

/// The tables of one policy.
#[derive(Debug)]
pub struct Lowered {
    pub path_dfa: DfaTable,
    pub cmdline_dfa: DfaTable,
    pub rules: Vec<RuleEntry>,
    /// Flat `u16` rule lists: `[len, rule…]` per list, list 0 empty.
    pub rule_lists: Vec<u16>,
    /// Identity `i` is the command line `identities[i]`.
    pub identities: Vec<String>,
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
    #[error(
        "the policy names {count} different command lines; at most {MAX_IDENTITIES} are supported"
    )]
    TooManyIdentities { count: usize, span: Span },
    #[error("this subject has more than {max} alternatives once expanded; simplify it", max = abi::MAX_TERMS)]
    SubjectTooComplex { span: Span },
    #[error("{count} rules could apply to one path; at most {max} are supported", max = abi::MAX_RULES_PER_LIST)]
    TooManyRulesPerPath { count: usize },
    #[error("the path patterns do not fit in a table: {0}")]
    Dfa(String),
}

impl LowerError {
    pub fn span(&self) -> Option<Span> {
        match self {
            LowerError::TooManyIdentities { span, .. } | LowerError::SubjectTooComplex { span } => {
                Some(*span)
            }
            _ => None,
        }
    }
}

pub fn lower(policy: &checked::Policy) -> Result<Lowered, LowerError> {
    let identities = collect_identities(policy)?;
    let index: HashMap<&str, usize> = identities
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();

    let mut rules = Vec::with_capacity(policy.rules.len());
    for rule in &policy.rules {
        let terms = dnf(&rule.subject, &index, rule.span)?;
        let mut entry = RuleEntry {
            n_terms: terms.len() as u32,
            action: action_of(rule.enforce) as u32,
            ..RuleEntry::default()
        };
        entry.terms[..terms.len()].copy_from_slice(&terms);
        rules.push(entry);
    }

    // Path DFA, reversed, tagged by rule id.
    let specs: Vec<PatternSpec> = policy
        .rules
        .iter()
        .enumerate()
        .flat_map(|(id, rule)| {
            rule.patterns.iter().map(move |p| PatternSpec {
                text: &p.text,
                tag: id as u32,
                mode: Mode::Path,
            })
        })
        .collect();
    let path = dfa::build(&specs, true).map_err(|e| LowerError::Dfa(e.to_string()))?;
    let mut lists = ListBuilder::new();
    let mut infos: HashMap<(Vec<u32>, Vec<u32>), u64> = HashMap::new();
    for state in 1..path.n_states() as u32 {
        let (accept, possible) = (path.accepts(state), path.possible(state));
        let info = abi::path_info(lists.intern(accept)?, lists.intern(possible)?);
        infos.insert((accept.to_vec(), possible.to_vec()), info);
    }
    let path_dfa = path.to_table(|accept, possible| {
        infos
            .get(&(accept.to_vec(), possible.to_vec()))
            .copied()
            .unwrap_or(0)
    });

    // Identity DFA, forward; command lines are exact strings, so glob characters are escaped.
    let escaped: Vec<String> = identities.iter().map(|s| escape_glob(s)).collect();
    let specs: Vec<PatternSpec> = escaped
        .iter()
        .enumerate()
        .map(|(i, text)| PatternSpec {
            text,
            tag: i as u32,
            mode: Mode::Text,
        })
        .collect();
    let cmdline = dfa::build(&specs, false).map_err(|e| LowerError::Dfa(e.to_string()))?;
    let cmdline_dfa = cmdline.to_table(|accept, _| accept.iter().fold(0u64, |m, &i| m | (1 << i)));

    let stats = Stats {
        path_states_before_min: path.states_before_min,
        path_states: path.n_states(),
        path_classes: path.n_classes(),
        cmdline_states: cmdline.n_states(),
    };
    Ok(Lowered {
        path_dfa,
        cmdline_dfa,
        rules,
        rule_lists: lists.finish(),
        identities,
        stats,
    })
}

fn action_of(enforce: Enforce) -> Action {
    match enforce {
        Enforce::Kill => Action::Kill,
        Enforce::Deny => Action::Deny,
        Enforce::None => Action::Alert,
    }
}

fn collect_identities(policy: &checked::Policy) -> Result<Vec<String>, LowerError> {
    fn walk<'a>(s: &'a Subject, out: &mut Vec<(&'a str, Span)>) {
        match s {
            Subject::Ancestor { cmdline, span, .. } => out.push((cmdline, *span)),
            Subject::And(a, b) | Subject::Or(a, b) => {
                walk(a, out);
                walk(b, out);
            }
            Subject::Not(a) => walk(a, out),
        }
    }
    let mut all = Vec::new();
    for rule in &policy.rules {
        walk(&rule.subject, &mut all);
    }
    let mut seen: Vec<String> = Vec::new();
    for (cmdline, span) in all {
        if !seen.iter().any(|s| s == cmdline) {
            if seen.len() == MAX_IDENTITIES {
                return Err(LowerError::TooManyIdentities {
                    count: seen.len() + 1,
                    span,
                });
            }
            seen.push(cmdline.to_string());
        }
    }
    Ok(seen)
}

/// A subject in disjunctive normal form. Negation is pushed down to the atoms first; a
/// conjunction that requires and forbids the same bit is dropped (it can never hold).
fn dnf(s: &Subject, index: &HashMap<&str, usize>, span: Span) -> Result<Vec<Term>, LowerError> {
    let terms = dnf_rec(s, false, index, span)?;
    if terms.len() > abi::MAX_TERMS {
        return Err(LowerError::SubjectTooComplex { span });
    }
    Ok(terms)
}

fn dnf_rec(
    s: &Subject,
    negated: bool,
    index: &HashMap<&str, usize>,
    span: Span,
) -> Result<Vec<Term>, LowerError> {
    // Bound intermediate growth too, so a pathological subject cannot explode memory.
    const LIMIT: usize = 64;
    let out = match (s, negated) {
        (Subject::Ancestor { which, cmdline, .. }, neg) => {
            let word = match which {
                Which::Pid1 => abi::WORD_PID1,
                Which::Any => abi::WORD_ANC,
            };
            let bit = 1u64 << index[cmdline.as_str()];
            let mut t = Term::default();
            if neg {
                t.must_not[word] = bit;
            } else {
                t.must[word] = bit;
            }
            vec![t]
        }
        (Subject::Not(a), neg) => dnf_rec(a, !neg, index, span)?,
        (Subject::Or(a, b), false) | (Subject::And(a, b), true) => {
            let mut l = dnf_rec(a, negated, index, span)?;
            l.extend(dnf_rec(b, negated, index, span)?);
            l
        }
        (Subject::And(a, b), false) | (Subject::Or(a, b), true) => {
            let l = dnf_rec(a, negated, index, span)?;
            let r = dnf_rec(b, negated, index, span)?;
            let mut out = Vec::new();
            for x in &l {
                for y in &r {
                    let mut t = *x;
                    for w in 0..abi::N_WORDS {
                        t.must[w] |= y.must[w];
                        t.must_not[w] |= y.must_not[w];
                    }
                    if (0..abi::N_WORDS).all(|w| t.must[w] & t.must_not[w] == 0) {
                        out.push(t);
                    }
                }
            }
            out
        }
    };
    let mut out = out;
    out.dedup();
    if out.len() > LIMIT {
        return Err(LowerError::SubjectTooComplex { span });
    }
    Ok(out)
}

fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Interns rule lists into the flat `u16` table.
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

    fn intern(&mut self, rules: &[u32]) -> Result<u32, LowerError> {
        if rules.is_empty() {
            return Ok(0);
        }
        if rules.len() > abi::MAX_RULES_PER_LIST {
            return Err(LowerError::TooManyRulesPerPath { count: rules.len() });
        }
        if let Some(&i) = self.index.get(rules) {
            return Ok(i);
        }
        let at = self.flat.len() as u32;
        self.flat.push(rules.len() as u16);
        self.flat.extend(rules.iter().map(|&r| r as u16));
        self.index.insert(rules.to_vec(), at);
        Ok(at)
    }

    fn finish(self) -> Vec<u16> {
        self.flat
    }
}

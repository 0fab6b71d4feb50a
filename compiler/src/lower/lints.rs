//! What a user gets wrong that only the tables show: a rule that can never fire, and rules that
//! cover the same files with different subjects (every covering rule must allow, so a process
//! one of them allows is still refused by the other).

use guard_ebpf::abi::Term;

use super::ops_of;
use super::subject::{Atoms, dnf_negated};
use crate::checked::{self, Enforce};
use crate::dfa::Dfa;
use crate::diag::codes;
use crate::span::Span;

/// A warning found while lowering, rendered by the CLI like the front end's warnings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowerWarning {
    pub code: &'static str,
    pub message: String,
    pub span: Span,
    pub label: String,
    pub secondary: Vec<(Span, String)>,
    pub help: Option<String>,
}

pub fn check(policy: &checked::Policy, terms: &[Vec<Term>], path: &Dfa) -> Vec<LowerWarning> {
    let mut out = Vec::new();
    let mut atoms = Atoms::default();
    for r in &policy.rules {
        let _ = atoms.collect(&r.subject);
    }
    for rule in &policy.rules {
        // Allows everyone iff `not subject` can never hold.
        if let Ok(neg) = dnf_negated(&rule.subject, &atoms, rule.span)
            && neg.is_empty()
        {
            out.push(LowerWarning {
                code: codes::NEVER_FIRES,
                message: "this rule allows every process, so it can never fire".into(),
                span: rule.span,
                label: "its subject always holds".into(),
                secondary: Vec::new(),
                help: Some("check the `not`s in the subject".into()),
            });
        }
    }
    // Pairs of enforcing rules that share a path (some DFA state accepts both) and an
    // operation, with different subjects.
    let mut reported = std::collections::HashSet::new();
    for state in 1..path.n_states() as u32 {
        let accept: Vec<u32> = path
            .accepts(state)
            .iter()
            .copied()
            .filter(|&t| (t as usize) < policy.rules.len())
            .collect();
        for (i, &a) in accept.iter().enumerate() {
            for &b in &accept[i + 1..] {
                let (ra, rb) = (&policy.rules[a as usize], &policy.rules[b as usize]);
                let enforcing = |r: &checked::Rule| r.enforce != Enforce::None;
                if !enforcing(ra) || !enforcing(rb) {
                    continue;
                }
                if ops_of(ra.operation) & ops_of(rb.operation) == 0 {
                    continue;
                }
                if terms[a as usize] == terms[b as usize] || !reported.insert((a, b)) {
                    continue;
                }
                out.push(LowerWarning {
                    code: codes::OVERLAPPING_RULES,
                    message: format!(
                        "`{}` and `{}` cover some of the same files with different subjects",
                        ra.name, rb.name
                    ),
                    span: rb.span,
                    label: "this rule also covers them".into(),
                    secondary: vec![(ra.span, "so does this one".into())],
                    help: Some(
                        "every rule that covers a file must allow the process: a process only \
                         one of these allows is refused by the other; merge the subjects with \
                         `or` in one rule, or narrow the patterns"
                            .into(),
                    ),
                });
            }
        }
    }
    out
}

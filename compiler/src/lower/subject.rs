//! Subjects: each atom becomes one bit of one identity word, and a subject becomes a
//! disjunction of conjunctions ([`Term`]s) over those bits.

use guard_ebpf::abi::{self, Term};

use super::{LowerError, ancestry_word, escape_glob};
use crate::checked::{Scope, Subject, Which};

/// A uid-table entry: a number, or a user name the runtime resolves on the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UidRef {
    Number(u32),
    Name(String),
}

/// The scope with its member set sorted and deduplicated, so that `k8s_namespace("a", "b")`
/// and `k8s_namespace("b", "a")` share one bit.
fn canonical(scope: &Scope) -> Scope {
    let mut scope = scope.clone();
    match &mut scope {
        Scope::Cgroup { .. } => {}
        Scope::Container { names } | Scope::K8sNamespace { names } => {
            names.sort();
            names.dedup();
        }
        Scope::PodLabel { labels } => {
            labels.sort();
            labels.dedup();
        }
    }
    scope
}
use crate::span::Span;

/// The atoms of a policy's subjects, each with its bit.
#[derive(Default, Debug)]
pub struct Atoms {
    /// Command-line identities: the Text-mode pattern (exact strings escaped) and the text as
    /// written. Bit `i` of the SELF/ANC/PID1/IMG_PID1 words.
    cmdlines: Vec<(String, String)>,
    /// `exe(…)` atoms, each a sorted set of path patterns. Bit `i` of the EXE word, and of the
    /// ANC_EXE and PID1_EXE words for `ancestor(…, exe(…))`.
    pub exes: Vec<Vec<String>>,
    /// `name(…)` atoms, each a sorted set of names. Bit `i` of the NAMES word.
    pub names: Vec<Vec<String>>,
    /// `uid(…)` and `user(…)` atoms. Bit `i` of the UIDS word.
    pub uids: Vec<UidRef>,
    /// Scopes, member sets sorted. Bit `i` of the SCOPES word.
    pub scopes: Vec<Scope>,
    pub tty: bool,
}

fn intern<T: PartialEq + Clone>(
    v: &mut Vec<T>,
    x: &T,
    max: usize,
    what: &'static str,
    span: Span,
) -> Result<usize, LowerError> {
    if let Some(i) = v.iter().position(|y| y == x) {
        return Ok(i);
    }
    if v.len() == max {
        return Err(LowerError::TooMany { what, max, span });
    }
    v.push(x.clone());
    Ok(v.len() - 1)
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

impl Atoms {
    /// Gives every atom of `s` its bit.
    pub fn collect(&mut self, s: &Subject) -> Result<(), LowerError> {
        match s {
            Subject::Ancestor { cmdline, span, .. } | Subject::Image { cmdline, span, .. } => {
                let key = (escape_glob(cmdline), cmdline.clone());
                intern(&mut self.cmdlines, &key, 64, "command lines", *span)?;
            }
            Subject::Cmdline { pattern, span } => {
                let key = (pattern.clone(), pattern.clone());
                intern(&mut self.cmdlines, &key, 64, "command lines", *span)?;
            }
            Subject::Exe { patterns, span } | Subject::AncestorExe { patterns, span, .. } => {
                intern(
                    &mut self.exes,
                    &sorted(patterns),
                    abi::MAX_EXE_IDS,
                    "exe() sets",
                    *span,
                )?;
            }
            Subject::Name { names, span } => {
                intern(
                    &mut self.names,
                    &sorted(names),
                    abi::MAX_NAME_IDS,
                    "name() sets",
                    *span,
                )?;
            }
            Subject::Uid { uid, span } => {
                let key = UidRef::Number(*uid);
                intern(&mut self.uids, &key, abi::MAX_UIDS, "uids and users", *span)?;
            }
            Subject::User { name, span } => {
                let key = UidRef::Name(name.clone());
                intern(&mut self.uids, &key, abi::MAX_UIDS, "uids and users", *span)?;
            }
            Subject::Tty { .. } => self.tty = true,
            Subject::Scope { scope, span } => {
                intern(
                    &mut self.scopes,
                    &canonical(scope),
                    abi::MAX_SCOPES,
                    "scopes (cgroup, container, k8s_namespace, pod_label)",
                    *span,
                )?;
            }
            Subject::Entered { .. } | Subject::Nobody { .. } => {}
            Subject::And(a, b) | Subject::Or(a, b) => {
                self.collect(a)?;
                self.collect(b)?;
            }
            Subject::Not(a) => self.collect(a)?,
        }
        Ok(())
    }

    /// The identity DFA's pattern sets (one pattern per identity).
    pub fn cmdline_patterns(&self) -> Vec<Vec<String>> {
        self.cmdlines.iter().map(|(p, _)| vec![p.clone()]).collect()
    }

    pub fn identity_texts(&self) -> Vec<String> {
        self.cmdlines.iter().map(|(_, t)| t.clone()).collect()
    }

    /// The word and bit of an atom (`None` for connectives).
    fn literal(&self, s: &Subject) -> Option<(usize, u64)> {
        let bit = |i: Option<usize>| i.map(|i| 1u64 << i);
        let find = |key: &str| self.cmdlines.iter().position(|(p, _)| p == key);
        let (word, b) = match s {
            Subject::Ancestor { which, cmdline, .. } => (
                ancestry_word(false, *which),
                bit(find(&escape_glob(cmdline))),
            ),
            Subject::Image { which, cmdline, .. } => (
                ancestry_word(true, *which),
                bit(find(&escape_glob(cmdline))),
            ),
            Subject::Cmdline { pattern, .. } => (abi::WORD_SELF, bit(find(pattern))),
            Subject::Exe { patterns, .. } => {
                let key = sorted(patterns);
                (abi::WORD_EXE, bit(self.exes.iter().position(|e| *e == key)))
            }
            // The same `exe(…)` set, and so the same bit, in the ancestry words.
            Subject::AncestorExe {
                which, patterns, ..
            } => {
                let key = sorted(patterns);
                let word = match which {
                    Which::Any => abi::WORD_ANC_EXE,
                    Which::Pid1 => abi::WORD_PID1_EXE,
                };
                (word, bit(self.exes.iter().position(|e| *e == key)))
            }
            Subject::Name { names, .. } => {
                let key = sorted(names);
                (
                    abi::WORD_NAMES,
                    bit(self.names.iter().position(|e| *e == key)),
                )
            }
            Subject::Uid { uid, .. } => {
                let key = UidRef::Number(*uid);
                (
                    abi::WORD_UIDS,
                    bit(self.uids.iter().position(|u| *u == key)),
                )
            }
            Subject::User { name, .. } => {
                let key = UidRef::Name(name.clone());
                (
                    abi::WORD_UIDS,
                    bit(self.uids.iter().position(|u| *u == key)),
                )
            }
            Subject::Tty { .. } => (abi::WORD_FLAGS, Some(abi::FLAG_TTY)),
            Subject::Entered { .. } => (abi::WORD_FLAGS, Some(abi::FLAG_ENTERED)),
            Subject::Scope { scope, .. } => {
                let key = canonical(scope);
                (
                    abi::WORD_SCOPES,
                    bit(self.scopes.iter().position(|c| *c == key)),
                )
            }
            _ => return None,
        };
        b.map(|b| (word, b))
    }
}

/// A subject in disjunctive normal form. Negation is pushed down to the atoms first; a
/// conjunction that requires and forbids the same bit is dropped (it can never hold).
pub fn dnf(s: &Subject, atoms: &Atoms, span: Span) -> Result<Vec<Term>, LowerError> {
    let terms = dnf_rec(s, false, atoms, span)?;
    if terms.len() > abi::MAX_TERMS {
        return Err(LowerError::SubjectTooComplex { span });
    }
    Ok(terms)
}

/// `not s` in disjunctive normal form, without the `MAX_TERMS` limit (for lints).
pub fn dnf_negated(s: &Subject, atoms: &Atoms, span: Span) -> Result<Vec<Term>, LowerError> {
    dnf_rec(s, true, atoms, span)
}

fn dnf_rec(s: &Subject, negated: bool, atoms: &Atoms, span: Span) -> Result<Vec<Term>, LowerError> {
    // Bound intermediate growth too, so a pathological subject cannot explode memory.
    const LIMIT: usize = 64;
    let mut out = match s {
        Subject::Not(a) => dnf_rec(a, !negated, atoms, span)?,
        // No process: false, the empty disjunction; negated, true, the empty conjunction.
        Subject::Nobody { .. } if negated => vec![Term::default()],
        Subject::Nobody { .. } => Vec::new(),
        Subject::Or(a, b) | Subject::And(a, b) if matches!(s, Subject::Or(..)) != negated => {
            let mut l = dnf_rec(a, negated, atoms, span)?;
            l.extend(dnf_rec(b, negated, atoms, span)?);
            l
        }
        Subject::Or(a, b) | Subject::And(a, b) => {
            let l = dnf_rec(a, negated, atoms, span)?;
            let r = dnf_rec(b, negated, atoms, span)?;
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
        atom => {
            let (word, bit) = atoms.literal(atom).ok_or(LowerError::Dfa(
                "internal error: an atom without a bit".to_string(),
            ))?;
            let mut t = Term::default();
            if negated {
                t.must_not[word] = bit;
            } else {
                t.must[word] = bit;
            }
            vec![t]
        }
    };
    out.sort_by_key(|t| (t.must, t.must_not));
    out.dedup();
    if out.len() > LIMIT {
        return Err(LowerError::SubjectTooComplex { span });
    }
    Ok(out)
}

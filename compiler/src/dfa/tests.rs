use guard_ebpf::dfa_table::DfaTable;

use super::*;

mod compose;

/// xorshift64*: deterministic, no crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() >> 33) as usize % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Independent reference: backtracking matcher on the pattern text.
fn glob_match(p: &[u8], s: &[u8], path: bool) -> bool {
    match p {
        [] => s.is_empty(),
        [b'\\', x, rest @ ..] => s.first() == Some(x) && glob_match(rest, &s[1..], path),
        [b'*', b'*'] if path => true,
        [b'*', b'*', b'/', rest @ ..] if path => {
            // Zero components, or consume everything up to and including
            // some `/` of the subject.
            glob_match(rest, s, path)
                || (0..s.len()).any(|i| s[i] == b'/' && glob_match(rest, &s[i + 1..], path))
        }
        [b'*', rest @ ..] => {
            let mut i = 0;
            loop {
                if glob_match(rest, &s[i..], path) {
                    return true;
                }
                if i == s.len() || (path && s[i] == b'/') {
                    return false;
                }
                i += 1;
            }
        }
        [b'?', rest @ ..] => match s.first() {
            Some(&c) if !(path && c == b'/') => glob_match(rest, &s[1..], path),
            _ => false,
        },
        [c, rest @ ..] => s.first() == Some(c) && glob_match(rest, &s[1..], path),
    }
}

/// Packs accept tags into the low 32 bits and possible tags into the high.
fn info(accept: &[u32], possible: &[u32]) -> u64 {
    let bits = |set: &[u32]| set.iter().fold(0u64, |m, &t| m | 1 << (t % 32));
    bits(accept) | bits(possible) << 32
}

fn tags_matching(patterns: &[(String, u32)], input: &[u8], path: bool) -> Vec<u32> {
    let mut tags: Vec<u32> = patterns
        .iter()
        .filter(|(p, _)| glob_match(p.as_bytes(), input, path))
        .map(|&(_, t)| t)
        .collect();
    tags.sort_unstable();
    tags.dedup();
    tags
}

fn gen_pattern(rng: &mut Rng, path: bool) -> String {
    let mut s = String::new();
    if !path {
        let mut last_star = false;
        for _ in 0..rng.below(7) {
            let tok = rng.pick(&["a", "b", " ", "/", "*", "?", "\\*", "a", "b"]);
            if !(tok == "*" && last_star) {
                s.push_str(tok);
            }
            last_star = tok == "*";
        }
        return s;
    }
    let n = 1 + rng.below(4);
    for i in 0..n {
        if i > 0 || rng.below(8) != 0 {
            s.push('/');
        } else {
            s.push_str("**/");
        }
        if rng.below(5) == 0 {
            s.push_str("**");
            continue;
        }
        let mut last_star = false;
        for _ in 0..rng.below(4) {
            let tok = rng.pick(&["a", "b", ".", "*", "?", "\\*", "\\a", "a", "b"]);
            if !(tok == "*" && last_star) {
                s.push_str(tok);
            }
            last_star = tok == "*";
        }
    }
    s
}

/// A random subject built from `p` so that it usually matches.
fn instantiate(rng: &mut Rng, p: &[u8], path: bool) -> Vec<u8> {
    let alpha: &[u8] = if path { b"ab.*?\\" } else { b"ab /*" };
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' if i + 1 < p.len() => {
                out.push(p[i + 1]);
                i += 2;
            }
            b'*' if path && p.get(i + 1) == Some(&b'*') => {
                for _ in 0..rng.below(3) {
                    out.extend((0..rng.below(3)).map(|_| alpha[rng.below(alpha.len())]));
                    out.push(b'/');
                }
                if i + 2 == p.len() {
                    out.extend((0..rng.below(3)).map(|_| alpha[rng.below(alpha.len())]));
                }
                i += 3;
            }
            b'*' | b'?' => {
                let n = if p[i] == b'?' { 1 } else { rng.below(3) };
                out.extend((0..n).map(|_| alpha[rng.below(alpha.len())]));
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    match rng.below(4) {
        0 if !out.is_empty() => {
            let at = rng.below(out.len());
            out.remove(at);
        }
        1 => {
            let at = rng.below(out.len() + 1);
            out.insert(at, alpha[rng.below(alpha.len())]);
        }
        2 => out.push(b'/'),
        _ => {}
    }
    out
}

fn random_subject(rng: &mut Rng, path: bool) -> Vec<u8> {
    let alpha: &[u8] = if path { b"ab.*" } else { b"ab /*" };
    let mut out = Vec::new();
    for _ in 0..rng.below(5) {
        if path {
            out.push(b'/');
        }
        out.extend((0..rng.below(3)).map(|_| alpha[rng.below(alpha.len())]));
    }
    out
}

/// No two states of `dfa` are equivalent (Moore refinement from scratch).
fn assert_minimal(dfa: &Dfa) {
    let n = dfa.n_states();
    let mut block: Vec<usize> = (0..n).map(|s| dfa.accept[s] as usize).collect();
    loop {
        let mut sigs: Vec<(usize, Vec<usize>)> = (0..n)
            .map(|s| {
                let row = &dfa.trans[s * dfa.n_classes..(s + 1) * dfa.n_classes];
                (block[s], row.iter().map(|&t| block[t as usize]).collect())
            })
            .collect();
        let mut sorted = sigs.clone();
        sorted.sort();
        sorted.dedup();
        let next: Vec<usize> = sigs
            .drain(..)
            .map(|sig| sorted.binary_search(&sig).unwrap_or(0))
            .collect();
        let count = |b: &[usize]| {
            let mut v = b.to_vec();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        if count(&next) == count(&block) {
            assert_eq!(count(&next), n, "DFA is not minimal");
            return;
        }
        block = next;
    }
}

fn check_table(dfa: &Dfa, table: &DfaTable, input: &[u8]) {
    let s = dfa.run(input);
    assert_eq!(table.run(START, input), s);
    assert_eq!(
        table.info(s),
        if s == DEAD {
            0
        } else {
            info(dfa.accepts(s), dfa.possible(s))
        }
    );
}

fn differential(path: bool, seed: u64, trials: usize) {
    let mode = if path { Mode::Path } else { Mode::Text };
    let mut rng = Rng(seed);
    let mut positives = 0;
    for trial in 0..trials {
        let patterns: Vec<(String, u32)> = (0..1 + rng.below(4))
            .map(|_| (gen_pattern(&mut rng, path), rng.below(5) as u32))
            .collect();
        let specs: Vec<PatternSpec> = patterns
            .iter()
            .map(|(text, tag)| PatternSpec {
                text,
                tag: *tag,
                mode,
            })
            .collect();
        let fwd = build(&specs, false).unwrap_or_else(|e| panic!("{patterns:?}: {e}"));
        let rev = build(&specs, true).unwrap_or_else(|e| panic!("{patterns:?}: {e}"));
        assert_minimal(&fwd);
        assert_minimal(&rev);
        let round_trip = |t: DfaTable| {
            DfaTable::from_bytes(
                t.n_states,
                t.n_classes,
                t.state_bits,
                t.class_bits,
                t.bytes().to_vec(),
            )
            .unwrap_or_else(|e| panic!("{patterns:?}: {e}"))
        };
        let (ft, rt) = (
            round_trip(fwd.to_table(info)),
            round_trip(rev.to_table(info)),
        );
        let mut subjects: Vec<Vec<u8>> = (0..20).map(|_| random_subject(&mut rng, path)).collect();
        for _ in 0..30 {
            let (p, _) = &patterns[rng.below(patterns.len())];
            subjects.push(instantiate(&mut rng, p.as_bytes(), path));
        }
        for subject in &subjects {
            let expected = tags_matching(&patterns, subject, path);
            let ctx = format!(
                "trial {trial}: {patterns:?} on {:?}",
                String::from_utf8_lossy(subject)
            );
            let s = fwd.run(subject);
            assert_eq!(fwd.accepts(s), expected.as_slice(), "forward {ctx}");
            let reversed: Vec<u8> = subject.iter().rev().copied().collect();
            let r = rev.run(&reversed);
            assert_eq!(rev.accepts(r), expected.as_slice(), "reversed {ctx}");
            check_table(&fwd, &ft, subject);
            check_table(&rev, &rt, &reversed);
            // Every prefix read so far can still reach each matching tag.
            for cut in 0..=subject.len() {
                let f = fwd.run(&subject[..cut]);
                let r = rev.run(&reversed[..cut]);
                for t in &expected {
                    assert!(fwd.possible(f).contains(t), "possible fwd {cut} {ctx}");
                    assert!(rev.possible(r).contains(t), "possible rev {cut} {ctx}");
                }
            }
            positives += usize::from(!expected.is_empty());
        }
    }
    assert!(
        positives > trials * 10,
        "generator produced too few matches: {positives}"
    );
}

#[test]
fn differential_path_globs() {
    differential(true, 0x9e37_79b9_7f4a_7c15, 400);
}

#[test]
fn differential_text_globs() {
    differential(false, 0xd1b5_4a32_d192_ed03, 300);
}

#[test]
fn reference_matcher_sanity() {
    let m = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes(), true);
    assert!(m("/a/**/b", "/a/b") && m("/a/**/b", "/a/x/b") && m("/a/**/b", "/a/x/y/b"));
    assert!(!m("/a/**/b", "/a/xb") && !m("/a/*", "/a/x/y") && m("/a/*", "/a/"));
    assert!(m("/a/?", "/a/x") && !m("/a/?", "/a//"));
}

fn path_specs<'a>(patterns: &[(&'a str, u32)]) -> Vec<PatternSpec<'a>> {
    patterns
        .iter()
        .map(|&(text, tag)| PatternSpec {
            text,
            tag,
            mode: Mode::Path,
        })
        .collect()
}

fn both(patterns: &[(&str, u32)], subject: &str) -> (Vec<u32>, Vec<u32>) {
    let specs = path_specs(patterns);
    let fwd = build(&specs, false).expect("build");
    let rev = build(&specs, true).expect("build");
    let reversed: Vec<u8> = subject.bytes().rev().collect();
    (
        fwd.accepts(fwd.run(subject.as_bytes())).to_vec(),
        rev.accepts(rev.run(&reversed)).to_vec(),
    )
}

#[test]
fn globstar_semantics() {
    let cases: &[(&str, &str, bool)] = &[
        ("/a/**/b", "/a/b", true),
        ("/a/**/b", "/a/x/b", true),
        ("/a/**/b", "/a/x/y/b", true),
        ("/a/**/b", "/a//b", true),
        ("/a/**/b", "/a/xb", false),
        ("/a/**/b", "/ab", false),
        ("/a/**/b", "/a/b/c", false),
        ("/a/**", "/a/x", true),
        ("/a/**", "/a/x/y", true),
        ("/a/**", "/a/", true),
        ("/a/**", "/a", false),
        ("/a/**", "/ab", false),
        ("**/x", "/x", true),
        ("**/x", "/d/e/x", true),
        ("**/x", "/d/ex", false),
        ("/**", "/", true),
        ("/a/*", "/a/x", true),
        ("/a/*", "/a/", true),
        ("/a/*", "/a/x/y", false),
        ("/a/?", "/a//", false),
        ("/a/\\*", "/a/*", true),
        ("/a/\\*", "/a/x", false),
    ];
    for &(pattern, subject, expected) in cases {
        let want = if expected { vec![4] } else { vec![] };
        assert_eq!(
            both(&[(pattern, 4)], subject),
            (want.clone(), want),
            "{pattern} on {subject}"
        );
    }
}

#[test]
fn minimisation_merges_equivalent_states() {
    let same = build(&path_specs(&[("/a/*", 0), ("/b/*", 0)]), false).expect("build");
    // Before: dead, start, `/`, `/a`, `/b`, `/a/`, `/b/`, and `/a/x`, `/b/x`
    // (the `*` loop is its own NFA state, so `/a/` and `/a/x` are different
    // subsets). After: `/a` ~ `/b`, and `/a/` ~ `/a/x` ~ `/b/` ~ `/b/x`.
    assert_eq!(same.states_before_min, 9);
    assert_eq!(same.n_states(), 5);
    assert!(same.n_states() < same.states_before_min);
    // Classes: `/`, {a, b}, everything else.
    assert_eq!(same.n_classes(), 3);
    assert_eq!(same.class_of(b'a'), same.class_of(b'b'));
    let distinct = build(&path_specs(&[("/a/*", 0), ("/b/*", 1)]), false).expect("build");
    assert_eq!((distinct.states_before_min, distinct.n_states()), (9, 7));
    let text = build(
        &[PatternSpec {
            text: "python app.py",
            tag: 2,
            mode: Mode::Text,
        }],
        false,
    )
    .expect("build");
    assert_eq!(text.n_states(), 15);
    assert_eq!(text.accepts(text.run(b"python app.py")), &[2]);
    assert!(text.accepts(text.run(b"python app.py ")).is_empty());
    assert!(text.accepts(text.run(b"python app.p")).is_empty());
    assert_eq!(text.run(b"python app.py "), DEAD);
    assert_minimal(&same);
    assert_minimal(&distinct);
    assert_minimal(&text);
}

#[test]
fn possible_sets_in_reversed_paths() {
    let specs = path_specs(&[
        ("/mnt/secrets/*", 7),
        ("/etc/passwd", 3),
        ("/home/*/.ssh/**", 9),
    ]);
    let dfa = build(&specs, true).expect("build");
    let rev = |s: &str| s.bytes().rev().collect::<Vec<u8>>();
    let s = dfa.run(&rev("secrets/db-password"));
    assert!(dfa.possible(s).contains(&7), "{:?}", dfa.possible(s));
    assert!(!dfa.possible(s).contains(&3));
    assert!(dfa.accepts(s).is_empty());
    let full = dfa.run_from(s, &rev("/mnt/"));
    assert_eq!(full, dfa.run(&rev("/mnt/secrets/db-password")));
    assert_eq!(dfa.accepts(full), &[7]);
    assert!(dfa.possible(full).contains(&7));
    assert_eq!(dfa.possible(START), &[3, 7, 9]);
    assert!(dfa.accepts(dfa.run(&rev("/mnt/secrets/a/b"))).is_empty());
    assert_eq!(dfa.accepts(dfa.run(&rev("/home/u/.ssh/id_rsa"))), &[9]);
    assert_eq!(dfa.possible(DEAD), &[] as &[u32]);
    let t = dfa.to_table(info);
    // 9 stays possible: `/home/u/.ssh//mnt/secrets/x` ends the same way.
    let bits = 1 << 7 | 1 << (32 + 7) | 1 << (32 + 9);
    assert_eq!(t.info(t.run(START, &rev("/mnt/secrets/x"))), bits);
    let s = dfa.run(&rev("passwd"));
    assert_eq!(dfa.possible(s), &[3, 7, 9]);
    // `/mnt/secrets/passwd` ends in `/passwd` too, but not in `c/passwd`.
    assert_eq!(dfa.possible(dfa.run(&rev("/passwd"))), &[3, 7, 9]);
    assert_eq!(dfa.possible(dfa.run(&rev("c/passwd"))), &[3, 9]);
    assert_eq!(dfa.accepts(dfa.run(&rev("/etc/passwd"))), &[3]);
}

#[test]
fn output_is_canonical() {
    let mut patterns = vec![
        ("/srv/**/key", 1),
        ("/etc/*.conf", 2),
        ("/etc/passwd", 2),
        ("/tmp/?", 3),
    ];
    let a = build(&path_specs(&patterns), true)
        .expect("build")
        .to_table(info);
    let b = build(&path_specs(&patterns), true)
        .expect("build")
        .to_table(info);
    patterns.reverse();
    let c = build(&path_specs(&patterns), true)
        .expect("build")
        .to_table(info);
    assert_eq!(a.bytes(), b.bytes());
    assert_eq!(a.bytes(), c.bytes());
}

#[test]
fn degenerate_languages() {
    let empty = build(&[], false).expect("build");
    assert_eq!(empty.n_states(), 2);
    assert_eq!(empty.run(b""), START);
    assert_eq!(empty.run(b"/x"), DEAD);
    assert_eq!(empty.to_table(info).n_states, 2);
    let all = build(&path_specs(&[("/**", 1)]), false).expect("build");
    // dead (unreachable but kept), start, and "after `/`" accepting all.
    assert_eq!(all.n_states(), 3);
    assert_eq!(all.accepts(all.run(b"/any/thing")), &[1]);
    let t = all.to_table(info);
    assert_eq!(t.run(START, b"/x/y"), 2);
    assert_eq!(t.info(DEAD), 0);
    let text_all = build(
        &[PatternSpec {
            text: "*",
            tag: 0,
            mode: Mode::Text,
        }],
        false,
    )
    .expect("build");
    assert_eq!(text_all.accepts(text_all.run(b"")), &[0]);
}

#[test]
fn errors_are_values() {
    let e = build(&path_specs(&[("/ok", 1), ("/a/**x", 2)]), false);
    assert_eq!(
        e,
        Err(DfaError::Glob {
            index: 1,
            text: "/a/**x".into(),
            error: GlobError {
                offset: 3,
                kind: GlobErrorKind::PartialGlobstar
            },
        })
    );
    assert_eq!(
        build(&path_specs(&[("/a", 65536)]), false),
        Err(DfaError::TagOutOfRange {
            index: 0,
            tag: 65536
        })
    );
    // "the 17th byte from the end is `a`" needs 2^17 states.
    let wide = format!("*a{}", "?".repeat(16));
    let spec = [PatternSpec {
        text: &wide,
        tag: 0,
        mode: Mode::Text,
    }];
    // 2^17 live states plus the dead one.
    let states = (1 << 17) + 1;
    let e = build_limited(&spec, false, states - 1);
    assert_eq!(
        e,
        Err(DfaError::TooManyStates {
            states,
            max: states - 1
        })
    );
    assert_eq!(
        e.map(|_| ()).unwrap_err().to_string(),
        "the DFA has 131073 states after minimisation; a table holds at most 131072"
    );
    // The reversed language is small: 16 bytes, `a`, anything: dead,
    // start, 16 counting states, accepting.
    assert_eq!(build(&spec, true).map(|d| d.n_states()), Ok(19));
}

/// More than 65,536 states: the table switches to u32 transitions and still
/// runs exactly like the DFA.
#[test]
fn wide_tables() {
    let text = format!("*a{}", "?".repeat(16));
    let spec = [PatternSpec {
        text: &text,
        tag: 3,
        mode: Mode::Text,
    }];
    let dfa = build(&spec, false).expect("2^17 + 1 states fit");
    assert_eq!(dfa.n_states(), (1 << 17) + 1);
    let table = dfa.to_table(info);
    assert!(table.layout().wide);
    assert_eq!(table.state_bits, 18);
    let table = DfaTable::from_bytes(
        table.n_states,
        table.n_classes,
        table.state_bits,
        table.class_bits,
        table.bytes().to_vec(),
    )
    .expect("round trip");
    let mut rng = Rng(17);
    for _ in 0..300 {
        let len = rng.below(40);
        let input: Vec<u8> = (0..len)
            .map(|_| if rng.below(2) == 0 { b'a' } else { b'b' })
            .collect();
        check_table(&dfa, &table, &input);
        let matches = len >= 17 && input[len - 17] == b'a';
        assert_eq!(dfa.accepts(dfa.run(&input)) == [3], matches, "{input:?}");
    }
}

#[test]
fn many_patterns() {
    let texts: Vec<String> = (0..1000)
        .map(|i| format!("/srv/app{i}/secrets/*"))
        .collect();
    let specs: Vec<PatternSpec> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| PatternSpec {
            text,
            tag: i as u32 % 16,
            mode: Mode::Path,
        })
        .collect();
    for reversed in [false, true] {
        let dfa = build(&specs, reversed).expect("build");
        assert!(dfa.n_states() < dfa.states_before_min);
        let table = dfa.to_table(info);
        for i in [0usize, 7, 99, 500, 999] {
            let mut path = format!("/srv/app{i}/secrets/token").into_bytes();
            if reversed {
                path.reverse();
            }
            let s = dfa.run(&path);
            assert_eq!(dfa.accepts(s), &[i as u32 % 16]);
            assert_eq!(table.run(START, &path), s);
        }
        let mut miss = b"/srv/app1000/secrets/token".to_vec();
        if reversed {
            miss.reverse();
        }
        assert!(dfa.accepts(dfa.run(&miss)).is_empty());
    }
}

/// `info` runs once per distinct (accept, possible) pair, first seen first,
/// and its error stops the packing.
#[test]
fn try_to_table_calls_info_once_per_pair_of_sets() {
    let texts: Vec<String> = (0..200).map(|i| format!("/srv/app{i}/**")).collect();
    let specs: Vec<PatternSpec> = texts
        .iter()
        .enumerate()
        .map(|(i, text)| PatternSpec {
            text,
            tag: i as u32,
            mode: Mode::Path,
        })
        .collect();
    let dfa = build(&specs, true).expect("build");
    let mut seen: Vec<(u32, u32)> = Vec::new();
    let mut first: Option<(Vec<u32>, Vec<u32>)> = None;
    let table = dfa
        .try_to_table(|accept, possible| {
            assert!(!seen.contains(&(accept.id, possible.id)));
            seen.push((accept.id, possible.id));
            first.get_or_insert_with(|| (accept.tags.to_vec(), possible.tags.to_vec()));
            Ok::<_, ()>(info(accept.tags, possible.tags))
        })
        .expect("packs");
    assert!(seen.len() < dfa.n_states() - 1, "{} pairs", seen.len());
    assert_eq!(table, dfa.to_table(info));
    // First seen first: the start state's pair (every rule still possible).
    let start = (dfa.accepts(START).to_vec(), dfa.possible(START).to_vec());
    assert_eq!(start.1.len(), 200);
    assert_eq!(first, Some(start));
    let mut calls = 0;
    let failed = dfa.try_to_table(|_, _| {
        calls += 1;
        if calls == 3 { Err("stop") } else { Ok(0) }
    });
    assert_eq!(failed, Err("stop"));
    assert_eq!(calls, 3);
}

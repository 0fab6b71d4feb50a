//! The compositional construction against the direct one: same tables.

use super::*;
use crate::dfa::compose::{BUDGET_FLOOR, Strategy};

/// Patterns with shared heads and tails and `**` on both sides of a body:
/// reversed, a trailing `**` is a loop at the start and a leading `/*/**/`
/// one that stays once reached, the shape whose subsets multiply.
fn gen_family(rng: &mut Rng) -> String {
    let heads = ["/", "/*/**/", "/srv/", "**/", "/a/**/", "/*/"];
    let bodies = ["etc", "ssh", "a*", "*.conf", "?b", "**", "k\\*", "x", "a"];
    let tails = ["", "/**", "/*", "/key", "/**/k?", "/a"];
    let mut s = rng.pick(&heads).to_owned();
    s.push_str(rng.pick(&bodies));
    if rng.below(2) == 0 {
        s.push('/');
        s.push_str(rng.pick(&bodies));
    }
    s.push_str(rng.pick(&tails));
    s
}

/// A subject that strings together instances of several patterns, so that
/// several `**` loops are live at once; sometimes with a byte changed.
fn adversarial(rng: &mut Rng, patterns: &[(String, u32)], path: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let (p, _) = &patterns[rng.below(patterns.len())];
        let mut piece = instantiate(rng, p.as_bytes(), path);
        if path && !out.is_empty() && piece.first() == Some(&b'/') && rng.below(2) == 0 {
            piece.remove(0); // glue `/a/x` and `/b` into `/a/x/b`-like joins
        }
        out.extend(piece);
    }
    if !out.is_empty() && rng.below(4) == 0 {
        let at = rng.below(out.len());
        out[at] = *b"/ab.x".get(rng.below(5)).unwrap_or(&b'/');
    }
    out
}

fn build_as(specs: &[PatternSpec], reversed: bool, strategy: Strategy) -> Dfa {
    build_with(specs, reversed, MAX_STATES, strategy)
        .unwrap_or_else(|e| panic!("{specs:?} ({strategy:?}): {e}"))
}

/// `a` and `b` are the same DFA: same table bytes, same tag sets per state.
fn assert_same(a: &Dfa, b: &Dfa, ctx: &str) {
    assert_eq!(a.n_states(), b.n_states(), "{ctx}");
    assert_eq!(a.class_of, b.class_of, "{ctx}");
    assert_eq!(a.trans, b.trans, "{ctx}");
    for s in 0..a.n_states() as u32 {
        assert_eq!(a.accepts(s), b.accepts(s), "accepts of {s}: {ctx}");
        assert_eq!(a.possible(s), b.possible(s), "possible of {s}: {ctx}");
    }
    assert_eq!(a.to_table(info).bytes(), b.to_table(info).bytes(), "{ctx}");
}

fn compose_vs_direct(path: bool, seed: u64, trials: usize) {
    let mode = if path { Mode::Path } else { Mode::Text };
    let mut rng = Rng(seed);
    let mut positives = 0;
    for trial in 0..trials {
        let distinct_tags = rng.below(2) == 0;
        let n = 2 + rng.below(7);
        let patterns: Vec<(String, u32)> = (0..n)
            .map(|i| {
                let text = if path && rng.below(3) != 0 {
                    gen_family(&mut rng)
                } else {
                    gen_pattern(&mut rng, path)
                };
                let tag = if distinct_tags { i } else { rng.below(3) };
                (text, tag as u32)
            })
            .collect();
        let specs: Vec<PatternSpec> = patterns
            .iter()
            .map(|(text, tag)| PatternSpec {
                text,
                tag: *tag,
                mode,
            })
            .collect();
        for reversed in [false, true] {
            let ctx = format!("trial {trial}, reversed {reversed}: {patterns:?}");
            let direct = build_as(&specs, reversed, Strategy::Direct);
            let split = build_as(&specs, reversed, Strategy::Split);
            let auto = build_as(&specs, reversed, Strategy::Auto);
            assert_minimal(&split);
            assert_same(&direct, &split, &ctx);
            assert_same(&direct, &auto, &ctx);
            let (dt, st) = (direct.to_table(info), split.to_table(info));
            let mut subjects: Vec<Vec<u8>> =
                (0..15).map(|_| random_subject(&mut rng, path)).collect();
            for _ in 0..15 {
                let (p, _) = &patterns[rng.below(patterns.len())];
                subjects.push(instantiate(&mut rng, p.as_bytes(), path));
            }
            subjects.extend((0..15).map(|_| adversarial(&mut rng, &patterns, path)));
            for subject in &subjects {
                let mut input = subject.clone();
                if reversed {
                    input.reverse();
                }
                let expected = tags_matching(&patterns, subject, path);
                let (d, s) = (dt.run(START, &input), st.run(START, &input));
                let on = String::from_utf8_lossy(subject);
                assert_eq!(d, s, "{ctx} on {on:?}");
                assert_eq!(dt.info(d), st.info(s), "{ctx} on {on:?}");
                assert_eq!(split.accepts(s), expected.as_slice(), "{ctx} on {on:?}");
                assert_eq!(direct.accepts(d), expected.as_slice(), "{ctx} on {on:?}");
                positives += usize::from(!expected.is_empty());
            }
        }
    }
    assert!(positives > trials * 10, "too few matches: {positives}");
}

#[test]
fn compose_matches_direct_on_path_globs() {
    compose_vs_direct(true, 0x2545_f491_4f6c_dd1d, 200);
}

#[test]
fn compose_matches_direct_on_text_globs() {
    compose_vs_direct(false, 0x5851_f42d_4c95_7f2d, 150);
}

const NODE_CREDENTIALS: [&str; 13] = [
    "/*/**/etc/shadow",
    "/*/**/etc/gshadow",
    "/*/**/etc/sudoers",
    "/*/**/etc/sudoers.d/**",
    "/*/**/etc/ssh/ssh_host_*_key",
    "/*/**/root/.ssh/**",
    "/*/**/home/*/.ssh/**",
    "/*/**/root/.kube/**",
    "/*/**/etc/kubernetes/*.conf",
    "/*/**/etc/kubernetes/pki/**",
    "/*/**/var/lib/kubelet/pki/**",
    "/*/**/var/lib/kubelet/kubeconfig",
    "/*/**/var/lib/etcd/**",
];

/// policies/node-credentials.grd's list: 108,558 subsets directly, for 177
/// states. The budget stops the direct construction and the halves'
/// products never get near that.
#[test]
fn node_credentials_are_built_by_halves() {
    let specs = path_specs(&NODE_CREDENTIALS.map(|p| (p, 0)));
    let auto = build_as(&specs, true, Strategy::Auto);
    let split = build_as(&specs, true, Strategy::Split);
    assert!(
        auto.states_before_min < BUDGET_FLOOR,
        "{}",
        auto.states_before_min
    );
    assert_same(&auto, &split, "node credentials");
    // The direct construction of all 13 takes seconds in a debug build; 8 of
    // them make 5,454 subsets for 89 states.
    let some = &specs[..8];
    let direct = build_as(some, true, Strategy::Direct);
    assert!(direct.states_before_min > 20 * direct.n_states());
    assert_same(&direct, &build_as(some, true, Strategy::Split), "7 of them");
    let rev = |s: &str| s.bytes().rev().collect::<Vec<u8>>();
    for (path, hit) in [
        ("/host/etc/shadow", true),
        ("/etc/shadow", false),
        ("/host/a/b/root/.ssh/id_ed25519", true),
        ("/host/var/lib/etcd/member/snap/db", true),
        ("/host/etc/kubernetes/pki/x/ca.key", true),
        ("/host/etc/kubernetes/x/admin.conf", false),
        ("/h/etc/shadow.bak", false),
    ] {
        let s = auto.run(&rev(path));
        assert_eq!(auto.accepts(s) == [0], hit, "{path}");
    }
}

/// Splitting does not lift the unminimised limits: a product past them is
/// the same `Blowup` error as a direct construction past them.
#[test]
fn limits_hold_when_split() {
    // Forward, "the 11th byte from the end is `a`" and "... is `b`": 2^11
    // states each, but 3^11 = 177,147 together; the third pattern's bytes
    // make 158 classes, so the product passes the 2^22 transitions after
    // 26,500 states.
    let filler: String = (' '..='~')
        .filter(|c| !matches!(c, '*' | '?' | '\\'))
        .chain('\u{80}'..='\u{bf}')
        .collect();
    let a = format!("*a{}", "?".repeat(10));
    let b = format!("*b{}", "?".repeat(10));
    let spec = |text, tag| PatternSpec {
        text,
        tag,
        mode: Mode::Text,
    };
    let specs = [spec(&a, 0), spec(&b, 1), spec(&filler, 2)];
    match build(&specs, false) {
        Err(DfaError::Blowup { states }) => {
            assert!(states > subset::MAX_RAW_TRANSITIONS / 256, "{states}");
        }
        other => panic!("{:?}", other.map(|d| d.n_states())),
    }
    // Each alone fits.
    for one in &specs {
        assert!(build(std::slice::from_ref(one), false).is_ok());
    }
}

/// Found by fuzzing: one path pattern whose reversed DFA tracks every
/// overlapping start of `k8s_sa_token` across 87 single-byte wildcards. It
/// used to take 5.6 s and make a 51 MB table; the limits refuse it at once.
#[test]
fn a_pattern_with_long_wildcard_runs_is_refused_quickly() {
    let text = format!("/m{}={}k8s_sa_token*", "?".repeat(47), "?".repeat(39));
    let spec = PatternSpec {
        text: &text,
        tag: 0,
        mode: Mode::Path,
    };
    assert!(matches!(
        build(std::slice::from_ref(&spec), true),
        Err(DfaError::Blowup { .. })
    ));
}

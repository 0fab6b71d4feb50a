use super::*;
use crate::frontend::check_source;

fn lower_src(src: &str) -> Lowered {
    let policy = check_source("t.grd", src).unwrap_or_else(|d| panic!("{d:?}"));
    lower(&policy).expect("lowers")
}

#[test]
fn seed_policy_tables() {
    let l = lower_src("guard /mnt/secrets/* allow ancestor(pid1, \"python app.py\") else kill\n");
    assert_eq!(l.rules.len(), 1);
    assert_eq!(l.rules[0].n_terms, 1);
    assert_eq!(l.rules[0].terms[0].must[abi::WORD_PID1], 1);
    assert_eq!(l.rules[0].ops, abi::OP_READ | abi::OP_WRITE);
    assert_eq!(l.identities, vec!["python app.py"]);
    // The reversed path of the secret reaches a state whose accept list holds rule 0.
    let state = l.path_dfa.run(1, b"drowssap-bd/sterces/tnm/");
    let list = (l.path_dfa.info(state) & 0xffff_ffff) as usize;
    assert_eq!(&l.rule_lists[list..list + 2], &[1, 0]);
    // An unrelated path dies.
    assert_eq!(l.path_dfa.run(1, b"dwssap/cte/"), 0);
}

#[test]
fn atoms_share_bits_and_words() {
    let l = lower_src(
        "guard exec \"curl\" allow name(\"a\", \"b\") and not tty or uid(0) or image(pid1, \"x\") else kill\n",
    );
    let t = &l.rules[0].terms;
    assert_eq!(l.rules[0].ops, abi::OP_EXEC);
    assert_eq!(l.rules[0].n_terms, 3);
    let words: Vec<(usize, u64, u64)> = t[..3]
        .iter()
        .flat_map(|t| (0..abi::N_WORDS).map(move |w| (w, t.must[w], t.must_not[w])))
        .filter(|&(_, m, n)| m | n != 0)
        .collect();
    assert!(words.contains(&(abi::WORD_NAMES, 1, 0)));
    assert!(words.contains(&(abi::WORD_FLAGS, 0, abi::FLAG_TTY)));
    assert!(words.contains(&(abi::WORD_UIDS, 1, 0)));
    assert!(words.contains(&(abi::WORD_IMG_PID1, 1, 0)));
    assert!(l.uses_tty);
    assert_eq!(l.uids, vec![0]);
    // The program name is a path pattern matching any directory.
    assert_ne!(l.path_dfa.run(1, b"lruc/nib/rsu/"), 0);
}

#[test]
fn executable_ancestry_shares_the_exe_sets() {
    let l = lower_src(
        "guard /a allow ancestor(any, exe(/usr/sbin/sshd, /usr/sbin/cron)) else kill\n\
         guard /b allow ancestor(pid1, exe(/usr/sbin/cron, /usr/sbin/sshd)) else kill\n\
         guard /c allow exe(/usr/sbin/sshd) and not ancestor(any, exe(/tmp/**)) else kill\n",
    );
    // One set whatever the order, one bit in every word that tests it.
    assert_eq!(
        l.exes,
        vec!["/usr/sbin/cron /usr/sbin/sshd", "/usr/sbin/sshd", "/tmp/**"]
    );
    let only = |r: usize| {
        let t = &l.rules[r].terms[..l.rules[r].n_terms as usize];
        t.iter()
            .flat_map(|t| (0..abi::N_WORDS).map(move |w| (w, t.must[w], t.must_not[w])))
            .filter(|&(_, m, n)| m | n != 0)
            .collect::<Vec<_>>()
    };
    assert_eq!(only(0), vec![(abi::WORD_ANC_EXE, 1, 0)]);
    assert_eq!(only(1), vec![(abi::WORD_PID1_EXE, 1, 0)]);
    assert_eq!(
        only(2),
        vec![(abi::WORD_EXE, 0b10, 0), (abi::WORD_ANC_EXE, 0, 0b100)]
    );
    // The executables are in the path DFA, tagged as executable identities.
    let state = l.path_dfa.run(1, b"dhss/nibs/rsu/");
    let list = (l.path_dfa.info(state) & 0xffff_ffff) as usize;
    let n = usize::from(l.rule_lists[list]);
    let mut tags = l.rule_lists[list + 1..=list + n].to_vec();
    tags.sort_unstable();
    let base = abi::EXE_TAG_BASE as u16;
    assert_eq!(tags, vec![base, base + 1]);
}

#[test]
fn tautology_and_overlap_warnings() {
    let l = lower_src(
        "guard /a/* allow tty or not tty else kill\n\
         guard /a/* allow ancestor(any, \"x\") else kill\n\
         guard /a/b allow ancestor(any, \"y\") else kill\n",
    );
    let codes: Vec<&str> = l.warnings.iter().map(|w| w.code).collect();
    assert!(codes.contains(&"W0101"), "{codes:?}");
    assert!(codes.contains(&"W0102"), "{codes:?}");
}

#[test]
fn nobody_entered_and_cgroup_atoms() {
    let l = lower_src(
        "guard /a allow nobody else alert warning\n\
         guard /b allow not nobody and not entered else kill\n\
         guard /c allow cgroup(\"/kubepods.slice\") or cgroup(\"/x\") else kill\n",
    );
    // `nobody` is the empty disjunction: no term, never allowed.
    assert_eq!(l.rules[0].n_terms, 0);
    let t = &l.rules[1].terms[0];
    assert_eq!(l.rules[1].n_terms, 1);
    assert_eq!(t.must_not[abi::WORD_FLAGS], abi::FLAG_ENTERED);
    assert_eq!(
        l.scopes,
        vec![
            abi::Scope::Cgroup {
                path: "/kubepods.slice".into()
            },
            abi::Scope::Cgroup { path: "/x".into() }
        ]
    );
    assert_eq!(l.rules[2].n_terms, 2);
    assert_eq!(
        l.rules[2].terms[0].must[abi::WORD_SCOPES] | l.rules[2].terms[1].must[abi::WORD_SCOPES],
        0b11
    );
    // `not nobody` always holds: that rule never fires.
    let l = lower_src("guard /a allow not nobody else kill\n");
    assert!(l.warnings.iter().any(|w| w.code == "W0101"));
}

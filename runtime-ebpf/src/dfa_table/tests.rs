use super::*;

/// `ab*` over {a, b}; everything else is class 2. States: 0 dead, 1 start,
/// 2 after `a` (accepting, info 7).
fn ab_star_parts() -> ([u8; 256], [u32; 9], [u64; 3]) {
    let mut class_of = [2u8; 256];
    class_of[usize::from(b'a')] = 0;
    class_of[usize::from(b'b')] = 1;
    (class_of, [0, 0, 0, 2, 0, 0, 0, 2, 0], [0, 0, 7])
}

fn ab_star() -> DfaTable {
    let (class_of, trans, info) = ab_star_parts();
    DfaTable::from_parts(&class_of, 3, &trans, &info).expect("valid table")
}

/// The same DFA in the wide layout.
fn ab_star_wide() -> DfaTable {
    let (class_of, trans, info) = ab_star_parts();
    DfaTable::pack(&class_of, 3, &trans, &info, 17).expect("valid wide table")
}

/// A DFA with no byte classes worth the name: one class, states 1 → 2 → … →
/// n-1 → dead, info `state * 10`.
fn chain(n: u32) -> DfaTable {
    let trans: Vec<u32> = (0..n)
        .map(|s| if s == 0 { 0 } else { (s + 1) % n })
        .collect();
    let info: Vec<u64> = (0..n).map(|s| u64::from(s) * 10).collect();
    DfaTable::from_parts(&[0; 256], 1, &trans, &info).expect("valid chain")
}

#[test]
fn layout_and_offsets() {
    let t = ab_star();
    assert_eq!(
        (t.n_states, t.n_classes, t.state_bits, t.class_bits),
        (3, 3, 2, 2)
    );
    assert!(!t.layout().wide);
    // S = 4, C = 4: 256 + 2*16 + 8*4
    assert_eq!(t.bytes().len(), 256 + 32 + 32);
    assert_eq!(t.offsets(), (0, 256, 288));
    assert_eq!(t.bytes()[usize::from(b'b')], 1);
    // trans[(1 << 2) | 0] = 2, little endian
    assert_eq!(&t.bytes()[256 + 2 * 4..256 + 2 * 4 + 2], &[2, 0]);
    assert_eq!(&t.bytes()[288 + 16..288 + 24], &7u64.to_le_bytes());
}

#[test]
fn wide_layout_and_offsets() {
    let t = ab_star_wide();
    assert_eq!(
        (t.n_states, t.n_classes, t.state_bits, t.class_bits),
        (3, 3, 17, 2)
    );
    let l = t.layout();
    assert!(l.wide);
    assert_eq!((l.entry, l.row_stride, l.rows), (4, 3, 3));
    // 3 rows of 3 u32, then C - K = 1 zero entry: 40 bytes; info at 296.
    assert_eq!(l.entries, 10);
    assert_eq!(t.offsets(), (0, 256, 296));
    assert_eq!(t.bytes().len(), 296 + 8 * 3);
    // trans[1 * 3 + 0] = 2
    assert_eq!(&t.bytes()[256 + 4 * 3..256 + 4 * 4], &[2, 0, 0, 0]);
    assert_eq!(&t.bytes()[296 + 16..296 + 24], &7u64.to_le_bytes());
}

#[test]
fn run_step_info() {
    for t in [ab_star(), ab_star_wide()] {
        assert_eq!(t.step(START_STATE, b'a'), 2);
        assert_eq!(t.step(START_STATE, b'b'), 0);
        assert_eq!(t.run(START_STATE, b"abbb"), 2);
        assert_eq!(t.info(t.run(START_STATE, b"abbb")), 7);
        assert_eq!(t.run(START_STATE, b"abba"), 0);
        assert_eq!(t.run(START_STATE, b""), 1);
        assert_eq!(t.run(START_STATE, b"ba"), 0);
        assert_eq!(t.info(0), 0);
        assert_eq!(t.info(1), 0);
    }
    // Out of range: the narrow layout masks (6 & 3 = 2), the wide one is dead.
    assert_eq!(ab_star().step(6, b'b'), 2);
    assert_eq!(ab_star().info(6), 7);
    assert_eq!(ab_star_wide().step(3, b'b'), 0);
    assert_eq!(ab_star_wide().step(u32::MAX, b'b'), 0);
    assert_eq!(ab_star_wide().info(3), 0);
}

#[test]
fn round_trip() {
    let t = ab_star();
    let back = DfaTable::from_bytes(3, 3, 2, 2, t.bytes().to_vec()).expect("round trip");
    assert_eq!(back, t);
    let w = ab_star_wide();
    let back = DfaTable::from_bytes(3, 3, 17, 2, w.bytes().to_vec()).expect("wide round trip");
    assert_eq!(back, w);
}

#[test]
fn rejects_bad_tables() {
    let t = ab_star();
    let (_, trans_off, info_off) = t.offsets();
    let good = t.bytes().to_vec();
    let mut short = good.clone();
    short.pop();
    assert!(matches!(
        DfaTable::from_bytes(3, 3, 2, 2, short),
        Err(DfaTableError::Size { .. })
    ));
    assert!(matches!(
        DfaTable::from_bytes(3, 3, 2, 2, Vec::new()),
        Err(DfaTableError::Size { .. })
    ));
    // Transition (2, 1) -> 3 with only 3 states.
    let mut out = good.clone();
    out[trans_off + 2 * ((2 << 2) | 1)] = 3;
    assert!(matches!(
        DfaTable::from_bytes(3, 3, 2, 2, out),
        Err(DfaTableError::TransitionOutOfRange {
            state: 2,
            class: 1,
            target: 3,
            ..
        })
    ));
    // High byte of a transition.
    let mut out = good.clone();
    out[trans_off + 2 * (1 << 2) + 1] = 1;
    assert!(matches!(
        DfaTable::from_bytes(3, 3, 2, 2, out),
        Err(DfaTableError::TransitionOutOfRange { target: 258, .. })
    ));
    let mut class = good.clone();
    class[9] = 3;
    assert!(matches!(
        DfaTable::from_bytes(3, 3, 2, 2, class),
        Err(DfaTableError::ClassOutOfRange {
            byte: 9,
            class: 3,
            ..
        })
    ));
    let mut pad = good.clone();
    pad[trans_off + 2 * ((1 << 2) | 3)] = 1;
    assert!(matches!(
        DfaTable::from_bytes(3, 3, 2, 2, pad),
        Err(DfaTableError::NonZeroPadding { state: 1, class: 3 })
    ));
    let mut row = good.clone();
    row[info_off + 8 * 3] = 1;
    assert!(matches!(
        DfaTable::from_bytes(3, 3, 2, 2, row),
        Err(DfaTableError::NonZeroPadding { state: 3, class: 0 })
    ));
    let mut dead = good.clone();
    dead[trans_off] = 1;
    assert_eq!(
        DfaTable::from_bytes(3, 3, 2, 2, dead),
        Err(DfaTableError::DeadStateNotDead)
    );
    let mut dead_info = good.clone();
    dead_info[info_off] = 1;
    assert_eq!(
        DfaTable::from_bytes(3, 3, 2, 2, dead_info),
        Err(DfaTableError::DeadStateNotDead)
    );
    assert_eq!(
        DfaTable::from_bytes(3, 3, 0, 2, good.clone()),
        Err(DfaTableError::StateBits(0))
    );
    assert_eq!(
        DfaTable::from_bytes(3, 3, MAX_STATE_BITS + 1, 2, good.clone()),
        Err(DfaTableError::StateBits(MAX_STATE_BITS + 1))
    );
    assert_eq!(
        DfaTable::from_bytes(3, 3, 2, 1, good.clone()),
        Err(DfaTableError::ClassBits(1))
    );
    assert!(matches!(
        DfaTable::from_bytes(5, 3, 2, 2, good.clone()),
        Err(DfaTableError::StateCount { .. })
    ));
    assert!(matches!(
        DfaTable::from_bytes(3, 5, 2, 2, good.clone()),
        Err(DfaTableError::ClassCount { .. })
    ));
    // A narrow table read as wide (here the sizes happen to agree).
    assert!(DfaTable::from_bytes(3, 3, 17, 2, good).is_err());
}

#[test]
fn rejects_bad_wide_tables() {
    let w = ab_star_wide();
    let (_, trans_off, info_off) = w.offsets();
    let good = w.bytes().to_vec();
    let decode = |bytes: Vec<u8>| DfaTable::from_bytes(3, 3, 17, 2, bytes);
    let mut short = good.clone();
    short.pop();
    assert!(matches!(decode(short), Err(DfaTableError::Size { .. })));
    // Transition (2, 1) -> 3, then one whose third byte is set (65,538).
    let mut out = good.clone();
    out[trans_off + 4 * (2 * 3 + 1)] = 3;
    assert!(matches!(
        decode(out),
        Err(DfaTableError::TransitionOutOfRange {
            state: 2,
            class: 1,
            target: 3,
            ..
        })
    ));
    let mut out = good.clone();
    out[trans_off + 4 * 3 + 2] = 1;
    assert!(matches!(
        decode(out),
        Err(DfaTableError::TransitionOutOfRange {
            state: 1,
            class: 0,
            target: 0x1_0002,
            ..
        })
    ));
    // The zero entry after the last row.
    let mut tail = good.clone();
    tail[trans_off + 4 * 9] = 1;
    assert_eq!(
        decode(tail),
        Err(DfaTableError::NonZeroPadding { state: 3, class: 0 })
    );
    let mut dead = good.clone();
    dead[trans_off + 4] = 1;
    assert_eq!(decode(dead), Err(DfaTableError::DeadStateNotDead));
    let mut dead_info = good.clone();
    dead_info[info_off + 3] = 1;
    assert_eq!(decode(dead_info), Err(DfaTableError::DeadStateNotDead));
    let mut class = good;
    class[200] = 3;
    assert!(matches!(
        decode(class),
        Err(DfaTableError::ClassOutOfRange { byte: 200, .. })
    ));

    // 4 states of 3 classes: 12 + 1 entries, so 4 bytes of gap before info.
    let (mut class_of, mut trans) = ([0u8; 256], vec![0u32; 12]);
    class_of[1] = 2;
    trans[3] = 2;
    trans[6] = 3;
    let t = DfaTable::pack(&class_of, 3, &trans, &[0, 1, 2, 3], 17).expect("valid");
    let (_, _, info_off) = t.offsets();
    assert_eq!(info_off, (256 + 4 * 13usize).next_multiple_of(8));
    assert_eq!(info_off, 256 + 4 * 13 + 4);
    let mut gap = t.bytes().to_vec();
    gap[info_off - 1] = 9;
    assert_eq!(
        DfaTable::from_bytes(4, 3, 17, 2, gap),
        Err(DfaTableError::NonZeroGap {
            offset: info_off - 1
        })
    );
}

#[test]
fn from_parts_checks_shape() {
    let class_of = [0u8; 256];
    assert!(matches!(
        DfaTable::from_parts(&class_of, 1, &[0, 1], &[0, 0, 0]),
        Err(DfaTableError::TransitionCount {
            expected: 3,
            actual: 2
        })
    ));
    assert!(matches!(
        DfaTable::from_parts(&class_of, 1, &[0], &[0]),
        Err(DfaTableError::StateCount { .. })
    ));
    // A target that a u16 entry would truncate to a valid state.
    assert!(matches!(
        DfaTable::from_parts(&class_of, 1, &[0, 0x1_0001, 0], &[0, 0, 0]),
        Err(DfaTableError::TransitionOutOfRange {
            target: 0x1_0001,
            ..
        })
    ));
    let big = 1usize << MAX_STATE_BITS;
    assert_eq!(
        DfaTable::from_parts(&class_of, 1, &vec![0; big + 1], &vec![0; big + 1]),
        Err(DfaTableError::StateBits(MAX_STATE_BITS + 1))
    );
}

#[test]
fn the_layout_follows_the_state_count() {
    // Exactly 2^16 states still fit u16 transitions: narrow, as always.
    let narrow = chain(1 << 16);
    assert_eq!(narrow.state_bits, 16);
    assert!(!narrow.layout().wide);
    assert_eq!(narrow.bytes().len(), 256 + 2 * 65536 * 4 + 8 * 65536);
    // One more: wide, rows not padded to 2^17.
    let n = (1u32 << 16) + 1;
    let wide = chain(n);
    assert_eq!(wide.state_bits, 17);
    assert!(wide.layout().wide);
    let entries = n as usize + 3;
    assert_eq!(
        wide.bytes().len(),
        (256 + 4 * entries).next_multiple_of(8) + 8 * n as usize
    );
    let input = vec![b'x'; n as usize - 2];
    for t in [&narrow, &wide] {
        let last = t.n_states - 1;
        assert_eq!(t.run(START_STATE, &input[..last as usize - 1]), last);
        assert_eq!(t.info(last), u64::from(last) * 10);
        assert_eq!(t.step(last, b'x'), DEAD_STATE);
    }
    // The wide table's last transitions really need more than 16 bits.
    assert_eq!(wide.step(65535, b'x'), 65536);
    assert_eq!(wide.run(START_STATE, &input), n - 1);
    assert_eq!(
        DfaTable::from_bytes(n, 1, 17, 2, wide.bytes().to_vec()).as_ref(),
        Ok(&wide)
    );
}

/// Packs random DFAs both ways: the two layouts must run alike on every state
/// of the DFA and every byte (they differ only past the last state).
#[test]
fn both_layouts_agree() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % u64::from(n)) as u32
    };
    for _ in 0..200 {
        let n_states = 2 + next(40);
        let n_classes = 1 + next(20);
        let class_of: [u8; 256] = std::array::from_fn(|_| next(n_classes) as u8);
        let trans: Vec<u32> = (0..n_states * n_classes)
            .map(|i| if i < n_classes { 0 } else { next(n_states) })
            .collect();
        let info: Vec<u64> = (0..n_states)
            .map(|s| if s == 0 { 0 } else { u64::from(next(1000)) })
            .collect();
        let narrow = DfaTable::from_parts(&class_of, n_classes, &trans, &info).expect("narrow");
        let wide = DfaTable::pack(&class_of, n_classes, &trans, &info, 17).expect("wide");
        assert!(!narrow.layout().wide && wide.layout().wide);
        for state in 0..n_states {
            assert_eq!(narrow.info(state), wide.info(state));
            for byte in 0..=255u8 {
                let expected =
                    trans[(state * n_classes + u32::from(class_of[usize::from(byte)])) as usize];
                assert_eq!(narrow.step(state, byte), expected);
                assert_eq!(wide.step(state, byte), expected);
            }
        }
        let back = DfaTable::from_bytes(
            n_states,
            n_classes,
            17,
            wide.class_bits,
            wide.bytes().to_vec(),
        );
        assert_eq!(back.as_ref(), Ok(&wide));
    }
}

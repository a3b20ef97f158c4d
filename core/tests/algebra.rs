//! The group laws and the value operations, as properties, for both groups.

use atomik_core::{AtomikValue, Group};
use proptest::prelude::*;

fn group() -> impl Strategy<Value = Group> {
    prop_oneof![Just(Group::Add), Just(Group::Xor)]
}

proptest! {
    #[test]
    fn associative(g in group(), a: u64, b: u64, c: u64) {
        prop_assert_eq!(g.combine(g.combine(a, b), c), g.combine(a, g.combine(b, c)));
    }

    #[test]
    fn commutative(g in group(), a: u64, b: u64) {
        prop_assert_eq!(g.combine(a, b), g.combine(b, a));
    }

    #[test]
    fn identity(g in group(), a: u64) {
        prop_assert_eq!(g.combine(a, g.identity()), a);
        prop_assert_eq!(g.combine(g.identity(), a), a);
    }

    #[test]
    fn inverse(g in group(), a: u64) {
        prop_assert_eq!(g.combine(a, g.inverse(a)), g.identity());
        prop_assert_eq!(g.difference(a, a), g.identity());
    }

    #[test]
    fn difference_is_the_delta_between(g in group(), a: u64, b: u64) {
        prop_assert_eq!(g.combine(b, g.difference(a, b)), a);
    }

    /// `read` after any permutation of the same deltas is byte-identical,
    /// whether the deltas are accumulated locally or received.
    #[test]
    fn permutation_invariant(
        g in group(),
        start: u64,
        deltas in prop::collection::vec(any::<u64>(), 0..40),
        seed: u64,
    ) {
        let mut shuffled = deltas.clone();
        // Fisher–Yates with a tiny LCG, so the permutation is part of the case.
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let a = deltas.iter().fold(AtomikValue::load(g, start), |v, d| v.accum(*d));
        let b = shuffled.iter().fold(AtomikValue::load(g, start), |v, d| v.accum(*d));
        prop_assert_eq!(a.to_bytes(), b.to_bytes());
        let r1 = deltas.iter().fold(AtomikValue::load(g, start), |v, d| v.receive(*d));
        let r2 = shuffled.iter().fold(AtomikValue::load(g, start), |v, d| v.receive(*d));
        prop_assert_eq!(r1.to_bytes(), r2.to_bytes());
        prop_assert_eq!(a.read(), r1.read());
    }

    #[test]
    fn set_reads_back_and_is_a_delta(g in group(), reference: u64, pending: u64, v: u64) {
        let x = AtomikValue::from_parts(g, reference, pending);
        let y = x.set(v);
        prop_assert_eq!(y.read(), v);
        prop_assert_eq!(y.reference(), reference, "set never touches the reference");
        prop_assert_eq!(y.group(), g);
    }

    /// Concurrent sets merge as two deltas (limit 3 of DESIGN.md): the
    /// result is base ⊕ (a ⊖ base) ⊕ (b ⊖ base).
    #[test]
    fn concurrent_sets_merge_as_deltas(g in group(), base: u64, a: u64, b: u64) {
        let at_base = AtomikValue::load(g, base);
        let da = at_base.set(a).pending();
        let db = at_base.set(b).pending();
        let merged = at_base.receive(da).receive(db);
        let expected = g.combine(g.combine(base, g.difference(a, base)), g.difference(b, base));
        prop_assert_eq!(merged.read(), expected);
    }

    #[test]
    fn undo_reverses(g in group(), reference: u64, pending: u64, d: u64) {
        let x = AtomikValue::from_parts(g, reference, pending);
        prop_assert_eq!(x.accum(d).undo(d), x);
        prop_assert_eq!(x.undo(d).accum(d), x);
    }

    #[test]
    fn seal_preserves_read(g in group(), reference: u64, pending: u64) {
        let x = AtomikValue::from_parts(g, reference, pending);
        let (sealed, delta) = x.seal();
        prop_assert_eq!(sealed.read(), x.read());
        prop_assert_eq!(sealed.pending(), 0);
        prop_assert_eq!(delta, pending);
    }

    #[test]
    fn canonical_bytes_round_trip(g in group(), reference: u64, pending: u64) {
        let x = AtomikValue::from_parts(g, reference, pending);
        prop_assert_eq!(AtomikValue::from_bytes(&x.to_bytes()).unwrap(), x);
        prop_assert_eq!(x.to_string().parse::<AtomikValue>().unwrap(), x);
    }

    #[test]
    fn from_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let r = AtomikValue::from_bytes(&bytes);
        if bytes.len() != 17 {
            prop_assert!(r.is_err());
        }
    }

    #[test]
    fn fold_combines_pointwise(g in group(), a: (u64, u64), b: (u64, u64)) {
        let x = AtomikValue::from_parts(g, a.0, a.1);
        let y = AtomikValue::from_parts(g, b.0, b.1);
        let f = x.combine(y).unwrap();
        prop_assert_eq!(f.read(), g.combine(x.read(), y.read()));
        prop_assert_eq!(f, y.combine(x).unwrap());
    }
}

#[test]
fn xor_is_not_a_counter() {
    let v = AtomikValue::new_pending(Group::Xor, 0).accum(1).accum(1);
    assert_eq!(v.read(), 0, "+1 twice under xor is 0 (limit 1)");
    let c = AtomikValue::new_pending(Group::Add, 0).accum(1).accum(1);
    assert_eq!(c.read(), 2);
}

#[test]
fn duplicate_delivery_is_not_idempotent_in_the_algebra() {
    // Limit 2: exactly-once is the protocol's job.
    let add = AtomikValue::load(Group::Add, 0).receive(5).receive(5);
    assert_eq!(add.read(), 10);
    let xor = AtomikValue::load(Group::Xor, 0).receive(5).receive(5);
    assert_eq!(xor.read(), 0);
}

#[test]
fn combine_rejects_mixed_groups() {
    let e = AtomikValue::identity(Group::Add)
        .combine(AtomikValue::identity(Group::Xor))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot combine atomik values of different groups: add and xor"
    );
}

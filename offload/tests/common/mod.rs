//! Shared helpers for the integration tests.
#![allow(dead_code)]

use atomik_offload::{Engine, Group, Op};
use proptest::prelude::*;

/// Strategy for a group.
pub fn group() -> impl Strategy<Value = Group> {
    prop_oneof![Just(Group::Add), Just(Group::Xor)]
}

/// Values biased toward edge cases (wrap-around, all ones, small).
pub fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        Just(u64::MAX),
        Just(1u64 << 63),
        0u64..4,
        (u64::MAX - 3)..=u64::MAX,
    ]
}

/// Strategy for one op on an engine of `slots` slots and `spb` slots per bank.
/// `hot` limits slots to a few to force collisions.
pub fn op(slots: u32, spb: u32, hot: bool) -> impl Strategy<Value = Op> {
    let slot = if hot { 0..slots.min(3) } else { 0..slots };
    let index = 0..spb;
    prop_oneof![
        2 => (slot.clone(), value()).prop_map(|(slot, value)| Op::Load { slot, value }),
        5 => (slot.clone(), group(), value()).prop_map(|(slot, group, delta)| Op::Accum { slot, group, delta }),
        2 => (slot.clone(), group()).prop_map(|(slot, group)| Op::Read { slot, group }),
        1 => slot.prop_map(|slot| Op::Pending { slot }),
        1 => (index, group()).prop_map(|(index, group)| Op::MergeRead { index, group }),
    ]
}

/// A list of batches of ops.
pub fn batches(slots: u32, spb: u32) -> impl Strategy<Value = Vec<Vec<Op>>> {
    let batch = prop_oneof![
        prop::collection::vec(op(slots, spb, false), 0..80),
        prop::collection::vec(op(slots, spb, true), 0..80),
    ];
    prop::collection::vec(batch, 1..4)
}

/// Every slot's (READ add, READ xor, PENDING) as bytes, for whole-state comparison.
pub fn state_bytes(e: &mut dyn Engine) -> Vec<u8> {
    let mut ops = Vec::new();
    for slot in 0..e.slots() {
        ops.push(Op::Read {
            slot,
            group: Group::Add,
        });
        ops.push(Op::Read {
            slot,
            group: Group::Xor,
        });
        ops.push(Op::Pending { slot });
    }
    for index in 0..e.slots_per_bank() {
        ops.push(Op::MergeRead {
            index,
            group: Group::Add,
        });
        ops.push(Op::MergeRead {
            index,
            group: Group::Xor,
        });
    }
    let mut out = Vec::new();
    e.execute(&ops, &mut out).expect("state read");
    out.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Run the batches on both engines, comparing the result bytes of every batch
/// and the whole final state.
pub fn run_both(
    a: &mut dyn Engine,
    b: &mut dyn Engine,
    batches: &[Vec<Op>],
) -> Result<(), TestCaseError> {
    for ops in batches {
        let (mut ra, mut rb) = (Vec::new(), Vec::new());
        a.execute(ops, &mut ra)
            .map_err(|e| TestCaseError::fail(format!("{}: {e}", a.backend())))?;
        b.execute(ops, &mut rb)
            .map_err(|e| TestCaseError::fail(format!("{}: {e}", b.backend())))?;
        let ba: Vec<u8> = ra.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bb: Vec<u8> = rb.iter().flat_map(|v| v.to_le_bytes()).collect();
        prop_assert_eq!(ba, bb);
    }
    prop_assert_eq!(state_bytes(a), state_bytes(b));
    Ok(())
}

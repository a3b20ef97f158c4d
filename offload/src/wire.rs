//! The 128-bit op and result words of the engine's streams, and the
//! dispatcher's issue schedule (see `rtl/README.md`).
//!
//! A lane word is two little-endian `u64`s: `[0]` = bits 63:0 (the value),
//! `[1]` = bits 127:64: slot in bits 31:0, opcode in bits 39:32, group in bit
//! 40, error (results only) in bit 41.

use crate::engine::{Group, Op};

/// A 128-bit lane word as `[bits 63:0, bits 127:64]`.
pub type LaneWord = [u64; 2];

/// Opcode: no operation (padding).
pub const OP_NOP: u8 = 0;
/// Opcode: LOAD.
pub const OP_LOAD: u8 = 1;
/// Opcode: ACCUM.
pub const OP_ACCUM: u8 = 2;
/// Opcode: READ.
pub const OP_READ: u8 = 3;
/// Opcode: PENDING.
pub const OP_PENDING: u8 = 4;
/// Opcode: MERGE (merge-read).
pub const OP_MERGE: u8 = 5;

/// The padding lane.
pub const NOP_WORD: LaneWord = [0, 0];

fn hi(slot: u32, opcode: u8, group: u64) -> u64 {
    u64::from(slot) | (u64::from(opcode) << 32) | (group << 40)
}

/// Encode one op.
pub fn encode(op: &Op) -> LaneWord {
    match *op {
        Op::Load { slot, value } => [value, hi(slot, OP_LOAD, 0)],
        Op::Accum { slot, group, delta } => [delta, hi(slot, OP_ACCUM, group.bit())],
        Op::Read { slot, group } => [0, hi(slot, OP_READ, group.bit())],
        Op::Pending { slot } => [0, hi(slot, OP_PENDING, 0)],
        Op::MergeRead { index, group } => [0, hi(index, OP_MERGE, group.bit())],
    }
}

/// A decoded result word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultWord {
    /// The value read.
    pub value: u64,
    /// Echo of the op's slot (or merge index).
    pub slot: u32,
    /// Echo of the opcode; 0 in an empty lane.
    pub opcode: u8,
    /// Echo of the group.
    pub group: Group,
    /// Set when the op's slot was out of range (value is then 0).
    pub error: bool,
}

/// Decode a result lane.
pub fn decode_result(w: LaneWord) -> ResultWord {
    ResultWord {
        value: w[0],
        slot: w[1] as u32,
        opcode: (w[1] >> 32) as u8,
        group: if (w[1] >> 40) & 1 == 1 {
            Group::Xor
        } else {
            Group::Add
        },
        error: (w[1] >> 41) & 1 == 1,
    }
}

/// What a lane needs from the banks.
fn lane_need(w: &LaneWord, banks: u32, slots_per_bank: u32) -> Need {
    let slot = w[1] as u32;
    let opcode = (w[1] >> 32) as u8;
    match opcode {
        OP_LOAD..=OP_PENDING
            if banks > 0 && u64::from(slot) < u64::from(banks) * u64::from(slots_per_bank) =>
        {
            Need::Bank(slot % banks)
        }
        OP_MERGE if slot < slots_per_bank => Need::All,
        _ => Need::None,
    }
}

#[derive(Clone, Copy)]
enum Need {
    None,
    Bank(u32),
    All,
}

/// The dispatcher's schedule for one beat: the lane mask issued in each
/// cycle. Every cycle issues the longest in-order prefix of the remaining
/// lanes whose banks are pairwise distinct; a MERGE lane needs every bank and
/// issues only at the head of a cycle. An empty beat takes one cycle.
/// Meant for engine geometries (at most 8 lanes and banks); lanes or banks
/// beyond 32 are not representable in the masks and are treated as free.
pub fn schedule(beat: &[LaneWord], banks: u32, slots_per_bank: u32) -> Vec<u32> {
    let mut left: Vec<usize> = (0..beat.len()).collect();
    let mut cycles = Vec::new();
    if left.is_empty() {
        cycles.push(0);
        return cycles;
    }
    while !left.is_empty() {
        let mut used: u32 = 0;
        let mut mask: u32 = 0;
        let mut taken = 0;
        for &lane in &left {
            match lane_need(&beat[lane], banks, slots_per_bank) {
                Need::All => {
                    if used != 0 {
                        break;
                    }
                    used = u32::MAX;
                }
                Need::Bank(b) => {
                    let bit = 1u32.checked_shl(b).unwrap_or(0);
                    if used & bit != 0 {
                        break;
                    }
                    used |= bit;
                }
                Need::None => {}
            }
            mask |= 1u32.checked_shl(lane as u32).unwrap_or(0);
            taken += 1;
        }
        left.drain(..taken);
        cycles.push(mask);
    }
    cycles
}

/// Whether a lane word produces a result word.
pub fn produces_result(w: &LaneWord) -> bool {
    matches!((w[1] >> 32) as u8, OP_READ | OP_PENDING | OP_MERGE)
}

/// Number of result beats the engine emits for `beat`: one per issue cycle
/// that contains at least one result-producing lane.
pub fn result_beats(beat: &[LaneWord], banks: u32, slots_per_bank: u32) -> usize {
    schedule(beat, banks, slots_per_bank)
        .iter()
        .filter(|&&mask| {
            beat.iter().enumerate().any(|(i, w)| {
                mask & 1u32.checked_shl(i as u32).unwrap_or(0) != 0 && produces_result(w)
            })
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_fields() {
        let w = encode(&Op::Accum {
            slot: 0x1234_5678,
            group: Group::Xor,
            delta: 0xDEAD_BEEF_0000_0001,
        });
        assert_eq!(w[0], 0xDEAD_BEEF_0000_0001);
        assert_eq!(w[1], 0x0000_0102_1234_5678);
        let r = decode_result([7, (1 << 41) | (1 << 40) | (3 << 32) | 9]);
        assert_eq!(
            r,
            ResultWord {
                value: 7,
                slot: 9,
                opcode: OP_READ,
                group: Group::Xor,
                error: true
            }
        );
    }

    #[test]
    fn schedule_prefix_rule() {
        let acc = |slot| {
            encode(&Op::Accum {
                slot,
                group: Group::Add,
                delta: 1,
            })
        };
        // 4 banks: slots 0,1,2,3 distinct banks -> one cycle
        assert_eq!(
            schedule(&[acc(0), acc(1), acc(2), acc(3)], 4, 16),
            vec![0b1111]
        );
        // 0 and 4 share bank 0: lane 1 waits, and lane 2 (bank 1) waits behind it
        assert_eq!(
            schedule(&[acc(0), acc(4), acc(1), acc(2)], 4, 16),
            vec![0b0001, 0b1110]
        );
        // merge needs all banks
        let m = encode(&Op::MergeRead {
            index: 3,
            group: Group::Add,
        });
        assert_eq!(
            schedule(&[acc(0), m, acc(1), NOP_WORD], 4, 16),
            vec![0b0001, 0b0010, 0b1100]
        );
        assert_eq!(result_beats(&[acc(0), m, acc(1), NOP_WORD], 4, 16), 1);
        assert_eq!(schedule(&[], 4, 16), vec![0]);
        // degenerate geometry does not panic
        assert_eq!(schedule(&[acc(0), acc(0)], 0, 16), vec![0b11]);
        assert_eq!(schedule(&[acc(40), acc(80)], 64, 16).len(), 1);
    }
}

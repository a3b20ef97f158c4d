//! The reference backend against hand-computed values, and its error paths.

mod common;

use atomik_offload::cpu::CpuEngine;
use atomik_offload::{abench, Backend, Delta, Engine, Group, OffloadError, Op, BANK_COUNTS};
use proptest::prelude::*;

#[test]
fn every_op_both_groups() {
    let mut e = CpuEngine::new(4, 8).unwrap();
    e.load(&[(5, 100), (6, 0xF0)]).unwrap();
    e.accumulate(&[
        Delta {
            slot: 5,
            group: Group::Add,
            delta: u64::MAX,
        }, // -1
        Delta {
            slot: 5,
            group: Group::Add,
            delta: 3,
        },
        Delta {
            slot: 6,
            group: Group::Xor,
            delta: 0xFF,
        },
        Delta {
            slot: 6,
            group: Group::Xor,
            delta: 0x01,
        },
    ])
    .unwrap();
    assert_eq!(
        e.read(&[(5, Group::Add), (6, Group::Xor)]).unwrap(),
        vec![102, 0x0E]
    );
    assert_eq!(e.pending(&[5, 6]).unwrap(), vec![2, 0xFE]);
    assert_eq!(e.slot(5), Some((100, 2)));
    // LOAD resets the accumulator
    e.load(&[(5, 7)]).unwrap();
    assert_eq!(e.pending(&[5]).unwrap(), vec![0]);
    // wrapping add
    e.accumulate(&[Delta {
        slot: 5,
        group: Group::Add,
        delta: u64::MAX - 6,
    }])
    .unwrap();
    assert_eq!(e.read(&[(5, Group::Add)]).unwrap(), vec![0]);
    // merge-read of index 1 folds global slots 4..8 (banks 0..3 at index 1)
    e.clear().unwrap();
    e.load(&[(4, 11), (5, 20), (6, 30), (7, 40), (3, 1000)])
        .unwrap();
    e.accumulate(&[Delta {
        slot: 7,
        group: Group::Add,
        delta: 2,
    }])
    .unwrap();
    assert_eq!(e.merge_read(&[(1, Group::Add)]).unwrap(), vec![103]);
    assert_eq!(
        e.merge_read(&[(1, Group::Xor)]).unwrap(),
        vec![43] // 11 ^ 20 ^ 30 ^ (40 ^ 2)
    );
}

#[test]
fn bad_batches_change_nothing() {
    let mut e = CpuEngine::new(2, 4).unwrap();
    e.load(&[(1, 9)]).unwrap();
    let err = e
        .execute(
            &[
                Op::Load { slot: 1, value: 5 },
                Op::Read {
                    slot: 8,
                    group: Group::Add,
                },
            ],
            &mut Vec::new(),
        )
        .unwrap_err();
    assert!(
        matches!(err, OffloadError::SlotOutOfRange { slot: 8, slots: 8 }),
        "{err}"
    );
    let err = e
        .execute(
            &[Op::MergeRead {
                index: 4,
                group: Group::Add,
            }],
            &mut Vec::new(),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        OffloadError::IndexOutOfRange {
            index: 4,
            slots_per_bank: 4
        }
    ));
    let err = e
        .accumulate(&[
            Delta {
                slot: 1,
                group: Group::Add,
                delta: 1,
            },
            Delta {
                slot: 100,
                group: Group::Add,
                delta: 1,
            },
        ])
        .unwrap_err();
    assert!(matches!(
        err,
        OffloadError::SlotOutOfRange { slot: 100, .. }
    ));
    assert_eq!(e.slot(1), Some((9, 0)));
    assert!(matches!(
        CpuEngine::new(3, 4),
        Err(OffloadError::BadBankCount(3))
    ));
    assert!(matches!(
        CpuEngine::new(4, 6),
        Err(OffloadError::BadSlotCount(6))
    ));
    assert!(matches!(
        CpuEngine::new(4, 1),
        Err(OffloadError::BadSlotCount(1))
    ));
}

#[test]
fn sim_reports_unavailable_without_feature() {
    let r = atomik_offload::open_engine(Backend::Sim, 4);
    if cfg!(feature = "sim") {
        assert!(r.is_ok());
    } else {
        assert!(matches!(r, Err(OffloadError::Unavailable { .. })));
    }
    assert!(matches!(
        atomik_offload::open_engine(Backend::Cpu, 5),
        Err(OffloadError::BadBankCount(5))
    ));
}

#[test]
fn abench_report_agrees() {
    let report = abench::run_all(3000, 0xDEAD_BEEF_0BAD_F00D);
    assert!(report.is_ok(), "{report}");
    let text = report.to_string();
    assert!(
        text.lines().last().unwrap().starts_with("hash 0x"),
        "{text}"
    );
    let cpu_rows = report
        .runs
        .iter()
        .filter(|r| r.backend == Backend::Cpu)
        .count();
    assert_eq!(cpu_rows, BANK_COUNTS.len());
    assert_eq!(
        report.hash(),
        Some(abench::run(3000, 0xDEAD_BEEF_0BAD_F00D, Backend::Cpu, 2).unwrap())
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The fast accumulate path equals the generic op path.
    #[test]
    fn accumulate_fast_path_equals_execute(deltas in prop::collection::vec(
        (0u32..32, common::group(), common::value()).prop_map(|(slot, group, delta)| Delta { slot, group, delta }),
        0..200,
    )) {
        let mut a = CpuEngine::new(4, 8).unwrap();
        let mut b = CpuEngine::new(4, 8).unwrap();
        a.accumulate(&deltas).unwrap();
        let ops: Vec<Op> = deltas.iter().map(|d| Op::Accum { slot: d.slot, group: d.group, delta: d.delta }).collect();
        b.execute(&ops, &mut Vec::new()).unwrap();
        prop_assert_eq!(common::state_bytes(&mut a), common::state_bytes(&mut b));
    }

    /// Bank count only changes the layout: the same global-slot ops (without
    /// merge-reads) give the same results on every bank count.
    #[test]
    fn bank_count_does_not_change_results(ops in prop::collection::vec(common::op(64, 8, false), 0..200)) {
        let ops: Vec<Op> = ops.into_iter().filter(|o| !matches!(o, Op::MergeRead { .. })).collect();
        let mut outs = Vec::new();
        for banks in BANK_COUNTS {
            let mut e = CpuEngine::new(banks, 64 / banks).unwrap();
            let mut r = Vec::new();
            e.execute(&ops, &mut r).unwrap();
            outs.push(r);
        }
        for w in outs.windows(2) {
            prop_assert_eq!(&w[0], &w[1]);
        }
    }
}

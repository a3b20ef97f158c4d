//! Differential and register-level tests of the simulated RTL (feature `sim`).
#![cfg(feature = "sim")]

mod common;

use atomik_offload::cpu::CpuEngine;
use atomik_offload::regs::{self, RegisterBus};
use atomik_offload::sim::{self, Pacing, SIM_SLOTS_PER_BANK};
use atomik_offload::{abench, wire, Backend, Engine, Group, OffloadError, Op, BANK_COUNTS};
use proptest::prelude::*;

fn cpu(banks: u32) -> CpuEngine {
    CpuEngine::new(banks, SIM_SLOTS_PER_BANK).unwrap()
}

#[test]
fn registers_identify_the_engine() {
    for banks in BANK_COUNTS {
        let mut e = sim::open(banks).unwrap();
        let r = e.regs_mut();
        assert_eq!(r.read32(regs::ID).unwrap(), regs::ID_MAGIC);
        assert_eq!(r.read32(regs::VERSION).unwrap(), 0x0001_0000);
        assert_eq!(r.read32(regs::NUM_BANKS).unwrap(), banks);
        assert_eq!(r.read32(regs::SLOTS_PER_BANK).unwrap(), SIM_SLOTS_PER_BANK);
        assert_eq!(r.read32(regs::STATUS).unwrap(), regs::ST_IDLE);
        r.write32(regs::SCRATCH, 0xCAFE_F00D).unwrap();
        assert_eq!(r.read32(regs::SCRATCH).unwrap(), 0xCAFE_F00D);
        assert!(matches!(
            r.read32(0x101),
            Err(OffloadError::BadRegister { .. })
        ));
    }
}

#[test]
fn device_errors_surface_and_clear() {
    let mut e = sim::open(2).unwrap();
    // an access to an unmapped register sets ERRORS.BAD_CSR ...
    assert_eq!(e.regs_mut().read32(0x3C).unwrap(), 0);
    let err = e
        .execute(&[Op::Pending { slot: 0 }], &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(err, OffloadError::Device { flags: 4, .. }),
        "{err}"
    );
    // ... which the driver clears, so the next batch succeeds
    let mut out = Vec::new();
    e.execute(&[Op::Pending { slot: 0 }], &mut out).unwrap();
    assert_eq!(out, vec![0]);
    // out-of-range slots never reach the device
    let err = e
        .execute(
            &[Op::Load {
                slot: 512,
                value: 1,
            }],
            &mut Vec::new(),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        OffloadError::SlotOutOfRange {
            slot: 512,
            slots: 512
        }
    ));
}

#[test]
fn reset_zeroes_slots_counters_and_errors() {
    let mut e = sim::open(4).unwrap();
    e.load(&[(9, 5)]).unwrap();
    e.regs_mut().read32(0x30).unwrap(); // unmapped: BAD_CSR
    assert_ne!(e.regs_mut().read32(regs::ERRORS).unwrap(), 0);
    assert!(e.counters().unwrap().ops > 0);
    e.reset().unwrap();
    assert_eq!(e.regs_mut().read32(regs::ERRORS).unwrap(), 0);
    assert_eq!(e.counters().unwrap().ops, 0);
    assert_eq!(e.read(&[(9, Group::Add)]).unwrap(), vec![0]);
}

#[test]
fn every_op_matches_cpu_on_every_bank_count() {
    for banks in BANK_COUNTS {
        let mut s = sim::open(banks).unwrap();
        let mut c = cpu(banks);
        let mut ops = Vec::new();
        for slot in 0..s.slots() {
            let g = if slot % 3 == 0 {
                Group::Xor
            } else {
                Group::Add
            };
            ops.push(Op::Load {
                slot,
                value: u64::from(slot) * 0x0101_0101_0101,
            });
            ops.push(Op::Accum {
                slot,
                group: g,
                delta: u64::MAX - u64::from(slot),
            });
            ops.push(Op::Accum {
                slot,
                group: g,
                delta: 1 << 63,
            });
            ops.push(Op::Read { slot, group: g });
            ops.push(Op::Pending { slot });
        }
        for index in 0..SIM_SLOTS_PER_BANK {
            ops.push(Op::MergeRead {
                index,
                group: Group::Add,
            });
            ops.push(Op::MergeRead {
                index,
                group: Group::Xor,
            });
        }
        let (mut rs, mut rc) = (Vec::new(), Vec::new());
        s.execute(&ops, &mut rs).unwrap();
        c.execute(&ops, &mut rc).unwrap();
        assert_eq!(rs, rc, "banks {banks}");
        s.clear().unwrap();
        assert!(s
            .pending(&(0..s.slots()).collect::<Vec<_>>())
            .unwrap()
            .iter()
            .all(|&v| v == 0));
    }
}

/// Counters against the dispatcher schedule computed in Rust: exact.
#[test]
fn counters_match_schedule() {
    for banks in BANK_COUNTS {
        let mut s = sim::open(banks).unwrap();
        let mut state = 99u64;
        let ops: Vec<Op> = (0..2000)
            .map(|_| {
                let r = abench::splitmix64(&mut state);
                Op::Accum {
                    slot: (r % 512) as u32 % s.slots(),
                    group: Group::Add,
                    delta: r,
                }
            })
            .collect();
        let mut cycles = 0;
        for chunk in ops.chunks(banks as usize) {
            let beat: Vec<_> = chunk.iter().map(wire::encode).collect();
            cycles += wire::schedule(&beat, banks, SIM_SLOTS_PER_BANK).len() as u64;
        }
        s.clear_counters().unwrap();
        s.execute(&ops, &mut Vec::new()).unwrap();
        let k = s.counters().unwrap();
        assert_eq!(k.ops, 2000);
        assert_eq!(k.beats, 2000 / u64::from(banks));
        assert_eq!(k.beats + k.conflict_stalls, cycles, "banks {banks}");
        assert_eq!(k.out_stalls, 0);
        if banks == 1 {
            assert_eq!(k.conflict_stalls, 0);
        } else {
            assert!(k.conflict_stalls > 0);
        }
    }
}

#[test]
fn colliding_slots_serialize_and_forward() {
    for banks in BANK_COUNTS {
        let mut s = sim::open(banks).unwrap();
        let ops: Vec<Op> = (0..800)
            .map(|i| Op::Accum {
                slot: 7,
                group: Group::Add,
                delta: i,
            })
            .collect();
        s.clear_counters().unwrap();
        s.execute(&ops, &mut Vec::new()).unwrap();
        let k = s.counters().unwrap();
        // one op per cycle in total, whatever the bank count
        assert_eq!(k.beats + k.conflict_stalls, 800);
        // every op but the first reads the slot the previous cycle wrote
        assert_eq!(k.forwards, 799);
        assert_eq!(
            s.read(&[(7, Group::Add)]).unwrap(),
            vec![(0..800).sum::<u64>()]
        );
    }
}

#[test]
fn ax7020_driver_dma_sequence() {
    let mut e = sim::open_ax7020_on_sim(4, Pacing::default(), 1 << 16, 23).unwrap();
    let mut out = Vec::new();
    e.execute(
        &[
            Op::Load { slot: 3, value: 40 },
            Op::Accum {
                slot: 3,
                group: Group::Add,
                delta: 2,
            },
            Op::Read {
                slot: 3,
                group: Group::Add,
            },
        ],
        &mut out,
    )
    .unwrap();
    assert_eq!(out, vec![42]);
    // the driver set up TLAST after the transfer's one result beat
    assert_eq!(e.regs_mut().read32(regs::RESULT_PACKET).unwrap(), 1);
    let w = e.transport_mut().dma_mut().writes().to_vec();
    use atomik_offload::ax7020::dma;
    let pos = |off: u32| w.iter().position(|&(o, _)| o == off).unwrap();
    // reset first, S2MM armed before MM2S is started, lengths in bytes
    assert_eq!(w[0], (dma::MM2S_DMACR, dma::CR_RESET));
    assert!(pos(dma::S2MM_LENGTH) < pos(dma::MM2S_LENGTH));
    assert!(w.contains(&(dma::MM2S_LENGTH, 64)));
    assert!(w.contains(&(dma::S2MM_LENGTH, 64)));
    assert!(w.contains(&(dma::S2MM_DA, (sim::SIM_DMA_PHYS + (1 << 15)) as u32)));
    // too small a DMA length register makes the driver chunk the batch
    let mut small = sim::open_ax7020_on_sim(8, Pacing::random(5, 70, 60), 1 << 16, 11).unwrap();
    let mut c = cpu(8);
    let ops: Vec<Op> = (0..3000u32)
        .map(|i| {
            if i % 3 == 0 {
                Op::Read {
                    slot: i % 97,
                    group: Group::Xor,
                }
            } else {
                Op::Accum {
                    slot: i % 97,
                    group: Group::Xor,
                    delta: u64::from(i) * 7919,
                }
            }
        })
        .collect();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    small.execute(&ops, &mut a).unwrap();
    c.execute(&ops, &mut b).unwrap();
    assert_eq!(a, b);
    let starts = small
        .transport_mut()
        .dma_mut()
        .writes()
        .iter()
        .filter(|&&(o, _)| o == dma::MM2S_LENGTH)
        .count();
    assert!(starts > 10, "{starts} transfers");
}

#[test]
fn abench_agrees_across_backends() {
    let report = abench::run_all(4097, 0xDEAD_BEEF_0BAD_F00D);
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        report
            .runs
            .iter()
            .filter(|r| r.backend == Backend::Sim)
            .count(),
        4
    );
    assert_eq!(
        report
            .runs
            .iter()
            .filter(|r| r.label == "ax7020@sim")
            .count(),
        4
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sim_equals_cpu(banks in prop::sample::select(BANK_COUNTS.to_vec()), batches in common::batches(8 * SIM_SLOTS_PER_BANK, SIM_SLOTS_PER_BANK)) {
        let mut s = sim::open(banks).unwrap();
        let mut c = cpu(banks);
        let batches: Vec<Vec<Op>> = batches.into_iter().map(|b| b.into_iter().map(|op| clamp(op, banks)).collect()).collect();
        common::run_both(&mut s, &mut c, &batches)?;
    }

    #[test]
    fn sim_with_gaps_and_backpressure_equals_cpu(
        banks in prop::sample::select(BANK_COUNTS.to_vec()),
        seed in any::<u64>(),
        valid in 20u64..100,
        ready in 10u64..100,
        batches in common::batches(8 * SIM_SLOTS_PER_BANK, SIM_SLOTS_PER_BANK),
    ) {
        let mut s = sim::open_paced(banks, Pacing::random(seed, valid, ready)).unwrap();
        let mut c = cpu(banks);
        let batches: Vec<Vec<Op>> = batches.into_iter().map(|b| b.into_iter().map(|op| clamp(op, banks)).collect()).collect();
        common::run_both(&mut s, &mut c, &batches)?;
    }

    #[test]
    fn ax7020_on_sim_equals_cpu(
        banks in prop::sample::select(BANK_COUNTS.to_vec()),
        seed in any::<u64>(),
        batches in common::batches(8 * SIM_SLOTS_PER_BANK, SIM_SLOTS_PER_BANK),
    ) {
        let mut s = sim::open_ax7020_on_sim(banks, Pacing::random(seed, 80, 50), 1 << 14, 23).unwrap();
        let mut c = cpu(banks);
        let batches: Vec<Vec<Op>> = batches.into_iter().map(|b| b.into_iter().map(|op| clamp(op, banks)).collect()).collect();
        common::run_both(&mut s, &mut c, &batches)?;
    }
}

/// Fold a slot drawn for 8 banks into the engine's range.
fn clamp(op: Op, banks: u32) -> Op {
    let n = banks * SIM_SLOTS_PER_BANK;
    match op {
        Op::Load { slot, value } => Op::Load {
            slot: slot % n,
            value,
        },
        Op::Accum { slot, group, delta } => Op::Accum {
            slot: slot % n,
            group,
            delta,
        },
        Op::Read { slot, group } => Op::Read {
            slot: slot % n,
            group,
        },
        Op::Pending { slot } => Op::Pending { slot: slot % n },
        m @ Op::MergeRead { .. } => m,
    }
}

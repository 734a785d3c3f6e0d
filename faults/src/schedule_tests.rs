//! Tests of `schedule.rs`.

use super::*;

#[test]
fn a_seed_replays_the_same_schedule_and_every_kind_appears() {
    let a = schedule(42, 200_000, 3, &[]);
    assert_eq!(a, schedule(42, 200_000, 3, &[]));
    assert_ne!(a, schedule(43, 200_000, 3, &[]));
    for kind in KINDS {
        assert!(a.iter().any(|s| s.fault.kind() == kind), "{kind} missing");
    }
    // Even a run too short for all of them gets every kind once.
    let short = schedule(7, 1_000, 3, &[]);
    assert_eq!(short.len(), KINDS.len());
}

#[test]
fn schedule_fits_the_duration_and_respects_the_bounds() {
    // Longer than every kind once (about 200 s): the rest is filled with repeats.
    const RUN_MS: u64 = 260_000;
    for seed in 0..50 {
        let steps = schedule(seed, RUN_MS, 3, &[]);
        assert!(
            steps.len() > KINDS.len(),
            "seed {seed}: a {RUN_MS} ms run repeats faults"
        );
        let last = steps.last().unwrap();
        assert!(last.start_ms + last.fault.active_ms() + last.gap_ms <= RUN_MS);
        assert_eq!(steps[0].start_ms, WARMUP_MS);
        for w in steps.windows(2) {
            assert!(w[1].start_ms >= w[0].start_ms + w[0].fault.active_ms() + w[0].gap_ms);
        }
        let mut kills = 0;
        let mut leader_kills = 0;
        for step in &steps {
            assert!((3000..=5000).contains(&step.gap_ms));
            match step.fault {
                Fault::Kill {
                    leader,
                    node,
                    down_ms,
                }
                | Fault::PowerCut {
                    leader,
                    node,
                    down_ms,
                    ..
                } => {
                    kills += 1;
                    leader_kills += usize::from(leader);
                    assert!(node < 3 && (1000..=3000).contains(&down_ms));
                }
                Fault::PauseLeader { ms } => assert!((1500..=5000).contains(&ms)),
                Fault::OneWay { from, to, .. } => assert!(from != to && from < 3 && to < 3),
                Fault::SlowLink { a, b, link, .. } => {
                    assert!(a != b && a < 3 && b < 3);
                    assert!((10..=30).contains(&link.loss_pct));
                    assert_eq!((link.delay_ms, link.jitter_ms), (100, 50));
                }
                Fault::SlowAll { link, .. } => assert!((10..=30).contains(&link.loss_pct)),
                Fault::Flap { total_ms, .. } => assert_eq!(total_ms, 6000),
                Fault::FsyncError { leader, node, ms } => {
                    kills += 1;
                    leader_kills += usize::from(leader);
                    assert!(node < 3 && (2000..=4000).contains(&ms))
                }
                Fault::DiskFull { ms, .. } => assert!((3000..=6000).contains(&ms)),
                _ => {}
            }
        }
        assert!(
            2 * leader_kills >= kills,
            "seed {seed}: the leader at least half the time"
        );
    }
}

#[test]
fn a_run_can_be_limited_to_some_kinds() {
    let steps = schedule(5, 60_000, 3, &["power-cut-all"]);
    assert!(steps.len() > 1);
    assert!(steps.iter().all(|s| s.fault.kind() == "power-cut-all"));
    let tears: Vec<bool> = (0..20)
        .flat_map(|seed| schedule(seed, 60_000, 3, &["power-cut", "power-cut-all"]))
        .map(|s| match s.fault {
            Fault::PowerCut { tear_seed, .. } | Fault::PowerCutAll { tear_seed, .. } => {
                tear_seed.is_some()
            }
            other => panic!("{other} was not asked for"),
        })
        .collect();
    assert!(
        tears.contains(&true) && tears.contains(&false),
        "some cuts tear, some not"
    );
}

#[test]
fn the_first_install_crash_of_a_run_is_mid_install_later_ones_at_any_step() {
    let mut later = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let steps = schedule(seed, 120_000, 3, &["snapshot-install-crash"]);
        let crash_steps: Vec<&str> = steps
            .iter()
            .map(|s| match s.fault {
                Fault::SnapshotInstallCrash { step, pick } => {
                    assert!(pick < 3);
                    step
                }
                ref other => panic!("{other} was not asked for"),
            })
            .collect();
        assert!(crash_steps.len() > 1, "seed {seed}: {crash_steps:?}");
        assert_eq!(crash_steps[0], crate::schedule::MID_INSTALL);
        later.extend(crash_steps[1..].iter().copied());
    }
    assert_eq!(
        later.len(),
        crate::schedule::INSTALL_CRASH_STEPS.len(),
        "every step is drawn: {later:?}"
    );
}

#[test]
fn client_isolation_cuts_from_the_leader_or_a_minority() {
    let faults: Vec<Fault> = (0..20)
        .flat_map(|seed| schedule(seed, 60_000, 5, &["isolate-clients"]))
        .map(|s| s.fault)
        .collect();
    let leader: Vec<bool> = faults
        .iter()
        .map(|f| match *f {
            Fault::IsolateClients { ms, leader, pick } => {
                assert!((3000..=8000).contains(&ms) && pick < 5);
                leader
            }
            ref other => panic!("{other} was not asked for"),
        })
        .collect();
    assert!(leader.contains(&true) && leader.contains(&false));
}

#[test]
fn every_kind_once_fits_the_make_target_budget() {
    // `make test-faults` runs 150 s with every kind; the mandatory faults (plus the warm-up)
    // decide how far past that it goes. Printed, for the docs; bounded so growth is noticed.
    let ends: Vec<u64> = (0..50)
        .map(|seed| {
            let steps = schedule(seed, 1_000, 3, &[]);
            let last = steps.last().unwrap();
            last.start_ms + last.fault.active_ms() + last.gap_ms + 500
        })
        .collect();
    let max = *ends.iter().max().unwrap();
    println!(
        "every kind once: {} .. {max} ms",
        ends.iter().min().unwrap()
    );
    assert!(max <= 210_000, "every kind once takes up to {max} ms");
}

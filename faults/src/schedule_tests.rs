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
    for seed in 0..50 {
        let steps = schedule(seed, 200_000, 3, &[]);
        assert!(
            steps.len() > KINDS.len(),
            "seed {seed}: a 200 s run repeats faults"
        );
        let last = steps.last().unwrap();
        assert!(last.start_ms + last.fault.active_ms() + last.gap_ms <= 200_000);
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

//! Unit tests of the CA rotation phases: each transition, resuming from the stored Secret at
//! every phase, and that no leaf is ever signed by a CA missing from a bundle a node may hold.

use std::time::Duration;

use super::*;
use crate::{
    builders::{ClusterRef, test_support::cluster},
    ca::{self, generate_ca_generation, issue_client_certificate, verifies},
};

const DAY: Duration = Duration::from_secs(86_400);

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn cluster_ref() -> ClusterRef {
    ClusterRef::of(&cluster()).unwrap()
}

fn idle() -> CaSet {
    CaSet::idle(ca::generate_ca(&cluster_ref(), now()).unwrap())
}

fn new_ca(set: &CaSet) -> KeyedCertificate {
    generate_ca_generation(&cluster_ref(), set.generation + 1, now()).unwrap()
}

/// Every state of one rotation, in order, starting and ending Idle.
fn full_rotation() -> Vec<CaSet> {
    let mut states = vec![idle()];
    let next = new_ca(&states[0]);
    states.push(states[0].start(next, Some("token-1".into())));
    while let Some(advanced) = states.last().unwrap().advance() {
        states.push(advanced);
    }
    states
}

fn certs_in(bundle: &str) -> usize {
    bundle.matches("BEGIN CERTIFICATE").count()
}

fn leaf(signer: &KeyedCertificate) -> String {
    issue_client_certificate(signer, "someone", now(), DAY)
        .unwrap()
        .cert_pem
}

/// Round trip through the Secret, as an operator restarted at this point reads it.
fn reread(set: &CaSet) -> CaSet {
    let (data, annotations) = set.to_secret();
    CaSet::from_secret(&data, &annotations).unwrap().unwrap()
}

#[test]
fn a_rotation_goes_through_every_phase_and_bumps_the_generation_once() {
    let states = full_rotation();
    let phases: Vec<Phase> = states.iter().map(|s| s.phase).collect();
    assert_eq!(
        phases,
        [
            Phase::Idle,
            Phase::TrustBoth,
            Phase::Reissue,
            Phase::DropOld,
            Phase::Idle
        ]
    );
    let generations: Vec<u64> = states.iter().map(|s| s.generation).collect();
    assert_eq!(generations, [1, 1, 2, 2, 2]);
    let (old, new) = (&states[0].signing, states[1].next.as_ref().unwrap());
    assert_eq!(&states[1].signing, old, "TrustBoth: the old CA still signs");
    assert_eq!(&states[2].signing, new, "Reissue: the new CA signs");
    assert_eq!(states[2].previous.as_ref(), Some(old));
    assert_eq!(
        states[3].previous.as_ref(),
        Some(old),
        "DropOld keeps A's key"
    );
    assert_eq!(&states[4].signing, new);
    assert_eq!(states[4].previous, None);
    assert_eq!(states[4].next, None);
    let bundle_sizes: Vec<usize> = states.iter().map(|s| certs_in(&s.bundle())).collect();
    assert_eq!(bundle_sizes, [1, 2, 2, 1, 1]);
    assert!(states[3].bundle().contains(new.cert_pem.trim_end()));
    assert!(!states[3].bundle().contains(old.cert_pem.trim_end()));
    assert_eq!(states[4].handled_token.as_deref(), Some("token-1"));
    assert_eq!(states[4].advance(), None, "Idle has no transition");
}

#[test]
fn the_stored_secret_resumes_every_phase_exactly() {
    for state in full_rotation() {
        let resumed = reread(&state);
        assert_eq!(resumed, state, "phase {}", state.phase);
        assert_eq!(resumed.advance(), state.advance(), "phase {}", state.phase);
        let (data, annotations) = state.to_secret();
        assert_eq!(data["ca.crt"], state.bundle());
        assert_eq!(
            annotations.get(PHASE_ANNOTATION).map(String::as_str),
            state.phase.annotation()
        );
    }
}

#[test]
fn a_secret_from_before_rotations_existed_is_generation_one_and_idle() {
    let ca = ca::generate_ca(&cluster_ref(), now()).unwrap();
    let data = BTreeMap::from([
        ("tls.crt".to_owned(), ca.cert_pem.clone()),
        ("tls.key".to_owned(), ca.key_pem.clone()),
    ]);
    let set = CaSet::from_secret(&data, &BTreeMap::new())
        .unwrap()
        .unwrap();
    assert_eq!(set, CaSet::idle(ca));
    assert_eq!(
        CaSet::from_secret(&BTreeMap::new(), &BTreeMap::new()),
        Ok(None)
    );
}

#[test]
fn inconsistent_annotations_are_errors_not_guesses() {
    let states = full_rotation();
    let (mut data, annotations) = states[1].to_secret();
    data.remove("next.key");
    assert!(CaSet::from_secret(&data, &annotations).is_err());
    let (mut data, annotations) = states[2].to_secret();
    data.remove("previous.crt");
    assert!(CaSet::from_secret(&data, &annotations).is_err());
    let (data, mut annotations) = states[0].to_secret();
    annotations.insert(PHASE_ANNOTATION.into(), "Sideways".into());
    assert!(CaSet::from_secret(&data, &annotations).is_err());
    annotations.insert(PHASE_ANNOTATION.into(), "Reissue".into());
    annotations.insert(GENERATION_ANNOTATION.into(), "two".into());
    assert!(CaSet::from_secret(&data, &annotations).is_err());
}

/// The property that makes the rotation hitless: leaf Secrets and mounted files lag the CA
/// Secret, so across each transition a node may hold either bundle while a peer presents a
/// leaf signed under either state. Every such pair must verify.
#[test]
fn no_leaf_is_ever_signed_by_a_ca_missing_from_a_bundle_in_circulation() {
    let states = full_rotation();
    for pair in states.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        for signer in [&before.signing, &after.signing] {
            let cert = leaf(signer);
            for bundle in [before.bundle(), after.bundle()] {
                assert!(
                    verifies(&cert, &bundle, now()),
                    "{} -> {}: a leaf signed in one state is not trusted by the bundle of the other",
                    before.phase,
                    after.phase
                );
            }
        }
    }
    // And the old CA really is gone at the end.
    let old_leaf = leaf(&states[0].signing);
    assert!(!verifies(&old_leaf, &states[3].bundle(), now()));
    assert!(!verifies(&old_leaf, &states[4].bundle(), now()));
    assert!(verifies(
        &leaf(&states[4].signing),
        &states[4].bundle(),
        now()
    ));
}

#[test]
fn verification_tells_two_cas_with_similar_names_apart() {
    let a = ca::generate_ca(&cluster_ref(), now()).unwrap();
    let b = ca::generate_ca(&cluster_ref(), now()).unwrap();
    let of_a = leaf(&a);
    assert!(verifies(&of_a, &a.cert_pem, now()));
    assert!(
        !verifies(&of_a, &b.cert_pem, now()),
        "same subject, different key: not signed by b"
    );
    let both = format!("{}{}", b.cert_pem, a.cert_pem);
    assert!(verifies(&of_a, &both, now()), "found in a bundle");
    assert!(
        !verifies(&of_a, &a.cert_pem, now() + time::Duration::days(2)),
        "expired"
    );
    assert!(!verifies("garbage", &a.cert_pem, now()));
}

#[test]
fn trusted_cas_for_the_status() {
    let states = full_rotation();
    let generations = |s: &CaSet| -> Vec<(u64, bool)> {
        s.trusted()
            .iter()
            .map(|(g, _, signing)| (*g, *signing))
            .collect()
    };
    assert_eq!(generations(&states[0]), [(1, true)]);
    assert_eq!(generations(&states[1]), [(1, true), (2, false)]);
    assert_eq!(generations(&states[2]), [(1, false), (2, true)]);
    assert_eq!(generations(&states[3]), [(2, true)]);
    assert_eq!(generations(&states[4]), [(2, true)]);
}

#[test]
fn a_new_token_or_an_aging_ca_starts_a_rotation_once() {
    let set = idle();
    let info = CertificateInfo::parse(&set.signing.cert_pem).unwrap();
    assert_eq!(rotation_trigger(&set, None, &info, now()), None);
    assert_eq!(rotation_trigger(&set, Some(""), &info, now()), None);
    let (reason, token) = rotation_trigger(&set, Some("t1"), &info, now()).unwrap();
    assert!(reason.contains("t1"), "{reason}");
    assert_eq!(token.as_deref(), Some("t1"));
    let started = set.start(new_ca(&set), token);
    assert_eq!(
        rotation_trigger(&started, Some("t2"), &info, now()),
        None,
        "never while rotating"
    );
    let mut done = started;
    while let Some(next) = done.advance() {
        done = next;
    }
    assert_eq!(
        rotation_trigger(&done, Some("t1"), &info, now()),
        None,
        "handled"
    );
    assert!(rotation_trigger(&done, Some("t2"), &info, now()).is_some());
    // Automatically once two thirds of the CA's ten years have passed.
    let seven_years = now() + time::Duration::days(7 * 365);
    let (reason, token) = rotation_trigger(&set, None, &info, seven_years).unwrap();
    assert!(reason.contains("two thirds"), "{reason}");
    assert_eq!(token, None);
    let six_years = now() + time::Duration::days(6 * 365);
    assert_eq!(rotation_trigger(&set, None, &info, six_years), None);
}

#[test]
fn later_generations_name_themselves() {
    let ca = generate_ca_generation(&cluster_ref(), 3, now()).unwrap();
    let info = CertificateInfo::parse(&ca.cert_pem).unwrap();
    assert_eq!(
        info.common_name.as_deref(),
        Some("ProgLog CA logs/demo generation 3")
    );
    assert!(info.is_ca);
}

//! CA key rotation without downtime, as a pure state machine over the CA Secret.
//!
//! The operator's CA Secret holds the signing CA (`tls.crt`/`tls.key`), during a rotation the
//! other CA (`next.*` while the new one is only trusted, `previous.*` while the old one is being
//! retired), the trust bundle every leaf Secret copies into its `ca.crt`, and annotations with the
//! phase and the generation of the signing CA. Each transition is one write of that Secret, so
//! an operator that crashes resumes from whatever it last wrote:
//!
//! * `Idle` (generation N, CA A): bundle A.
//! * `TrustBoth`: B created; bundle A+B; leaves still signed by A. Advances once every leaf
//!   Secret holds the bundle and every node accepts a client certificate signed by B (the node
//!   has reloaded the bundle: nothing else proves it).
//! * `Reissue` (generation N+1): B signs; bundle A+B; every leaf is reissued by B, the operator's
//!   own last. Advances once every leaf is signed by B and every node serves B's certificate.
//! * `DropOld`: bundle B; A's key is kept only to prove that nodes now refuse it. Advances to
//!   `Idle` (generation N+1) once every leaf Secret holds bundle B and every node refuses A.
//!
//! At every transition the new signing CA is in the old bundle and the old signing CA is in the
//! new bundle, so a node that still has the previous Secret contents trusts every certificate
//! in circulation.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::ca::{CertificateInfo, KeyedCertificate};

/// Annotation on the ProgLogCluster requesting a rotation; its value is a token, and a rotation
/// starts whenever it differs from the last token handled.
pub const ROTATE_ANNOTATION: &str = "proglog.dev/rotate-ca";
/// Annotation on the CA Secret: the rotation phase (absent when idle).
pub const PHASE_ANNOTATION: &str = "proglog.dev/ca-rotation-phase";
/// Annotation on the CA Secret (generation of the signing CA) and on every leaf Secret
/// (generation of the CA that signed it).
pub const GENERATION_ANNOTATION: &str = "proglog.dev/ca-generation";
/// Annotation on the CA Secret: the last [`ROTATE_ANNOTATION`] token acted on.
pub const HANDLED_TOKEN_ANNOTATION: &str = "proglog.dev/ca-rotation-handled-token";

/// Where a rotation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No rotation.
    Idle,
    /// The new CA is trusted next to the old one; the old one still signs.
    TrustBoth,
    /// The new CA signs; leaves are reissued; both are trusted.
    Reissue,
    /// Only the new CA is trusted; waiting until the nodes refuse the old one.
    DropOld,
}

impl Phase {
    /// The annotation value (`None` for Idle).
    pub fn annotation(self) -> Option<&'static str> {
        match self {
            Phase::Idle => None,
            Phase::TrustBoth => Some("TrustBoth"),
            Phase::Reissue => Some("Reissue"),
            Phase::DropOld => Some("DropOld"),
        }
    }

    fn parse(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("" | "Idle") => Ok(Phase::Idle),
            Some("TrustBoth") => Ok(Phase::TrustBoth),
            Some("Reissue") => Ok(Phase::Reissue),
            Some("DropOld") => Ok(Phase::DropOld),
            Some(other) => Err(format!("unknown {PHASE_ANNOTATION} {other:?}")),
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.annotation().unwrap_or("Idle"))
    }
}

/// The CAs of a cluster and where their rotation is: the contents of the CA Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaSet {
    /// Generation of `signing` (1 for the first CA).
    pub generation: u64,
    /// Rotation phase.
    pub phase: Phase,
    /// The CA that signs leaves now.
    pub signing: KeyedCertificate,
    /// TrustBoth: the new CA, trusted but not signing yet.
    pub next: Option<KeyedCertificate>,
    /// Reissue and DropOld: the CA being retired (its key proves in DropOld that nodes refuse it).
    pub previous: Option<KeyedCertificate>,
    /// Last rotation token acted on.
    pub handled_token: Option<String>,
}

fn keyed(data: &BTreeMap<String, String>, prefix: &str) -> Option<KeyedCertificate> {
    Some(KeyedCertificate {
        cert_pem: data.get(&format!("{prefix}.crt"))?.clone(),
        key_pem: data.get(&format!("{prefix}.key"))?.clone(),
    })
}

impl CaSet {
    /// A CA that is not being rotated (a new one, or the user's own).
    pub fn idle(signing: KeyedCertificate) -> Self {
        Self {
            generation: 1,
            phase: Phase::Idle,
            signing,
            next: None,
            previous: None,
            handled_token: None,
        }
    }

    /// Reads the CA Secret's data and annotations; `None` when it holds no signing CA.
    pub fn from_secret(
        data: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Option<Self>, String> {
        let Some(signing) = keyed(data, "tls") else {
            return Ok(None);
        };
        let phase = Phase::parse(annotations.get(PHASE_ANNOTATION).map(String::as_str))?;
        let generation = match annotations.get(GENERATION_ANNOTATION) {
            None => 1,
            Some(value) => value
                .parse()
                .map_err(|_| format!("{GENERATION_ANNOTATION} {value:?} is not a number"))?,
        };
        let set = Self {
            generation,
            phase,
            next: keyed(data, "next").filter(|_| phase == Phase::TrustBoth),
            previous: keyed(data, "previous")
                .filter(|_| matches!(phase, Phase::Reissue | Phase::DropOld)),
            signing,
            handled_token: annotations.get(HANDLED_TOKEN_ANNOTATION).cloned(),
        };
        match phase {
            Phase::TrustBoth if set.next.is_none() => {
                Err("phase TrustBoth without next.crt/next.key".into())
            }
            Phase::Reissue | Phase::DropOld if set.previous.is_none() => {
                Err(format!("phase {phase} without previous.crt/previous.key"))
            }
            _ => Ok(Some(set)),
        }
    }

    /// The Secret's data (PEM text by key) and annotations for this state.
    pub fn to_secret(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let mut data = BTreeMap::new();
        let mut put = |prefix: &str, ca: &KeyedCertificate| {
            data.insert(format!("{prefix}.crt"), ca.cert_pem.clone());
            data.insert(format!("{prefix}.key"), ca.key_pem.clone());
        };
        put("tls", &self.signing);
        if let Some(next) = &self.next {
            put("next", next);
        }
        if let Some(previous) = &self.previous {
            put("previous", previous);
        }
        data.insert("ca.crt".to_owned(), self.bundle());
        let mut annotations = BTreeMap::from([(
            GENERATION_ANNOTATION.to_owned(),
            self.generation.to_string(),
        )]);
        if let Some(phase) = self.phase.annotation() {
            annotations.insert(PHASE_ANNOTATION.to_owned(), phase.to_owned());
        }
        if let Some(token) = &self.handled_token {
            annotations.insert(HANDLED_TOKEN_ANNOTATION.to_owned(), token.clone());
        }
        (data, annotations)
    }

    /// Every CA a node or client must trust now, as one PEM bundle (oldest first).
    pub fn bundle(&self) -> String {
        let mut bundle = String::new();
        let trusted = match self.phase {
            Phase::Idle | Phase::DropOld => vec![&self.signing],
            Phase::TrustBoth => vec![&self.signing, self.next.as_ref().unwrap_or(&self.signing)],
            Phase::Reissue => vec![
                self.previous.as_ref().unwrap_or(&self.signing),
                &self.signing,
            ],
        };
        // Concatenated as stored (a single CA's bundle is its tls.crt byte for byte).
        for ca in trusted {
            if !bundle.is_empty() && !bundle.ends_with('\n') {
                bundle.push('\n');
            }
            bundle.push_str(&ca.cert_pem);
        }
        bundle
    }

    /// The trusted CAs with their generation and whether they sign (for the status).
    pub fn trusted(&self) -> Vec<(u64, &KeyedCertificate, bool)> {
        let mut trusted = Vec::new();
        if let (Phase::Reissue, Some(previous)) = (self.phase, &self.previous) {
            trusted.push((self.generation - 1, previous, false));
        }
        trusted.push((self.generation, &self.signing, true));
        if let Some(next) = &self.next {
            trusted.push((self.generation + 1, next, false));
        }
        trusted
    }

    /// Idle → TrustBoth with the freshly generated `next`, recording `token` as handled.
    pub fn start(&self, next: KeyedCertificate, token: Option<String>) -> Self {
        Self {
            phase: Phase::TrustBoth,
            next: Some(next),
            previous: None,
            handled_token: token.or_else(|| self.handled_token.clone()),
            ..self.clone()
        }
    }

    /// The transition taken once the current phase's work is observed done; Idle has none.
    pub fn advance(&self) -> Option<Self> {
        match self.phase {
            Phase::Idle => None,
            Phase::TrustBoth => Some(Self {
                generation: self.generation + 1,
                phase: Phase::Reissue,
                signing: self.next.clone()?,
                next: None,
                previous: Some(self.signing.clone()),
                handled_token: self.handled_token.clone(),
            }),
            Phase::Reissue => Some(Self {
                phase: Phase::DropOld,
                ..self.clone()
            }),
            Phase::DropOld => Some(Self {
                phase: Phase::Idle,
                previous: None,
                ..self.clone()
            }),
        }
    }
}

/// Why a rotation should start now, or `None`: the cluster's [`ROTATE_ANNOTATION`] carries a
/// token not handled yet, or the signing CA is past two thirds of its lifetime.
pub fn rotation_trigger(
    set: &CaSet,
    requested_token: Option<&str>,
    signing: &CertificateInfo,
    now: OffsetDateTime,
) -> Option<(String, Option<String>)> {
    if set.phase != Phase::Idle {
        return None;
    }
    if let Some(token) = requested_token.filter(|t| !t.is_empty())
        && set.handled_token.as_deref() != Some(token)
    {
        return Some((
            format!("{ROTATE_ANNOTATION} is {token:?}"),
            Some(token.to_owned()),
        ));
    }
    (now >= signing.renew_at()).then(|| {
        (
            format!(
                "the CA (generation {}) expires at {} and is past two thirds of its lifetime",
                set.generation, signing.not_after
            ),
            None,
        )
    })
}

#[cfg(test)]
#[path = "ca_rotation_tests.rs"]
mod tests;

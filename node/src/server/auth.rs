//! Authentication and authorization of calls: the caller's identity comes from its verified
//! client certificate (CN, else first SAN), and the ACL decides what it may do. Services added
//! by other modules (Raft, admin) use the same [`Authorizer`].
//!
//! A connection's certificate is parsed once, not on every call ([`IdentityCache`]): parsing
//! the DER on every call was about 4 % of a leader's CPU at 128 clients (docs/BENCHMARKS.md,
//! "Where the CPU goes").

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rustls_pki_types::CertificateDer;
use tonic::{Request, Status};

use crate::acl::{Acl, Action};

/// The object of each action in ACL rules.
pub fn object_of(action: Action) -> &'static str {
    match action {
        Action::Produce | Action::Consume => "log",
        Action::Admin => "cluster",
        Action::Replicate => "raft",
    }
}

/// Checks callers against the ACL in force. Clones share the ACL and the identity cache.
#[derive(Debug, Clone)]
pub struct Authorizer {
    acl: Arc<Acl>,
    identities: Arc<IdentityCache>,
}

impl Authorizer {
    /// An authorizer over `acl` (which may reload itself).
    pub fn new(acl: Arc<Acl>) -> Self {
        Self {
            acl,
            identities: Arc::new(IdentityCache::new(IDENTITY_CACHE_ENTRIES)),
        }
    }

    /// The ACL in force (the one every call is authorized against).
    pub fn acl(&self) -> &Arc<Acl> {
        &self.acl
    }

    /// The caller's identity if it may perform `action`: `UNAUTHENTICATED` without a verified
    /// client certificate, `PERMISSION_DENIED` if the ACL does not allow it.
    pub fn authorize<T>(&self, request: &Request<T>, action: Action) -> Result<String, Status> {
        let certs = peer_certs(request)?;
        let subject = self.identities.identity(&certs).ok_or_else(no_identity)?;
        if self.acl.is_allowed(&subject, object_of(action), action) {
            Ok(subject.as_ref().to_owned())
        } else {
            Err(Status::permission_denied(format!(
                "{subject} is not permitted to {action}"
            )))
        }
    }
}

/// The identity of the caller's verified client certificate.
pub fn caller_identity<T>(request: &Request<T>) -> Result<String, Status> {
    let certs = peer_certs(request)?;
    leaf_identity(&certs).ok_or_else(no_identity)
}

/// A connection's verified certificate chain, leaf first, as tonic hands it to every call.
type PeerCerts = Arc<Vec<CertificateDer<'static>>>;

fn peer_certs<T>(request: &Request<T>) -> Result<PeerCerts, Status> {
    request
        .peer_certs()
        .filter(|certs| !certs.is_empty())
        .ok_or_else(|| {
            Status::unauthenticated("a client certificate signed by the cluster CA is required")
        })
}

fn leaf_identity(certs: &[CertificateDer<'static>]) -> Option<String> {
    crate::tls::identity_of(certs.first()?)
}

fn no_identity() -> Status {
    Status::unauthenticated("the client certificate has neither a Common Name nor a SAN")
}

/// Connections whose identity the cache holds at most; far more than a node's clients keep
/// open, and small: each entry keeps one certificate chain (about 1 KiB) alive.
const IDENTITY_CACHE_ENTRIES: usize = 1024;

/// The identities of the certificate chains of recent connections.
///
/// tonic gives every call on a connection the same `Arc` of the peer's chain (made once, when
/// the connection is accepted), so the `Arc`'s address names the connection. Each entry keeps
/// its `Arc` alive, so while it is cached no other chain can be allocated at that address: a
/// hit is always the same chain. Bounded by `capacity`: a miss on a full cache empties it first
/// (the connections still open then parse their certificate once more). Certificates cannot
/// change within a connection, and the ACL is still checked on every call, so a cached identity
/// is never stale.
#[derive(Debug)]
pub struct IdentityCache {
    capacity: usize,
    entries: Mutex<HashMap<usize, CachedIdentity>>,
}

/// A cached chain (kept alive, see [`IdentityCache`]) and the identity of its leaf.
type CachedIdentity = (PeerCerts, Option<Arc<str>>);

impl IdentityCache {
    /// An empty cache of at most `capacity` connections.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The identity of the chain's leaf (CN, else first SAN), parsed on this chain's first call.
    pub fn identity(&self, certs: &PeerCerts) -> Option<Arc<str>> {
        let key = Arc::as_ptr(certs) as usize;
        if let Some((_, identity)) = self.entries.lock().get(&key) {
            return identity.clone();
        }
        // Parsed outside the lock: two first calls of one connection may both parse; the
        // second insert replaces an equal entry.
        let identity: Option<Arc<str>> = leaf_identity(certs).map(Arc::from);
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, (Arc::clone(certs), identity.clone()));
        identity
    }

    /// Connections cached.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether no connection is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(common_name: &str) -> PeerCerts {
        let mut params = rcgen::CertificateParams::new(vec!["client.example".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Arc::new(vec![cert.der().clone()])
    }

    #[test]
    fn a_connection_is_parsed_once_and_each_connection_keeps_its_own_identity() {
        let cache = IdentityCache::new(8);
        let alice = chain("alice");
        let bob = chain("bob");
        assert_eq!(cache.identity(&alice).as_deref(), Some("alice"));
        assert_eq!(cache.identity(&alice).as_deref(), Some("alice"));
        assert_eq!(
            cache.len(),
            1,
            "a second call on one connection parsed again"
        );
        assert_eq!(cache.identity(&bob).as_deref(), Some("bob"));
        assert_eq!(cache.identity(&alice).as_deref(), Some("alice"));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_cached_chain_stays_alive_so_its_address_names_one_connection() {
        let cache = IdentityCache::new(8);
        let alice = chain("alice");
        let bob_chain = Arc::unwrap_or_clone(chain("bob"));
        cache.identity(&alice);
        // Alice's connection closes; the next connection's chain is allocated right away, the
        // same size: were the entry not holding alice's chain, the allocator would hand its
        // address to bob, and bob would be taken for alice.
        drop(alice);
        let bob = Arc::new(bob_chain);
        assert_eq!(cache.identity(&bob).as_deref(), Some("bob"));
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = IdentityCache::new(3);
        let chains: Vec<_> = (0..10).map(|i| chain(&format!("user-{i}"))).collect();
        for (i, certs) in chains.iter().enumerate() {
            assert_eq!(
                cache.identity(certs).as_deref(),
                Some(format!("user-{i}").as_str())
            );
            assert!(
                cache.len() <= 3,
                "{} entries cached, capacity 3",
                cache.len()
            );
        }
    }
}

//! Authentication and authorization of calls: the caller's identity comes from its verified
//! client certificate (CN, else first SAN), and the ACL decides what it may do. Services added
//! by other modules (Raft, admin) use the same [`Authorizer`].

use std::sync::Arc;

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

/// Checks callers against the ACL in force.
#[derive(Debug, Clone)]
pub struct Authorizer {
    acl: Arc<Acl>,
}

impl Authorizer {
    /// An authorizer over `acl` (which may reload itself).
    pub fn new(acl: Arc<Acl>) -> Self {
        Self { acl }
    }

    /// The ACL in force (the one every call is authorized against).
    pub fn acl(&self) -> &Arc<Acl> {
        &self.acl
    }

    /// The caller's identity if it may perform `action`: `UNAUTHENTICATED` without a verified
    /// client certificate, `PERMISSION_DENIED` if the ACL does not allow it.
    pub fn authorize<T>(&self, request: &Request<T>, action: Action) -> Result<String, Status> {
        let subject = caller_identity(request)?;
        if self.acl.is_allowed(&subject, object_of(action), action) {
            Ok(subject)
        } else {
            Err(Status::permission_denied(format!(
                "{subject} is not permitted to {action}"
            )))
        }
    }
}

/// The identity of the caller's verified client certificate.
pub fn caller_identity<T>(request: &Request<T>) -> Result<String, Status> {
    let certs = request.peer_certs().ok_or_else(|| {
        Status::unauthenticated("a client certificate signed by the cluster CA is required")
    })?;
    let leaf = certs.first().ok_or_else(|| {
        Status::unauthenticated("a client certificate signed by the cluster CA is required")
    })?;
    crate::tls::identity_of(leaf).ok_or_else(|| {
        Status::unauthenticated("the client certificate has neither a Common Name nor a SAN")
    })
}

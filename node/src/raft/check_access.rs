//! `CheckAccess` of the admin service: whether the ACL policy this node enforces right now
//! allows a `(subject, object, action)` request. Answered locally from the same [`Acl`] every
//! call is authorized against, so it never waits for (or forwards to) Raft: the operator asks
//! each node in turn to learn when all of them enforce a ProgLogUser's rules.

use std::time::UNIX_EPOCH;

use proglog_proto::proglog::admin::v1 as pb;
use tonic::Status;

use crate::acl::{Acl, Action};

/// Whether the policy in force allows the request; `INVALID_ARGUMENT` naming the problem for
/// an empty subject or object or an action that is not one of the policy's actions.
pub fn check_access(
    acl: &Acl,
    request: &pb::CheckAccessRequest,
) -> Result<pb::CheckAccessResponse, Status> {
    if request.subject.is_empty() {
        return Err(Status::invalid_argument(
            "subject is empty: name the identity (a client certificate's Common Name) to check",
        ));
    }
    if request.object.is_empty() {
        return Err(Status::invalid_argument(
            "object is empty: name the object (e.g. log, or * for every object) to check",
        ));
    }
    let action = parse_action(&request.action)?;
    let loaded = acl.current();
    let loaded_at_ms = loaded
        .loaded_at
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    Ok(pb::CheckAccessResponse {
        allowed: loaded
            .policy
            .is_allowed(&request.subject, &request.object, action),
        policy_loaded_unix_ms: loaded_at_ms,
        policy_rules: u32::try_from(loaded.policy.rules().len()).unwrap_or(u32::MAX),
    })
}

/// One concrete action (the wildcard `*` is a rule's, not a request's).
fn parse_action(name: &str) -> Result<Action, Status> {
    const EXPECTED: &str = "expected produce, consume, admin or replicate";
    match name {
        "" => Err(Status::invalid_argument(format!(
            "action is empty ({EXPECTED})"
        ))),
        "*" => Err(Status::invalid_argument(format!(
            "action \"*\" is a wildcard; ask about one action ({EXPECTED})"
        ))),
        name => name
            .parse()
            .map_err(|_| Status::invalid_argument(format!("unknown action {name:?} ({EXPECTED})"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::Policy;

    fn request(subject: &str, object: &str, action: &str) -> pb::CheckAccessRequest {
        pb::CheckAccessRequest {
            subject: subject.into(),
            object: object.into(),
            action: action.into(),
        }
    }

    #[test]
    fn answers_from_the_policy_in_force() {
        let acl = Acl::fixed(Policy::parse("app, *, produce\napp, log, consume\n").unwrap());
        let allowed = |s, o, a| check_access(&acl, &request(s, o, a)).unwrap().allowed;
        assert!(allowed("app", "*", "produce"));
        assert!(allowed("app", "log", "produce"));
        assert!(allowed("app", "log", "consume"));
        assert!(
            !allowed("app", "*", "consume"),
            "consume is granted on log only"
        );
        assert!(!allowed("other", "log", "produce"));
        let answer = check_access(&acl, &request("app", "log", "admin")).unwrap();
        assert_eq!(answer.policy_rules, 2);
        assert!(answer.policy_loaded_unix_ms > 0);
    }

    #[test]
    fn bad_requests_are_invalid_arguments_naming_the_problem() {
        let acl = Acl::fixed(Policy::default());
        for (req, expected) in [
            (request("", "log", "produce"), "subject is empty"),
            (request("app", "", "produce"), "object is empty"),
            (request("app", "log", ""), "action is empty"),
            (request("app", "log", "fly"), "unknown action \"fly\""),
            (request("app", "log", "*"), "wildcard"),
        ] {
            let status = check_access(&acl, &req).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
            assert!(status.message().contains(expected), "{status}");
        }
    }
}

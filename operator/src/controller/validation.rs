//! Checks of a ProgLogCluster spec that the CRD schema cannot express (or that must hold even
//! if the schema was bypassed); problems become a Degraded condition with reason InvalidSpec.

use proglog_proto::limits::{DEFAULT_MAX_RECORD_BYTES, check_record_limits, message_bytes_for};

use crate::crd::ProgLogCluster;

/// Checks the schema cannot express; returns the problems found.
pub(crate) fn validate_spec(cluster: &ProgLogCluster) -> Vec<String> {
    let spec = &cluster.spec;
    let mut problems = Vec::new();
    if spec.replicas < 1 {
        problems.push(format!(
            "spec.replicas is {}; it must be at least 1",
            spec.replicas
        ));
    }
    if spec.replicas % 2 == 0 {
        tracing::debug!("even replica count tolerates no more failures than one fewer");
    }
    if !is_quantity(&spec.storage.size) {
        problems.push(format!(
            "spec.storage.size {:?} is not a Kubernetes quantity such as 10Gi",
            spec.storage.size
        ));
    }
    if spec.image.trim().is_empty() {
        problems.push("spec.image is empty".to_owned());
    }
    // The node's own check, on the sizes the operator writes into its configuration.
    let record = spec
        .log
        .max_record_bytes
        .unwrap_or(DEFAULT_MAX_RECORD_BYTES);
    if let Err(e) = check_record_limits(record, message_bytes_for(record)) {
        problems.push(format!(
            "spec.log.maxRecordBytes {record}: the node would refuse to start (--{}: {e})",
            e.flag()
        ));
    }
    for (i, rule) in spec.acl.rules.iter().enumerate() {
        for (field, value) in [("subject", &rule.subject), ("object", &rule.object)] {
            if value.is_empty() || value.contains([',', '#', '\n', ' ']) {
                problems.push(format!(
                    "spec.acl.rules[{i}].{field} {value:?} must be non-empty without commas, '#' or spaces"
                ));
            }
        }
    }
    for (i, window) in spec.maintenance.windows.iter().enumerate() {
        if let Some(problem) = window.problem() {
            problems.push(format!("spec.maintenance.windows[{i}].{problem}"));
        }
    }
    if let Some(replacement) = &spec.replacement {
        let after = crate::replacement::parse_duration(&replacement.after);
        if after.is_none_or(|after| after < std::time::Duration::from_secs(60)) {
            problems.push(format!(
                "spec.replacement.after {:?} must be a duration of at least 1m such as 10m",
                replacement.after
            ));
        }
    }
    problems
}

/// A Kubernetes quantity: a decimal number with an optional binary or decimal suffix.
fn is_quantity(value: &str) -> bool {
    let suffixes = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", "",
    ];
    suffixes.iter().any(|suffix| {
        value.strip_suffix(suffix).is_some_and(|number| {
            !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit() || c == '.')
                && number.chars().filter(|&c| c == '.').count() <= 1
                && number.chars().any(|c| c.is_ascii_digit())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::cluster;
    use crate::crd::{AclAction, AclRule, ReplacementSpec};

    #[test]
    fn quantities() {
        for ok in ["10Gi", "1", "1.5Ti", "500M", "100k"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Gi", "ten", "10GB", "1.2.3Gi", "-1Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn spec_validation_reports_every_problem() {
        assert!(validate_spec(&cluster()).is_empty());
        let mut bad = cluster();
        bad.spec.replicas = 0;
        bad.spec.storage.size = "lots".to_owned();
        bad.spec.acl.rules.push(AclRule {
            subject: "a,b".to_owned(),
            object: "*".to_owned(),
            action: AclAction::Consume,
        });
        bad.spec.log.max_record_bytes = Some((64 << 20) + 1);
        bad.spec.replacement = Some(ReplacementSpec {
            after: "30s".to_owned(),
            delete_volume: false,
        });
        let problems = validate_spec(&bad);
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems[4].contains("spec.replacement.after \"30s\""));
        assert!(problems[0].contains("spec.replicas"));
        assert!(problems[1].contains("spec.storage.size"));
        assert!(problems[2].contains("spec.log.maxRecordBytes 67108865"));
        assert!(problems[2].contains("--max-record-size"), "{}", problems[2]);
        assert!(problems[3].contains("spec.acl.rules[0].subject"));
        // A record larger than a segment is fine: it gets a segment of its own.
        let mut large = cluster();
        large.spec.log.max_store_bytes = Some(1 << 20);
        large.spec.log.max_record_bytes = Some(64 << 20);
        assert!(validate_spec(&large).is_empty());
        large.spec.replacement = Some(ReplacementSpec {
            after: "1h5m".to_owned(),
            delete_volume: true,
        });
        assert!(validate_spec(&large).is_empty());
    }
}

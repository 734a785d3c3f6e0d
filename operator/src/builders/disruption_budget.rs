//! The PodDisruptionBudget of the node pods.

use k8s_openapi::{
    api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use super::ClusterRef;

/// At most one node down for voluntary disruptions (drains), so a 3-node cluster keeps quorum.
pub fn pod_disruption_budget(cluster_ref: &ClusterRef) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: cluster_ref.metadata(cluster_ref.name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(cluster_ref.selector_labels()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::cluster;

    #[test]
    fn pdb_allows_one_unavailable() {
        let cluster_ref = ClusterRef::of(&cluster()).unwrap();
        let pdb = pod_disruption_budget(&cluster_ref);
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(
            spec.selector.unwrap().match_labels.unwrap(),
            cluster_ref.selector_labels()
        );
    }
}

//! Services: the headless peer-DNS Service, the client Service and the optional per-pod
//! LoadBalancer Services (what the book did with a Metacontroller hook).

use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{ClusterRef, GRPC_PORT, METRICS_PORT, POD_NAME_LABEL};
use crate::crd::ProgLogCluster;

fn grpc_port() -> ServicePort {
    ServicePort {
        name: Some("grpc".to_owned()),
        port: i32::from(GRPC_PORT),
        target_port: Some(IntOrString::String("grpc".to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

fn metrics_port() -> ServicePort {
    ServicePort {
        name: Some("metrics".to_owned()),
        port: i32::from(METRICS_PORT),
        target_port: Some(IntOrString::String("metrics".to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

/// The headless Service giving every pod a stable DNS name. Not-ready addresses are published
/// because peers must find each other before any of them is Ready (Raft needs a quorum first).
pub fn headless_service(cluster_ref: &ClusterRef) -> Service {
    Service {
        metadata: cluster_ref.metadata(cluster_ref.headless_service_name()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            publish_not_ready_addresses: Some(true),
            selector: Some(cluster_ref.selector_labels()),
            ports: Some(vec![grpc_port(), metrics_port()]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The client Service `NAME`: any node accepts any request (followers forward produces).
pub fn client_service(cluster: &ProgLogCluster, cluster_ref: &ClusterRef) -> Service {
    let mut metadata = cluster_ref.metadata(cluster_ref.name.clone());
    if !cluster.spec.service.annotations.is_empty() {
        metadata.annotations = Some(cluster.spec.service.annotations.clone());
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(cluster.spec.service.type_.as_str().to_owned()),
            selector: Some(cluster_ref.selector_labels()),
            ports: Some(vec![grpc_port()]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// One LoadBalancer Service `NAME-N-external` per pod ordinal below `replicas`, or none when
/// external access is disabled.
pub fn external_services(
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    replicas: u32,
) -> Vec<Service> {
    if !cluster.spec.external_access.enabled {
        return Vec::new();
    }
    (0..replicas)
        .map(|ordinal| {
            let pod = cluster_ref.pod_name(ordinal);
            let mut metadata = cluster_ref.metadata(external_service_name(&pod));
            if !cluster.spec.external_access.annotations.is_empty() {
                metadata.annotations = Some(cluster.spec.external_access.annotations.clone());
            }
            let mut selector = cluster_ref.selector_labels();
            selector.insert(POD_NAME_LABEL.to_owned(), pod);
            Service {
                metadata,
                spec: Some(ServiceSpec {
                    type_: Some("LoadBalancer".to_owned()),
                    selector: Some(selector),
                    ports: Some(vec![grpc_port()]),
                    // Keep the client's source address; also avoids a second hop.
                    external_traffic_policy: Some("Local".to_owned()),
                    ..ServiceSpec::default()
                }),
                ..Service::default()
            }
        })
        .collect()
}

/// Name of the external Service of pod `pod`.
pub fn external_service_name(pod: &str) -> String {
    format!("{pod}-external")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::builders::test_support::cluster;
    use crate::crd::ServiceType;

    fn labels_of(service: &Service) -> BTreeMap<String, String> {
        service.metadata.labels.clone().unwrap_or_default()
    }

    #[test]
    fn headless_service_publishes_not_ready_pods() {
        let cluster_ref = ClusterRef::of(&cluster()).unwrap();
        let service = headless_service(&cluster_ref);
        let spec = service.spec.unwrap();
        assert_eq!(service.metadata.name.as_deref(), Some("demo-headless"));
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(spec.selector.unwrap(), cluster_ref.selector_labels());
        let ports: Vec<i32> = spec.ports.unwrap().iter().map(|p| p.port).collect();
        assert_eq!(ports, vec![8400, 9400]);
        assert_eq!(
            labels_of(&Service {
                metadata: cluster_ref.metadata("x"),
                ..Service::default()
            })["app.kubernetes.io/managed-by"],
            "proglog-operator"
        );
    }

    #[test]
    fn client_service_type_and_annotations_follow_spec() {
        let mut cluster = cluster();
        cluster.spec.service.type_ = ServiceType::LoadBalancer;
        cluster.spec.service.annotations.insert(
            "cloud.google.com/load-balancer-type".to_owned(),
            "Internal".to_owned(),
        );
        let cluster_ref = ClusterRef::of(&cluster).unwrap();
        let service = client_service(&cluster, &cluster_ref);
        assert_eq!(service.metadata.name.as_deref(), Some("demo"));
        assert_eq!(
            service.metadata.annotations.unwrap()["cloud.google.com/load-balancer-type"],
            "Internal"
        );
        assert_eq!(service.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
    }

    #[test]
    fn external_services_only_when_enabled_one_per_pod() {
        let mut cluster = cluster();
        let cluster_ref = ClusterRef::of(&cluster).unwrap();
        assert!(external_services(&cluster, &cluster_ref, 3).is_empty());
        cluster.spec.external_access.enabled = true;
        let services = external_services(&cluster, &cluster_ref, 3);
        assert_eq!(services.len(), 3);
        let last = &services[2];
        assert_eq!(last.metadata.name.as_deref(), Some("demo-2-external"));
        let spec = last.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(spec.selector.as_ref().unwrap()[POD_NAME_LABEL], "demo-2");
    }
}

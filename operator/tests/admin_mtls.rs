//! The admin client against an in-process `proglog.admin.v1.Admin` server on loopback, over
//! mutual TLS with certificates from the operator's CA: the operator's identity reaches the
//! node, a client from another CA is refused, and node errors surface with their gRPC code.
//! `CheckAccess` answers come back as whether the node allows the request.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use proglog_operator::{
    admin::{AdminClient, AdminCredentials, AdminError},
    builders::ClusterRef,
    ca::{self, KeyedCertificate},
};
use proglog_proto::proglog::admin::v1::{
    AddLearnerRequest, CheckAccessRequest, CheckAccessResponse, ClusterStatusRequest,
    ClusterStatusResponse, InitializeRequest, InitializeResponse, Member, MemberStatus,
    MembershipResponse, NodeInfoRequest, NodeInfoResponse, PromoteVoterRequest, RemoveNodeRequest,
    TransferLeadershipRequest, TransferLeadershipResponse,
    admin_server::{Admin, AdminServer},
};
use time::OffsetDateTime;
use tonic::{
    Request, Response, Status,
    transport::{Certificate, Identity, Server, ServerTlsConfig},
};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Records every call and the caller's certificate CN.
#[derive(Default)]
struct FakeNode {
    calls: Mutex<Vec<String>>,
    callers: Mutex<Vec<String>>,
}

impl FakeNode {
    fn record<T>(&self, request: &Request<T>, call: String) {
        let cn = request
            .peer_certs()
            .and_then(|certs| {
                let (_, cert) = x509_parser::parse_x509_certificate(certs.first()?).ok()?;
                let cn = cert
                    .subject()
                    .iter_common_name()
                    .next()?
                    .as_str()
                    .ok()?
                    .to_owned();
                Some(cn)
            })
            .unwrap_or_default();
        self.callers.lock().unwrap().push(cn);
        self.calls.lock().unwrap().push(call);
    }
}

/// The gRPC service sharing the recorder with the test.
struct NodeService(Arc<FakeNode>);

impl std::ops::Deref for NodeService {
    type Target = FakeNode;

    fn deref(&self) -> &FakeNode {
        &self.0
    }
}

fn membership() -> MembershipResponse {
    MembershipResponse::default()
}

#[tonic::async_trait]
impl Admin for NodeService {
    async fn node_info(
        &self,
        request: Request<NodeInfoRequest>,
    ) -> Result<Response<NodeInfoResponse>, Status> {
        self.record(&request, "NodeInfo".to_owned());
        Ok(Response::new(NodeInfoResponse {
            node_id: 70_000,
            rpc_addr: "localhost:8400".to_owned(),
            ordinal: 0,
            incarnation: 7,
            has_raft_state: true,
        }))
    }

    async fn initialize(
        &self,
        request: Request<InitializeRequest>,
    ) -> Result<Response<InitializeResponse>, Status> {
        self.record(&request, "Initialize".to_owned());
        Err(Status::failed_precondition("node already has Raft state"))
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let member = request.get_ref().member.clone().unwrap_or_default();
        let wait = request.get_ref().wait_caught_up;
        self.record(
            &request,
            format!("AddLearner {} {} {wait}", member.node_id, member.rpc_addr),
        );
        Ok(Response::new(membership()))
    }

    async fn promote_voter(
        &self,
        request: Request<PromoteVoterRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let id = request.get_ref().node_id;
        self.record(&request, format!("PromoteVoter {id}"));
        Ok(Response::new(membership()))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let id = request.get_ref().node_id;
        self.record(&request, format!("RemoveNode {id}"));
        Ok(Response::new(membership()))
    }

    async fn transfer_leadership(
        &self,
        request: Request<TransferLeadershipRequest>,
    ) -> Result<Response<TransferLeadershipResponse>, Status> {
        let id = request.get_ref().to_node_id;
        self.record(&request, format!("TransferLeadership {id}"));
        Ok(Response::new(TransferLeadershipResponse {}))
    }

    async fn check_access(
        &self,
        request: Request<CheckAccessRequest>,
    ) -> Result<Response<CheckAccessResponse>, Status> {
        let CheckAccessRequest {
            subject,
            object,
            action,
        } = request.get_ref().clone();
        self.record(&request, format!("CheckAccess {subject} {object} {action}"));
        if action == "fly" {
            return Err(Status::invalid_argument("unknown action \"fly\""));
        }
        Ok(Response::new(CheckAccessResponse {
            allowed: subject == "app",
            policy_loaded_unix_ms: 1,
            policy_rules: 3,
        }))
    }

    async fn cluster_status(
        &self,
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        self.record(&request, "ClusterStatus".to_owned());
        Ok(Response::new(ClusterStatusResponse {
            node_id: 70_000,
            leader_id: 70_000,
            membership_committed: true,
            members: vec![MemberStatus {
                member: Some(Member {
                    node_id: 70_000,
                    rpc_addr: "localhost:8400".to_owned(),
                }),
                is_voter: true,
                is_leader: true,
                matched_index: 5,
                lag: 0,
            }],
            ..ClusterStatusResponse::default()
        }))
    }
}

fn cluster_ref(name: &str) -> ClusterRef {
    ClusterRef {
        name: name.to_owned(),
        namespace: "logs".to_owned(),
        owner: Default::default(),
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from(SystemTime::now())
}

/// Starts the fake node with a node certificate from `ca`; returns its address.
async fn start_node(ca: &KeyedCertificate, node: Arc<FakeNode>) -> SocketAddr {
    let cert = ca::issue_node_certificate(ca, &cluster_ref("demo"), 1, now(), TIMEOUT * 360)
        .expect("node certificate");
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&cert.cert_pem, &cert.key_pem))
        .client_ca_root(Certificate::from_pem(&ca.cert_pem));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream_from(listener);
    tokio::spawn(async move {
        Server::builder()
            .tls_config(tls)
            .expect("server TLS")
            .add_service(AdminServer::new(NodeService(node)))
            .serve_with_incoming(incoming)
            .await
            .expect("fake node serves");
    });
    addr
}

fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}

fn operator_credentials(ca: &KeyedCertificate, cn: &str) -> AdminCredentials {
    let client = ca::issue_client_certificate(ca, cn, now(), TIMEOUT * 360).unwrap();
    AdminCredentials {
        ca_pem: ca.cert_pem.clone(),
        cert_pem: client.cert_pem,
        key_pem: client.key_pem,
    }
}

#[tokio::test]
async fn operator_drives_a_node_over_mutual_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = ca::generate_ca(&cluster_ref("demo"), now()).unwrap();
    let node = Arc::new(FakeNode::default());
    let addr = start_node(&ca, node.clone()).await;
    let credentials = operator_credentials(&ca, "proglog-operator");

    let mut client =
        AdminClient::connect(&addr.to_string(), Some("localhost"), &credentials, TIMEOUT)
            .await
            .expect("mTLS connection with the operator's certificate");
    let info = client.node_info().await.unwrap();
    assert_eq!(info.node_id, 70_000);
    assert!(info.has_raft_state);
    let status = client.cluster_status().await.unwrap();
    assert_eq!(status.leader_id, Some(70_000));
    assert!(status.members[0].voter);
    client.add_learner(70_001, "demo-1:8400").await.unwrap();
    client.promote(70_001).await.unwrap();
    client.transfer_leadership(70_001).await.unwrap();
    client.remove(70_000).await.unwrap();
    assert!(client.check_access("app", "*", "produce").await.unwrap());
    assert!(
        !client
            .check_access("other", "log", "consume")
            .await
            .unwrap()
    );
    match client.check_access("app", "log", "fly").await {
        Err(AdminError::Rpc { code, method, .. }) => {
            assert_eq!(code, tonic::Code::InvalidArgument);
            assert_eq!(method, "CheckAccess");
        }
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }

    // A node refusing a second initialization surfaces its code and message.
    match client.initialize().await {
        Err(AdminError::Rpc {
            code,
            message,
            method,
            ..
        }) => {
            assert_eq!(code, tonic::Code::FailedPrecondition);
            assert_eq!(method, "Initialize");
            assert!(message.contains("Raft state"), "{message}");
        }
        other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
    }

    assert_eq!(
        *node.calls.lock().unwrap(),
        [
            "NodeInfo",
            "ClusterStatus",
            "AddLearner 70001 demo-1:8400 false",
            "PromoteVoter 70001",
            "TransferLeadership 70001",
            "RemoveNode 70000",
            "CheckAccess app * produce",
            "CheckAccess other log consume",
            "CheckAccess app log fly",
            "Initialize",
        ]
    );
    assert!(
        node.callers
            .lock()
            .unwrap()
            .iter()
            .all(|cn| cn == "proglog-operator"),
        "the node must see the operator's identity: {:?}",
        node.callers.lock().unwrap()
    );
}

#[tokio::test]
async fn certificates_from_another_ca_are_refused_both_ways() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = ca::generate_ca(&cluster_ref("demo"), now()).unwrap();
    let other_ca = ca::generate_ca(&cluster_ref("other"), now()).unwrap();
    let node = Arc::new(FakeNode::default());
    let addr = start_node(&ca, node.clone()).await;

    // The operator trusts another CA: the node's certificate does not verify.
    let wrong_trust = operator_credentials(&other_ca, "proglog-operator");
    let result = async {
        let mut client =
            AdminClient::connect(&addr.to_string(), Some("localhost"), &wrong_trust, TIMEOUT)
                .await?;
        client.node_info().await
    }
    .await;
    assert!(result.is_err(), "a node from another CA was trusted");

    // A client certificate from another CA is rejected by the node.
    let mut foreign = operator_credentials(&other_ca, "proglog-operator");
    foreign.ca_pem = ca.cert_pem.clone();
    let result = async {
        let mut client =
            AdminClient::connect(&addr.to_string(), Some("localhost"), &foreign, TIMEOUT).await?;
        client.node_info().await
    }
    .await;
    assert!(
        result.is_err(),
        "a client certificate from another CA was accepted"
    );

    // The wrong server name fails verification too.
    let credentials = operator_credentials(&ca, "proglog-operator");
    let result = async {
        let mut client = AdminClient::connect(
            &addr.to_string(),
            Some("demo-7.demo-headless.logs.svc.cluster.local"),
            &credentials,
            TIMEOUT,
        )
        .await?;
        client.node_info().await
    }
    .await;
    assert!(
        result.is_err(),
        "a certificate without the name was accepted"
    );
    assert!(
        node.calls.lock().unwrap().is_empty(),
        "no call may get through"
    );
}

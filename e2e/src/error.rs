//! The harness's error type: every failure says which step of the scenario failed and why.

use std::{path::PathBuf, time::Duration};

/// A failed end-to-end step.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// No kubeconfig or in-cluster configuration could be loaded.
    #[error(
        "cannot load a kubeconfig (set KUBECONFIG, e.g. via scripts/control-plane/with-control-plane.sh): {0}"
    )]
    Kubeconfig(#[source] kube::Error),
    /// The CRD manifest could not be read.
    #[error("cannot read CRD manifest {path}: {source}")]
    CrdRead {
        /// The manifest.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CRD manifest is not a list of CustomResourceDefinitions.
    #[error("CRD manifest {path} is not valid: {source}")]
    CrdParse {
        /// The manifest.
        path: PathBuf,
        /// Why.
        source: serde_yaml::Error,
    },
    /// The CRD manifest contains no CustomResourceDefinition.
    #[error("CRD manifest {0} contains no CustomResourceDefinition")]
    CrdEmpty(PathBuf),
    /// A condition did not hold before its deadline.
    #[error("timed out after {waited:?} waiting for {what} (last observation: {last})")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
        /// The last observation or error, to tell a slow cluster from a broken one.
        last: String,
    },
    /// A helper process could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The locally run operator exited.
    #[error("the operator process exited ({status}); its log:\n{log_tail}")]
    OperatorExited {
        /// Exit status.
        status: String,
        /// Last lines of its output.
        log_tail: String,
    },
    /// `kubectl port-forward` did not report a local port.
    #[error("kubectl port-forward failed: {0}")]
    PortForward(String),
    /// An object lacks something the scenario needs.
    #[error("{0}")]
    Unexpected(String),
    /// A certificate could not be generated or parsed.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A gRPC connection failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A gRPC call failed.
    #[error("gRPC call: {0}")]
    Grpc(#[from] tonic::Status),
}

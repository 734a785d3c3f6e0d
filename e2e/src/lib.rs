//! End-to-end test harness for ProgLog on Kubernetes, usable against any kubeconfig: kind in
//! GitHub Actions, the local control plane (`scripts/control-plane/`) on a machine without a
//! container runtime.
//!
//! The tests themselves live in `e2e/tests/` and are `#[ignore]`d so that `cargo test` never
//! needs a cluster; `make e2e` runs them. The scenarios that need running pods (a kubelet and
//! the images) fail unless `PROGLOG_E2E_PODS=1` says pods can run (`scripts/e2e-pods.sh` sets
//! it); see [`env`](mod@env).
//!
//! - [`env`](mod@env): the environment switches of the suite;
//! - [`namespace`]: a throwaway namespace per test;
//! - [`crd`]: installs `crds/*.yaml` read at run time;
//! - [`operator`]: runs the operator binary locally, or relies on one deployed in the cluster;
//! - [`owned`]: finds the objects a ProgLogCluster owns;
//! - [`wait`]: polling with a deadline;
//! - [`port_forward`], [`log_client`]: reach the client Service and produce/consume over mTLS;
//! - [`scenario`]: the frame of a pod scenario (namespace, CA, waiting for health, deadline);
//! - [`status`]: the ProgLogCluster status as the scenarios read it;
//! - [`cordon`]: holding deleted pods back by cordoning the nodes;
//! - [`load`]: a steady producer recording every acknowledged record and every failure;
//! - [`consume_load`]: steady consumers reading the log as it grows;
//! - [`credentials`]: client credentials that follow a certificate Secret (CA rotation);
//! - [`verify`]: reads every pod's log and checks it against the acknowledged records;
//! - [`tls_probe`]: which certificate a pod serves;
//! - [`rolling`]: the operator's rolling-restart events and the check of their order;
//! - [`diagnostics`]: pods, events, status and logs of a failed scenario.

pub mod consume_load;
pub mod cordon;
pub mod crd;
pub mod credentials;
pub mod diagnostics;
pub mod env;
pub mod error;
pub mod load;
pub mod log_client;
pub mod namespace;
pub mod operator;
pub mod owned;
pub mod port_forward;
pub mod provisioner;
pub mod relay;
pub mod rolling;
pub mod scenario;
pub mod status;
pub mod tls_probe;
pub mod users;
pub mod verify;
pub mod wait;

pub use error::E2eError;

//! End-to-end test harness for ProgLog on Kubernetes, usable against any kubeconfig: kind in
//! GitHub Actions, the local control plane (`scripts/control-plane/`) on a machine without a
//! container runtime.
//!
//! The tests themselves live in `e2e/tests/` and are `#[ignore]`d so that `cargo test` never
//! needs a cluster; `make e2e` runs them. What needs running pods (a kubelet and the images) is
//! gated behind `PROGLOG_E2E_PODS=1`; see [`env`].
//!
//! - [`env`]: the environment switches of the suite;
//! - [`namespace`]: a throwaway namespace per test;
//! - [`crd`]: installs `crds/*.yaml` read at run time;
//! - [`operator`]: runs the operator binary locally, or relies on one deployed in the cluster;
//! - [`owned`]: finds the objects a ProgLogCluster owns;
//! - [`wait`]: polling with a deadline;
//! - [`port_forward`], [`log_client`]: reach the client Service and produce/consume over mTLS.

pub mod crd;
pub mod env;
pub mod error;
pub mod log_client;
pub mod namespace;
pub mod operator;
pub mod owned;
pub mod port_forward;
pub mod wait;

pub use error::E2eError;

//! The ProgLog operator: reconciles `ProgLogCluster` resources into running Raft clusters.
//!
//! - [`crd`]: the custom resource and its schema;
//! - [`builders`]: pure functions from a ProgLogCluster to the Kubernetes objects it needs;
//! - [`ca`]: the per-cluster certificate authority and certificate renewal;
//! - [`ca_rotation`]: the phases of replacing the CA without downtime;
//! - [`planner`]: the pure membership planner (observed state → next single step);
//! - [`rollout`]: the pure rolling-restart planner (pod revisions, membership → next restart);
//! - [`maintenance`]: maintenance windows, outside which voluntary restarts wait;
//! - [`replacement`]: replacing a failed member that stays down (`spec.replacement`);
//! - [`admin`]: the mTLS client of the nodes' `proglog.admin.v1.Admin` API;
//! - [`controller`]: the kube-runtime controller, leader election, metrics and health.

pub mod admin;
pub mod builders;
pub mod ca;
pub mod ca_rotation;
pub mod controller;
pub mod crd;
pub mod maintenance;
pub mod planner;
pub mod replacement;
pub mod rollout;
pub mod user_crd;

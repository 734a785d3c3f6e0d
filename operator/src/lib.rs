//! The ProgLog operator: reconciles `ProgLogCluster` resources into running Raft clusters.

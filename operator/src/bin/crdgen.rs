//! `crdgen`: prints the ProgLogCluster CRD as YAML.

fn main() {}

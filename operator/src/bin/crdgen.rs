//! `crdgen`: prints the ProgLogCluster CustomResourceDefinition as YAML (`make crds`).

use kube::CustomResourceExt;
use proglog_operator::crd::ProgLogCluster;

fn main() -> anyhow::Result<()> {
    let yaml = serde_yaml::to_string(&ProgLogCluster::crd())?;
    print!("{yaml}");
    Ok(())
}

//! `crdgen [cluster|user]`: prints the ProgLogCluster (default) or ProgLogUser
//! CustomResourceDefinition as YAML (`make crds`).

use anyhow::bail;
use kube::CustomResourceExt;
use proglog_operator::crd::ProgLogCluster;
use proglog_operator::user_crd::ProgLogUser;

fn main() -> anyhow::Result<()> {
    let crd = match std::env::args().nth(1).as_deref() {
        None | Some("cluster") => ProgLogCluster::crd(),
        Some("user") => ProgLogUser::crd(),
        Some(other) => bail!("unknown CRD {other:?}: expected cluster or user"),
    };
    print!("{}", serde_yaml::to_string(&crd)?);
    Ok(())
}

//! How the harness talks to the nodes over mTLS: the node certificate re-issued by the dev CA of
//! `proglog certs` (the node library's [`DevCa`]) with the namespaces' addresses as SANs — the
//! dev one only covers loopback — and [`Endpoints`], the `root` client's channels to each node.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use proglog_cli::dev_ca::{CertUsage, DEV_VALIDITY, DevCa};
use proglog_node::tls::{ClientTlsFiles, client_tls_config};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::cluster::PORT;
use crate::netns::Topology;

/// How clients reach the nodes: addresses, names and the `root` client's TLS.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `IP:PORT` of each node.
    pub addrs: Vec<String>,
    /// `nI`, the names in the history.
    pub names: Vec<String>,
    pub tls: ClientTlsConfig,
}

impl Endpoints {
    /// A lazily connecting channel to node `i` (a fresh connection per call of this).
    pub fn channel(&self, i: usize, connect_timeout: Duration) -> Result<Channel> {
        Ok(Endpoint::from_shared(format!("https://{}", self.addrs[i]))?
            .tls_config(self.tls.clone())?
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(2))
            .connect_lazy())
    }
}

/// Re-issues the node certificate in `certs` for the topology's node addresses and returns the
/// `root` client's endpoints of the nodes.
pub fn node_endpoints(certs: &Path, topo: &Topology) -> Result<Endpoints> {
    let ips: Vec<Ipv4Addr> = (0..topo.nodes).map(|i| topo.node_ip(i)).collect();
    reissue_node_cert(certs, &ips)?;
    let tls = client_tls_config(&ClientTlsFiles {
        ca: certs.join("ca.pem"),
        cert: Some(certs.join("root.pem")),
        key: Some(certs.join("root-key.pem")),
        server_name: None,
    })?;
    Ok(Endpoints {
        addrs: ips.iter().map(|ip| format!("{ip}:{PORT}")).collect(),
        names: (0..topo.nodes).map(|i| format!("n{i}")).collect(),
        tls,
    })
}

/// Re-issues `certs/node.pem` with the dev CA in `certs/`, valid for loopback and `ips`.
pub fn reissue_node_cert(certs: &Path, ips: &[Ipv4Addr]) -> Result<()> {
    let read = |name: &str| {
        std::fs::read_to_string(certs.join(name))
            .with_context(|| format!("reading {}", certs.join(name).display()))
    };
    let ca = DevCa::from_pem(&read("ca.pem")?, &read("ca-key.pem")?)?;
    let node = ca.issue(
        "proglog-node",
        &node_sans(ips),
        CertUsage::Node,
        DEV_VALIDITY,
    )?;
    std::fs::write(certs.join("node.pem"), node.cert_pem)?;
    std::fs::write(certs.join("node-key.pem"), node.key_pem)?;
    Ok(())
}

/// The node certificate's SANs: loopback and every node address.
pub fn node_sans(ips: &[Ipv4Addr]) -> Vec<String> {
    let mut sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    sans.extend(ips.iter().map(Ipv4Addr::to_string));
    sans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reissued_node_cert_covers_the_namespace_addresses() {
        let dir = tempfile::tempdir().unwrap();
        proglog_cli::dev_ca::write_dev_certs(dir.path()).unwrap();
        let topo = Topology::new(3);
        let ips: Vec<_> = (0..3).map(|i| topo.node_ip(i)).collect();
        reissue_node_cert(dir.path(), &ips).unwrap();
        let pem = std::fs::read_to_string(dir.path().join("node.pem")).unwrap();
        assert!(pem.contains("BEGIN CERTIFICATE"));
        assert_eq!(
            node_sans(&ips),
            [
                "localhost",
                "127.0.0.1",
                "10.77.0.10",
                "10.77.0.11",
                "10.77.0.12"
            ]
        );
        // The client configuration accepts the CA and the root identity.
        client_tls_config(&ClientTlsFiles {
            ca: dir.path().join("ca.pem"),
            cert: Some(dir.path().join("node.pem")),
            key: Some(dir.path().join("node-key.pem")),
            server_name: None,
        })
        .unwrap();
    }
}

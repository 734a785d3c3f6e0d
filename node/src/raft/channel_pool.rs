//! The node's pool of channels to its peers, shared by the Raft network, produce forwarding and
//! the membership calls that go through openraft: one lazily connected channel per peer address,
//! built with the node's client TLS configuration of the current generation. When the certificate
//! files are reloaded (renewal), the cached channels are dropped so new connections present the
//! new certificate and trust the new CA; calls already running finish on their old connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proglog_proto::proglog::raft::v1::raft_client::RaftClient;
use tonic::transport::{Channel, Endpoint};

use super::network::NetworkConfig;
use crate::tls::ReloadingClientTls;

/// One channel per peer address, created lazily and reused. The channels belong to one
/// generation of the client TLS configuration: when the certificate files are reloaded, the
/// cached channels are dropped so the next RPC to each peer connects with the new identity and
/// CA (calls already running keep their old channel until they finish).
#[derive(Debug)]
pub struct ChannelPool {
    tls: Arc<ReloadingClientTls>,
    config: NetworkConfig,
    channels: Mutex<PooledChannels>,
}

/// The cached channels and the TLS generation they were built with.
#[derive(Debug, Default)]
struct PooledChannels {
    generation: u64,
    by_addr: HashMap<String, Channel>,
}

impl ChannelPool {
    /// A pool connecting with `tls` (the node's own certificate as client identity).
    pub fn new(tls: Arc<ReloadingClientTls>, config: NetworkConfig) -> Self {
        let generation = tls.generation();
        Self {
            tls,
            config,
            channels: Mutex::new(PooledChannels {
                generation,
                by_addr: HashMap::new(),
            }),
        }
    }

    /// The transport settings.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// The client TLS configuration new connections use.
    pub fn tls(&self) -> &Arc<ReloadingClientTls> {
        &self.tls
    }

    /// The channel to `addr` (`host:port`), created on first use and again after the client
    /// certificates were reloaded. Connecting happens on the first RPC and again after a
    /// connection drops.
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let (generation, tls) = self.tls.current();
        let mut channels = self.channels.lock();
        if channels.generation != generation {
            tracing::info!(
                generation,
                peers = channels.by_addr.len(),
                "client certificates changed; reconnecting to peers with the new ones"
            );
            channels.by_addr.clear();
            channels.generation = generation;
        }
        if let Some(channel) = channels.by_addr.get(addr) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(format!("https://{addr}"))?
            .tls_config(tls)?
            .connect_timeout(self.config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        channels.by_addr.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    /// How many peer channels are cached (for tests and diagnostics).
    pub fn cached_channels(&self) -> usize {
        self.channels.lock().by_addr.len()
    }

    /// A Raft-service client for `addr`.
    pub fn raft_client(&self, addr: &str) -> Result<RaftClient<Channel>, tonic::transport::Error> {
        Ok(RaftClient::new(self.channel(addr)?)
            .max_decoding_message_size(super::codec::MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(super::codec::MAX_RAFT_MESSAGE_BYTES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::ClientTlsFiles;
    use proglog_cli::dev_ca::{CertUsage, DEV_VALIDITY, DevCa, dev_node_sans, write_dev_certs};

    #[tokio::test]
    async fn channels_are_replaced_after_the_client_certificates_reload() {
        let dir = tempfile::tempdir().unwrap();
        write_dev_certs(dir.path()).unwrap();
        let tls = ReloadingClientTls::load(ClientTlsFiles {
            ca: dir.path().join("ca.pem"),
            cert: Some(dir.path().join("node.pem")),
            key: Some(dir.path().join("node-key.pem")),
            server_name: None,
        })
        .unwrap();
        let pool = ChannelPool::new(Arc::clone(&tls), NetworkConfig::default());
        // Channels connect lazily, so nothing needs to listen at these addresses.
        pool.channel("127.0.0.1:1").unwrap();
        pool.channel("127.0.0.1:2").unwrap();
        pool.channel("127.0.0.1:1").unwrap();
        assert_eq!(pool.cached_channels(), 2, "one channel per address, reused");

        let new_ca = DevCa::generate("rotated CA").unwrap();
        let node = new_ca
            .issue(
                "proglog-node",
                &dev_node_sans(),
                CertUsage::Node,
                DEV_VALIDITY,
            )
            .unwrap();
        std::fs::write(dir.path().join("node.pem"), &node.cert_pem).unwrap();
        std::fs::write(dir.path().join("node-key.pem"), &node.key_pem).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &new_ca.pem().cert_pem).unwrap();
        tls.reload().unwrap();

        pool.channel("127.0.0.1:2").unwrap();
        assert_eq!(
            pool.cached_channels(),
            1,
            "the old generation's channels are dropped on the next use"
        );
        // A failed reload keeps the generation, so the new channels stay cached.
        std::fs::write(dir.path().join("ca.pem"), "garbage").unwrap();
        assert!(tls.reload().is_err());
        pool.channel("127.0.0.1:1").unwrap();
        assert_eq!(pool.cached_channels(), 2);
    }
}

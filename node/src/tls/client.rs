//! TLS settings for clients of a node (the CLI, tests, other nodes): trust the cluster CA and
//! present a client certificate; for long-lived clients (a node's connections to its peers), a
//! configuration that follows its files with a generation that changes on every reload.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;
use tonic::transport::ClientTlsConfig;

use super::{ClientTlsFiles, TlsError, client_tls_config};

/// A client TLS configuration that follows its files (certificate renewal without restart).
///
/// Every successful reload bumps the generation; a holder of connections (the Raft
/// [`ChannelPool`](crate::raft::ChannelPool)) compares generations and opens new connections
/// with the new identity and CA, while calls already running finish on the old connections.
#[derive(Debug)]
pub struct ReloadingClientTls {
    /// `None` for a fixed configuration that never reloads.
    files: Option<ClientTlsFiles>,
    current: RwLock<(u64, ClientTlsConfig)>,
}

impl ReloadingClientTls {
    /// Loads the files once; fails if they do not form a valid configuration.
    pub fn load(files: ClientTlsFiles) -> Result<Arc<Self>, TlsError> {
        let config = client_tls_config(&files).map_err(TlsError::File)?;
        Ok(Arc::new(Self {
            files: Some(files),
            current: RwLock::new((0, config)),
        }))
    }

    /// A configuration that never changes (generation 0 forever).
    pub fn fixed(config: ClientTlsConfig) -> Arc<Self> {
        Arc::new(Self {
            files: None,
            current: RwLock::new((0, config)),
        })
    }

    /// The current generation and configuration.
    pub fn current(&self) -> (u64, ClientTlsConfig) {
        self.current.read().clone()
    }

    /// How many times the configuration has been replaced since it was loaded.
    pub fn generation(&self) -> u64 {
        self.current.read().0
    }

    /// Rebuilds the configuration from the files and bumps the generation. On error the previous
    /// configuration and generation stay (a half-written Secret must not cut the node off).
    /// No-op for a fixed configuration.
    pub fn reload(&self) -> Result<(), TlsError> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        let config = client_tls_config(files)?;
        let mut current = self.current.write();
        *current = (current.0 + 1, config);
        Ok(())
    }

    /// Reloads whenever the certificate, key or CA file changes, until `cancel` fires. `None`
    /// for a fixed configuration.
    pub fn spawn_watcher(
        self: &Arc<Self>,
        interval: Duration,
        cancel: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let files = self.files.as_ref()?;
        let paths = files.paths();
        let this = Arc::clone(self);
        Some(super::watch::spawn_watcher(
            "client-tls",
            paths,
            interval,
            cancel,
            move || match this.reload() {
                Ok(()) => {
                    tracing::info!(
                        generation = this.generation(),
                        "reloaded client TLS certificates; new connections use them"
                    );
                    true
                }
                Err(error) => {
                    tracing::warn!(%error, "keeping the previous client TLS certificates");
                    false
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TlsFileError;
    use proglog_cli::dev_ca::{CertUsage, DEV_VALIDITY, DevCa, write_dev_certs};

    fn node_files(dir: &std::path::Path) -> ClientTlsFiles {
        ClientTlsFiles {
            ca: dir.join("ca.pem"),
            cert: Some(dir.join("node.pem")),
            key: Some(dir.join("node-key.pem")),
            server_name: None,
        }
    }

    #[test]
    fn reload_bumps_the_generation_only_for_valid_files() {
        let dir = tempfile::tempdir().unwrap();
        write_dev_certs(dir.path()).unwrap();
        let tls = ReloadingClientTls::load(node_files(dir.path())).unwrap();
        assert_eq!(tls.generation(), 0);

        // A certificate next to a key that is not its own (a half-done swap) is refused and
        // the previous configuration stays.
        let new_ca = DevCa::generate("rotated CA").unwrap();
        let new_node = new_ca
            .issue("proglog-node", &[], CertUsage::Node, DEV_VALIDITY)
            .unwrap();
        std::fs::write(dir.path().join("node.pem"), &new_node.cert_pem).unwrap();
        let error = tls.reload().unwrap_err();
        assert!(
            matches!(error, TlsError::File(TlsFileError::Identity(_))),
            "unexpected error: {error}"
        );
        assert_eq!(tls.generation(), 0);

        // A garbage CA file is refused too.
        std::fs::write(dir.path().join("node-key.pem"), &new_node.key_pem).unwrap();
        std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(tls.generation(), 0);

        // The complete new set is taken.
        std::fs::write(dir.path().join("ca.pem"), &new_ca.pem().cert_pem).unwrap();
        tls.reload().unwrap();
        assert_eq!(tls.generation(), 1);
    }

    #[test]
    fn a_fixed_configuration_never_changes() {
        let tls = ReloadingClientTls::fixed(ClientTlsConfig::new());
        tls.reload().unwrap();
        assert_eq!(tls.generation(), 0);
    }

    #[tokio::test]
    async fn the_watcher_reloads_when_the_files_change() {
        let dir = tempfile::tempdir().unwrap();
        write_dev_certs(dir.path()).unwrap();
        let tls = ReloadingClientTls::load(node_files(dir.path())).unwrap();
        let cancel = CancellationToken::new();
        let watcher = tls
            .spawn_watcher(Duration::from_millis(20), cancel.clone())
            .expect("file-backed configurations are watched");
        let new_ca = DevCa::generate("rotated CA").unwrap();
        let new_node = new_ca
            .issue("proglog-node", &[], CertUsage::Node, DEV_VALIDITY)
            .unwrap();
        // Key first, then certificate: the watcher may see the mismatched pair in between,
        // refuses it and takes the complete set on a later tick.
        std::fs::write(dir.path().join("node-key.pem"), &new_node.key_pem).unwrap();
        std::fs::write(dir.path().join("node.pem"), &new_node.cert_pem).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &new_ca.pem().cert_pem).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tls.generation() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the watcher never reloaded"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
        watcher.await.unwrap();
    }
}

//! When the node's certificates expire, for dashboards and alerts (see docs/MONITORING.md):
//! [`CertificateGauges`] holds the notAfter of the node certificate and of its CA, and
//! [`spawn_certificate_expiry_watcher`] re-reads the files periodically on a blocking thread
//! (the operator renews certificates in place; nodes reload them without a restart).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::Metrics;

/// Labels of `proglog_tls_certificate_expiry_timestamp_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CertificateLabels {
    /// Which certificate: `node` (the node's own, served and used towards peers) or `ca`.
    pub certificate: String,
}

/// Expiry times of the node's certificates.
#[derive(Debug, Default)]
pub struct CertificateGauges {
    expiry: Family<CertificateLabels, Gauge>,
}

impl CertificateGauges {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let gauges = Self::default();
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When a certificate stops being valid (notAfter, Unix seconds), by certificate (node, ca)",
            gauges.expiry.clone(),
        );
        gauges
    }

    /// Sets the expiry of `certificate` to the earliest notAfter of the PEM file at `path` (a
    /// chain or a CA bundle stops working when its first certificate expires; during a CA
    /// rotation `ca.crt` holds two CAs) (blocking file I/O). On error the previous value stays: a half-written Secret must not
    /// make the certificate look expired.
    pub fn observe_file(
        &self,
        certificate: &str,
        path: &Path,
    ) -> Result<(), crate::tls::TlsFileError> {
        let mut not_after = i64::MAX;
        for cert in crate::tls::load_certs(path)? {
            let expiry = X509Certificate::from_der(cert.as_ref())
                .map(|(_, parsed)| parsed.validity().not_after.timestamp())
                .map_err(|e| crate::tls::TlsFileError::BadPem {
                    path: path.to_path_buf(),
                    reason: format!("not an X.509 certificate: {e}"),
                })?;
            not_after = not_after.min(expiry);
        }
        self.expiry
            .get_or_create(&CertificateLabels {
                certificate: certificate.to_owned(),
            })
            .set(not_after);
        Ok(())
    }
}

/// Reads the expiry of each `(certificate, path)` now and then every `interval`, until `metrics`
/// is dropped (the node stopped).
pub fn spawn_certificate_expiry_watcher(
    metrics: &Arc<Metrics>,
    files: Vec<(&'static str, PathBuf)>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    let metrics: Weak<Metrics> = Arc::downgrade(metrics);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let (Some(metrics), files) = (metrics.upgrade(), files.clone()) else {
                return;
            };
            let read = tokio::task::spawn_blocking(move || {
                for (certificate, path) in &files {
                    if let Err(error) = metrics.certificates.observe_file(certificate, path) {
                        tracing::warn!(%error, certificate, "cannot read the certificate's expiry");
                    }
                }
            });
            if read.await.is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_expiry_is_exported_and_kept_on_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["node".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 1, 2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let path = dir.path().join("tls.crt");
        std::fs::write(&path, cert.pem()).unwrap();

        let metrics = Metrics::new();
        metrics.certificates.observe_file("node", &path).unwrap();
        // 2031-01-02T00:00:00Z
        let line =
            "proglog_tls_certificate_expiry_timestamp_seconds{certificate=\"node\"} 1925078400";
        assert!(
            metrics.encode().lines().any(|l| l == line),
            "{}",
            metrics.encode()
        );

        std::fs::write(&path, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
        assert!(metrics.certificates.observe_file("node", &path).is_err());
        assert!(
            metrics.encode().lines().any(|l| l == line),
            "{}",
            metrics.encode()
        );
    }

    #[test]
    fn a_bundle_reports_its_earliest_expiry() {
        // During a CA rotation ca.crt holds the old CA first and the new one after it; the
        // bundle stops working as a whole when its earliest certificate expires.
        let dir = tempfile::tempdir().unwrap();
        let pem = |year| {
            let mut params = rcgen::CertificateParams::new(vec!["ca".to_owned()]).unwrap();
            params.not_after = rcgen::date_time_ymd(year, 1, 2);
            let key = rcgen::KeyPair::generate().unwrap();
            params.self_signed(&key).unwrap().pem()
        };
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, pem(2036) + &pem(2031)).unwrap();
        let metrics = Metrics::new();
        metrics.certificates.observe_file("ca", &path).unwrap();
        let line =
            "proglog_tls_certificate_expiry_timestamp_seconds{certificate=\"ca\"} 1925078400";
        assert!(
            metrics.encode().lines().any(|l| l == line),
            "{}",
            metrics.encode()
        );
    }

    #[tokio::test]
    async fn the_watcher_reads_the_files_and_stops_with_the_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let params = rcgen::CertificateParams::new(vec!["ca".to_owned()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();

        let metrics = Arc::new(Metrics::new());
        let watcher = spawn_certificate_expiry_watcher(
            &metrics,
            vec![("ca", path)],
            Duration::from_millis(10),
        );
        let exported = "proglog_tls_certificate_expiry_timestamp_seconds{certificate=\"ca\"}";
        tokio::time::timeout(Duration::from_secs(30), async {
            while !metrics.encode().contains(exported) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the watcher never read the certificate");
        drop(metrics);
        tokio::time::timeout(Duration::from_secs(30), watcher)
            .await
            .expect("the watcher outlived the metrics")
            .unwrap();
    }
}

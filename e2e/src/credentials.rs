//! The client credentials a load connects with, and how an application follows a CA rotation:
//! it re-reads its certificate Secret (trust bundle `ca.crt`, certificate and key) and opens
//! its next connection with what the Secret holds now.
//!
//! [`Credentials`] is a shared, versioned (CA bundle, client identity) pair: a producer or
//! consumer reconnects — between two requests, never during one — when the version moved.
//! [`follow_secret`] keeps one up to date with a `kubernetes.io/tls` Secret by polling it, as an
//! application reading its Secret through the API would (one mounting it sees the same contents
//! after the kubelet's sync delay).

use std::{
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use tokio::{task::JoinHandle, time::Instant};

use crate::{E2eError, log_client::PemPair};

/// The credentials at one moment.
#[derive(Clone, Debug)]
pub struct Current {
    /// PEM bundle of the CAs the client trusts.
    pub ca_pem: String,
    /// The client certificate and key.
    pub identity: PemPair,
    /// Bumped at every change.
    pub version: u64,
}

/// Shared credentials; cloning shares them.
#[derive(Clone, Debug)]
pub struct Credentials {
    inner: Arc<RwLock<Current>>,
}

impl Credentials {
    /// Credentials that never change.
    pub fn fixed(ca_pem: &str, identity: &PemPair) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Current {
                ca_pem: ca_pem.to_owned(),
                identity: identity.clone(),
                version: 0,
            })),
        }
    }

    /// What to connect with now.
    pub fn current(&self) -> Current {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The version of [`Credentials::current`].
    pub fn version(&self) -> u64 {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).version
    }

    /// Replaces the credentials if they differ; says which parts changed.
    fn update(&self, ca_pem: String, identity: PemPair) -> Option<String> {
        let mut current = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let mut changed = Vec::new();
        if current.ca_pem != ca_pem {
            changed.push("trust bundle");
        }
        if current.identity.cert_pem != identity.cert_pem {
            changed.push("certificate");
        }
        if current.identity.key_pem != identity.key_pem {
            changed.push("key");
        }
        if changed.is_empty() {
            return None;
        }
        current.ca_pem = ca_pem;
        current.identity = identity;
        current.version += 1;
        Some(format!(
            "{} (version {})",
            changed.join(", "),
            current.version
        ))
    }
}

/// A change seen in the followed Secret.
#[derive(Clone, Debug)]
pub struct Change {
    /// Since the follower started.
    pub at: Duration,
    /// Which parts changed.
    pub what: String,
}

/// Keeps [`Credentials`] equal to a Secret's `ca.crt`, `tls.crt` and `tls.key`; stops when
/// dropped.
#[derive(Debug)]
pub struct SecretFollower {
    credentials: Credentials,
    changes: Arc<Mutex<Vec<Change>>>,
    task: JoinHandle<()>,
}

impl Drop for SecretFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SecretFollower {
    /// The followed credentials.
    pub fn credentials(&self) -> Credentials {
        self.credentials.clone()
    }

    /// Every change seen so far.
    pub fn changes(&self) -> Vec<Change> {
        self.changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// The (bundle, identity) a TLS Secret holds, if complete.
pub fn from_secret(secret: &Secret) -> Option<(String, PemPair)> {
    Some((
        text(secret, "ca.crt")?,
        PemPair {
            cert_pem: text(secret, "tls.crt")?,
            key_pem: text(secret, "tls.key")?,
        },
    ))
}

/// Reads Secret `name` (it must hold `ca.crt`, `tls.crt`, `tls.key`) and re-reads it every
/// `poll`, updating the credentials whenever it changed. A failed read keeps the last contents.
pub async fn follow_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    poll: Duration,
) -> Result<SecretFollower, E2eError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let (ca_pem, identity) = from_secret(&secrets.get(name).await?).ok_or_else(|| {
        E2eError::Unexpected(format!("Secret {name} lacks ca.crt, tls.crt or tls.key"))
    })?;
    let credentials = Credentials::fixed(&ca_pem, &identity);
    let changes = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let task = {
        let credentials = credentials.clone();
        let changes = changes.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(poll).await;
                let Ok(Some(secret)) = secrets.get_opt(&name).await else {
                    continue;
                };
                if let Some((ca_pem, identity)) = from_secret(&secret)
                    && let Some(what) = credentials.update(ca_pem, identity)
                {
                    changes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Change {
                            at: started.elapsed(),
                            what,
                        });
                }
            }
        })
    };
    Ok(SecretFollower {
        credentials,
        changes,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(cert: &str) -> PemPair {
        PemPair {
            cert_pem: cert.to_owned(),
            key_pem: "key".to_owned(),
        }
    }

    #[test]
    fn only_a_real_change_moves_the_version() {
        let credentials = Credentials::fixed("ca-a", &pair("cert-a"));
        assert_eq!(credentials.update("ca-a".into(), pair("cert-a")), None);
        assert_eq!(credentials.version(), 0);
        let what = credentials.update("ca-a\nca-b".into(), pair("cert-a"));
        assert_eq!(what.as_deref(), Some("trust bundle (version 1)"));
        let what = credentials.update("ca-a\nca-b".into(), pair("cert-b"));
        assert_eq!(what.as_deref(), Some("certificate (version 2)"));
        let current = credentials.current();
        assert_eq!(
            (current.ca_pem.as_str(), current.identity.cert_pem.as_str()),
            ("ca-a\nca-b", "cert-b")
        );
    }
}

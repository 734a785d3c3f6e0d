//! Access control: who may do what. A policy file lists the allowed `(subject, object, action)`
//! triples; everything else is denied. The policy reloads when its file changes.
//!
//! File format, one rule per line:
//! ```text
//! # comment
//! root, *, produce          # subject, object, action
//! p, nobody, log, consume   # a leading `p,` (the book's casbin policy.csv) is accepted
//! *, *, consume             # `*` matches anything in that position
//! ```
//! Subjects are client-certificate identities (CN, else first SAN). Objects name what is acted
//! on (`log` for the `log.v1` service, `cluster` for membership, `raft` for node-to-node RPCs).

mod policy;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

pub use policy::{Action, Policy, Rule};

/// A policy file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// The policy file could not be read.
    #[error("reading ACL file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of the policy file is not a valid rule; the whole file is refused, so a typo can
    /// never silently drop a rule (a reload keeps the previous policy).
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line, counted from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// A policy and when it was put in force.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// The rules.
    pub policy: Arc<Policy>,
    /// When it was loaded (at startup or by the last successful reload).
    pub loaded_at: SystemTime,
}

impl LoadedPolicy {
    fn now(policy: Policy) -> Self {
        Self {
            policy: Arc::new(policy),
            loaded_at: SystemTime::now(),
        }
    }
}

/// The policy in force, reloadable from its file.
#[derive(Debug)]
pub struct Acl {
    path: Option<PathBuf>,
    policy: RwLock<LoadedPolicy>,
}

impl Acl {
    /// Loads the policy file.
    pub fn load(path: &Path) -> Result<Arc<Self>, AclError> {
        let policy = Policy::from_file(path)?;
        Ok(Arc::new(Self {
            path: Some(path.to_path_buf()),
            policy: RwLock::new(LoadedPolicy::now(policy)),
        }))
    }

    /// A fixed policy that is not backed by a file (tests, embedding).
    pub fn fixed(policy: Policy) -> Arc<Self> {
        Arc::new(Self {
            path: None,
            policy: RwLock::new(LoadedPolicy::now(policy)),
        })
    }

    /// Whether `subject` may perform `action` on `object`.
    pub fn is_allowed(&self, subject: &str, object: &str, action: Action) -> bool {
        self.policy
            .read()
            .policy
            .is_allowed(subject, object, action)
    }

    /// The policy in force now and when it was loaded (what [`Acl::is_allowed`] answers from).
    pub fn current(&self) -> LoadedPolicy {
        self.policy.read().clone()
    }

    /// Re-reads the file; on error the previous policy stays in force.
    pub fn reload(&self) -> Result<(), AclError> {
        if let Some(path) = &self.path {
            let policy = Policy::from_file(path)?;
            *self.policy.write() = LoadedPolicy::now(policy);
        }
        Ok(())
    }

    /// Reloads whenever the file changes, until `cancel` fires. No-op for a fixed policy.
    pub fn spawn_watcher(
        self: &Arc<Self>,
        interval: Duration,
        cancel: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let path = self.path.clone()?;
        let this = Arc::clone(self);
        Some(crate::tls::watch::spawn_watcher(
            "acl",
            vec![path],
            interval,
            cancel,
            move || match this.reload() {
                Ok(()) => {
                    tracing::info!("reloaded ACL policy");
                    true
                }
                Err(error) => {
                    tracing::warn!(%error, "keeping the previous ACL policy");
                    false
                }
            },
        ))
    }
}

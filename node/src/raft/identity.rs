//! This node's Raft id: `incarnation * 10000 + ordinal`. The incarnation is drawn at random when
//! the data directory is first used and stored in it (`node-identity.json`), so a node whose
//! volume was lost comes back under its ordinal with a *new* id and can never pose as the voter
//! whose log it no longer has.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::durable_file;
use super::error::RaftStoreError;
use super::types::NodeId;

const IDENTITY_FILE: &str = "node-identity.json";
/// Ordinals are the low four decimal digits of a node id.
pub const ORDINAL_SPAN: u64 = 10_000;

/// The persisted identity of a data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Drawn at random when the data directory is first used: a node that lost its volume
    /// comes back with a new one, hence a new id.
    pub incarnation: u64,
    /// The StatefulSet ordinal the data directory was created for.
    pub ordinal: u32,
}

impl NodeIdentity {
    /// The Raft node id.
    pub fn node_id(&self) -> NodeId {
        self.incarnation * ORDINAL_SPAN + u64::from(self.ordinal)
    }

    /// Loads the identity stored in `data_dir`, or draws a new incarnation for `ordinal`. A data
    /// directory started with a different ordinal than it was created with is refused: its log
    /// belongs to another member.
    pub fn load_or_create(data_dir: &Path, ordinal: u32) -> Result<Self, RaftStoreError> {
        if u64::from(ordinal) >= ORDINAL_SPAN {
            return Err(RaftStoreError::Corrupt(format!(
                "ordinal {ordinal} is too large (at most {})",
                ORDINAL_SPAN - 1
            )));
        }
        durable_file::create_dir(data_dir)?;
        let path = data_dir.join(IDENTITY_FILE);
        durable_file::remove_temp_files(&path)?;
        if let Some(existing) = durable_file::read_json::<NodeIdentity>(&path)? {
            if existing.ordinal != ordinal {
                return Err(RaftStoreError::Corrupt(format!(
                    "{} belongs to ordinal {} but this node was started as ordinal {ordinal}",
                    path.display(),
                    existing.ordinal
                )));
            }
            return Ok(existing);
        }
        // Keep ids well inside u64 and readable: incarnations 1..=999_999_999.
        let identity = NodeIdentity {
            incarnation: rand::random_range(1..1_000_000_000u64),
            ordinal,
        };
        durable_file::write_json(&path, &identity)?;
        Ok(identity)
    }
}

/// The ordinal encoded in a node id.
pub fn ordinal_of(node_id: NodeId) -> u32 {
    (node_id % ORDINAL_SPAN) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_stable_and_tied_to_the_ordinal() {
        let dir = tempfile::tempdir().unwrap();
        let first = NodeIdentity::load_or_create(dir.path(), 2).unwrap();
        assert_eq!(ordinal_of(first.node_id()), 2);
        assert_eq!(NodeIdentity::load_or_create(dir.path(), 2).unwrap(), first);
        assert!(NodeIdentity::load_or_create(dir.path(), 3).is_err());
        assert!(NodeIdentity::load_or_create(dir.path(), 10_000).is_err());
    }

    #[test]
    fn a_fresh_directory_gets_a_fresh_incarnation() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ids: Vec<_> = [a.path(), b.path()]
            .iter()
            .map(|d| NodeIdentity::load_or_create(d, 0).unwrap().node_id())
            .collect();
        // Random 30-bit incarnations: equal only with probability 1e-9.
        assert_ne!(ids[0], ids[1]);
    }
}

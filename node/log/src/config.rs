//! [`LogConfig`]: segment limits, the first offset and the record size limit, with validation.

use super::error::{LogError, Result};
use super::index::ENTRY_BYTES;
use super::store::FRAME_HEADER_BYTES;

/// Limits of a [`Log`](super::Log).
///
/// A segment rolls *before* an append would make its store exceed `max_store_bytes` or its
/// index exceed `max_index_bytes`, so neither limit is crossed, with one exception: a record
/// larger than `max_store_bytes` is stored alone in a segment of its own (the store limit is
/// where segments roll; only `max_record_bytes` limits records).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Largest size of one segment's store file, in bytes (record frames included).
    pub max_store_bytes: u64,
    /// Largest size of one segment's index file, in bytes (12 bytes per record).
    pub max_index_bytes: u64,
    /// Offset of the first record of a new, empty log. Ignored when the directory already
    /// holds segments.
    pub initial_offset: u64,
    /// Largest record accepted, in bytes.
    pub max_record_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_store_bytes: 64 * 1024 * 1024,
            // One million index entries: enough for 64 MiB of ~50-byte records.
            max_index_bytes: 1024 * 1024 * ENTRY_BYTES,
            initial_offset: 0,
            max_record_bytes: 8 * 1024 * 1024,
        }
    }
}

impl LogConfig {
    /// Rejects limits that cannot hold a single record.
    pub fn validate(&self) -> Result<()> {
        if self.max_index_bytes < ENTRY_BYTES {
            return Err(LogError::InvalidConfig(format!(
                "max_index_bytes is {} but one index entry needs {ENTRY_BYTES} bytes",
                self.max_index_bytes
            )));
        }
        if self.max_index_bytes / ENTRY_BYTES > u64::from(u32::MAX) {
            return Err(LogError::InvalidConfig(format!(
                "max_index_bytes {} allows more than {} records per segment (relative offsets are 32-bit)",
                self.max_index_bytes,
                u32::MAX
            )));
        }
        if self.max_store_bytes <= FRAME_HEADER_BYTES {
            return Err(LogError::InvalidConfig(format!(
                "max_store_bytes is {} but a record frame alone needs {} bytes",
                self.max_store_bytes,
                FRAME_HEADER_BYTES + 1
            )));
        }
        if self.max_record_bytes == 0 {
            return Err(LogError::InvalidConfig(
                "max_record_bytes must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }

    /// The largest record this configuration accepts: the smaller of `max_record_bytes` and
    /// what the frame's 32-bit length field holds. The segment size does not limit records.
    pub fn effective_max_record_bytes(&self) -> u64 {
        self.max_record_bytes.min(u64::from(u32::MAX))
    }

    /// How many entries one index file holds.
    pub(crate) fn index_capacity(&self) -> u64 {
        self.max_index_bytes / ENTRY_BYTES
    }
}

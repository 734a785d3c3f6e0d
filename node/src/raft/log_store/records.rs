//! Where a Raft entry's records are, in both logs: appending an entry writes its records to the
//! user log and the entry (with their position, [`StoredEntry`]) to the Raft log; reading it
//! back rebuilds it from both (or takes it from the tail cache); truncating a conflicting suffix
//! cuts both. See ARCHITECTURE.md, "One write per record".

use bytes::Bytes;
use openraft::EntryPayload;
use proglog_log::Joined;

use super::super::codec;
use super::super::error::RaftStoreError;
use super::super::stored_entry::{StoredEntry, StoredPayload};
use super::super::types::{Entry, LogId};
use super::{RaftLogStoreReader, Shared, TAIL_CACHE_BYTES};

impl Shared {
    /// Entries `start .. end` (clamped to what the log holds) if the tail cache holds them all:
    /// no file read, so an async task may call it. `None` when any must come from the files.
    pub(super) fn read_range_cached(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let start = start.max(self.first_readable());
        let end = end.min(self.log.next_offset());
        let tail = self.tail.lock();
        (start..end).map(|index| tail.get(index)).collect()
    }

    /// Entries `start .. end` (clamped to what the log holds), from the tail cache or the files
    /// (blocking: call on a blocking thread).
    pub(super) fn read_range(&self, start: u64, end: u64) -> Result<Vec<Entry>, RaftStoreError> {
        let start = start.max(self.first_readable());
        let end = end.min(self.log.next_offset());
        let cached: Vec<Option<Entry>> = {
            let tail = self.tail.lock();
            (start..end).map(|index| tail.get(index)).collect()
        };
        let mut entries = Vec::with_capacity(cached.len());
        for (index, cached) in (start..end).zip(cached) {
            entries.push(match cached {
                Some(entry) => entry,
                None => self.read_stored(index)?,
            });
        }
        Ok(entries)
    }

    /// Entry `index` rebuilt from the Raft log and, for a produce entry, its records in the user
    /// log (blocking: file reads).
    pub(super) fn read_stored(&self, index: u64) -> Result<Entry, RaftStoreError> {
        let stored = StoredEntry::decode(&self.log.read(index)?)?;
        let records = match stored.payload {
            StoredPayload::Normal { count } => {
                let user = self.user.log();
                (stored.user_start..stored.user_start + count)
                    .map(|offset| user.read(offset))
                    .collect::<Result<Vec<_>, _>>()?
            }
            _ => Vec::new(),
        };
        stored.into_entry(records)
    }

    /// Where entry `index`'s records start in the user log (or would, for an entry without).
    pub(super) fn user_start_of(&self, index: u64) -> Result<u64, RaftStoreError> {
        Ok(StoredEntry::decode(&self.log.read(index)?)?.user_start)
    }

    /// Drops the entries from `from` on and their records (a conflicting suffix), but never a
    /// record the state machine applied. The caller holds the user log's write lock.
    pub(super) fn truncate_from(&self, from: u64) -> Result<(), RaftStoreError> {
        let user = self.user.log();
        // Truncated entries were never committed, so their records are past the applied end;
        // the bound only matters after a snapshot install (see `StoredEntry`'s offsets of
        // entries the install made stale).
        let cut = self.user_start_of(from)?.max(self.user.applied_end());
        self.durable
            .truncating(from, || -> Result<(), RaftStoreError> {
                if cut < user.next_offset() {
                    user.truncate_suffix(cut)?;
                }
                self.log.truncate_suffix(from)?;
                Ok(())
            })
    }

    /// Writes `entries` from index `first` (blocking: `append`'s file I/O): their records to
    /// the user log, then the entries to the Raft log, so an entry's records are on disk before
    /// the entry that refers to them. `wire` holds each entry's wire encoding (for the tail
    /// cache, and the records' messages are slices of it).
    pub(super) fn append_entries(
        &self,
        first: u64,
        entries: &[Entry],
        wire: &[Bytes],
    ) -> Result<(), RaftStoreError> {
        let log = &self.log;
        let user = self.user.log();
        let _writes = self.user.lock_writes();
        let next = log.next_offset();
        // Cached entries at `first` or later are being replaced.
        self.tail.lock().clear_from(first);
        if first != next {
            if first < next {
                // openraft truncates conflicts first; this keeps the log contiguous anyway.
                self.truncate_from(first)?;
            } else if next <= self.first_readable() {
                // Nothing readable is kept (fresh store or purged past the end): the log may
                // start at any index. The user log goes on where it is.
                log.reset(first)?;
            } else {
                return Err(RaftStoreError::Corrupt(format!(
                    "append at index {first} would leave a gap after {}",
                    next - 1
                )));
            }
        }
        let user_first = user.next_offset();
        let mut user_next = user_first;
        let mut stored = Vec::with_capacity(entries.len());
        // Each record is stored as its encoded message from the entry (a slice, no copy)
        // followed by the fields assigned here; protobuf decoding lets the later fields win.
        let mut messages = Vec::new();
        let mut assigned = Vec::new();
        let mut assigned_ends = Vec::new();
        for (entry, encoded) in entries.iter().zip(wire) {
            stored.push(StoredEntry::of(entry, user_next).encode()?);
            if let EntryPayload::Normal(_) = &entry.payload {
                for message in codec::record_messages(encoded)? {
                    messages.push(message);
                    prost::encoding::uint64::encode(2, &user_next, &mut assigned);
                    prost::encoding::uint64::encode(3, &entry.log_id.leader_id.term, &mut assigned);
                    assigned_ends.push(assigned.len());
                    user_next += 1;
                }
            }
        }
        if !messages.is_empty() {
            let mut assigned_start = 0;
            let records: Vec<Joined<&[u8], &[u8]>> = messages
                .iter()
                .zip(&assigned_ends)
                .map(|(message, &end)| {
                    let record = Joined(message.as_ref(), &assigned[assigned_start..end]);
                    assigned_start = end;
                    record
                })
                .collect();
            let range = user.append_batch(&records)?;
            if range.start != user_first {
                return Err(RaftStoreError::Corrupt(format!(
                    "records of raft entry {first} were stored at user offset {} instead of \
                     {user_first}",
                    range.start
                )));
            }
        }
        let offsets = log.append_batch(&stored)?;
        if offsets.start != first {
            return Err(RaftStoreError::Corrupt(format!(
                "raft entry {first} was stored at offset {}",
                offsets.start
            )));
        }
        // Cached with their encodings, so reading them back neither decodes nor copies.
        let cached = entries
            .iter()
            .zip(wire)
            .map(|(entry, encoded)| (codec::with_encoding(entry, encoded), encoded.len()));
        self.tail.lock().extend(first, cached, TAIL_CACHE_BYTES);
        Ok(())
    }
}

impl RaftLogStoreReader {
    /// Where the records of the entry with `log_id` end in the user log, if the Raft log holds
    /// exactly that entry (blocking: reads it). For a snapshot install, under the user log's
    /// write lock, so no append or truncation moves the entry meanwhile.
    pub fn records_end_of(&self, log_id: LogId) -> Result<Option<u64>, RaftStoreError> {
        let index = log_id.index;
        if index < self.shared.first_readable() || index >= self.shared.log.next_offset() {
            return Ok(None);
        }
        let bytes = match self.shared.log.read(index) {
            Ok(bytes) => bytes,
            // Purged meanwhile (a purge does not take the write lock).
            Err(proglog_log::LogError::OffsetBelowStart { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let stored = StoredEntry::decode(&bytes)?;
        Ok((stored.log_id == log_id).then(|| stored.user_end()))
    }

    /// The lowest user offset an entry still in the Raft log refers to: user-log retention must
    /// keep every record from here on, or the leader could not send those entries to a follower
    /// (blocking: reads the first entry). Entries leave the Raft log when a snapshot covers
    /// them (`--snapshot-entries`), so retention trails by at most that many entries.
    pub fn oldest_referenced_offset(&self) -> Result<u64, RaftStoreError> {
        let first = self.shared.first_readable();
        if first < self.shared.log.next_offset() {
            self.shared.user_start_of(first)
        } else {
            Ok(self.shared.user.log().next_offset())
        }
    }
}

//! `TailCache`: the newest Raft entries, kept in memory (bounded by their encoded bytes) so the
//! leader serves replication of new entries to every follower, and every node applies them,
//! from one copy instead of a `pread` and a checksum per entry per reader. Each cached entry
//! holds its encoding with its record count and value bytes (see [`super::produce_batch`]), so
//! reading it back copies nothing and touches none of its bytes.

use std::collections::VecDeque;

use super::types::Entry;

/// The newest entries, `first..first + entries.len()`, each with its encoded size, exactly as
/// stored in the log. Every change to the log's suffix (truncation, reset, purge) drops the
/// affected entries *before* the log changes, and appends add theirs *after* the log holds them,
/// so a cached entry is always what the log holds at that index.
#[derive(Debug, Default)]
pub(super) struct TailCache {
    first: u64,
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl TailCache {
    fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    pub(super) fn get(&self, index: u64) -> Option<Entry> {
        let at = index.checked_sub(self.first)?;
        let (entry, _) = self.entries.get(usize::try_from(at).ok()?)?;
        Some(entry.clone())
    }

    /// Adds entries stored at `first..`, each with its encoded size; a gap after the cached ones
    /// restarts the cache.
    pub(super) fn extend(
        &mut self,
        first: u64,
        entries: impl IntoIterator<Item = (Entry, usize)>,
        limit: usize,
    ) {
        if self.entries.is_empty() || self.end() != first {
            self.clear_from(0);
            self.first = first;
        }
        for (entry, size) in entries {
            self.bytes += size;
            self.entries.push_back((entry, size));
        }
        while self.bytes > limit {
            let Some((_, size)) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= size;
            self.first += 1;
        }
    }

    /// Drops every entry at `index` or later.
    pub(super) fn clear_from(&mut self, index: u64) {
        let keep = index
            .saturating_sub(self.first)
            .min(self.entries.len() as u64) as usize;
        for (_, size) in self.entries.drain(keep..) {
            self.bytes -= size;
        }
    }

    /// Drops every entry at `index` or earlier.
    pub(super) fn clear_through(&mut self, index: u64) {
        while self.first <= index {
            let Some((_, size)) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= size;
            self.first += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;

    use super::*;
    use crate::raft::types::test_log_id;

    /// Entries told apart by their term, each of `size` bytes.
    fn entries(terms: &[u64], size: usize) -> Vec<(Entry, usize)> {
        terms
            .iter()
            .map(|&term| {
                let entry = Entry {
                    log_id: test_log_id(term, 1, 0),
                    payload: EntryPayload::Blank,
                };
                (entry, size)
            })
            .collect()
    }

    fn term_at(tail: &TailCache, index: u64) -> Option<u64> {
        tail.get(index).map(|entry| entry.log_id.leader_id.term)
    }

    #[test]
    fn tail_cache_serves_only_what_was_added_and_not_dropped() {
        let mut tail = TailCache::default();
        assert_eq!(term_at(&tail, 0), None);
        tail.extend(5, entries(&[1, 2, 3], 1), 1 << 20);
        assert_eq!(term_at(&tail, 4), None);
        assert_eq!(term_at(&tail, 5), Some(1));
        assert_eq!(term_at(&tail, 7), Some(3));
        assert_eq!(term_at(&tail, 8), None);

        // A conflicting suffix is replaced: the old entries at 6.. must not be served.
        tail.clear_from(6);
        assert_eq!(term_at(&tail, 6), None);
        tail.extend(6, entries(&[9], 1), 1 << 20);
        assert_eq!(term_at(&tail, 6), Some(9));
        assert_eq!(term_at(&tail, 7), None);

        // Purging drops the front; a gap after the cached entries restarts the cache.
        tail.clear_through(5);
        assert_eq!(term_at(&tail, 5), None);
        assert_eq!(term_at(&tail, 6), Some(9));
        tail.extend(100, entries(&[10], 1), 1 << 20);
        assert_eq!(term_at(&tail, 6), None);
        assert_eq!(term_at(&tail, 100), Some(10));
        assert_eq!(tail.bytes, 1);

        // Truncating before the cached range drops everything.
        tail.clear_from(0);
        assert_eq!(term_at(&tail, 100), None);
        assert_eq!(tail.bytes, 0);
    }

    #[test]
    fn tail_cache_is_bounded_by_bytes() {
        let mut tail = TailCache::default();
        tail.extend(0, entries(&[1, 2, 3], 4), 8);
        assert_eq!(tail.bytes, 8);
        assert_eq!(term_at(&tail, 0), None);
        assert_eq!(term_at(&tail, 1), Some(2));
        assert_eq!(term_at(&tail, 2), Some(3));
    }
}

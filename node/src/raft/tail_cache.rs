//! `TailCache`: the newest Raft entries' encoded bytes, kept in memory (bounded) so the leader
//! serves replication of new entries to every follower from one copy instead of a `pread` and a
//! checksum per entry per follower.

use std::collections::VecDeque;

use bytes::Bytes;

/// The encoded bytes of the newest entries, `first..first + entries.len()`, exactly as stored in
/// the log. Every change to the log's suffix (truncation, reset, purge) drops the affected
/// entries *before* the log changes, and appends add theirs *after* the log holds them, so a
/// cached entry is always what the log holds at that index.
#[derive(Debug, Default)]
pub(super) struct TailCache {
    first: u64,
    entries: VecDeque<Bytes>,
    bytes: usize,
}

impl TailCache {
    fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    pub(super) fn get(&self, index: u64) -> Option<Bytes> {
        let at = index.checked_sub(self.first)?;
        self.entries.get(usize::try_from(at).ok()?).cloned()
    }

    /// Adds entries stored at `first..`; a gap after the cached ones restarts the cache.
    pub(super) fn extend(&mut self, first: u64, encoded: &[Bytes], limit: usize) {
        if self.entries.is_empty() || self.end() != first {
            self.clear_from(0);
            self.first = first;
        }
        for entry in encoded {
            self.bytes += entry.len();
            self.entries.push_back(entry.clone());
        }
        while self.bytes > limit {
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= oldest.len();
            self.first += 1;
        }
    }

    /// Drops every entry at `index` or later.
    pub(super) fn clear_from(&mut self, index: u64) {
        let keep = index
            .saturating_sub(self.first)
            .min(self.entries.len() as u64) as usize;
        for dropped in self.entries.drain(keep..) {
            self.bytes -= dropped.len();
        }
    }

    /// Drops every entry at `index` or earlier.
    pub(super) fn clear_through(&mut self, index: u64) {
        while self.first <= index {
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= oldest.len();
            self.first += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(values: &[&'static [u8]]) -> Vec<Bytes> {
        values.iter().map(|v| Bytes::from_static(v)).collect()
    }

    #[test]
    fn tail_cache_serves_only_what_was_added_and_not_dropped() {
        let mut tail = TailCache::default();
        assert_eq!(tail.get(0), None);
        tail.extend(5, &entries(&[b"a", b"b", b"c"]), 1 << 20);
        assert_eq!(tail.get(4), None);
        assert_eq!(tail.get(5).as_deref(), Some(&b"a"[..]));
        assert_eq!(tail.get(7).as_deref(), Some(&b"c"[..]));
        assert_eq!(tail.get(8), None);

        // A conflicting suffix is replaced: the old entries at 6.. must not be served.
        tail.clear_from(6);
        assert_eq!(tail.get(6), None);
        tail.extend(6, &entries(&[b"x"]), 1 << 20);
        assert_eq!(tail.get(6).as_deref(), Some(&b"x"[..]));
        assert_eq!(tail.get(7), None);

        // Purging drops the front; a gap after the cached entries restarts the cache.
        tail.clear_through(5);
        assert_eq!(tail.get(5), None);
        assert_eq!(tail.get(6).as_deref(), Some(&b"x"[..]));
        tail.extend(100, &entries(&[b"y"]), 1 << 20);
        assert_eq!(tail.get(6), None);
        assert_eq!(tail.get(100).as_deref(), Some(&b"y"[..]));
        assert_eq!(tail.bytes, 1);

        // Truncating before the cached range drops everything.
        tail.clear_from(0);
        assert_eq!(tail.get(100), None);
        assert_eq!(tail.bytes, 0);
    }

    #[test]
    fn tail_cache_is_bounded_by_bytes() {
        let mut tail = TailCache::default();
        tail.extend(0, &entries(&[b"1234", b"5678", b"9abc"]), 8);
        assert_eq!(tail.bytes, 8);
        assert_eq!(tail.get(0), None);
        assert_eq!(tail.get(1).as_deref(), Some(&b"5678"[..]));
        assert_eq!(tail.get(2).as_deref(), Some(&b"9abc"[..]));
    }
}

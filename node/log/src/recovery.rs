//! Opening a log directory after a clean shutdown or a crash: finding the segments, finishing
//! an interrupted reset, opening sealed segments in O(1) and the last one with a full scan, and
//! checking that the segments form one contiguous range of offsets.

use std::collections::BTreeSet;
use std::path::Path;

use super::config::LogConfig;
use super::error::{LogError, Result};
use super::segment::{
    INDEX_EXTENSION, STORE_EXTENSION, Segment, index_path, parse_file_name, remove_file_if_present,
    store_path,
};

/// Opens (creating when needed) the segments in `dir`, oldest first; never empty.
pub(super) fn open_segments(dir: &Path, config: &LogConfig) -> Result<Vec<Segment>> {
    // `Log::open` created the directory durably (`lock_directory`) before taking its lock.
    let (mut bases, orphan_indexes) = list_segment_files(dir)?;
    for base in orphan_indexes {
        // Removal deletes the index first, so an index without a store is a removal that a
        // crash interrupted.
        let path = index_path(dir, base);
        tracing::warn!(path = %path.display(), "removing index file without a store");
        remove_file_if_present(&path)?;
    }
    if bases.is_empty() {
        let segment = Segment::create(dir, config.initial_offset, config)?;
        sync_directory(dir)?;
        return Ok(vec![segment]);
    }
    if let Some(marker) = interrupted_reset_marker(dir, &bases)? {
        finish_reset(dir, &bases, marker)?;
        bases = vec![marker];
    }
    let (last, sealed) = bases.split_last().expect("not empty");
    let mut segments = Vec::with_capacity(bases.len());
    for &base in sealed {
        segments.push(Segment::open_sealed(dir, base, config)?);
    }
    let active = Segment::open_active(dir, *last, config)?;
    if active.is_empty()
        && let Some(previous) = segments.last()
        && previous.next_offset() != active.base()
    {
        // A roll always starts the new segment where the previous one ends; an empty last
        // segment anywhere else is the mark of an interrupted reset.
        finish_reset(dir, &bases, active.base())?;
        segments.clear();
    }
    segments.push(active);
    for pair in segments.windows(2) {
        if pair[0].next_offset() != pair[1].base() {
            return Err(LogError::corruption(
                pair[1].store_path(),
                0,
                format!(
                    "segment starts at offset {} but the previous segment ends at offset {} \
                     (segment files are missing or damaged)",
                    pair[1].base(),
                    pair[0].next_offset()
                ),
            ));
        }
    }
    Ok(segments)
}

/// Base offsets of the store files, and of index files that have no store.
fn list_segment_files(dir: &Path) -> Result<(Vec<u64>, Vec<u64>)> {
    let mut stores = BTreeSet::new();
    let mut indexes = BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let name = entry.file_name();
        let Some((base, extension)) = name.to_str().and_then(parse_file_name) else {
            continue;
        };
        if extension == STORE_EXTENSION {
            stores.insert(base);
        } else if extension == INDEX_EXTENSION {
            indexes.insert(base);
        }
    }
    let orphans = indexes.difference(&stores).copied().collect();
    Ok((stores.into_iter().collect(), orphans))
}

/// An empty store that is not the last one: only `reset` creates such a segment (rolls create
/// empty segments only at the end), so it marks a reset that a crash interrupted.
fn interrupted_reset_marker(dir: &Path, bases: &[u64]) -> Result<Option<u64>> {
    let mut markers = Vec::new();
    for &base in &bases[..bases.len() - 1] {
        let path = store_path(dir, base);
        let len = std::fs::metadata(&path)
            .map_err(|e| LogError::io(&path, e))?
            .len();
        if len == 0 {
            markers.push(base);
        }
    }
    match markers.as_slice() {
        [] => Ok(None),
        [marker] => Ok(Some(*marker)),
        [_, second, ..] => Err(LogError::corruption(
            &store_path(dir, *second),
            0,
            "more than one empty segment before the last one",
        )),
    }
}

/// Deletes every segment except `keep` (the new, empty segment of an interrupted reset).
fn finish_reset(dir: &Path, bases: &[u64], keep: u64) -> Result<()> {
    tracing::warn!(
        dir = %dir.display(),
        next_offset = keep,
        "finishing a reset interrupted by a crash: removing the old segments"
    );
    for &base in bases.iter().filter(|&&base| base != keep) {
        remove_file_if_present(&index_path(dir, base))?;
        remove_file_if_present(&store_path(dir, base))?;
    }
    sync_directory(dir)
}

fn sync_directory(dir: &Path) -> Result<()> {
    Ok(crate::durable_fs::sync_dir(dir)?)
}

//! Store files: the append-only sequence of record frames of one segment.
//!
//! A frame is `[length: u32 LE][crc32c: u32 LE][record bytes]`. The checksum covers the length
//! field and the record bytes, so a damaged length is caught too and a zero-filled tail (what
//! some file systems leave after a power loss) never decodes as empty records.
//!
//! Writes are positional (`pwrite`) at the published size by the single writer; readers use
//! positional reads on the same shared handle and never take a lock here. The published size
//! only moves after a write completed, so readers never see a partly written frame.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::error::{LogError, Result};
use super::in_memory::{Wait, read_exact_in_memory};

/// Bytes of the frame header (length and checksum) before each record.
pub(crate) const FRAME_HEADER_BYTES: u64 = 8;

/// How much a recovery scan reads per system call.
const SCAN_CHUNK_BYTES: u64 = 1024 * 1024;

/// Appends the frame of `record` to `buf`.
#[cfg(test)]
pub(crate) fn encode_frame(buf: &mut Vec<u8>, record: &[u8]) {
    encode_frame_parts(buf, record, &[]);
}

/// Appends the frame of the record `head` followed by `tail` to `buf`, without first joining
/// them (see [`super::RecordBytes`]).
pub(crate) fn encode_frame_parts(buf: &mut Vec<u8>, head: &[u8], tail: &[u8]) {
    let len = u32::try_from(head.len() + tail.len())
        .expect("record length checked against the u32 limit");
    let len_bytes = len.to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), head);
    let crc = crc32c::crc32c_append(crc, tail);
    buf.reserve(FRAME_HEADER_BYTES as usize + head.len() + tail.len());
    buf.extend_from_slice(&len_bytes);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(head);
    buf.extend_from_slice(tail);
}

/// The result of decoding one frame at the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameDecode {
    /// A whole frame with a matching checksum; the record is `[8, frame_len)` of the slice.
    Complete { frame_len: u64 },
    /// The slice ends before the frame does (`needed` bytes for the whole frame, if known).
    Incomplete { needed: Option<u64> },
    /// The whole frame is present but its checksum does not match.
    BadChecksum { frame_len: u64 },
}

/// Decodes the frame at the start of `bytes`.
pub(crate) fn decode_frame(bytes: &[u8]) -> FrameDecode {
    let Some(header) = bytes.get(..FRAME_HEADER_BYTES as usize) else {
        return FrameDecode::Incomplete { needed: None };
    };
    let len_bytes: [u8; 4] = header[..4].try_into().expect("4-byte slice");
    let stored_crc = u32::from_le_bytes(header[4..8].try_into().expect("4-byte slice"));
    let frame_len = FRAME_HEADER_BYTES + u64::from(u32::from_le_bytes(len_bytes));
    let Some(record) = bytes.get(FRAME_HEADER_BYTES as usize..frame_len as usize) else {
        return FrameDecode::Incomplete {
            needed: Some(frame_len),
        };
    };
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), record);
    if crc == stored_crc {
        FrameDecode::Complete { frame_len }
    } else {
        FrameDecode::BadChecksum { frame_len }
    }
}

/// What a full scan of a store found.
#[derive(Debug)]
pub(crate) struct StoreScan {
    /// Start position of every valid frame, in order.
    pub(crate) positions: Vec<u64>,
    /// Bytes covered by the valid frames (where the first damage starts, if any).
    pub(crate) valid_len: u64,
    /// The first damage found, if the valid frames do not reach the end of the file.
    pub(crate) damage: Option<StoreDamage>,
}

/// Bytes at the end of a store that do not form a valid frame.
#[derive(Debug)]
pub(crate) struct StoreDamage {
    /// Why the frame at `valid_len` is invalid.
    pub(crate) reason: String,
    /// A valid frame follows the damaged one: this is not a torn tail but damage in the middle.
    pub(crate) followed_by_valid_frame: bool,
}

/// One segment's store file.
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    file: Arc<File>,
    /// Bytes of complete frames; readers may read anything below it.
    size: AtomicU64,
}

/// Opens `path` for reading and writing, creating it empty if missing (never truncating): how
/// every store, index and lock file of a log is opened.
pub(super) fn open_or_create(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| LogError::io(path, e))
}

impl Store {
    /// Opens (creating if missing) the store at `path`; its size is the file's length, which
    /// the caller validates.
    pub(crate) fn open(path: &Path) -> Result<Store> {
        let file = open_or_create(path)?;
        let size = file.metadata().map_err(|e| LogError::io(path, e))?.len();
        Ok(Store {
            path: path.to_path_buf(),
            file: Arc::new(file),
            size: AtomicU64::new(size),
        })
    }

    /// Creates a new, empty store; fails if the file exists (a new segment never reuses one).
    pub(crate) fn create(path: &Path) -> Result<Store> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| LogError::io(path, e))?;
        Ok(Store {
            path: path.to_path_buf(),
            file: Arc::new(file),
            size: AtomicU64::new(0),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The length of the frame starting at `position`, from its header alone.
    pub(crate) fn frame_len_at(&self, position: u64) -> Result<u64> {
        let header = self.read_exact(position, FRAME_HEADER_BYTES, self.size(), Wait::Disk)?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4-byte slice"));
        Ok(FRAME_HEADER_BYTES + u64::from(len))
    }

    /// When the file was last modified, per the file system.
    pub(crate) fn modified(&self) -> Result<std::time::SystemTime> {
        self.file
            .metadata()
            .and_then(|m| m.modified())
            .map_err(|e| LogError::io(&self.path, e))
    }

    /// Bytes of complete frames.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// A handle for fsyncing outside the writer's lock.
    pub(crate) fn file_handle(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// Writes already-encoded frames at the end and publishes them; returns where they start.
    /// Only the log's single writer calls this. On error nothing is published and the next
    /// append overwrites whatever part was written.
    pub(crate) fn append_frames(&self, frames: &[u8]) -> Result<u64> {
        let start = self.size.load(Ordering::Acquire);
        self.file
            .write_all_at(frames, start)
            .map_err(|e| LogError::io(&self.path, e))?;
        self.size
            .store(start + frames.len() as u64, Ordering::Release);
        Ok(start)
    }

    /// Reads and verifies the frame at `position`, returning its record. `expected_frame_len`
    /// comes from the index when the next record's position is known.
    pub(crate) fn read_record(
        &self,
        position: u64,
        expected_frame_len: Option<u64>,
        wait: Wait,
    ) -> Result<Bytes> {
        let size = self.size();
        let frame_len = match expected_frame_len {
            Some(len) => len,
            None => {
                let header = self.read_exact(position, FRAME_HEADER_BYTES, size, wait)?;
                let len = u32::from_le_bytes(header[..4].try_into().expect("4-byte slice"));
                FRAME_HEADER_BYTES + u64::from(len)
            }
        };
        let frame = self.read_exact(position, frame_len, size, wait)?;
        match decode_frame(&frame) {
            FrameDecode::Complete { frame_len: decoded } if decoded == frame_len => {
                Ok(frame.slice(FRAME_HEADER_BYTES as usize..))
            }
            FrameDecode::Complete { frame_len: decoded }
            | FrameDecode::BadChecksum { frame_len: decoded }
                if decoded != frame_len =>
            {
                Err(LogError::corruption(
                    &self.path,
                    position,
                    format!(
                        "frame length field says {decoded} bytes but the index says {frame_len}"
                    ),
                ))
            }
            FrameDecode::Incomplete { .. } => Err(LogError::corruption(
                &self.path,
                position,
                format!("frame length field says more than the {frame_len} bytes the index says"),
            )),
            _ => Err(LogError::corruption(
                &self.path,
                position,
                "record checksum mismatch",
            )),
        }
    }

    /// Reads up to `max_len` bytes of frames from `position` (bounded by the published size).
    pub(crate) fn read_chunk(&self, position: u64, max_len: u64, wait: Wait) -> Result<Bytes> {
        let size = self.size();
        let len = max_len.min(size.saturating_sub(position));
        self.read_exact(position, len, size, wait)
    }

    fn read_exact(&self, position: u64, len: u64, size: u64, wait: Wait) -> Result<Bytes> {
        if position.checked_add(len).is_none_or(|end| end > size) {
            return Err(LogError::corruption(
                &self.path,
                position,
                format!("a read of {len} bytes would pass the end of the store ({size} bytes)"),
            ));
        }
        let mut buf = vec![0; len as usize];
        if wait == Wait::MemoryOnly {
            #[cfg(any(test, feature = "io-hooks"))]
            if super::durable_fs::hook::dropped_from_memory(&self.path) {
                return Err(LogError::NotInMemory);
            }
            return match read_exact_in_memory(&self.file, &mut buf, position) {
                Ok(true) => Ok(Bytes::from(buf)),
                Ok(false) => Err(LogError::NotInMemory),
                Err(e) => Err(LogError::io(&self.path, e)),
            };
        }
        #[cfg(any(test, feature = "io-hooks"))]
        super::durable_fs::hook::record_disk_read(&self.path);
        self.file.read_exact_at(&mut buf, position).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                LogError::corruption(&self.path, position, "store file is shorter than written")
            } else {
                LogError::io(&self.path, e)
            }
        })?;
        Ok(Bytes::from(buf))
    }

    /// Reads the whole file and validates every frame (recovery of the active segment, or of a
    /// sealed segment whose index does not match its store).
    pub(crate) fn scan(&self) -> Result<StoreScan> {
        let file_len = self.size();
        let mut positions = Vec::new();
        let mut position = 0;
        let mut buf = Bytes::new();
        let mut buf_start = 0;
        let damage = loop {
            if position == file_len {
                break None;
            }
            // Make sure the buffer holds at least the header, then the whole frame.
            let mut wanted = FRAME_HEADER_BYTES;
            let decoded = loop {
                let buf_end = buf_start + buf.len() as u64;
                if position < buf_start || position + wanted > buf_end {
                    let len = wanted.max(SCAN_CHUNK_BYTES).min(file_len - position);
                    buf = self.read_exact(position, len, file_len, Wait::Disk)?;
                    buf_start = position;
                }
                let at = (position - buf_start) as usize;
                match decode_frame(&buf[at..]) {
                    FrameDecode::Incomplete { needed } => {
                        let needed = needed.unwrap_or(FRAME_HEADER_BYTES);
                        if position + needed > file_len || needed <= wanted {
                            break FrameDecode::Incomplete {
                                needed: Some(needed),
                            };
                        }
                        wanted = needed;
                    }
                    other => break other,
                }
            };
            match decoded {
                FrameDecode::Complete { frame_len } => {
                    positions.push(position);
                    position += frame_len;
                }
                FrameDecode::Incomplete { needed } => {
                    let needed = needed.unwrap_or(FRAME_HEADER_BYTES);
                    break Some(StoreDamage {
                        reason: format!(
                            "frame of {needed} bytes at {position} is cut off by the end of the file ({file_len} bytes)"
                        ),
                        followed_by_valid_frame: false,
                    });
                }
                FrameDecode::BadChecksum { frame_len } => {
                    break Some(StoreDamage {
                        reason: format!("checksum mismatch in the frame at {position}"),
                        followed_by_valid_frame: self
                            .valid_frame_at(position + frame_len, file_len)?,
                    });
                }
            }
        };
        Ok(StoreScan {
            positions,
            valid_len: position,
            damage,
        })
    }

    /// Whether a complete, checksum-valid frame starts at `position`. `position` may come from
    /// a damaged index (any value up to `u64::MAX`), so the arithmetic is checked: a frame that
    /// would end past the file, or past `u64::MAX`, is not there.
    pub(crate) fn valid_frame_at(&self, position: u64, file_len: u64) -> Result<bool> {
        let ends_inside = |len: u64| position.checked_add(len).is_some_and(|end| end <= file_len);
        if !ends_inside(FRAME_HEADER_BYTES) {
            return Ok(false);
        }
        let header = self.read_exact(position, FRAME_HEADER_BYTES, file_len, Wait::Disk)?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4-byte slice"));
        let frame_len = FRAME_HEADER_BYTES + u64::from(len);
        if !ends_inside(frame_len) {
            return Ok(false);
        }
        let frame = self.read_exact(position, frame_len, file_len, Wait::Disk)?;
        Ok(matches!(decode_frame(&frame), FrameDecode::Complete { .. }))
    }

    /// Cuts the file to `len` bytes (dropping frames at and after it). Only the writer calls
    /// this, with readers excluded by the log.
    pub(crate) fn truncate(&self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .map_err(|e| LogError::io(&self.path, e))?;
        self.size.store(len, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(records: &[&[u8]]) -> Vec<u8> {
        let mut buf = Vec::new();
        for record in records {
            encode_frame(&mut buf, record);
        }
        buf
    }

    #[test]
    fn append_then_read_each_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.store")).unwrap();
        let first = store.append_frames(&frames(&[b"hello", b""])).unwrap();
        let second = store.append_frames(&frames(&[b"world"])).unwrap();
        assert_eq!(first, 0);
        assert_eq!(second, 2 * FRAME_HEADER_BYTES + 5);
        assert_eq!(
            store.read_record(0, None, Wait::Disk).unwrap(),
            &b"hello"[..]
        );
        assert_eq!(
            store.read_record(13, Some(8), Wait::Disk).unwrap(),
            &b""[..]
        );
        assert_eq!(
            store.read_record(second, None, Wait::Disk).unwrap(),
            &b"world"[..]
        );
        assert_eq!(store.size(), 3 * FRAME_HEADER_BYTES + 10);
    }

    #[test]
    fn reopen_sees_written_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.store");
        Store::open(&path)
            .unwrap()
            .append_frames(&frames(&[b"abc"]))
            .unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.size(), FRAME_HEADER_BYTES + 3);
        assert_eq!(store.read_record(0, None, Wait::Disk).unwrap(), &b"abc"[..]);
    }

    #[test]
    fn read_detects_flipped_byte_and_wrong_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.store");
        let store = Store::open(&path).unwrap();
        store.append_frames(&frames(&[b"abcdef"])).unwrap();
        store.file.write_all_at(b"X", 10).unwrap();
        let err = store.read_record(0, None, Wait::Disk).unwrap_err();
        assert!(
            matches!(err, LogError::Corruption { position: 0, .. }),
            "{err}"
        );
        let err = store.read_record(0, Some(9), Wait::Disk).unwrap_err();
        assert!(matches!(err, LogError::Corruption { .. }), "{err}");
        let err = store.read_record(4, None, Wait::Disk).unwrap_err();
        assert!(matches!(err, LogError::Corruption { .. }), "{err}");
    }

    #[test]
    fn scan_reports_positions_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.store")).unwrap();
        let all = frames(&[b"one", b"two", b"three"]);
        store.append_frames(&all[..all.len() - 2]).unwrap();
        let scan = store.scan().unwrap();
        assert_eq!(scan.positions, vec![0, 11]);
        assert_eq!(scan.valid_len, 22);
        let damage = scan.damage.expect("torn tail");
        assert!(!damage.followed_by_valid_frame);
    }

    #[test]
    fn scan_tells_middle_damage_from_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.store")).unwrap();
        store
            .append_frames(&frames(&[b"one", b"two", b"three"]))
            .unwrap();
        store.file.write_all_at(b"X", 19).unwrap();
        let scan = store.scan().unwrap();
        assert_eq!(scan.positions, vec![0]);
        assert!(scan.damage.expect("damage").followed_by_valid_frame);
    }

    #[test]
    fn zeroed_tail_is_not_a_record() {
        let bytes = [0u8; 64];
        assert!(matches!(
            decode_frame(&bytes),
            FrameDecode::BadChecksum { frame_len: 8 }
        ));
    }

    #[test]
    fn scan_handles_frames_larger_than_a_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.store")).unwrap();
        let big = vec![7u8; (SCAN_CHUNK_BYTES + 100) as usize];
        store.append_frames(&frames(&[b"a", &big, b"b"])).unwrap();
        let scan = store.scan().unwrap();
        assert_eq!(scan.positions.len(), 3);
        assert!(scan.damage.is_none());
    }
}

//! [`RecordBytes`]: what [`super::Log::append_batch`] accepts as a record — any byte slice, or a
//! record in two parts ([`Joined`]) that the log frames back to back without first copying them
//! into one buffer.

/// The bytes of one record to append.
pub trait RecordBytes {
    /// The record as a head and a tail written back to back (the tail is often empty).
    fn parts(&self) -> (&[u8], &[u8]);

    /// The record's length in bytes.
    fn byte_len(&self) -> usize {
        let (head, tail) = self.parts();
        head.len() + tail.len()
    }
}

impl<T: AsRef<[u8]>> RecordBytes for T {
    fn parts(&self) -> (&[u8], &[u8]) {
        (self.as_ref(), &[])
    }
}

/// A record made of `head` then `tail`. The Raft state machine uses it to store a produced
/// record's bytes as received (a slice of the Raft entry) followed by the fields it assigns
/// (offset, term), saving an encode and a copy per record.
#[derive(Debug, Clone, Copy)]
pub struct Joined<H, T>(pub H, pub T);

impl<H: AsRef<[u8]>, T: AsRef<[u8]>> RecordBytes for Joined<H, T> {
    fn parts(&self) -> (&[u8], &[u8]) {
        (self.0.as_ref(), self.1.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Log, LogConfig};

    #[test]
    fn joined_records_read_back_as_one_record() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let range = log
            .append_batch(&[
                Joined(&b"head-"[..], &b"tail"[..]),
                Joined(&b""[..], &b"x"[..]),
            ])
            .unwrap();
        assert_eq!(range, 0..2);
        assert_eq!(log.read(0).unwrap(), &b"head-tail"[..]);
        assert_eq!(log.read(1).unwrap(), &b"x"[..]);
        drop(log);
        // The checksum covers both parts: the records survive a reopen's verification.
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(
            log.reader(0).map(|r| r.unwrap().1).collect::<Vec<_>>(),
            vec![
                bytes::Bytes::from_static(b"head-tail"),
                bytes::Bytes::from_static(b"x")
            ]
        );
    }
}

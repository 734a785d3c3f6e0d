//! Simulated power cuts. A `kill -9` loses nothing the node wrote — the page cache keeps it — so
//! it never shows what a real power cut takes: every write no fsync covered. Nodes of a fault
//! run are built with the `failpoints` feature and started with `PROGLOG_SYNC_JOURNAL`; each
//! successful fsync then appends `seq dev ino len` to that journal
//! (`node/log/src/durable_fs/power_cut.rs`). After killing a node, [`cut`] shortens every file of
//! its data directory to the length its newest fsync covered — a file never fsynced becomes
//! empty — optionally keeping a random part of the unsynced tail (a torn write), and then
//! rewrites the journal to say that what is left is on disk.
//!
//! Not modelled: a removal, truncation or rename that no directory fsync covered coming back
//! (the old contents are gone from this machine's page cache, so they cannot be restored), and
//! unsynced pages surviving out of order. Both would only make the simulation gentler.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rand::Rng;
use rand::rngs::StdRng;

/// What a cut did to one data directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CutStats {
    /// Regular files looked at.
    pub files: usize,
    /// Files made shorter.
    pub shortened: usize,
    /// Of those, files left with part of their unsynced tail (torn).
    pub torn: usize,
    /// Bytes dropped in all.
    pub bytes_dropped: u64,
}

impl fmt::Display for CutStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} files cut ({} torn), {} bytes lost",
            self.shortened, self.files, self.torn, self.bytes_dropped
        )
    }
}

/// The newest fsynced length of each file (by device and inode) in a journal.
pub fn read_journal(path: &Path) -> io::Result<HashMap<(u64, u64), u64>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut newest: HashMap<(u64, u64), (u64, u64)> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<u64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()
            .filter(|f: &Vec<u64>| f.len() == 4)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}:{}: not `seq dev ino len`: {line:?}",
                        path.display(),
                        n + 1
                    ),
                )
            })?;
        let (seq, key, len) = (fields[0], (fields[1], fields[2]), fields[3]);
        let entry = newest.entry(key).or_insert((seq, len));
        if seq >= entry.0 {
            *entry = (seq, len);
        }
    }
    Ok(newest.into_iter().map(|(k, (_, len))| (k, len)).collect())
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Cuts every file under `data_dir` (of a node that is not running) back to what `journal`
/// says was fsynced; with `tear`, a random part of each unsynced tail survives. Then the
/// journal is rewritten with the files' new lengths: they are all on disk now.
pub fn cut(data_dir: &Path, journal: &Path, mut tear: Option<&mut StdRng>) -> io::Result<CutStats> {
    let synced = read_journal(journal)?;
    let mut stats = CutStats::default();
    let mut rewritten = String::new();
    for path in files_under(data_dir)? {
        let meta = fs::metadata(&path)?;
        let durable = synced.get(&(meta.dev(), meta.ino())).copied().unwrap_or(0);
        let len = meta.len();
        stats.files += 1;
        let mut keep = len;
        if len > durable {
            let extra = match tear.as_deref_mut() {
                Some(rng) => rng.random_range(0..=len - durable),
                None => 0,
            };
            keep = durable + extra;
        }
        if keep < len {
            OpenOptions::new().write(true).open(&path)?.set_len(keep)?;
            stats.shortened += 1;
            stats.torn += usize::from(keep > durable);
            stats.bytes_dropped += len - keep;
        }
        rewritten.push_str(&format!("0 {} {} {keep}\n", meta.dev(), meta.ino()));
    }
    let mut file = File::create(journal)?;
    file.write_all(rewritten.as_bytes())?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn key(path: &Path) -> (u64, u64) {
        let meta = fs::metadata(path).unwrap();
        (meta.dev(), meta.ino())
    }

    fn record(journal: &Path, seq: u64, path: &Path, len: u64) {
        let (dev, ino) = key(path);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(journal)
            .unwrap();
        writeln!(f, "{seq} {dev} {ino} {len}").unwrap();
    }

    #[test]
    fn files_go_back_to_their_newest_fsynced_length() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(data.join("raft/log")).unwrap();
        let journal = dir.path().join("journal");
        let store = data.join("raft/log/0.store");
        let state = data.join("state.json");
        let never = data.join("raft/log/0.index");
        fs::write(&store, [7u8; 100]).unwrap();
        fs::write(&state, b"{\"v\":1}").unwrap();
        fs::write(&never, [1u8; 64]).unwrap();
        // Out-of-order completion: the record with the larger sequence number wins.
        record(&journal, 5, &store, 60);
        record(&journal, 4, &store, 30);
        record(&journal, 9, &state, 7);
        let stats = cut(&data, &journal, None).unwrap();
        assert_eq!(fs::metadata(&store).unwrap().len(), 60);
        assert_eq!(fs::read(&state).unwrap(), b"{\"v\":1}");
        assert_eq!(fs::metadata(&never).unwrap().len(), 0, "never fsynced");
        assert_eq!(
            stats,
            CutStats {
                files: 3,
                shortened: 2,
                torn: 0,
                bytes_dropped: 40 + 64
            }
        );
        // The journal now says everything left is durable: a second cut changes nothing.
        assert_eq!(read_journal(&journal).unwrap()[&key(&store)], 60);
        assert_eq!(cut(&data, &journal, None).unwrap().shortened, 0);
    }

    #[test]
    fn a_torn_cut_keeps_part_of_the_unsynced_tail_only() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal");
        let mut rng = StdRng::seed_from_u64(3);
        let mut torn = 0;
        for round in 0..20 {
            let data = dir.path().join(format!("d{round}"));
            fs::create_dir_all(&data).unwrap();
            let file = data.join("seg");
            fs::write(&file, vec![1u8; 1000]).unwrap();
            record(&journal, 1, &file, 400);
            let stats = cut(&data, &journal, Some(&mut rng)).unwrap();
            let len = fs::metadata(&file).unwrap().len();
            assert!((400..=1000).contains(&len), "{len}");
            torn += stats.torn;
        }
        assert!(torn > 10, "a tear keeps some of the tail most of the time");
    }

    #[test]
    fn a_malformed_journal_is_an_error_not_a_cut_to_zero() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal");
        fs::write(&journal, "1 2 3\n").unwrap();
        let err = cut(dir.path(), &journal, None).unwrap_err();
        assert!(err.to_string().contains("not `seq dev ino len`"), "{err}");
    }
}

//! The nodes' disks in a fault run. Each node's data directory lives on its own small tmpfs,
//! mounted by the runner inside the client namespace's private mount namespace (`ip netns exec`
//! gives each process tree one), so the nodes it starts see it and nothing outlives the run: no
//! mount is left behind even when the harness is killed. That makes two disk faults possible:
//! - a full disk: [`NodeDisk::fill`] writes a filler file until the tmpfs has no space left;
//! - fsync errors: while [`NodeDisk::fsync_fail_trigger`] exists, the node's fsyncs fail with
//!   `EIO` (`PROGLOG_FSYNC_FAIL_FILE`, node feature `failpoints`).
//!
//! tmpfs ignores fsync, which is harmless here: what a power cut keeps is decided by the nodes'
//! sync journals ([`crate::power_cut`]), not by the page cache.
//!
//! Layout: `nI/` (the mount point), `nI/data/` (the node's `--data-dir`), `nI/filler`,
//! `nI.fsync-fail` (the trigger, outside the mount), `nI-data/` (a copy of the data left by a run
//! that failed, for inspection after the mount is gone).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cluster::run_checked;
use crate::netns::argv;

/// Size of each node's tmpfs: far more than a run writes (nodes snapshot and purge often).
pub const DISK_MIB: u64 = 256;

/// One node's disk.
#[derive(Debug, Clone)]
pub struct NodeDisk {
    run_dir: PathBuf,
    node: usize,
}

impl NodeDisk {
    pub fn new(run_dir: &Path, node: usize) -> Self {
        Self {
            run_dir: run_dir.to_path_buf(),
            node,
        }
    }

    /// The mount point.
    pub fn root(&self) -> PathBuf {
        self.run_dir.join(format!("n{}", self.node))
    }

    /// The node's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }

    fn filler(&self) -> PathBuf {
        self.root().join("filler")
    }

    /// While this file exists the node's fsyncs fail (`PROGLOG_FSYNC_FAIL_FILE`).
    pub fn fsync_fail_trigger(&self) -> PathBuf {
        self.run_dir.join(format!("n{}.fsync-fail", self.node))
    }

    /// Mounts a fresh tmpfs of [`DISK_MIB`] at [`NodeDisk::root`].
    pub async fn mount(&self) -> Result<()> {
        let root = self.root();
        fs::create_dir_all(&root)?;
        let size = format!("size={DISK_MIB}m");
        let at = root.display().to_string();
        run_checked(&argv(&["mount", "-t", "tmpfs", "-o", &size, "tmpfs", &at]))
            .await
            .with_context(|| format!("mounting the tmpfs of n{}", self.node))?;
        Ok(())
    }

    /// Fills the disk: writes the filler until the tmpfs has no space left. Returns its size.
    pub fn fill(&self) -> Result<u64> {
        let mut file = File::create(self.filler())?;
        let chunk = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => return Err(e).context("filling the disk"),
            }
        }
        Ok(written)
    }

    /// Gives the space back.
    pub fn free(&self) -> Result<()> {
        match fs::remove_file(self.filler()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Makes the node's fsyncs fail (`on`) or work again.
    pub fn fail_fsyncs(&self, on: bool) -> Result<()> {
        let trigger = self.fsync_fail_trigger();
        if on {
            fs::write(&trigger, b"")?;
        } else if let Err(e) = fs::remove_file(&trigger)
            && e.kind() != io::ErrorKind::NotFound
        {
            return Err(e.into());
        }
        Ok(())
    }

    /// Damages one file of the data directory, drawn from `seed`, as a bad disk would: one bit
    /// flipped in a record store (`*.store`, Raft log or user log, active or sealed segment), in
    /// an index (`*.index`) or in a state file (`*.json`: the vote, the applied position, the
    /// identity), or a store cut short at a random length. Says what it did.
    pub fn damage(&self, seed: u64) -> Result<String> {
        use rand::{Rng, SeedableRng};
        let data = self.data_dir();
        let mut files: Vec<(PathBuf, u64)> = Vec::new();
        let mut dirs = vec![data.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let len = fs::metadata(&path)?.len();
                    if len > 0 {
                        files.push((path, len));
                    }
                }
            }
        }
        files.sort();
        let of = |ext: &str| -> Vec<(PathBuf, u64)> {
            files
                .iter()
                .filter(|(p, _)| p.extension().is_some_and(|e| e == ext))
                .cloned()
                .collect()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let targets = [
            ("flip", of("store")),
            ("flip", of("index")),
            ("flip", of("json")),
            ("truncate", of("store")),
        ];
        let choices: Vec<_> = targets.iter().filter(|(_, f)| !f.is_empty()).collect();
        anyhow::ensure!(
            !choices.is_empty(),
            "no file to damage under {}",
            data.display()
        );
        let (how, candidates) = choices[rng.random_range(0..choices.len())];
        let (path, len) = &candidates[rng.random_range(0..candidates.len())];
        let shown = path
            .strip_prefix(&data)
            .unwrap_or(path)
            .display()
            .to_string();
        let file = fs::OpenOptions::new().read(true).write(true).open(path)?;
        if *how == "truncate" {
            let keep = rng.random_range(0..*len);
            file.set_len(keep)?;
            return Ok(format!("cut {shown} from {len} to {keep} bytes"));
        }
        let at = rng.random_range(0..*len);
        let bit = rng.random_range(0..8u8);
        let mut byte = [0u8];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut byte, at)?;
        byte[0] ^= 1 << bit;
        std::os::unix::fs::FileExt::write_all_at(&file, &byte, at)?;
        Ok(format!(
            "flipped bit {bit} of byte {at} of {shown} ({len} bytes)"
        ))
    }

    /// Copies the data directory next to the mount point (`nI-data/`), so a failed run can be
    /// inspected after the tmpfs is gone.
    pub async fn copy_out(&self) -> Result<PathBuf> {
        let to = self.run_dir.join(format!("n{}-data", self.node));
        let _ = fs::remove_dir_all(&to);
        let (from, dest) = (
            self.data_dir().display().to_string(),
            to.display().to_string(),
        );
        run_checked(&argv(&["cp", "-a", &from, &dest])).await?;
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let disk = NodeDisk::new(Path::new("/run/x"), 2);
        assert_eq!(disk.root(), Path::new("/run/x/n2"));
        assert_eq!(disk.data_dir(), Path::new("/run/x/n2/data"));
        assert_eq!(disk.fsync_fail_trigger(), Path::new("/run/x/n2.fsync-fail"));
    }

    #[test]
    fn damage_flips_one_bit_or_cuts_one_file_and_reaches_every_kind() {
        let mut all = String::new();
        for seed in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let disk = NodeDisk::new(dir.path(), 0);
            let log = disk.data_dir().join("raft/log");
            fs::create_dir_all(&log).unwrap();
            let names = ["0.store", "0.index", "raft-state.json"];
            for name in names {
                fs::write(log.join(name), vec![0u8; 64]).unwrap();
            }
            let what = disk.damage(seed).unwrap();
            let (mut bits, mut short) = (0u32, 0usize);
            for name in names {
                let bytes = fs::read(log.join(name)).unwrap();
                bits += bytes.iter().map(|b| b.count_ones()).sum::<u32>();
                short += usize::from(bytes.len() < 64);
            }
            let expected = if what.starts_with("cut") {
                (0, 1)
            } else {
                (1, 0)
            };
            assert_eq!((bits, short), expected, "{what}");
            all.push_str(&what);
            all.push('\n');
        }
        for kind in [
            "of raft/log/0.store",
            "of raft/log/0.index",
            "of raft/log/raft-state.json",
            "cut ",
        ] {
            assert!(all.contains(kind), "{kind:?} never happened:\n{all}");
        }
    }

    #[test]
    fn fsync_trigger_and_free_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let disk = NodeDisk::new(dir.path(), 0);
        fs::create_dir_all(disk.root()).unwrap();
        disk.fail_fsyncs(true).unwrap();
        assert!(disk.fsync_fail_trigger().exists());
        disk.fail_fsyncs(false).unwrap();
        disk.fail_fsyncs(false).unwrap();
        assert!(!disk.fsync_fail_trigger().exists());
        disk.free().unwrap();
    }
}

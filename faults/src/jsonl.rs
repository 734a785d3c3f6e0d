//! History files as JSON lines: [`HistoryWriter`] appends one [`Entry`] per line through a
//! `BufWriter`, [`read_history`] / [`parse_history`] read a file back into a [`History`],
//! naming the line of any malformed entry.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufRead, BufReader, BufWriter, Write},
    path::{Path, PathBuf},
};

use crate::history::{ConsumerRun, EndOfRun, Entry, EntryRef, FinalLog, History, Operation};

/// Errors reading or writing a history file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot open history file {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read history at line {line}: {source}")]
    Read { line: usize, source: io::Error },
    #[error("malformed history entry at line {line}: {source}")]
    Parse {
        line: usize,
        source: serde_json::Error,
    },
    #[error("cannot write history entry: {0}")]
    Write(#[source] io::Error),
    #[error("cannot serialize history entry: {0}")]
    Serialize(#[source] serde_json::Error),
}

/// Writes history entries as JSON lines. Entries are buffered: call [`HistoryWriter::flush`]
/// (or drop the writer, which flushes best-effort) before reading the file.
#[derive(Debug)]
pub struct HistoryWriter<W: Write = BufWriter<File>> {
    out: W,
}

impl HistoryWriter<BufWriter<File>> {
    /// Creates (truncates) the file at `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|source| HistoryError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::new(BufWriter::new(file)))
    }

    /// Opens the file at `path` for appending, creating it if needed.
    pub fn append(path: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| HistoryError::Open {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self::new(BufWriter::new(file)))
    }
}

impl<W: Write> HistoryWriter<W> {
    /// Writes to `out` (wrap unbuffered writers in a `BufWriter`).
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Writes one entry as a line.
    pub fn write_entry(&mut self, entry: EntryRef<'_>) -> Result<(), HistoryError> {
        let line = serde_json::to_vec(&entry).map_err(HistoryError::Serialize)?;
        self.out.write_all(&line).map_err(HistoryError::Write)?;
        self.out.write_all(b"\n").map_err(HistoryError::Write)
    }

    /// Writes a completed operation.
    pub fn write_op(&mut self, op: &Operation) -> Result<(), HistoryError> {
        self.write_entry(EntryRef::Op(op))
    }

    /// Writes a consumer's observed sequence.
    pub fn write_consumer(&mut self, run: &ConsumerRun) -> Result<(), HistoryError> {
        self.write_entry(EntryRef::Consumer(run))
    }

    /// Writes a node's final log.
    pub fn write_final_log(&mut self, log: &FinalLog) -> Result<(), HistoryError> {
        self.write_entry(EntryRef::FinalLog(log))
    }

    /// Marks the history complete (after the final logs).
    pub fn write_end(&mut self, end: &EndOfRun) -> Result<(), HistoryError> {
        self.write_entry(EntryRef::End(end))
    }

    /// Writes every entry of `history`.
    pub fn write_history(&mut self, history: &History) -> Result<(), HistoryError> {
        history
            .entries()
            .try_for_each(|entry| self.write_entry(entry))
    }

    /// Flushes buffered lines to the underlying writer.
    pub fn flush(&mut self) -> Result<(), HistoryError> {
        self.out.flush().map_err(HistoryError::Write)
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> Result<W, HistoryError> {
        self.flush()?;
        Ok(self.out)
    }
}

/// Reads the history file at `path`.
pub fn read_history(path: impl AsRef<Path>) -> Result<History, HistoryError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| HistoryError::Open {
        path: path.to_owned(),
        source,
    })?;
    parse_history(BufReader::new(file))
}

/// Parses JSON lines into a history; blank lines are skipped, line numbers start at 1.
pub fn parse_history(input: impl BufRead) -> Result<History, HistoryError> {
    let mut history = History::default();
    for (index, line) in input.lines().enumerate() {
        let line_no = index + 1;
        let line = line.map_err(|source| HistoryError::Read {
            line: line_no,
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: Entry = serde_json::from_str(&line).map_err(|source| HistoryError::Parse {
            line: line_no,
            source,
        })?;
        history.push(entry);
    }
    Ok(history)
}

//! Checking a whole journal: every line's hash, the chain between lines and the sequence.

use std::io::BufRead;

use ctguard_protocol::JournalRecord;

use super::record::{self, GENESIS, LineError};

/// Where the chain breaks: the first bad record, counted from 1 as editors count lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {line} (byte offset {offset}) is broken: {reason}")]
pub struct Broken {
    pub line: u64,
    pub offset: u64,
    pub reason: BrokenReason,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokenReason {
    #[error(transparent)]
    Line(#[from] LineError),
    #[error("the last record has no newline (a torn write)")]
    Unterminated,
    #[error("cannot read the journal: {0}")]
    Io(String),
    #[error("the segment does not follow the one before: {0}")]
    Segment(String),
}

/// The end of a chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEnd {
    pub records: u64,
    /// The hash the next record must name as `prev`.
    pub last_hash: String,
    /// The length of the verified records in bytes: where the next record starts.
    pub bytes: u64,
}

impl ChainEnd {
    /// The end of an empty journal.
    pub fn empty() -> Self {
        Self {
            records: 0,
            last_hash: GENESIS.to_owned(),
            bytes: 0,
        }
    }
}

/// Walks the journal, calling `each` for every record that verifies, and stops at the first
/// broken one.
pub fn walk(reader: impl BufRead, mut each: impl FnMut(JournalRecord)) -> Result<ChainEnd, Broken> {
    walk_from(reader, ChainEnd::empty(), |_, record| each(record))
}

/// Walks a journal from a point of its chain: `reader` starts at `start.bytes`, where record
/// `start.records` begins, whose `prev` must be `start.last_hash`. `each` gets the position
/// before each record (its offset, sequence and `prev`) and the record.
pub fn walk_from(
    reader: impl BufRead,
    start: ChainEnd,
    mut each: impl FnMut(&ChainEnd, JournalRecord),
) -> Result<ChainEnd, Broken> {
    walk_while(reader, start, |before, record| {
        each(before, record);
        true
    })
}

/// [`walk_from`] that stops (with the chain so far) once `each` returns false: a page of the
/// journal reads its own records, not those after it.
pub fn walk_while(
    mut reader: impl BufRead,
    start: ChainEnd,
    mut each: impl FnMut(&ChainEnd, JournalRecord) -> bool,
) -> Result<ChainEnd, Broken> {
    let mut end = start;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).map_err(|e| Broken {
            line: end.records + 1,
            offset: end.bytes,
            reason: BrokenReason::Io(e.to_string()),
        })?;
        if read == 0 {
            return Ok(end);
        }
        let broken = |reason| Broken {
            line: end.records + 1,
            offset: end.bytes,
            reason,
        };
        let Some(content) = line.strip_suffix(b"\n") else {
            return Err(broken(BrokenReason::Unterminated));
        };
        let record = record::check(content, end.records, &end.last_hash)
            .map_err(|e| broken(BrokenReason::Line(e)))?;
        let before = end.clone();
        end.last_hash.clone_from(&record.hash);
        end.records += 1;
        end.bytes += read as u64;
        if !each(&before, record) {
            return Ok(end);
        }
    }
}

pub fn verify(reader: impl BufRead) -> Result<ChainEnd, Broken> {
    walk(reader, |_| {})
}

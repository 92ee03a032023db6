//! The journal's files: the active segment `journal.jsonl` and the sealed segments before it,
//! each named by the sequence number of its first record, and the walk that verifies them in
//! order, each one anchored to the end of the one before.

use std::{
    fs::File,
    io::{BufReader, Read},
    os::unix::fs::FileExt,
    sync::Arc,
};

use ctguard_protocol::{JournalEvent, JournalRecord};

use super::verify::{self, Broken, BrokenReason, ChainEnd};

/// The segment new records go to.
pub const ACTIVE: &str = "journal.jsonl";
const SEALED_PREFIX: &str = "journal-";
const SEALED_SUFFIX: &str = ".jsonl";

/// The name a segment is sealed under: its first record's sequence number, zero-padded so that
/// names sort as their numbers do.
pub fn sealed_name(first_seq: u64) -> String {
    format!("{SEALED_PREFIX}{first_seq:020}{SEALED_SUFFIX}")
}

/// The first sequence number a sealed segment's name states; `None` for any other name.
pub fn parse_sealed_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEALED_PREFIX)?
        .strip_suffix(SEALED_SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// One segment as the journal holds it.
#[derive(Debug)]
pub struct Segment {
    pub name: String,
    /// The file, opened when the journal was; `None` for a sink without a file (tests).
    pub file: Option<Arc<File>>,
    /// The chain before its first record; `bytes` counts from this file's start (0).
    pub start: ChainEnd,
    /// The chain after its last acknowledged record; `bytes` is that record's end in this file.
    pub end: ChainEnd,
}

impl Segment {
    /// A segment whose records are yet to come, continuing `before`.
    pub fn empty(name: String, file: Option<Arc<File>>, before: &ChainEnd) -> Self {
        let start = ChainEnd {
            bytes: 0,
            ..before.clone()
        };
        Self {
            name,
            file,
            end: start.clone(),
            start,
        }
    }
}

/// Reads a file from an offset of its own with `pread`, so readers share one descriptor
/// (never the path again) without moving each other's position.
struct ReadAt<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.file.read_at(buf, self.offset)?;
        self.offset += read as u64;
        Ok(read)
    }
}

/// Reads `file` from `from` up to `until` bytes (acknowledged records only).
pub fn read_between(file: &File, from: u64, until: u64) -> impl std::io::BufRead + '_ {
    BufReader::new(ReadAt { file, offset: from }).take(until.saturating_sub(from))
}

/// Where a walk of the segments broke: the segment's name and the first bad record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{segment}: {broken}")]
pub struct SegmentBroken {
    pub segment: String,
    pub broken: Broken,
}

/// Walks one segment from its start, checking that it continues the chain `before` and, unless
/// it is the very first, that it opens with the record anchoring it to the segment sealed
/// before it (`previous`). `each` gets the position before each record and the record.
pub fn walk_segment(
    reader: impl std::io::BufRead,
    name: &str,
    before: &ChainEnd,
    previous: Option<&str>,
    mut each: impl FnMut(&ChainEnd, &JournalRecord),
) -> Result<ChainEnd, SegmentBroken> {
    let start = ChainEnd {
        bytes: 0,
        ..before.clone()
    };
    let broken = |reason, offset| SegmentBroken {
        segment: name.to_owned(),
        broken: Broken {
            line: before.records + 1,
            offset,
            reason,
        },
    };
    if let Some(first) = parse_sealed_name(name)
        && first != before.records
    {
        return Err(broken(
            BrokenReason::Segment(format!(
                "it is named for record {first} but continues a chain of {} records (a segment \
                 is missing or was renamed)",
                before.records
            )),
            0,
        ));
    }
    let mut awaiting_anchor = previous;
    let mut misanchored = false;
    let end = verify::walk_from(reader, start, |position, record| {
        if let Some(previous) = awaiting_anchor.take() {
            misanchored = !matches!(
                &record.event,
                JournalEvent::SegmentStarted { sealed_as, records }
                    if sealed_as == previous && *records == position.records
            );
        }
        each(position, &record);
    })
    .map_err(|broken| SegmentBroken {
        segment: name.to_owned(),
        broken,
    })?;
    if misanchored {
        return Err(broken(
            BrokenReason::Segment(
                "its first record is not the segment_started record naming the segment before it"
                    .to_owned(),
            ),
            0,
        ));
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_names_sort_as_their_numbers_and_nothing_else_parses() {
        assert_eq!(sealed_name(42), "journal-00000000000000000042.jsonl");
        assert_eq!(parse_sealed_name(&sealed_name(42)), Some(42));
        assert!(sealed_name(9) < sealed_name(10));
        for other in [
            ACTIVE,
            "journal-42.jsonl",
            "journal-0000000000000000004x.jsonl",
            "journal-00000000000000000042.jsonl.tmp",
            "journal.head",
        ] {
            assert_eq!(parse_sealed_name(other), None, "{other}");
        }
    }
}

//! The helper's audit journal: append-only JSON lines, each chained to the one before by its
//! hash and fsync'd before the helper goes on. Mutations write an intent before they act and an
//! outcome after; a journal that cannot be written refuses the mutation (fail closed), and after
//! one failed write the journal stays refused until the helper restarts. The journal rotates
//! into size-bounded segments (`segments.rs`), each anchored to the end of the one before.

pub mod record;
pub mod segments;
pub mod verify;

use std::{
    collections::HashMap,
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use ctguard_protocol::{
    HelperError, JournalCheck, JournalEvent, JournalMismatch, JournalPage, JournalRecord,
    JournalRef, RecordHash,
};

use crate::state_dir::StateDir;

use segments::{ACTIVE, Segment, SegmentBroken, read_between, walk_segment};
pub use verify::{Broken, ChainEnd, verify};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open the journal {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the journal {path} does not verify: {broken}")]
    Broken { path: PathBuf, broken: Broken },
    #[error("cannot write the journal: {0}")]
    Write(std::io::Error),
    #[error("the journal refused writes after an earlier failure")]
    Poisoned,
    #[error(
        "the journal {path} holds {records} records but its head ({HEAD_FILE}) says {head_records} \
         were written, ending with hash {head_hash}: it was cut short or rewritten; refusing to \
         extend it (move it and the head aside to start a new journal)"
    )]
    ShorterThanHead {
        path: PathBuf,
        records: u64,
        head_records: u64,
        head_hash: String,
    },
    #[error("cannot encode a journal record: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("a record's hash came out malformed: {0}")]
    MalformedHash(String),
}

impl From<JournalError> for HelperError {
    fn from(error: JournalError) -> Self {
        HelperError::JournalUnavailable {
            detail: error.to_string(),
        }
    }
}

/// Where records go. A trait so tests can make writes fail.
pub trait Sink: Send + std::fmt::Debug {
    /// Appends the bytes and makes them durable before returning.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
}

/// The active segment, opened for appending; every append is followed by fsync.
#[derive(Debug)]
pub struct FileSink(File);

impl Sink for FileSink {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes)?;
        self.0.sync_data()
    }
}

#[derive(Debug)]
struct Tail {
    sink: Box<dyn Sink>,
    /// Oldest first; the last is the active segment, whose `end` is where the next record goes.
    /// Readers stop at a segment's `end.bytes`, so a line being written is never read half-way.
    segments: Vec<Segment>,
    poisoned: bool,
    /// Where every `CHECKPOINT_EVERY`-th record starts (its segment, and the offset, sequence
    /// and `prev` there): a page is read from the checkpoint before it, not from the start. The
    /// chain before it was verified when the journal was opened, and only this process appends.
    checkpoints: Vec<(usize, ChainEnd)>,
}

impl Tail {
    fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a journal has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a journal has an active segment")
    }
}

/// How many records lie between two checkpoints.
const CHECKPOINT_EVERY: u64 = 256;

/// How many bytes of records one page answer carries at most: well inside a frame
/// (`MAX_FRAME_BYTES`), with room for the envelope.
const PAGE_BUDGET_BYTES: usize = ctguard_protocol::MAX_FRAME_BYTES / 2;

/// The active segment's name in the helper's state directory.
pub const FILE_NAME: &str = ACTIVE;
/// The chain's head, kept beside the journal but outside it: `RECORDS HASH`, rewritten after
/// every append. A journal cut back to fewer records (and perhaps grown again with a chain of
/// its own) no longer reaches the head, and the helper refuses to start on it.
pub const HEAD_FILE: &str = "journal.head";
/// The size past which the active segment is sealed and a new one begun.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// The head as last written; `None` before the first append of a journal that has one.
fn read_head(dir: &StateDir) -> std::io::Result<Option<(u64, String)>> {
    let Some(bytes) = dir.read(HEAD_FILE)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut words = text.split_whitespace();
    let parsed = words
        .next()
        .and_then(|records| records.parse().ok())
        .zip(words.next().map(str::to_owned));
    parsed.map(Some).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "a garbled journal head")
    })
}

/// A segment to walk: its name, its file and how far to read it.
type SegmentFile = (String, Option<Arc<File>>, u64);

/// The sealed segments in the directory, oldest first, opened for reading.
fn sealed_segments(dir: &StateDir) -> Result<Vec<SegmentFile>, JournalError> {
    let open_error = |name: &str| {
        let path = dir.display_path(name);
        move |source| JournalError::Open { path, source }
    };
    let mut sealed: Vec<(u64, String)> = dir
        .names()
        .map_err(open_error("."))?
        .into_iter()
        .filter_map(|name| segments::parse_sealed_name(&name).map(|first| (first, name)))
        .collect();
    sealed.sort();
    sealed
        .into_iter()
        .map(|(_, name)| {
            let file = dir
                .open_read(&name)
                .and_then(|file| file.ok_or_else(|| std::io::ErrorKind::NotFound.into()))
                .map_err(open_error(&name))?;
            let length = file.metadata().map_err(open_error(&name))?.len();
            Ok((name, Some(Arc::new(file)), length))
        })
        .collect()
}

/// Verifies the journal in `dir`, every segment in order, without writing anything (for
/// `ctguard-helper journal verify`): the chain's end and how many segments it spans.
pub fn verify_dir(dir: &StateDir) -> Result<(ChainEnd, usize), JournalError> {
    let mut files = sealed_segments(dir)?;
    let active = dir
        .open_read(FILE_NAME)
        .map_err(|source| JournalError::Open {
            path: dir.display_path(FILE_NAME),
            source,
        })?;
    files.push((FILE_NAME.to_owned(), active.map(Arc::new), u64::MAX));
    let walked = walk_all(files, &|_| false).map_err(|failure| JournalError::Broken {
        path: dir.display_path(&failure.segment),
        broken: failure.broken,
    })?;
    let end = walked
        .segments
        .last()
        .map_or_else(ChainEnd::empty, |s| s.end.clone());
    Ok((end, walked.segments.len()))
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// The state directory, for the head and for sealing segments; `None` for a sink without a
    /// file.
    dir: Option<StateDir>,
    segment_bytes: u64,
    tail: Mutex<Tail>,
    /// Appends that failed, refused ones included. Outside `tail`: `status` reads it without
    /// waiting behind an append's fsync.
    failures: AtomicU64,
}

/// What one walk of every segment found.
struct Walked {
    segments: Vec<Segment>,
    checkpoints: Vec<(usize, ChainEnd)>,
    /// The hash of each record asked about, by sequence number.
    hashes: HashMap<u64, String>,
}

/// Walks `files` (name, file, acknowledged length) in order from the start of the chain,
/// noting checkpoints and the hashes of the records in `wanted`.
fn walk_all(
    files: Vec<SegmentFile>,
    wanted: &dyn Fn(u64) -> bool,
) -> Result<Walked, SegmentBroken> {
    let mut walked = Walked {
        segments: Vec::with_capacity(files.len()),
        checkpoints: Vec::new(),
        hashes: HashMap::new(),
    };
    let mut before = ChainEnd::empty();
    for (index, (name, file, length)) in files.into_iter().enumerate() {
        let previous = walked.segments.last().map(|s: &Segment| s.name.as_str());
        let mut segment = Segment::empty(name, file, &before);
        if let Some(file) = &segment.file {
            let end = walk_segment(
                read_between(file, 0, length),
                &segment.name,
                &before,
                previous,
                |position, record| {
                    if position.records.is_multiple_of(CHECKPOINT_EVERY) {
                        walked.checkpoints.push((index, position.clone()));
                    }
                    if wanted(record.seq) {
                        walked.hashes.insert(record.seq, record.hash.clone());
                    }
                },
            )?;
            segment.end = end;
        }
        before = segment.end.clone();
        walked.segments.push(segment);
    }
    Ok(walked)
}

impl Journal {
    /// Opens (or creates) the journal in the helper's directory with the default segment size.
    pub fn open(dir: &StateDir) -> Result<Self, JournalError> {
        Self::open_with_segments_of(dir, DEFAULT_SEGMENT_BYTES)
    }

    /// Opens (or creates) the journal and verifies the whole chain, every segment in order. A
    /// torn last line of the active segment (no newline: the helper died inside a write, before
    /// anything was acknowledged) is cut off with a warning; any other damage stops the helper:
    /// it will not extend a chain it cannot trust. The active segment is sealed once it passes
    /// `segment_bytes`.
    pub fn open_with_segments_of(dir: &StateDir, segment_bytes: u64) -> Result<Self, JournalError> {
        let path = dir.display_path(FILE_NAME);
        let open_error = |path: &Path| {
            let path = path.to_owned();
            move |source| JournalError::Open { path, source }
        };
        let mut files = sealed_segments(dir)?;
        // 0600: the journal names users and their addresses.
        let active = dir
            .open_append(FILE_NAME, 0o600)
            .map_err(open_error(&path))?;
        let reader = Arc::new(active.try_clone().map_err(open_error(&path))?);
        files.push((FILE_NAME.to_owned(), Some(Arc::clone(&reader)), u64::MAX));
        let head = read_head(dir).map_err(open_error(&path))?;
        let at_head = |seq: u64| {
            head.as_ref()
                .is_some_and(|(records, _)| seq + 1 == *records)
        };
        let broken = |failure: SegmentBroken| JournalError::Broken {
            path: dir.display_path(&failure.segment),
            broken: failure.broken,
        };
        let walked = match walk_all(files.clone(), &at_head) {
            Ok(walked) => walked,
            Err(SegmentBroken {
                segment,
                broken:
                    Broken {
                        reason: verify::BrokenReason::Unterminated,
                        offset,
                        line,
                    },
            }) if segment == FILE_NAME => {
                tracing::warn!(path = %path.display(), line, "cutting off a torn last journal line");
                reader.set_len(offset).map_err(open_error(&path))?;
                reader.sync_all().map_err(open_error(&path))?;
                walk_all(files, &at_head).map_err(broken)?
            }
            Err(failure) => return Err(broken(failure)),
        };
        let end = walked
            .segments
            .last()
            .map(|s| s.end.clone())
            .unwrap_or_else(ChainEnd::empty);
        if let Some((head_records, head_hash)) = head {
            // The head may lag by the last append (a crash between the record and the head),
            // never lead: the record it names must be in the journal with that hash.
            let reaches =
                head_records == 0 || walked.hashes.get(&(head_records - 1)) == Some(&head_hash);
            if !reaches {
                return Err(JournalError::ShorterThanHead {
                    path,
                    records: end.records,
                    head_records,
                    head_hash,
                });
            }
        }
        let needs_anchor = walked.segments.len() > 1 && end.bytes == 0;
        let journal = Self {
            path,
            dir: Some(dir.try_clone().map_err(open_error(dir.path()))?),
            segment_bytes,
            tail: Mutex::new(Tail {
                sink: Box::new(FileSink(active)),
                segments: walked.segments,
                poisoned: false,
                checkpoints: walked.checkpoints,
            }),
            failures: AtomicU64::new(0),
        };
        {
            let mut tail = journal.lock();
            if needs_anchor {
                // The helper stopped between sealing a segment and anchoring the next one.
                journal.anchor(&mut tail)?;
            }
            journal.write_head(&tail);
        }
        Ok(journal)
    }

    /// A journal continuing `end` into any sink (tests); it has no file to read back.
    pub fn with_sink(path: &Path, sink: Box<dyn Sink>, end: ChainEnd) -> Self {
        let mut active = Segment::empty(FILE_NAME.to_owned(), None, &ChainEnd::empty());
        active.end = end;
        Self {
            path: path.to_owned(),
            dir: None,
            segment_bytes: u64::MAX,
            tail: Mutex::new(Tail {
                sink,
                segments: vec![active],
                poisoned: false,
                checkpoints: Vec::new(),
            }),
            failures: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A journal on a disk that is full from the start, so every append fails (tests of the
    /// fail-closed paths).
    #[cfg(test)]
    pub fn on_full_disk() -> Self {
        #[derive(Debug)]
        struct FullDisk;
        impl Sink for FullDisk {
            fn append(&mut self, _: &[u8]) -> std::io::Result<()> {
                Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
            }
        }
        Self::with_sink(
            Path::new("/nonexistent"),
            Box::new(FullDisk),
            ChainEnd::empty(),
        )
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record, durably; returns its sequence number and hash.
    pub fn append(&self, event: &JournalEvent) -> Result<JournalRef, JournalError> {
        let mut tail = self.lock();
        let appended = self.append_locked(&mut tail, event)?;
        if tail.active().end.bytes >= self.segment_bytes {
            self.seal(&mut tail);
        }
        self.write_head(&tail);
        Ok(appended)
    }

    fn append_locked(
        &self,
        tail: &mut Tail,
        event: &JournalEvent,
    ) -> Result<JournalRef, JournalError> {
        if tail.poisoned {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(JournalError::Poisoned);
        }
        let before = tail.active().end.clone();
        let (mut line, hash) =
            record::encode(before.records, now_unix_ms(), &before.last_hash, event)?;
        line.push('\n');
        if let Err(error) = tail.sink.append(line.as_bytes()) {
            // Part of the line may be on disk: no later record could chain onto it safely.
            tail.poisoned = true;
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, "journal write failed; refusing mutations from now on");
            return Err(JournalError::Write(error));
        }
        let active_index = tail.segments.len() - 1;
        let end = &mut tail.active_mut().end;
        end.records += 1;
        end.last_hash.clone_from(&hash);
        end.bytes += line.len() as u64;
        if before.records.is_multiple_of(CHECKPOINT_EVERY) {
            tail.checkpoints.push((active_index, before.clone()));
        }
        let hash = RecordHash::try_from(hash).map_err(JournalError::MalformedHash)?;
        Ok(JournalRef {
            seq: before.records,
            hash,
        })
    }

    /// Seals the active segment (renamed after its first record) and begins the next, anchored
    /// to it. A rename that fails leaves the active segment as it is (sealing is tried again
    /// after the next append); a new segment that cannot be made or anchored refuses further
    /// writes, as any failed write does.
    fn seal(&self, tail: &mut Tail) {
        let Some(dir) = &self.dir else {
            return;
        };
        let sealed_as = segments::sealed_name(tail.active().start.records);
        if let Err(error) = dir.rename_no_replace(FILE_NAME, &sealed_as) {
            tracing::error!(%error, segment = sealed_as, "cannot seal the journal's segment");
            return;
        }
        tracing::info!(
            segment = sealed_as,
            records = tail.active().end.records,
            "journal segment sealed"
        );
        tail.active_mut().name = sealed_as;
        let opened = dir.open_append(FILE_NAME, 0o600).and_then(|file| {
            let reader = file.try_clone()?;
            Ok((file, reader))
        });
        match opened {
            Ok((file, reader)) => {
                let before = tail.active().end.clone();
                tail.sink = Box::new(FileSink(file));
                tail.segments.push(Segment::empty(
                    FILE_NAME.to_owned(),
                    Some(Arc::new(reader)),
                    &before,
                ));
                if let Err(error) = self.anchor(tail) {
                    tracing::error!(%error, "cannot anchor the journal's new segment");
                }
            }
            Err(error) => {
                tail.poisoned = true;
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "cannot begin a journal segment; refusing mutations from now on");
            }
        }
    }

    /// Writes the first record of the active segment: the name and length of the one before.
    fn anchor(&self, tail: &mut Tail) -> Result<JournalRef, JournalError> {
        let previous = &tail.segments[tail.segments.len() - 2];
        let event = JournalEvent::SegmentStarted {
            sealed_as: previous.name.clone(),
            records: previous.end.records,
        };
        self.append_locked(tail, &event)
    }

    /// Records the chain's head outside the journal. The record itself is already durable, so a
    /// failure here only lets the head lag (which `open` tolerates); it is logged.
    fn write_head(&self, tail: &Tail) {
        let Some(dir) = &self.dir else {
            return;
        };
        let end = &tail.active().end;
        let head = format!("{} {}\n", end.records, end.last_hash);
        if let Err(error) = dir.write_atomically(HEAD_FILE, head.as_bytes(), 0o600) {
            tracing::error!(%error, "cannot record the journal's head");
        }
    }

    /// Checks the whole chain on disk, every segment, and that it holds each of `expect` with
    /// that hash. Appends wait meanwhile, so no half-written line is read.
    pub fn check(&self, expect: &[JournalRef]) -> Result<JournalCheck, HelperError> {
        if expect.len() > JournalRef::MAX_PER_CHECK {
            return Err(HelperError::TooManyJournalRefs {
                given: expect.len(),
                max: JournalRef::MAX_PER_CHECK,
            });
        }
        let tail = self.lock();
        if tail.segments.iter().any(|s| s.file.is_none()) {
            return Err(no_file());
        }
        let writable = !tail.poisoned;
        let files = tail
            .segments
            .iter()
            .map(|s| (s.name.clone(), s.file.clone(), s.end.bytes))
            .collect();
        let wanted = |seq| expect.iter().any(|r| r.seq == seq);
        Ok(match walk_all(files, &wanted) {
            Ok(walked) => {
                let records = walked.segments.last().map_or(0, |s| s.end.records);
                let mismatches = expect
                    .iter()
                    .filter_map(|expected| {
                        let found = walked.hashes.get(&expected.seq);
                        (found.map(String::as_str) != Some(expected.hash.as_str())).then(|| {
                            JournalMismatch {
                                expected: expected.clone(),
                                found: found.and_then(|h| RecordHash::try_from(h.clone()).ok()),
                            }
                        })
                    })
                    .collect();
                JournalCheck {
                    records,
                    broken: None,
                    writable,
                    mismatches,
                }
            }
            Err(failure) => JournalCheck {
                records: failure.broken.line.saturating_sub(1),
                broken: Some(failure.to_string()),
                writable,
                mismatches: Vec::new(),
            },
        })
    }

    /// Appends that failed since the journal was opened: the write that failed and every append
    /// refused after it (the journal takes none until a restart). A failed encoding is not a
    /// write failure and is not counted.
    pub fn write_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Reads a page of records back, verifying the chain from the checkpoint before it to its
    /// last record (never the whole history).
    pub fn page(
        &self,
        page: JournalPage,
    ) -> Result<(Vec<JournalRecord>, Option<u64>), HelperError> {
        if page.limit == 0 || page.limit > JournalPage::MAX_LIMIT {
            return Err(HelperError::LimitOutOfRange {
                limit: page.limit,
                max: JournalPage::MAX_LIMIT,
            });
        }
        let read_error = |detail: String| HelperError::JournalRead { detail };
        // Only the acknowledged records, without holding the lock: an append in progress
        // meanwhile writes past each segment's end, where the walk never looks. A sealed
        // segment keeps its (renamed) file, so the handles stay good.
        let (plan, records_in_all) = {
            let tail = self.lock();
            let index = usize::try_from(page.from / CHECKPOINT_EVERY).unwrap_or(usize::MAX);
            let (first, start) = tail
                .checkpoints
                .get(index)
                .or(tail.checkpoints.last())
                .cloned()
                .unwrap_or_else(|| (0, tail.segments[0].start.clone()));
            let mut plan = Vec::new();
            for (i, segment) in tail.segments.iter().enumerate().skip(first) {
                let file = segment.file.clone().ok_or_else(no_file)?;
                let from = if i == first {
                    start.clone()
                } else {
                    segment.start.clone()
                };
                plan.push((file, from, segment.end.bytes));
            }
            (plan, tail.active().end.records)
        };
        let limit = u64::from(page.limit);
        let mut records = Vec::new();
        // A page also ends before its answer would outgrow a frame: records with long details
        // are paged, never refused.
        let mut bytes = 0usize;
        let mut full = false;
        for (file, start, until) in plan {
            verify::walk_while(
                read_between(&file, start.bytes, until),
                start,
                |_, record| {
                    if record.seq < page.from {
                        return true;
                    }
                    let size =
                        serde_json::to_vec(&record).map_or(usize::MAX, |json| json.len() + 1);
                    if !records.is_empty() && bytes.saturating_add(size) > PAGE_BUDGET_BYTES {
                        full = true;
                        return false;
                    }
                    bytes = bytes.saturating_add(size);
                    records.push(record);
                    (records.len() as u64) < limit
                },
            )
            .map_err(|broken| read_error(broken.to_string()))?;
            if full || records.len() as u64 >= limit {
                break;
            }
        }
        let next = records
            .last()
            .map(|r| r.seq + 1)
            .filter(|next| *next < records_in_all);
        Ok((records, next))
    }
}

fn no_file() -> HelperError {
    HelperError::JournalRead {
        detail: "this journal has no file to read".into(),
    }
}

pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;

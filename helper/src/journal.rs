//! The helper's audit journal: append-only JSON lines, each chained to the one before by its
//! hash and fsync'd before the helper goes on. Mutations write an intent before they act and an
//! outcome after; a journal that cannot be written refuses the mutation (fail closed), and after
//! one failed write the journal stays refused until the helper restarts.

pub mod record;
pub mod verify;

use std::{
    fs::File,
    io::{BufReader, Read, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use ctguard_protocol::{HelperError, JournalCheck, JournalEvent, JournalPage, JournalRecord};

use crate::state_dir::StateDir;

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

/// The journal file, opened for appending; every append is followed by fsync.
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
    next_seq: u64,
    last_hash: String,
    /// Bytes of acknowledged records: readers stop here, so a line being written is never
    /// read half-way.
    committed_bytes: u64,
    poisoned: bool,
    /// Where every `CHECKPOINT_EVERY`-th record starts (offset, sequence, `prev`): a page is read
    /// from the checkpoint before it, not from the start. The chain before it was verified when
    /// the journal was opened, and only this process appends.
    checkpoints: Vec<ChainEnd>,
}

/// How many records lie between two checkpoints.
const CHECKPOINT_EVERY: u64 = 256;

/// How many bytes of records one page answer carries at most: well inside a frame
/// (`MAX_FRAME_BYTES`), with room for the envelope.
const PAGE_BUDGET_BYTES: usize = ctguard_protocol::MAX_FRAME_BYTES / 2;

/// The journal's name in the helper's state directory.
pub const FILE_NAME: &str = "journal.jsonl";
/// The chain's head, kept beside the journal but outside it: `RECORDS HASH`, rewritten after
/// every append. A journal cut back to fewer records (and perhaps grown again with a chain of
/// its own) no longer reaches the head, and the helper refuses to start on it.
pub const HEAD_FILE: &str = "journal.head";

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

/// Reads a file from an offset of its own with `pread`, so readers share the one descriptor
/// opened at start (never the path again) without moving each other's position.
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

fn read_from_start(file: &File) -> BufReader<ReadAt<'_>> {
    BufReader::new(ReadAt { file, offset: 0 })
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// Where the head is kept (the state directory); `None` for a sink without a file.
    head_dir: Option<StateDir>,
    /// The journal file as opened at start, for reading back; `None` for a sink without a file.
    file: Option<File>,
    tail: Mutex<Tail>,
    /// Appends that failed, refused ones included. Outside `tail`: `status` reads it without
    /// waiting behind an append's fsync.
    failures: AtomicU64,
}

impl Journal {
    /// Opens (or creates) the journal in the helper's directory and verifies the whole chain. A
    /// torn last line (no newline: the helper died inside a write, before anything was
    /// acknowledged) is cut off with a warning; any other damage stops the helper: it will not
    /// extend a chain it cannot trust.
    pub fn open(dir: &StateDir) -> Result<Self, JournalError> {
        let path = dir.display_path(FILE_NAME);
        let open_error = |source| JournalError::Open {
            path: path.clone(),
            source,
        };
        // 0600: the journal names users and their addresses.
        let file = dir.open_append(FILE_NAME, 0o600).map_err(open_error)?;
        let head = read_head(dir).map_err(open_error)?;
        // One walk verifies the chain, notes the checkpoints and the hash of the record the head
        // names; it is walked again only after a torn last line was cut off.
        let walk = |file: &File| {
            let mut checkpoints = Vec::new();
            let mut hash_at_head = None;
            let end = verify::walk_from(
                read_from_start(file),
                ChainEnd::empty(),
                |before, record| {
                    if before.records.is_multiple_of(CHECKPOINT_EVERY) {
                        checkpoints.push(before.clone());
                    }
                    if head
                        .as_ref()
                        .is_some_and(|(records, _)| record.seq + 1 == *records)
                    {
                        hash_at_head = Some(record.hash);
                    }
                },
            )?;
            Ok::<_, Broken>((end, checkpoints, hash_at_head))
        };
        let (end, checkpoints, hash_at_head) = match walk(&file) {
            Ok(walked) => walked,
            Err(Broken {
                reason: verify::BrokenReason::Unterminated,
                offset,
                line,
            }) => {
                tracing::warn!(path = %path.display(), line, "cutting off a torn last journal line");
                file.set_len(offset).map_err(open_error)?;
                file.sync_all().map_err(open_error)?;
                walk(&file).map_err(|broken| JournalError::Broken {
                    path: path.clone(),
                    broken,
                })?
            }
            Err(broken) => return Err(JournalError::Broken { path, broken }),
        };
        if let Some((head_records, head_hash)) = head {
            // The head may lag by the last append (a crash between the record and the head),
            // never lead: the record it names must be in the journal with that hash.
            let reaches = head_records == 0 || hash_at_head.as_deref() == Some(head_hash.as_str());
            if !reaches {
                return Err(JournalError::ShorterThanHead {
                    path,
                    records: end.records,
                    head_records,
                    head_hash,
                });
            }
        }
        let reader = file.try_clone().map_err(open_error)?;
        let mut journal = Self::with_sink(&path, Box::new(FileSink(file)), end);
        journal
            .tail
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .checkpoints = checkpoints;
        journal.file = Some(reader);
        journal.head_dir = Some(dir.try_clone().map_err(open_error)?);
        journal.write_head(&journal.tail.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(journal)
    }

    /// A journal continuing `end` into any sink (tests); it has no file to read back.
    pub fn with_sink(path: &Path, sink: Box<dyn Sink>, end: ChainEnd) -> Self {
        Self {
            path: path.to_owned(),
            head_dir: None,
            file: None,
            tail: Mutex::new(Tail {
                sink,
                next_seq: end.records,
                last_hash: end.last_hash,
                committed_bytes: end.bytes,
                poisoned: false,
                checkpoints: Vec::new(),
            }),
            failures: AtomicU64::new(0),
        }
    }

    fn reader(&self) -> Result<&File, HelperError> {
        self.file.as_ref().ok_or_else(|| HelperError::JournalRead {
            detail: "this journal has no file to read".into(),
        })
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

    /// Appends one record, durably; returns its sequence number.
    pub fn append(&self, event: &JournalEvent) -> Result<u64, JournalError> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        if tail.poisoned {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(JournalError::Poisoned);
        }
        let seq = tail.next_seq;
        let before = ChainEnd {
            records: seq,
            last_hash: tail.last_hash.clone(),
            bytes: tail.committed_bytes,
        };
        let (mut line, hash) = record::encode(seq, now_unix_ms(), &tail.last_hash, event)?;
        line.push('\n');
        if let Err(error) = tail.sink.append(line.as_bytes()) {
            // Part of the line may be on disk: no later record could chain onto it safely.
            tail.poisoned = true;
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, "journal write failed; refusing mutations from now on");
            return Err(JournalError::Write(error));
        }
        tail.next_seq = seq + 1;
        tail.last_hash = hash;
        tail.committed_bytes += line.len() as u64;
        if seq.is_multiple_of(CHECKPOINT_EVERY) {
            tail.checkpoints.push(before);
        }
        self.write_head(&tail);
        Ok(seq)
    }

    /// Records the chain's head outside the journal. The record itself is already durable, so a
    /// failure here only lets the head lag (which `open` tolerates); it is logged.
    fn write_head(&self, tail: &Tail) {
        let Some(dir) = &self.head_dir else {
            return;
        };
        let head = format!("{} {}\n", tail.next_seq, tail.last_hash);
        if let Err(error) = dir.write_atomically(HEAD_FILE, head.as_bytes(), 0o600) {
            tracing::error!(%error, "cannot record the journal's head");
        }
    }

    /// Checks the whole chain on disk. Appends wait meanwhile, so no half-written line is read.
    pub fn check(&self) -> Result<JournalCheck, HelperError> {
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let file = self.reader()?;
        let writable = !tail.poisoned;
        Ok(match verify(read_from_start(file)) {
            Ok(end) => JournalCheck {
                records: end.records,
                broken: None,
                writable,
            },
            Err(broken) => JournalCheck {
                records: broken.line.saturating_sub(1),
                broken: Some(broken.to_string()),
                writable,
            },
        })
    }

    /// Appends that failed since the journal was opened: the write that failed and every append
    /// refused after it (the journal takes none until a restart). A failed encoding is not a
    /// write failure and is not counted.
    pub fn write_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Reads a page of records back, verifying the chain up to it.
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
        // meanwhile writes past this length, where the walk never looks. From the checkpoint
        // before `from`, so a page costs its own records, not the whole history.
        let (committed, start) = {
            let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
            let index = usize::try_from(page.from / CHECKPOINT_EVERY).unwrap_or(usize::MAX);
            let start = tail
                .checkpoints
                .get(index)
                .or(tail.checkpoints.last())
                .cloned()
                .unwrap_or_else(ChainEnd::empty);
            (tail.committed_bytes, start)
        };
        let file = self.reader()?;
        let limit = u64::from(page.limit);
        let mut records = Vec::new();
        // A page also ends before its answer would outgrow a frame: records with long details
        // are paged, never refused.
        let mut bytes = 0usize;
        let mut full = false;
        let reader = BufReader::new(ReadAt {
            file,
            offset: start.bytes,
        })
        .take(committed.saturating_sub(start.bytes));
        let end = verify::walk_from(reader, start, |_, record| {
            if record.seq < page.from || full || (records.len() as u64) >= limit {
                return;
            }
            let size = serde_json::to_vec(&record).map_or(usize::MAX, |json| json.len() + 1);
            if !records.is_empty() && bytes.saturating_add(size) > PAGE_BUDGET_BYTES {
                full = true;
                return;
            }
            bytes = bytes.saturating_add(size);
            records.push(record);
        })
        .map_err(|broken| read_error(broken.to_string()))?;
        let next = records
            .last()
            .map(|r| r.seq + 1)
            .filter(|next| *next < end.records);
        Ok((records, next))
    }
}

pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::{fs::OpenOptions, io::Cursor};

    use ctguard_protocol::{BlockDuration, JournalAction, ShortText};

    use super::*;

    /// Opens the journal at `path`, in its directory as the helper would.
    fn open(path: &Path) -> Result<Journal, JournalError> {
        let dir = StateDir::open(path.parent().expect("a parent")).expect("state dir");
        Journal::open(&dir)
    }

    fn intent(i: u64) -> JournalEvent {
        JournalEvent::Intent {
            action: JournalAction::Block {
                target: format!("udp from 203.0.113.{i} sport 53")
                    .parse()
                    .expect("target"),
                duration: BlockDuration::from_secs(60).expect("duration"),
                reason: ShortText::new(format!("reason \"{i}\" ,\"hash\":\"x")).expect("text"),
            },
            actor: Some(ShortText::new("alice").expect("text")),
            requested_by: Some("198.51.100.5".parse().expect("addr")),
            peer_uid: Some(998),
        }
    }

    fn journal_with(records: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        let journal = open(&path).expect("opens");
        for i in 0..records {
            assert_eq!(journal.append(&intent(i)).expect("appends"), i);
        }
        (dir, path)
    }

    #[test]
    fn records_chain_and_survive_a_reopen() {
        let (_dir, path) = journal_with(3);
        let journal = open(&path).expect("reopens");
        assert_eq!(journal.append(&intent(9)).expect("appends"), 3);
        assert_eq!(
            journal.write_failures(),
            0,
            "appends that worked are not failures"
        );
        let end = verify(BufReader::new(File::open(&path).expect("open"))).expect("verifies");
        assert_eq!(end.records, 4);
        let (records, next) = journal
            .page(JournalPage { from: 1, limit: 2 })
            .expect("reads");
        assert_eq!(
            records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(next, Some(3));
        let (records, next) = journal
            .page(JournalPage { from: 3, limit: 2 })
            .expect("reads");
        assert_eq!(records.len(), 1);
        assert_eq!(next, None);
        assert_eq!(records[0].event, intent(9));
        assert!(journal.page(JournalPage { from: 0, limit: 0 }).is_err());
    }

    #[test]
    fn reading_a_page_ignores_a_line_still_being_written() {
        let (_dir, path) = journal_with(2);
        let journal = open(&path).expect("reopens");
        // What a reader could meet while another request's append is half-way through.
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(b"{\"seq\":2,\"at\":").expect("writes");
        let (records, next) = journal
            .page(JournalPage { from: 0, limit: 10 })
            .expect("the acknowledged records read fine");
        assert_eq!(
            records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(next, None);
    }

    #[test]
    fn a_page_of_long_records_is_cut_to_fit_a_frame_and_the_rest_follows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = open(&dir.path().join(FILE_NAME)).expect("opens");
        let long = "x".repeat(4_000);
        for _ in 0..400 {
            journal
                .append(&JournalEvent::Outcome {
                    intent_seq: 0,
                    ok: false,
                    detail: long.clone(),
                })
                .expect("appends");
        }
        let mut from = 0;
        let mut seen = 0;
        loop {
            let (records, next) = journal
                .page(JournalPage {
                    from,
                    limit: JournalPage::MAX_LIMIT,
                })
                .expect("reads");
            let answer = ctguard_protocol::Response::Journal {
                records: records.clone(),
                next,
            };
            let encoded = ctguard_protocol::frame::encode(&answer).expect("fits a frame");
            assert!(encoded.len() <= ctguard_protocol::MAX_FRAME_BYTES);
            assert_eq!(records[0].seq, from, "pages follow each other");
            seen += records.len();
            match next {
                Some(next) => from = next,
                None => break,
            }
        }
        assert_eq!(seen, 400, "every record is on some page");
        assert!(from > 0, "it took more than one page");
    }

    #[test]
    fn a_page_is_read_from_its_checkpoint_not_from_the_start() {
        let outcome = |i: u64| JournalEvent::Outcome {
            intent_seq: i,
            ok: true,
            detail: format!("done {i}"),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        {
            let journal = open(&path).expect("opens");
            for i in 0..1_000 {
                journal.append(&outcome(i)).expect("appends");
            }
        }
        let journal = open(&path).expect("reopens");
        for from in [0, 255, 256, 511, 700, 999] {
            let (records, _) = journal.page(JournalPage { from, limit: 3 }).expect("reads");
            assert_eq!(records[0].seq, from, "page from {from}");
            assert_eq!(records.last().expect("records").seq, (from + 2).min(999));
        }
        // Records appended after the open get checkpoints too.
        for i in 0..300 {
            journal.append(&outcome(i)).expect("appends");
        }
        let (records, next) = journal
            .page(JournalPage {
                from: 1_290,
                limit: 50,
            })
            .expect("reads");
        assert_eq!(records.len(), 10);
        assert_eq!((records[0].seq, next), (1_290, None));
        // A byte of record 10 flipped under the running helper: a page far after it does not
        // read it again (the chain there was verified at open), the full check does.
        let mut bytes = std::fs::read(&path).expect("reads");
        let tenth = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(9)
            .map(|(i, _)| i + 20)
            .expect("ten lines");
        bytes[tenth] ^= 0x01;
        std::fs::write(&path, &bytes).expect("writes");
        assert!(
            journal
                .page(JournalPage {
                    from: 900,
                    limit: 5
                })
                .is_ok()
        );
        assert!(
            journal.page(JournalPage { from: 5, limit: 10 }).is_err(),
            "its own page is"
        );
        assert!(journal.check().expect("checks").broken.is_some());
    }

    #[test]
    fn flipping_any_single_byte_is_detected() {
        let (_dir, path) = journal_with(4);
        let original = std::fs::read(&path).expect("reads");
        assert!(verify(Cursor::new(&original)).is_ok());
        for index in 0..original.len() {
            for flip in [0x01u8, 0x20, 0x80] {
                let mut bytes = original.clone();
                bytes[index] ^= flip;
                let result = verify(Cursor::new(&bytes));
                assert!(
                    result.is_err(),
                    "flipping byte {index} ({:?}) with {flip:#x} went unnoticed",
                    original[index] as char
                );
            }
        }
    }

    #[test]
    fn the_first_broken_record_is_named() {
        let (_dir, path) = journal_with(5);
        let mut bytes = std::fs::read(&path).expect("reads");
        let third = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(1)
            .map(|(i, _)| i + 1)
            .expect("three lines");
        bytes[third + 10] ^= 0x01;
        let broken = verify(Cursor::new(&bytes)).expect_err("broken");
        assert_eq!(broken.line, 3);
        assert_eq!(broken.offset, third as u64);
    }

    #[test]
    fn a_torn_last_line_is_cut_off_at_open_and_other_damage_refuses_to_open() {
        let (_dir, path) = journal_with(2);
        let mut bytes = std::fs::read(&path).expect("reads");
        let intact = bytes.len();
        bytes.extend_from_slice(br#"{"seq":2,"at_unix_ms":1,"pr"#);
        std::fs::write(&path, &bytes).expect("writes");
        let journal = open(&path).expect("opens, cutting the torn line");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), intact as u64);
        assert_eq!(journal.append(&intent(2)).expect("appends"), 2);
        drop(journal);

        let mut bytes = std::fs::read(&path).expect("reads");
        bytes[5] ^= 0x01;
        std::fs::write(&path, &bytes).expect("writes");
        assert!(matches!(open(&path), Err(JournalError::Broken { .. })));
    }

    #[test]
    fn a_journal_cut_short_or_regrown_stops_the_helper_and_a_lagging_head_does_not() {
        let (dir, path) = journal_with(5);
        let head = std::fs::read_to_string(dir.path().join(HEAD_FILE)).expect("a head");
        assert!(head.starts_with("5 "), "{head}");
        let full = std::fs::read(&path).expect("reads");
        let lines: Vec<&[u8]> = full.split_inclusive(|b| *b == b'\n').collect();

        // Cut back to three records: a valid chain, but shorter than its head.
        std::fs::write(&path, lines[..3].concat()).expect("writes");
        let refused = open(&path).expect_err("refused");
        assert!(
            matches!(
                refused,
                JournalError::ShorterThanHead {
                    records: 3,
                    head_records: 5,
                    ..
                }
            ),
            "{refused}"
        );
        // Grown back to five records of another chain: as long as the head, not the same.
        {
            let other = tempfile::tempdir().expect("tempdir");
            let regrown = other.path().join(FILE_NAME);
            let journal = open(&regrown).expect("opens");
            for i in 0..5 {
                journal.append(&intent(100 + i)).expect("appends");
            }
            std::fs::copy(&regrown, &path).expect("copies");
        }
        assert!(matches!(
            open(&path),
            Err(JournalError::ShorterThanHead { .. })
        ));

        // The head lagging by one record (a crash between the record and the head) is fine.
        std::fs::write(&path, lines.concat()).expect("writes");
        let lagging: Vec<&str> = head.split_whitespace().collect();
        assert_eq!(lagging[0], "5");
        let journal = open(&path).expect("the original opens");
        journal.append(&intent(5)).expect("appends");
        drop(journal);
        std::fs::write(dir.path().join(HEAD_FILE), &head).expect("an older head");
        let journal = open(&path).expect("a head one record behind is accepted");
        assert_eq!(journal.append(&intent(6)).expect("appends"), 6);
        let head = std::fs::read_to_string(dir.path().join(HEAD_FILE)).expect("a head");
        assert!(head.starts_with("7 "), "the head follows: {head}");
    }

    #[test]
    fn a_failed_write_refuses_this_and_every_later_append() {
        let journal = Journal::on_full_disk();
        assert_eq!(journal.write_failures(), 0);
        assert!(matches!(
            journal.append(&intent(0)),
            Err(JournalError::Write(_))
        ));
        assert_eq!(journal.write_failures(), 1, "the failed write");
        assert!(matches!(
            journal.append(&intent(1)),
            Err(JournalError::Poisoned)
        ));
        assert_eq!(journal.write_failures(), 2, "and the refused one after it");
        let error: HelperError = JournalError::Poisoned.into();
        assert!(matches!(error, HelperError::JournalUnavailable { .. }));
    }
}

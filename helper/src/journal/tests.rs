//! The journal's tests: chaining, paging, damage, segments and the pairs the panel keeps.
use std::{
    fs::OpenOptions,
    io::{BufReader, Cursor},
};

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
        assert_eq!(journal.append(&intent(i)).expect("appends").seq, i);
    }
    (dir, path)
}

#[test]
fn records_chain_and_survive_a_reopen() {
    let (_dir, path) = journal_with(3);
    let journal = open(&path).expect("reopens");
    assert_eq!(journal.append(&intent(9)).expect("appends").seq, 3);
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
    assert!(journal.check(&[]).expect("checks").broken.is_some());
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
    assert_eq!(journal.append(&intent(2)).expect("appends").seq, 2);
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
    assert_eq!(journal.append(&intent(6)).expect("appends").seq, 6);
    let head = std::fs::read_to_string(dir.path().join(HEAD_FILE)).expect("a head");
    assert!(head.starts_with("7 "), "the head follows: {head}");
}

fn sealed_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("lists")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .filter(|name| segments::parse_sealed_name(name).is_some())
        .collect();
    names.sort();
    names
}

fn open_segmented(dir: &Path) -> Journal {
    Journal::open_with_segments_of(&StateDir::open(dir).expect("state dir"), 4_096).expect("opens")
}

#[test]
fn the_journal_rotates_into_bounded_segments_that_chain_and_page_as_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = open_segmented(dir.path());
    let mut refs = Vec::new();
    for i in 0..200 {
        refs.push(journal.append(&intent(i)).expect("appends"));
    }
    let sealed = sealed_in(dir.path());
    assert!(sealed.len() >= 5, "{sealed:?}");
    assert_eq!(sealed[0], segments::sealed_name(0));
    let longest_record = 600;
    for name in &sealed {
        let size = std::fs::metadata(dir.path().join(name))
            .expect("meta")
            .len();
        assert!(size < 4_096 + longest_record, "{name}: {size} bytes");
    }
    // Each segment after the first opens with the record naming the one before.
    let (records, _) = journal
        .page(JournalPage {
            from: 0,
            limit: JournalPage::MAX_LIMIT,
        })
        .expect("reads");
    let anchors: Vec<&str> = records
        .iter()
        .filter_map(|r| match &r.event {
            JournalEvent::SegmentStarted { sealed_as, .. } => Some(sealed_as.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(anchors, sealed, "one anchor per sealed segment, in order");
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..records.len() as u64).collect::<Vec<_>>(),
        "the pages run through the segments without a gap"
    );
    // A page that starts in one segment and ends in the next.
    let boundary = segments::parse_sealed_name(&sealed[1]).expect("a number");
    let (across, _) = journal
        .page(JournalPage {
            from: boundary - 2,
            limit: 5,
        })
        .expect("reads");
    assert_eq!(across.first().map(|r| r.seq), Some(boundary - 2));
    assert_eq!(across.len(), 5);
    let check = journal.check(&refs[190..]).expect("checks");
    assert_eq!((check.broken, check.mismatches), (None, vec![]));
    assert_eq!(check.records, records.len() as u64);
    drop(journal);

    let reopened = open_segmented(dir.path());
    let next = reopened.append(&intent(250)).expect("appends");
    assert_eq!(
        next.seq,
        records.len() as u64,
        "the chain goes on where it was"
    );
    let (end, segment_count) =
        verify_dir(&StateDir::open(dir.path()).expect("dir")).expect("verifies");
    assert_eq!(end.records, next.seq + 1);
    assert_eq!(segment_count, sealed_in(dir.path()).len() + 1);
}

#[test]
fn a_missing_or_renamed_segment_stops_the_helper() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = open_segmented(dir.path());
    for i in 0..100 {
        journal.append(&intent(i)).expect("appends");
    }
    drop(journal);
    let sealed = sealed_in(dir.path());
    assert!(sealed.len() >= 3, "{sealed:?}");
    let aside = dir.path().join("aside");
    std::fs::rename(dir.path().join(&sealed[1]), &aside).expect("moves");
    let refused = Journal::open(&StateDir::open(dir.path()).expect("dir"))
        .expect_err("a gap in the segments");
    assert!(matches!(refused, JournalError::Broken { .. }), "{refused}");
    assert!(refused.to_string().contains("segment"), "{refused}");
    // Back under another segment's number: named for the wrong record.
    let wrong =
        segments::sealed_name(segments::parse_sealed_name(&sealed[1]).expect("a number") + 1);
    std::fs::rename(&aside, dir.path().join(&wrong)).expect("moves");
    assert!(Journal::open(&StateDir::open(dir.path()).expect("dir")).is_err());
    std::fs::rename(dir.path().join(&wrong), dir.path().join(&sealed[1])).expect("moves");
    assert!(Journal::open(&StateDir::open(dir.path()).expect("dir")).is_ok());
}

#[test]
fn a_stop_between_sealing_and_anchoring_is_finished_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let journal = open(&dir.path().join(FILE_NAME)).expect("opens");
        for i in 0..3 {
            journal.append(&intent(i)).expect("appends");
        }
    }
    // Sealed by hand, as a helper killed right after the rename leaves it.
    std::fs::rename(
        dir.path().join(FILE_NAME),
        dir.path().join(segments::sealed_name(0)),
    )
    .expect("renames");
    let journal = open(&dir.path().join(FILE_NAME)).expect("opens");
    let (records, _) = journal
        .page(JournalPage { from: 3, limit: 5 })
        .expect("reads");
    assert_eq!(
        records.iter().map(|r| &r.event).collect::<Vec<_>>(),
        vec![&JournalEvent::SegmentStarted {
            sealed_as: segments::sealed_name(0),
            records: 3
        }]
    );
    assert_eq!(journal.append(&intent(3)).expect("appends").seq, 4);
}

#[test]
fn records_the_panel_was_told_of_are_checked_by_sequence_and_hash() {
    let (dir, path) = journal_with(0);
    let journal = open(&path).expect("opens");
    let told: Vec<JournalRef> = (0..5)
        .map(|i| journal.append(&intent(i)).expect("appends"))
        .collect();
    assert!(journal.check(&told).expect("checks").mismatches.is_empty());
    drop(journal);

    // Replaced by a longer chain of its own, head and all (what only a root writer can do,
    // and the head cannot catch): the counts grow, the pairs no longer match.
    let other = tempfile::tempdir().expect("tempdir");
    {
        let regrown = open(&other.path().join(FILE_NAME)).expect("opens");
        for i in 0..7 {
            regrown.append(&intent(100 + i)).expect("appends");
        }
    }
    for name in [FILE_NAME, HEAD_FILE] {
        std::fs::copy(other.path().join(name), dir.path().join(name)).expect("copies");
    }
    let journal = open(&path).expect("a consistent journal and head open");
    let check = journal.check(&told).expect("checks");
    assert_eq!((check.records, check.broken.as_deref()), (7, None));
    assert_eq!(check.mismatches.len(), 5, "{check:?}");
    assert!(check.mismatches.iter().all(|m| m.found.is_some()));

    // Cut short: the records past the end are missing, not different.
    let beyond = JournalRef {
        seq: 50,
        hash: told[0].hash.clone(),
    };
    let check = journal
        .check(std::slice::from_ref(&beyond))
        .expect("checks");
    assert_eq!(
        check.mismatches,
        vec![JournalMismatch {
            expected: beyond,
            found: None
        }]
    );
    let too_many = vec![told[0].clone(); JournalRef::MAX_PER_CHECK + 1];
    assert!(matches!(
        journal.check(&too_many),
        Err(HelperError::TooManyJournalRefs { .. })
    ));
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

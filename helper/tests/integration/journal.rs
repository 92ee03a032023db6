//! The journal as an auditor meets it: `ctguard-helper journal verify`, and what a crash in
//! the middle of a run of blocks leaves behind.

#![allow(clippy::unwrap_used)]

use crate::support;

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use ctguard_helper::{journal::Journal, state_dir::StateDir};
use ctguard_protocol::{
    ActiveBlock, BlockDuration, BlockRequest, JournalEvent, JournalRecord, JournalRef, Request,
    Response, ShortText,
};
use support::{
    HelperProcess, have_root,
    topology::{ADMIN, Topology},
    wait_for,
};

fn verify(path: &Path) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ctguard-helper"))
        .args(["journal", "verify", "--path"])
        .arg(path)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Every record of a segmented journal, oldest first, read as they are (`verify` checks the
/// chain).
fn records_in_segments(dir: &Path) -> Vec<JournalRecord> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("journal-") && name.ends_with(".jsonl"))
        .collect();
    names.sort();
    names.push("journal.jsonl".into());
    names
        .iter()
        .flat_map(|name| {
            std::fs::read_to_string(dir.join(name))
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect::<Vec<JournalRecord>>()
        })
        .collect()
}

#[test]
fn verify_reports_the_first_broken_record_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let journal = Journal::open(&StateDir::open(dir.path()).unwrap()).unwrap();
    for _ in 0..3 {
        journal
            .append(&JournalEvent::Started {
                helper_version: "test".into(),
            })
            .unwrap();
    }
    let (ok, report) = verify(&path);
    assert!(ok, "{report}");
    assert!(report.contains("ok, 3 records"), "{report}");
    let check = journal.check(&[]).unwrap();
    assert_eq!(
        (check.records, check.broken, check.writable),
        (3, None, true)
    );

    let mut bytes = std::fs::read(&path).unwrap();
    let second_line = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
    bytes[second_line + 3] ^= 0x01; // inside record 2's "seq"
    std::fs::write(&path, &bytes).unwrap();
    let (ok, report) = verify(&path);
    assert!(!ok, "a flipped byte verified: {report}");
    assert!(report.contains("record 2"), "{report}");
    // The running helper's check (the `verify_journal` request) sees the same break.
    let check = journal.check(&[]).unwrap();
    assert_eq!(check.records, 1, "{check:?}");
    assert!(
        check
            .broken
            .as_deref()
            .is_some_and(|b| b.contains("record 2")),
        "{check:?}"
    );
}

#[test]
fn verify_walks_every_segment_of_a_state_directory_and_names_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let journal =
        Journal::open_with_segments_of(&StateDir::open(dir.path()).unwrap(), 4_096).unwrap();
    for _ in 0..150 {
        journal
            .append(&JournalEvent::Started {
                helper_version: "a version string long enough to fill segments".into(),
            })
            .unwrap();
    }
    drop(journal);
    let mut sealed: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("journal-"))
        .collect();
    sealed.sort();
    assert!(sealed.len() >= 2, "{sealed:?}");
    let (ok, report) = verify(dir.path());
    assert!(ok, "{report}");
    assert!(
        report.contains(&format!("in {} segment(s)", sealed.len() + 1)),
        "{report}"
    );
    // The first segment alone is a journal from the start of the chain.
    let (ok, report) = verify(&dir.path().join(&sealed[0]));
    assert!(ok, "{report}");

    std::fs::remove_file(dir.path().join(&sealed[1])).unwrap();
    let (ok, report) = verify(dir.path());
    assert!(!ok, "a missing segment verified: {report}");
    assert!(report.contains("segment"), "{report}");
}

#[test]
fn kill_9_in_a_run_of_blocks_leaves_a_chain_that_verifies_and_every_acknowledged_block_journaled() {
    if !have_root(
        "kill_9_in_a_run_of_blocks_leaves_a_chain_that_verifies_and_every_acknowledged_block_journaled",
    ) {
        return;
    }
    let net = Topology::new("kill");
    let dir = tempfile::tempdir().unwrap();
    // Small segments: the run spans several, and the restart verifies them in order.
    let args = [
        "--group",
        "root",
        "--netns",
        &net.router.name,
        "--journal-segment-bytes",
        "4096",
    ];
    let mut helper = HelperProcess::start_in(dir.path(), &args);
    let state_dir = helper.state_dir.clone();

    let acknowledged: Arc<Mutex<Vec<(ActiveBlock, JournalRef)>>> = Arc::default();
    let mut session = helper.session();
    let acked = Arc::clone(&acknowledged);
    let client = std::thread::spawn(move || {
        for i in 0..250u32 {
            let request = Request::Block(BlockRequest {
                target: format!("from 10.{}.{}.0/24", 1 + i / 200, i % 200)
                    .parse()
                    .unwrap(),
                duration: BlockDuration::from_secs(600).unwrap(),
                reason: ShortText::new(format!("run {i}")).unwrap(),
                requested_by: ADMIN.parse().unwrap(),
                actor: ShortText::new("alice").unwrap(),
            });
            match session.try_ask(&request) {
                Some(Response::Blocked { block, journal, .. }) => {
                    acked.lock().unwrap().push((block, journal));
                }
                Some(other) => panic!("{other:?}"),
                None => return, // the helper died
            }
        }
    });
    wait_for(
        "a run of acknowledged blocks",
        Duration::from_secs(30),
        || acknowledged.lock().unwrap().len() >= 15,
    );
    helper.kill();
    client.join().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() < 250, "the kill came mid-run");

    let (ok, report) = verify(&state_dir);
    assert!(ok, "after kill -9: {report}");
    let records = records_in_segments(&state_dir);
    for (block, journal) in &acknowledged {
        assert_eq!(
            records[usize::try_from(journal.seq).unwrap()].hash,
            journal.hash.as_str()
        );
        let intent = &records[usize::try_from(block.journal_seq).unwrap()];
        assert!(
            matches!(&intent.event, JournalEvent::Intent { action: ctguard_protocol::JournalAction::Block { target, .. }, .. } if *target == block.target),
            "{intent:?}"
        );
        assert!(
            records.iter().any(|r| matches!(r.event, JournalEvent::Outcome { intent_seq, ok: true, .. } if intent_seq == block.journal_seq)),
            "block {} acknowledged without its outcome",
            block.target
        );
    }

    // The next helper continues the same chain and holds every acknowledged block.
    let helper = HelperProcess::start_in(dir.path(), &args);
    let newest: Vec<JournalRef> = acknowledged
        .iter()
        .rev()
        .take(JournalRef::MAX_PER_CHECK)
        .map(|(_, journal)| journal.clone())
        .collect();
    let Response::JournalCheck { check } = helper
        .session()
        .ask(&Request::VerifyJournal { expect: newest })
    else {
        panic!("no journal check");
    };
    assert!(check.broken.is_none() && check.writable, "{check:?}");
    assert!(check.mismatches.is_empty(), "{check:?}");
    assert!(
        std::fs::read_dir(&state_dir)
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("journal-"))
            .count()
            >= 2,
        "the run spans segments"
    );
    assert!(check.records >= 2 * acknowledged.len() as u64, "{check:?}");
    let Response::Blocks { blocks } = helper.session().ask(&Request::ListBlocks {}) else {
        panic!("no blocks");
    };
    for (block, _) in &acknowledged {
        assert!(
            blocks
                .iter()
                .any(|b| b.target == block.target && b.journal_seq == block.journal_seq),
            "{} lost",
            block.target
        );
    }
    let (ok, report) = verify(&state_dir);
    assert!(ok, "after the restart: {report}");
}

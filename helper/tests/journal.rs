//! The journal as an auditor meets it: `ctguard-helper journal verify`, and what a crash in
//! the middle of a run of blocks leaves behind.

#![allow(clippy::unwrap_used)]

mod support;

use std::{
    io::BufReader,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use ctguard_helper::{
    journal::{self, Journal},
    state_dir::StateDir,
};
use ctguard_protocol::{
    ActiveBlock, BlockDuration, JournalEvent, JournalRecord, Request, Response, ShortText,
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

fn records(path: &Path) -> Vec<JournalRecord> {
    let mut records = Vec::new();
    journal::verify::walk(BufReader::new(std::fs::File::open(path).unwrap()), |r| {
        records.push(r)
    })
    .unwrap();
    records
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
fn kill_9_in_a_run_of_blocks_leaves_a_chain_that_verifies_and_every_acknowledged_block_journaled() {
    if !have_root(
        "kill_9_in_a_run_of_blocks_leaves_a_chain_that_verifies_and_every_acknowledged_block_journaled",
    ) {
        return;
    }
    let net = Topology::new("kill");
    let dir = tempfile::tempdir().unwrap();
    let args = ["--group", "root", "--netns", &net.router.name];
    let mut helper = HelperProcess::start_in(dir.path(), &args);
    let journal_path = helper.journal();

    let acknowledged: Arc<Mutex<Vec<ActiveBlock>>> = Arc::default();
    let mut session = helper.session();
    let acked = Arc::clone(&acknowledged);
    let client = std::thread::spawn(move || {
        for i in 0..250u32 {
            let request = Request::Block {
                target: format!("from 10.{}.{}.0/24", 1 + i / 200, i % 200)
                    .parse()
                    .unwrap(),
                duration: BlockDuration::from_secs(600).unwrap(),
                reason: ShortText::new(format!("run {i}")).unwrap(),
                requested_by: ADMIN.parse().unwrap(),
                actor: ShortText::new("alice").unwrap(),
            };
            match session.try_ask(&request) {
                Some(Response::Blocked { block, .. }) => acked.lock().unwrap().push(block),
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

    let (ok, report) = verify(&journal_path);
    assert!(ok, "after kill -9: {report}");
    let records = records(&journal_path);
    for block in &acknowledged {
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
    let Response::JournalCheck { check } = helper
        .session()
        .ask(&Request::VerifyJournal { expect: vec![] })
    else {
        panic!("no journal check");
    };
    assert!(check.broken.is_none() && check.writable, "{check:?}");
    assert!(check.records >= 2 * acknowledged.len() as u64, "{check:?}");
    let Response::Blocks { blocks } = helper.session().ask(&Request::ListBlocks {}) else {
        panic!("no blocks");
    };
    for block in &acknowledged {
        assert!(
            blocks
                .iter()
                .any(|b| b.target == block.target && b.journal_seq == block.journal_seq),
            "{} lost",
            block.target
        );
    }
    let (ok, report) = verify(&journal_path);
    assert!(ok, "after the restart: {report}");
}

//! The block logic against a fake firewall and conntrack: order, rollback, fail-closed.

use std::{
    io::BufReader,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use ctguard_protocol::{
    ActiveBlock, BlockDuration, BlockTarget, HelperError, JournalEvent, ShortText,
};

use super::*;
use crate::{
    conntrack::ConntrackError,
    firewall::{Counter, FirewallError, Observed, ruleset::SetKind},
    journal,
};

#[derive(Debug, Default)]
struct FakeKernel {
    applied: Mutex<Vec<Vec<Element>>>,
    /// Packets dropped per target since the table was last written (a rewrite zeroes them).
    dropped: Mutex<std::collections::BTreeMap<BlockTarget, u64>>,
    fail_apply: AtomicBool,
    table_missing: AtomicBool,
}

#[derive(Debug, Clone)]
struct FakeFirewall(Arc<FakeKernel>);

impl Firewall for FakeFirewall {
    fn apply(&self, elements: &[Element]) -> Result<(), FirewallError> {
        if self.0.fail_apply.load(Ordering::SeqCst) {
            return Err(FirewallError::Refused("no".into()));
        }
        self.0.table_missing.store(false, Ordering::SeqCst);
        self.0.applied.lock().expect("lock").push(elements.to_vec());
        self.0.dropped.lock().expect("lock").clear();
        Ok(())
    }
    fn observe(&self) -> Result<Option<Observed>, FirewallError> {
        if self.0.table_missing.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let last = self
            .0
            .applied
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .unwrap_or_default();
        let mut observed = Observed::of(&last);
        for (target, packets) in self.0.dropped.lock().expect("lock").iter() {
            let element = Element {
                target: *target,
                timeout_secs: 0,
            };
            observed.counters.insert(
                (SetKind::of(target).name(), element.canonical()),
                Counter {
                    packets: *packets,
                    bytes: packets * 70,
                },
            );
        }
        Ok(Some(observed))
    }
}

#[derive(Debug, Default)]
struct FakeDeleter(Mutex<Vec<BlockTarget>>);

impl EntryDeleter for Arc<FakeDeleter> {
    fn delete(&self, target: &BlockTarget) -> Result<u64, ConntrackError> {
        self.0.lock().expect("lock").push(*target);
        Ok(7)
    }
}

fn no_hosts() -> Result<Vec<IpAddr>, String> {
    Ok(vec!["203.0.113.1".parse().expect("addr")])
}

struct Fixture {
    _dir: tempfile::TempDir,
    journal_path: std::path::PathBuf,
    kernel: Arc<FakeKernel>,
    deleter: Arc<FakeDeleter>,
    blocks: Blocks,
}

fn fixture_with(journal: Option<Journal>) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal_path = dir.path().join("journal.jsonl");
    let journal = journal.unwrap_or_else(|| Journal::open(&journal_path).expect("journal"));
    let kernel = Arc::new(FakeKernel::default());
    let deleter = Arc::new(FakeDeleter::default());
    let blocks = Blocks::start(
        Guardrails::default(),
        Arc::new(journal),
        BlockStore::new(dir.path()),
        Box::new(FakeFirewall(Arc::clone(&kernel))),
        Box::new(Arc::clone(&deleter)),
        no_hosts,
    )
    .expect("starts");
    Fixture {
        _dir: dir,
        journal_path,
        kernel,
        deleter,
        blocks,
    }
}

fn fixture() -> Fixture {
    fixture_with(None)
}

fn who() -> Requester {
    Requester {
        actor: ShortText::new("alice").expect("text"),
        requested_by: "198.51.100.5".parse().expect("addr"),
        peer_uid: 998,
    }
}

fn t(text: &str) -> BlockTarget {
    text.parse().expect(text)
}

fn minutes(n: u64) -> BlockDuration {
    BlockDuration::from_secs(n * 60).expect("duration")
}

fn reason() -> ShortText {
    ShortText::new("flood").expect("text")
}

fn events(path: &Path) -> Vec<JournalEvent> {
    let mut events = Vec::new();
    journal::verify::walk(
        BufReader::new(std::fs::File::open(path).expect("open")),
        |record| events.push(record.event),
    )
    .expect("verifies");
    events
}

#[test]
fn a_block_is_journaled_saved_applied_and_its_entries_deleted() {
    let f = fixture();
    let (block, deleted) = f
        .blocks
        .block(
            t("udp from 50.2.6.12 sport 53"),
            minutes(60),
            reason(),
            &who(),
        )
        .expect("blocks");
    assert_eq!(deleted, 7);
    assert_eq!(block.expires_unix - block.created_unix, 3600);
    let applied = f
        .kernel
        .applied
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("applied");
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].target, t("udp from 50.2.6.12 sport 53"));
    assert!((3599..=3600).contains(&applied[0].timeout_secs));
    assert_eq!(f.deleter.0.lock().expect("lock").len(), 1);
    let events = events(&f.journal_path);
    assert!(matches!(events[0], JournalEvent::Intent { .. }));
    assert!(
        matches!(events[1], JournalEvent::Outcome { intent_seq, ok: true, .. } if intent_seq == block.journal_seq)
    );
    assert_eq!(
        f.blocks.list(),
        vec![ActiveBlock {
            packets_dropped: Some(0),
            ..block.clone()
        }],
        "listed with the kernel's counter"
    );

    // A restart restores it from the state file.
    let store = BlockStore::new(f._dir.path());
    assert_eq!(store.load().expect("loads"), vec![block]);
}

#[test]
fn what_a_block_dropped_survives_a_rewrite_of_the_table() {
    let f = fixture();
    f.blocks
        .block(t("from 192.0.2.7"), minutes(10), reason(), &who())
        .expect("blocks");
    // The kernel counts what the element's rule dropped; the next change rewrites the table,
    // which zeroes the kernel's count, and then it drops some more.
    let drop_packets = |target: &str, packets: u64| {
        *f.kernel
            .dropped
            .lock()
            .expect("lock")
            .entry(t(target))
            .or_default() += packets;
    };
    drop_packets("from 192.0.2.7", 41);
    f.blocks
        .block(t("from 192.0.2.9"), minutes(10), reason(), &who())
        .expect("blocks");
    drop_packets("from 192.0.2.7", 1);
    let dropped = |target: &str| {
        f.blocks
            .list()
            .iter()
            .find(|b| b.target == t(target))
            .and_then(|b| b.packets_dropped)
    };
    assert_eq!(
        dropped("from 192.0.2.7"),
        Some(42),
        "kept across the rewrite"
    );
    assert_eq!(dropped("from 192.0.2.9"), Some(0));
    // Counters are live data, never saved state.
    let saved = BlockStore::new(f._dir.path()).load().expect("loads");
    assert!(saved.iter().all(|b| b.packets_dropped.is_none()));
    // An unblocked target's count goes with it.
    f.blocks
        .unblock(t("from 192.0.2.7"), reason(), &who())
        .expect("unblocks");
    f.blocks
        .block(t("from 192.0.2.7"), minutes(10), reason(), &who())
        .expect("blocks again");
    assert_eq!(
        dropped("from 192.0.2.7"),
        Some(0),
        "a new block counts anew"
    );
}

#[test]
fn guardrails_refuse_before_anything_is_written() {
    let f = fixture();
    let refused = f
        .blocks
        .block(t("from 198.51.100.0/24"), minutes(1), reason(), &who())
        .expect_err("the requester");
    assert!(matches!(refused, HelperError::RequesterAddress { .. }));
    let refused = f
        .blocks
        .block(t("from 203.0.113.1"), minutes(1), reason(), &who())
        .expect_err("the host");
    assert!(matches!(refused, HelperError::HostAddress { .. }));
    assert!(events(&f.journal_path).is_empty());
    assert_eq!(
        f.kernel.applied.lock().expect("lock").len(),
        1,
        "only the start"
    );
}

#[test]
fn overlapping_blocks_are_refused_and_the_same_target_is_refreshed() {
    let f = fixture();
    f.blocks
        .block(t("from 192.0.2.0/24"), minutes(1), reason(), &who())
        .expect("blocks");
    assert!(matches!(
        f.blocks
            .block(t("from 192.0.2.7"), minutes(1), reason(), &who()),
        Err(HelperError::OverlapsBlock { .. })
    ));
    let (refreshed, _) = f
        .blocks
        .block(t("from 192.0.2.0/24"), minutes(10), reason(), &who())
        .expect("refreshes");
    assert_eq!(
        f.blocks.list(),
        vec![ActiveBlock {
            packets_dropped: Some(0),
            ..refreshed
        }]
    );
    assert!(
        f.blocks
            .block(t("udp from 192.0.2.7"), minutes(1), reason(), &who())
            .is_ok()
    );
}

#[test]
fn a_firewall_failure_changes_nothing_and_is_journaled_as_failed() {
    let f = fixture();
    f.kernel.fail_apply.store(true, Ordering::SeqCst);
    assert!(matches!(
        f.blocks
            .block(t("from 192.0.2.7"), minutes(1), reason(), &who()),
        Err(HelperError::Firewall { .. })
    ));
    assert!(f.blocks.list().is_empty());
    assert!(
        BlockStore::new(f._dir.path())
            .load()
            .expect("loads")
            .is_empty()
    );
    assert!(matches!(
        events(&f.journal_path)[1],
        JournalEvent::Outcome { ok: false, .. }
    ));
    assert!(f.deleter.0.lock().expect("lock").is_empty());
}

#[test]
fn without_a_journal_nothing_is_changed() {
    let f = fixture_with(Some(Journal::on_full_disk()));
    assert!(matches!(
        f.blocks
            .block(t("from 192.0.2.7"), minutes(1), reason(), &who()),
        Err(HelperError::JournalUnavailable { .. })
    ));
    assert!(matches!(
        f.blocks
            .delete_entries(t("from 192.0.2.7"), reason(), &who()),
        Err(HelperError::JournalUnavailable { .. })
    ));
    assert_eq!(
        f.kernel.applied.lock().expect("lock").len(),
        1,
        "only the start"
    );
    assert!(f.deleter.0.lock().expect("lock").is_empty());
    assert!(f.blocks.list().is_empty());
}

#[test]
fn unblock_removes_only_an_existing_block() {
    let f = fixture();
    assert!(matches!(
        f.blocks.unblock(t("from 192.0.2.7"), reason(), &who()),
        Err(HelperError::NotBlocked { .. })
    ));
    f.blocks
        .block(t("from 192.0.2.7"), minutes(1), reason(), &who())
        .expect("blocks");
    assert_eq!(f.blocks.active(), 1);
    {
        // A change in progress holds the blocks' lock (while nft runs): the count does not wait
        // for it, it reports the last finished change.
        let _change_in_progress = f.blocks.lock();
        assert_eq!(f.blocks.active(), 1);
    }
    f.blocks
        .unblock(t("from 192.0.2.7"), reason(), &who())
        .expect("unblocks");
    assert_eq!(f.blocks.active(), 0);
    assert!(f.blocks.list().is_empty());
    assert!(
        f.kernel
            .applied
            .lock()
            .expect("lock")
            .last()
            .expect("applied")
            .is_empty()
    );
}

#[test]
fn reconcile_restores_a_flushed_table_and_reports_the_drift() {
    let f = fixture();
    f.blocks
        .block(t("from 192.0.2.7"), minutes(5), reason(), &who())
        .expect("blocks");
    assert!(f.blocks.reconcile().expect("reconciles").is_empty());
    f.kernel.table_missing.store(true, Ordering::SeqCst);
    let drift = f.blocks.reconcile().expect("reconciles");
    assert_eq!(drift, vec!["table inet ctguard is missing".to_owned()]);
    let last = f
        .kernel
        .applied
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("applied");
    assert_eq!(last.len(), 1);
    assert!(f.blocks.reconcile().expect("reconciles").is_empty());
}

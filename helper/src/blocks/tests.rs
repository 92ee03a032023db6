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
    state_dir::StateDir,
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

/// The fixture's blocks file, opened again as a second reader would.
fn store_of(f: &Fixture) -> BlockStore {
    BlockStore::new(Arc::new(StateDir::open(f._dir.path()).expect("state dir")))
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
    fixture_in(tempfile::tempdir().expect("tempdir"), journal, no_hosts)
}

/// A fixture whose helper starts from blocks already saved in `dir`.
fn fixture_in(dir: tempfile::TempDir, journal: Option<Journal>, hosts: HostAddresses) -> Fixture {
    let state = Arc::new(StateDir::open(dir.path()).expect("state dir"));
    let journal_path = state.display_path(crate::journal::FILE_NAME);
    let journal = journal.unwrap_or_else(|| Journal::open(&state).expect("journal"));
    let kernel = Arc::new(FakeKernel::default());
    let deleter = Arc::new(FakeDeleter::default());
    let blocks = Blocks::start(
        Guardrails::default(),
        Arc::new(journal),
        BlockStore::new(Arc::clone(&state)),
        Box::new(FakeFirewall(Arc::clone(&kernel))),
        Box::new(Arc::clone(&deleter)),
        hosts,
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
    let (block, deleted, _) = f
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
    let store = store_of(&f);
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
    let saved = store_of(&f).load().expect("loads");
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
    let (refreshed, _, _) = f
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

fn saved(target: &str, expires_unix: u64) -> ActiveBlock {
    ActiveBlock {
        target: t(target),
        reason: reason(),
        actor: ShortText::new("mallory").expect("text"),
        requested_by: "198.51.100.5".parse().expect("addr"),
        created_unix: 1,
        expires_unix,
        journal_seq: 0,
        packets_dropped: None,
    }
}

#[test]
fn saved_blocks_pass_the_guardrails_again_at_start_and_long_expiries_are_clamped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = now_unix();
    let year = now + 365 * 24 * 3600;
    // What a planted or outdated state file could hold: a /8, the host's own address (the
    // fixture's host is 203.0.113.1), the requester's network, an overlap, and one fair block
    // whose expiry lies a year ahead.
    let planted = vec![
        saved("from 10.0.0.0/8", year),
        saved("from 203.0.113.0/24", year),
        saved("from 198.51.100.0/24", year),
        saved("from 192.0.2.0/24", year),
        saved("from 192.0.2.7", year),
    ];
    BlockStore::new(Arc::new(StateDir::open(dir.path()).expect("state dir")))
        .save(&planted)
        .expect("plants");
    let f = fixture_in(dir, None, no_hosts);

    let listed = f.blocks.list();
    assert_eq!(
        listed.iter().map(|b| b.target).collect::<Vec<_>>(),
        vec![t("from 192.0.2.0/24")],
        "only the block the guardrails allow comes back"
    );
    assert!(
        listed[0].expires_unix <= now_unix() + BlockDuration::MAX_SECS,
        "its expiry is clamped to the longest duration"
    );
    let applied = f.kernel.applied.lock().expect("lock").clone();
    assert_eq!(applied.len(), 1, "one rewrite at start");
    assert_eq!(
        applied[0].iter().map(|e| e.target).collect::<Vec<_>>(),
        vec![t("from 192.0.2.0/24")],
        "the kernel never held the refused ones"
    );
    assert!(applied[0][0].timeout_secs <= BlockDuration::MAX_SECS);
    let reloaded = store_of(&f).load().expect("loads");
    assert_eq!(reloaded.len(), 1, "the state file no longer holds them");
    let discarded: Vec<BlockTarget> = events(&f.journal_path)
        .into_iter()
        .filter_map(|e| match e {
            JournalEvent::Intent {
                action: JournalAction::DiscardSaved { target, .. },
                ..
            } => Some(target),
            _ => None,
        })
        .collect();
    assert_eq!(
        discarded,
        vec![
            t("from 10.0.0.0/8"),
            t("from 203.0.113.0/24"),
            t("from 198.51.100.0/24"),
            t("from 192.0.2.7"),
        ],
        "each dropped block is journaled"
    );
}

/// Whether the host of the next test has been given an address inside its block.
static HOST_GAINED_ADDRESS: AtomicBool = AtomicBool::new(false);

fn hosts_that_grow() -> Result<Vec<IpAddr>, String> {
    let mut hosts = no_hosts()?;
    if HOST_GAINED_ADDRESS.load(Ordering::SeqCst) {
        hosts.push("192.0.2.9".parse().expect("addr"));
    }
    Ok(hosts)
}

#[test]
fn a_block_that_comes_to_cover_a_host_address_is_dropped_at_the_next_reconcile() {
    let f = fixture_in(tempfile::tempdir().expect("tempdir"), None, hosts_that_grow);
    f.blocks
        .block(t("from 192.0.2.0/24"), minutes(5), reason(), &who())
        .expect("blocks");
    f.blocks
        .block(t("from 198.51.100.128/25"), minutes(5), reason(), &who())
        .expect("blocks");
    assert!(f.blocks.reconcile().expect("reconciles").is_empty());
    HOST_GAINED_ADDRESS.store(true, Ordering::SeqCst);
    let drift = f.blocks.reconcile().expect("reconciles");
    assert_eq!(drift[0], "1 block no longer passes the guardrails");
    assert!(
        drift
            .iter()
            .any(|d| d.contains("unknown element 192.0.2.0/24")),
        "{drift:?}"
    );
    let last = f
        .kernel
        .applied
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("applied");
    assert_eq!(
        last.iter().map(|e| e.target).collect::<Vec<_>>(),
        vec![t("from 198.51.100.128/25")],
        "the kernel no longer drops the host's new address"
    );
    assert_eq!(store_of(&f).load().expect("loads").len(), 1);
    assert!(events(&f.journal_path).iter().any(|e| matches!(
        e,
        JournalEvent::Intent {
            action: JournalAction::DiscardSaved { target, .. },
            ..
        } if *target == t("from 192.0.2.0/24")
    )));
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
    assert!(store_of(&f).load().expect("loads").is_empty());
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

#[test]
fn listing_the_most_blocks_with_the_longest_texts_fits_one_answer() {
    // The widest text ShortText allows: 200 four-byte characters; the longest addresses.
    let longest = ShortText::new("𝄞".repeat(ShortText::MAX_CHARS)).expect("text");
    let blocks: Vec<ActiveBlock> = (0..MAX_BLOCKS)
        .map(|i| ActiveBlock {
            target: t(&format!(
                "udp to 2001:db8:ffff:ffff:ffff:ffff:ffff:{:x} dport 65535",
                i + 1
            )),
            reason: longest.clone(),
            actor: longest.clone(),
            requested_by: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
                .parse()
                .expect("addr"),
            created_unix: u64::MAX,
            expires_unix: u64::MAX,
            journal_seq: u64::MAX,
            packets_dropped: Some(u64::MAX),
        })
        .collect();
    let answer = ctguard_protocol::Response::Blocks { blocks };
    let frame = ctguard_protocol::frame::encode(&answer).expect("fits one frame");
    assert!(
        frame.len() <= ctguard_protocol::MAX_FRAME_BYTES,
        "{}",
        frame.len()
    );
}

//! Blocks against a real kernel: a router namespace with conntrack, an attacker and a legitimate
//! client, the helper watching the router. What a user checks: the attacker's entries go to
//! zero and stay there, the client still connects, and the block comes back whatever happens
//! to the ruleset.

#![allow(clippy::unwrap_used)]

use crate::support;

use std::time::Duration;

use ctguard_protocol::{
    ActiveBlock, BlockDuration, BlockRequest, BlockTarget, DeleteEntriesRequest, HelperError,
    HelperHealth, JournalEvent, JournalPage, Request, Response, ShortText, UnblockRequest,
};
use support::{
    Connection, HelperProcess, have_root,
    topology::{ADMIN, ATTACKER, CLIENT, Topology},
    wait_for,
};

/// A second target, blocked only to make the helper rewrite its table.
const OTHER: &str = "203.0.113.200";

/// The helper's own state, as every `status` answer carries it.
fn health(session: &mut Connection) -> HelperHealth {
    let response = session.ask(&Request::Status {});
    let Response::Status { helper, .. } = response else {
        panic!("{response:?}");
    };
    helper
}

fn text(s: &str) -> ShortText {
    ShortText::new(s).unwrap()
}

fn target(s: &str) -> BlockTarget {
    s.parse().unwrap()
}

fn block(target_text: &str, secs: u64) -> Request {
    Request::Block(BlockRequest {
        target: target(target_text),
        duration: BlockDuration::from_secs(secs).unwrap(),
        reason: text("flood in a test"),
        requested_by: ADMIN.parse().unwrap(),
        actor: text("alice"),
    })
}

fn unblock(target_text: &str) -> Request {
    Request::Unblock(UnblockRequest {
        target: target(target_text),
        reason: text("over"),
        requested_by: ADMIN.parse().unwrap(),
        actor: text("alice"),
    })
}

fn helper_for(topology: &Topology, extra: &[&str]) -> HelperProcess {
    let mut args = vec!["--group", "root", "--netns", &topology.router.name];
    args.extend_from_slice(extra);
    HelperProcess::start(&args)
}

fn verify_journal(helper: &HelperProcess) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ctguard-helper"))
        .args(["journal", "verify", "--path"])
        .arg(helper.journal())
        .output()
        .unwrap()
}

#[test]
fn a_block_empties_the_attackers_entries_and_keeps_them_empty_while_the_client_connects() {
    if !have_root(
        "a_block_empties_the_attackers_entries_and_keeps_them_empty_while_the_client_connects",
    ) {
        return;
    }
    let net = Topology::new("blk");
    let helper = helper_for(&net, &[]);
    let mut session = helper.session();

    net.flood(ATTACKER, 400, 10_000, false);
    assert!(
        net.entries_from(ATTACKER, None) >= 400,
        "the flood is tracked"
    );
    assert!(
        net.client_connects(),
        "the client connects before the block"
    );

    let response = session.ask(&block(&format!("from {ATTACKER}"), 300));
    let Response::Blocked {
        block: active,
        entries_deleted,
        journal,
    } = response
    else {
        panic!("{response:?}");
    };
    assert!(entries_deleted >= 400, "{entries_deleted} entries deleted");
    // The answer names the intent record as the journal holds it.
    assert_eq!(journal.seq, active.journal_seq);
    let Response::JournalCheck { check } = session.ask(&Request::VerifyJournal {
        expect: vec![journal],
    }) else {
        panic!("no journal check");
    };
    assert!(
        check.broken.is_none() && check.mismatches.is_empty(),
        "{check:?}"
    );
    assert_eq!(
        net.entries_from(ATTACKER, None),
        0,
        "the attacker's entries are gone"
    );
    assert!(net.nft_set("v4_saddr").unwrap().contains(ATTACKER));

    net.flood(ATTACKER, 400, 20_000, false);
    assert_eq!(
        net.entries_from(ATTACKER, None),
        0,
        "and stay gone under a new flood"
    );
    assert!(net.client_connects(), "the client still connects");
    assert!(
        net.entries_from(CLIENT, None) > 0,
        "the client's flows are tracked"
    );

    // The kernel counted the 400 dropped packets for the block; the listing says so, and a
    // rewrite of the table for another block keeps the count.
    let dropped = |session: &mut Connection| {
        let Response::Blocks { blocks } = session.ask(&Request::ListBlocks {}) else {
            panic!("no blocks");
        };
        let listed = blocks
            .iter()
            .find(|b| b.target == active.target)
            .expect("listed");
        assert_eq!(
            ActiveBlock {
                packets_dropped: None,
                ..listed.clone()
            },
            active
        );
        listed.packets_dropped.expect("counted")
    };
    let before = dropped(&mut session);
    assert!(before >= 400, "{before} packets dropped");
    let other = session.ask(&block(&format!("from {OTHER}"), 300));
    assert!(matches!(other, Response::Blocked { .. }), "{other:?}");
    assert!(
        dropped(&mut session) >= before,
        "the rewrite kept the counter"
    );
    assert!(matches!(
        session.ask(&unblock(&format!("from {OTHER}"))),
        Response::Unblocked { .. }
    ));
    assert_eq!(
        health(&mut session),
        HelperHealth {
            blocks_active: 1,
            journal_write_failures: 0
        },
        "status counts the block"
    );

    let response = session.ask(&unblock(&format!("from {ATTACKER}")));
    assert!(
        matches!(response, Response::Unblocked { .. }),
        "{response:?}"
    );
    assert_eq!(health(&mut session).blocks_active, 0, "and no longer");
    assert!(!net.nft_set("v4_saddr").unwrap().contains(ATTACKER));
    net.flood(ATTACKER, 100, 30_000, false);
    assert!(
        net.entries_from(ATTACKER, None) >= 100,
        "unblocked traffic is tracked again"
    );
    assert!(matches!(
        session.ask(&unblock(&format!("from {ATTACKER}"))),
        Response::Error {
            error: HelperError::NotBlocked { .. }
        }
    ));

    // The journal shows both, intent then outcome, and verifies.
    let Response::Journal { records, next } = session.ask(&Request::Journal {
        page: JournalPage {
            from: 0,
            limit: 100,
        },
    }) else {
        panic!("no journal");
    };
    assert_eq!(next, None);
    let outcome_of = |seq: u64| {
        records.iter().any(|r| {
            matches!(r.event, JournalEvent::Outcome { intent_seq, ok: true, .. } if intent_seq == seq)
        })
    };
    assert!(outcome_of(active.journal_seq), "{records:?}");
    assert_eq!(records[active.journal_seq as usize].seq, active.journal_seq);
    let output = verify_journal(&helper);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn the_seeds_udp_source_port_block_drops_only_that_port() {
    if !have_root("the_seeds_udp_source_port_block_drops_only_that_port") {
        return;
    }
    let net = Topology::new("sport");
    let helper = helper_for(&net, &[]);
    let mut session = helper.session();
    net.flood(ATTACKER, 200, 53, true);
    assert!(net.entries_from(ATTACKER, Some(53)) >= 200);

    let response = session.ask(&block(&format!("udp from {ATTACKER} sport 53"), 300));
    assert!(matches!(response, Response::Blocked { .. }), "{response:?}");
    assert_eq!(net.entries_from(ATTACKER, Some(53)), 0);
    assert!(
        net.nft_set("v4_saddr_proto_sport")
            .unwrap()
            .contains("udp . 53")
    );

    net.flood(ATTACKER, 200, 53, true);
    assert_eq!(
        net.entries_from(ATTACKER, Some(53)),
        0,
        "port 53 stays dropped"
    );
    net.flood(ATTACKER, 100, 40_000, false);
    assert!(
        net.entries_from(ATTACKER, None) >= 100,
        "other source ports of the same address pass"
    );
}

#[test]
fn a_block_expires_by_itself() {
    if !have_root("a_block_expires_by_itself") {
        return;
    }
    let net = Topology::new("exp");
    let helper = helper_for(&net, &[]);
    let mut session = helper.session();
    let response = session.ask(&block(&format!("from {ATTACKER}"), 2));
    assert!(matches!(response, Response::Blocked { .. }), "{response:?}");
    net.flood(ATTACKER, 50, 10_000, false);
    assert_eq!(
        net.entries_from(ATTACKER, None),
        0,
        "blocked while it lasts"
    );

    let mut base = 11_000;
    wait_for("the block to expire", Duration::from_secs(15), || {
        base += 50;
        net.flood(ATTACKER, 20, base, false);
        net.entries_from(ATTACKER, None) > 0
    });
    let Response::Blocks { blocks } = session.ask(&Request::ListBlocks {}) else {
        panic!("no blocks");
    };
    assert!(blocks.is_empty(), "{blocks:?}");
    assert_eq!(
        health(&mut session).blocks_active,
        0,
        "an expired block is not counted"
    );
}

#[test]
fn blocks_come_back_after_nft_flush_ruleset_and_a_restart() {
    if !have_root("blocks_come_back_after_nft_flush_ruleset_and_a_restart") {
        return;
    }
    let net = Topology::new("flush");
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--group",
        "root",
        "--netns",
        &net.router.name,
        "--reconcile-secs",
        "1",
    ];
    let mut helper = HelperProcess::start_in(dir.path(), &args);
    let response = helper
        .session()
        .ask(&block(&format!("from {ATTACKER}"), 300));
    assert!(matches!(response, Response::Blocked { .. }), "{response:?}");

    // (Whether the set is gone for a moment is not asserted: the helper hears of the flush and
    // may have put it back before any look of ours. hostile.rs shows that path alone.)
    net.router.exec("nft", &["flush ruleset"]);
    net.load_router_ruleset();
    wait_for("the block to come back", Duration::from_secs(10), || {
        net.nft_set("v4_saddr")
            .is_some_and(|set| set.contains(ATTACKER))
    });
    net.flood(ATTACKER, 100, 10_000, false);
    assert_eq!(net.entries_from(ATTACKER, None), 0, "dropped again");

    // An element swapped by hand (same count, other content) is drift too.
    net.router.exec(
        "nft",
        &[&format!(
            "delete element inet ctguard v4_saddr {{ {ATTACKER} }}; add element inet ctguard v4_saddr {{ 192.0.2.55 }}"
        )],
    );
    wait_for(
        "the swapped element to be put right",
        Duration::from_secs(10),
        || {
            net.nft_set("v4_saddr")
                .is_some_and(|set| set.contains(ATTACKER) && !set.contains("192.0.2.55"))
        },
    );

    // A crash, and the table deleted while the helper was away: the next start restores it.
    helper.kill();
    net.router.exec("nft", &["delete table inet ctguard"]);
    let helper = HelperProcess::start_in(dir.path(), &args);
    assert!(net.nft_set("v4_saddr").unwrap().contains(ATTACKER));
    let Response::Blocks { blocks } = helper.session().ask(&Request::ListBlocks {}) else {
        panic!("no blocks");
    };
    assert_eq!(blocks.len(), 1);
    let output = verify_journal(&helper);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn delete_entries_empties_a_target_without_blocking_it() {
    if !have_root("delete_entries_empties_a_target_without_blocking_it") {
        return;
    }
    let net = Topology::new("del");
    let helper = helper_for(&net, &[]);
    net.flood(ATTACKER, 300, 10_000, false);
    let response = helper
        .session()
        .ask(&Request::DeleteEntries(DeleteEntriesRequest {
            target: target(&format!("from {ATTACKER}")),
            reason: text("clean up"),
            requested_by: ADMIN.parse().unwrap(),
            actor: text("alice"),
        }));
    let Response::EntriesDeleted { deleted, .. } = response else {
        panic!("{response:?}");
    };
    assert!(deleted >= 300, "{deleted}");
    assert_eq!(net.entries_from(ATTACKER, None), 0);
    net.flood(ATTACKER, 50, 20_000, false);
    assert!(net.entries_from(ATTACKER, None) >= 50, "not blocked");

    // Nothing to delete is a success.
    let response = helper
        .session()
        .ask(&Request::DeleteEntries(DeleteEntriesRequest {
            target: target("from 192.0.2.99"),
            reason: text("clean up"),
            requested_by: ADMIN.parse().unwrap(),
            actor: text("alice"),
        }));
    assert!(
        matches!(response, Response::EntriesDeleted { deleted: 0, .. }),
        "{response:?}"
    );
}

#[test]
fn each_guardrail_refuses_over_the_socket_and_nothing_is_journaled() {
    if !have_root("each_guardrail_refuses_over_the_socket_and_nothing_is_journaled") {
        return;
    }
    let net = Topology::new("guard");
    let helper = helper_for(&net, &["--protect", "192.0.2.0/25"]);
    let mut session = helper.session();
    for (target_text, requested_by, kind) in [
        ("from 0.0.0.0/0", ADMIN, "everything_target"),
        ("from 10.0.0.0/8", ADMIN, "prefix_too_wide"),
        ("from 127.0.0.1", ADMIN, "loopback"),
        ("from 169.254.9.9", ADMIN, "link_local"),
        ("to 224.0.0.0/16", ADMIN, "multicast"),
        ("from 0.0.0.0", ADMIN, "unspecified"),
        ("from 203.0.113.1", ADMIN, "host_address"),
        ("from 198.51.100.0/24", ADMIN, "host_address"),
        (
            "from 203.0.113.66",
            "::ffff:203.0.113.66",
            "requester_address",
        ),
        ("from 192.0.2.7", ADMIN, "protected_network"),
    ] {
        let request = Request::Block(BlockRequest {
            target: target(target_text),
            duration: BlockDuration::from_secs(60).unwrap(),
            reason: text("test"),
            requested_by: requested_by.parse().unwrap(),
            actor: text("alice"),
        });
        let Response::Error { error } = session.ask(&request) else {
            panic!("{target_text} was blocked");
        };
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(json["kind"], kind, "{target_text}: {error}");
    }
    let Response::Journal { records, .. } = session.ask(&Request::Journal {
        page: JournalPage {
            from: 0,
            limit: 100,
        },
    }) else {
        panic!("no journal");
    };
    assert!(
        records
            .iter()
            .all(|r| matches!(r.event, JournalEvent::Started { .. })),
        "refusals change nothing: {records:?}"
    );
    assert!(
        !net.nft_set("v4_saddr").unwrap().contains("elements"),
        "the set is empty"
    );
}

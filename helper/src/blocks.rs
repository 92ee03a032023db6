//! Blocks: guardrails, journal, state file, firewall and conntrack, in the one order that keeps
//! them consistent. A block is checked, journaled (intent, fsync'd), saved, put into the kernel,
//! its entries deleted, journaled again (outcome), and only then acknowledged; a failure at any
//! step undoes the steps before it.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    ops::{Deref, DerefMut},
    sync::{Arc, Mutex, MutexGuard},
    time::{SystemTime, UNIX_EPOCH},
};

use ctguard_protocol::{
    ActiveBlock, BlockDuration, BlockTarget, HelperError, JournalAction, JournalEvent, JournalRef,
    Requested, ShortText,
};

use crate::{
    block_store::BlockStore,
    conntrack::EntryDeleter,
    firewall::{Element, Firewall, FirewallError},
    guard::Guardrails,
    journal::Journal,
    peer::PeerIdentity,
};

/// The most blocks in force at once (`--max-blocks` may lower it): enough for an incident a
/// person handles through a panel (a distributed attack is blocked by its victim or a prefix, a
/// longer list belongs in the host's firewall configuration), and few enough that listing them
/// all fits one answer frame even with the longest texts (tested in `blocks/tests.rs`).
pub const MAX_BLOCKS: usize = 400;

/// Who is asking, as the request and the kernel (peer uid) say.
#[derive(Debug, Clone)]
pub struct Requester {
    pub actor: ShortText,
    pub requested_by: IpAddr,
    pub peer_uid: u32,
}

impl Requester {
    /// Who asks for `change`: the user and their address as the request names them, the uid as
    /// the kernel names the peer.
    pub fn new(change: &(impl Requested + ?Sized), peer: PeerIdentity) -> Self {
        Self {
            actor: change.actor().clone(),
            requested_by: change.requested_by(),
            peer_uid: peer.uid,
        }
    }
}

/// The host's addresses, read at every check (a function so tests can supply their own).
pub type HostAddresses = fn() -> Result<Vec<IpAddr>, String>;

#[derive(Debug)]
pub struct Blocks {
    guard: Guardrails,
    journal: Arc<Journal>,
    store: BlockStore,
    firewall: Box<dyn Firewall>,
    deleter: Box<dyn EntryDeleter>,
    hosts: HostAddresses,
    blocks: Mutex<Vec<ActiveBlock>>,
    /// Packets each block dropped in tables since replaced. Every change rewrites the whole table,
    /// which zeroes the kernel's per-element counters, and nft cannot give an interval set's
    /// element a starting count; so the helper keeps what the old table had counted and adds the
    /// live count when it lists. In memory only: a helper restart starts the counts again.
    dropped_before: Mutex<BTreeMap<BlockTarget, u64>>,
    /// When each of `blocks` expires, copied from it whenever its lock is released. `active`
    /// counts from this copy: `status` asks every second and must not wait behind `blocks`, whose
    /// lock a change holds while nft and conntrack run.
    expiries: Mutex<Vec<u64>>,
}

/// The lock on the blocks; releasing it publishes their expiries, so no change can forget to.
struct BlocksGuard<'a> {
    blocks: MutexGuard<'a, Vec<ActiveBlock>>,
    expiries: &'a Mutex<Vec<u64>>,
}

impl Deref for BlocksGuard<'_> {
    type Target = Vec<ActiveBlock>;
    fn deref(&self) -> &Self::Target {
        &self.blocks
    }
}

impl DerefMut for BlocksGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.blocks
    }
}

impl Drop for BlocksGuard<'_> {
    fn drop(&mut self) {
        let expiries = self.blocks.iter().map(|b| b.expires_unix).collect();
        *self.expiries.lock().unwrap_or_else(|p| p.into_inner()) = expiries;
    }
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn elements(blocks: &[ActiveBlock], now: u64) -> Vec<Element> {
    blocks
        .iter()
        .map(|b| Element {
            target: b.target,
            timeout_secs: b.expires_unix.saturating_sub(now).max(1),
        })
        .collect()
}

fn firewall_error(error: impl ToString) -> HelperError {
    HelperError::Firewall {
        detail: error.to_string(),
    }
}

fn state_error(error: impl ToString) -> HelperError {
    HelperError::State {
        detail: error.to_string(),
    }
}

impl Blocks {
    /// Loads the saved blocks and puts the unexpired ones into the kernel: the helper's state
    /// wins over whatever `table inet ctguard` held.
    pub fn start(
        guard: Guardrails,
        journal: Arc<Journal>,
        store: BlockStore,
        firewall: Box<dyn Firewall>,
        deleter: Box<dyn EntryDeleter>,
        hosts: HostAddresses,
    ) -> Result<Self, HelperError> {
        let now = now_unix();
        let mut saved = store.load().map_err(state_error)?;
        saved.retain(|b| b.expires_unix > now);
        let blocks = Self {
            guard,
            journal,
            store,
            firewall,
            deleter,
            hosts,
            blocks: Mutex::new(Vec::new()),
            expiries: Mutex::new(Vec::new()),
            dropped_before: Mutex::new(BTreeMap::new()),
        };
        let screened = blocks.screen(&saved, now);
        if screened != saved {
            blocks.store.save(&screened).map_err(state_error)?;
        }
        let saved = screened;
        blocks.rewrite(&saved).map_err(firewall_error)?;
        tracing::info!(
            blocks = saved.len(),
            "blocks restored into table inet ctguard"
        );
        *blocks.lock() = saved;
        Ok(blocks)
    }

    /// Replaces the kernel's table with exactly `blocks`, keeping what the old table counted for
    /// each of them (see `dropped_before`).
    fn rewrite(&self, blocks: &[ActiveBlock]) -> Result<(), FirewallError> {
        let counted = self.firewall.observe().unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot read the block counters; this rewrite loses them");
            None
        });
        self.firewall.apply(&elements(blocks, now_unix()))?;
        let mut before = self
            .dropped_before
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        before.retain(|target, _| blocks.iter().any(|b| b.target == *target));
        if let Some(counted) = counted {
            for block in blocks {
                if let Some(counter) = counted.dropped(&block.target) {
                    *before.entry(block.target).or_default() += counter.packets;
                }
            }
        }
        Ok(())
    }

    fn lock(&self) -> BlocksGuard<'_> {
        BlocksGuard {
            blocks: self.blocks.lock().unwrap_or_else(|p| p.into_inner()),
            expiries: &self.expiries,
        }
    }

    /// How many blocks are in force now (unexpired), without waiting for a change in progress:
    /// as of the last change that finished.
    pub fn active(&self) -> u64 {
        let now = now_unix();
        let expiries = self.expiries.lock().unwrap_or_else(|p| p.into_inner());
        expiries.iter().filter(|&&expires| expires > now).count() as u64
    }

    /// The unexpired blocks, each with the packets it dropped when the kernel's counters can be
    /// read (a listing without them is still the truth about the blocks).
    pub fn list(&self) -> Vec<ActiveBlock> {
        let now = now_unix();
        let mut blocks: Vec<ActiveBlock> = self
            .lock()
            .iter()
            .filter(|b| b.expires_unix > now)
            .cloned()
            .collect();
        blocks.sort_by_key(|b| b.created_unix);
        match self.firewall.observe() {
            Ok(Some(observed)) => {
                let before = self
                    .dropped_before
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                for block in &mut blocks {
                    block.packets_dropped = observed.dropped(&block.target).map(|live| {
                        live.packets + before.get(&block.target).copied().unwrap_or_default()
                    });
                }
            }
            Ok(None) => {
                tracing::warn!("table inet ctguard is missing; listing blocks without counters")
            }
            Err(error) => tracing::warn!(%error, "cannot read the block counters"),
        }
        blocks
    }

    /// The saved blocks that pass the guardrails again, with expiries clamped to the longest
    /// duration. The state file is the helper's own, but a block saved under other rules (an
    /// older version, other `--protect` networks, an address the host has gained since) must
    /// not come back unchecked: each one refused is dropped, logged and journaled.
    fn screen(&self, saved: &[ActiveBlock], now: u64) -> Vec<ActiveBlock> {
        let mut kept: Vec<ActiveBlock> = Vec::with_capacity(saved.len());
        for block in saved {
            let refusal = match self.check_target(&block.target, block.requested_by) {
                Err(refusal) => Some(refusal.to_string()),
                Ok(()) if kept.len() >= MAX_BLOCKS => Some(format!(
                    "more than the {MAX_BLOCKS} blocks the helper holds"
                )),
                Ok(()) => kept
                    .iter()
                    .find(|k| k.target.overlaps(&block.target))
                    .map(|k| format!("overlaps the saved block {}", k.target)),
            };
            if let Some(refusal) = refusal {
                tracing::error!(target = %block.target, %refusal, "dropping a saved block");
                self.journal_discard(block.target, refusal);
                continue;
            }
            let mut block = block.clone();
            block.expires_unix = block.expires_unix.min(now + BlockDuration::MAX_SECS);
            kept.push(block);
        }
        kept
    }

    /// Journals a saved block dropped by [`Blocks::screen`]. Dropping is the safe side, so it
    /// goes ahead when the journal cannot record it (and the log says so).
    fn journal_discard(&self, target: BlockTarget, refusal: String) {
        let detail = format!("dropped {target}: {refusal}");
        let action = JournalAction::DiscardSaved { target, refusal };
        if let Err(error) = self.journal_own_action(action, detail) {
            tracing::error!(%error, %target, "cannot journal a dropped saved block");
        }
    }

    /// Journals what the helper did of its own accord (no requester): the intent and its
    /// outcome, both written after the fact because they only restore or narrow journaled state.
    fn journal_own_action(
        &self,
        action: JournalAction,
        detail: String,
    ) -> Result<JournalRef, crate::journal::JournalError> {
        let intent = self.journal.append(&JournalEvent::Intent {
            action,
            actor: None,
            requested_by: None,
            peer_uid: None,
        })?;
        self.journal.append(&JournalEvent::Outcome {
            intent_seq: intent.seq,
            ok: true,
            detail,
        })
    }

    fn check_target(&self, target: &BlockTarget, requested_by: IpAddr) -> Result<(), HelperError> {
        let hosts = (self.hosts)().map_err(|detail| HelperError::KernelRead {
            path: "getifaddrs".into(),
            detail,
        })?;
        self.guard.check(target.network(), requested_by, &hosts)
    }

    fn outcome(&self, intent: &JournalRef, ok: bool, detail: String) -> Result<(), HelperError> {
        self.journal.append(&JournalEvent::Outcome {
            intent_seq: intent.seq,
            ok,
            detail,
        })?;
        Ok(())
    }

    fn intent(&self, action: JournalAction, who: &Requester) -> Result<JournalRef, HelperError> {
        Ok(self.journal.append(&JournalEvent::Intent {
            action,
            actor: Some(who.actor.clone()),
            requested_by: Some(who.requested_by),
            peer_uid: Some(who.peer_uid),
        })?)
    }

    /// Makes `next` the state: saved, then in the kernel. On failure nothing changed.
    fn commit(&self, current: &[ActiveBlock], next: &[ActiveBlock]) -> Result<(), HelperError> {
        self.store.save(next).map_err(state_error)?;
        if let Err(error) = self.rewrite(next) {
            if let Err(undo) = self.store.save(current) {
                tracing::error!(%undo, "cannot restore the saved blocks after a firewall failure");
            }
            return Err(firewall_error(error));
        }
        Ok(())
    }

    /// The blocks in force, locked, the expired ones dropped; and the time they were read at.
    fn in_force(&self) -> (BlocksGuard<'_>, u64) {
        let mut blocks = self.lock();
        let now = now_unix();
        blocks.retain(|b| b.expires_unix > now);
        (blocks, now)
    }

    /// One change of the blocks in force, the one transaction block and unblock share: `action`'s
    /// intent is journaled (by `who`), the blocks `next` makes of the current ones and the intent
    /// become the state (saved, then in the kernel), `then` runs (and says what it did), and the
    /// outcome is journaled. A change that fails is journaled as failed and leaves the state as
    /// it was; one whose outcome cannot be journaled is undone, never acknowledged.
    fn transact(
        &self,
        blocks: &mut Vec<ActiveBlock>,
        action: JournalAction,
        who: &Requester,
        next: impl FnOnce(&[ActiveBlock], &JournalRef) -> Vec<ActiveBlock>,
        then: impl FnOnce() -> String,
    ) -> Result<JournalRef, HelperError> {
        let intent = self.intent(action, who)?;
        let next = next(blocks, &intent);
        let current = std::mem::take(blocks);
        if let Err(error) = self.commit(&current, &next) {
            let _ = self.outcome(&intent, false, error.to_string());
            *blocks = current;
            return Err(error);
        }
        *blocks = next;
        if let Err(error) = self.outcome(&intent, true, then()) {
            if let Err(undo) = self.commit(blocks, &current) {
                tracing::error!(%undo, seq = intent.seq, "cannot undo an unjournaled change");
            } else {
                *blocks = current;
            }
            return Err(error);
        }
        Ok(intent)
    }

    pub fn block(
        &self,
        target: BlockTarget,
        duration: BlockDuration,
        reason: ShortText,
        who: &Requester,
    ) -> Result<(ActiveBlock, u64, JournalRef), HelperError> {
        self.check_target(&target, who.requested_by)?;
        let (mut blocks, now) = self.in_force();
        if let Some(existing) = blocks
            .iter()
            .find(|b| b.target != target && b.target.overlaps(&target))
        {
            return Err(HelperError::OverlapsBlock {
                target,
                existing: existing.target,
            });
        }
        let max = self.guard.max_blocks;
        if blocks.len() >= max && !blocks.iter().any(|b| b.target == target) {
            return Err(HelperError::TooManyBlocks { max });
        }
        let action = JournalAction::Block {
            target,
            duration,
            reason: reason.clone(),
        };
        let block = |intent: &JournalRef| ActiveBlock {
            target,
            reason: reason.clone(),
            actor: who.actor.clone(),
            requested_by: who.requested_by,
            created_unix: now,
            expires_unix: now + duration.secs(),
            journal_seq: intent.seq,
            packets_dropped: None,
        };
        // The target's block replaces any earlier one of the same target.
        let next = |current: &[ActiveBlock], intent: &JournalRef| {
            let others = current.iter().filter(|b| b.target != target).cloned();
            others.chain([block(intent)]).collect()
        };
        let mut deleted = 0;
        let intent = self.transact(&mut blocks, action, who, next, || {
            match self.deleter.delete(&target) {
                Ok(count) => {
                    deleted = count;
                    format!("blocked; {count} entries deleted")
                }
                Err(error) => {
                    tracing::warn!(%error, %target, "blocked, but deleting its entries failed");
                    format!("blocked; deleting entries failed: {error}")
                }
            }
        })?;
        tracing::info!(%target, actor = %who.actor, seq = intent.seq, deleted, "blocked");
        Ok((block(&intent), deleted, intent))
    }

    pub fn unblock(
        &self,
        target: BlockTarget,
        reason: ShortText,
        who: &Requester,
    ) -> Result<JournalRef, HelperError> {
        let (mut blocks, _) = self.in_force();
        if !blocks.iter().any(|b| b.target == target) {
            return Err(HelperError::NotBlocked { target });
        }
        let action = JournalAction::Unblock { target, reason };
        let next = |current: &[ActiveBlock], _: &JournalRef| {
            current
                .iter()
                .filter(|b| b.target != target)
                .cloned()
                .collect()
        };
        let intent = self.transact(&mut blocks, action, who, next, || "unblocked".to_owned())?;
        tracing::info!(%target, actor = %who.actor, seq = intent.seq, "unblocked");
        Ok(intent)
    }

    /// Deletes a target's entries without blocking it (same guardrails as a block).
    pub fn delete_entries(
        &self,
        target: BlockTarget,
        reason: ShortText,
        who: &Requester,
    ) -> Result<(u64, JournalRef), HelperError> {
        self.check_target(&target, who.requested_by)?;
        let intent = self.intent(JournalAction::DeleteEntries { target, reason }, who)?;
        match self.deleter.delete(&target) {
            Ok(deleted) => {
                self.outcome(&intent, true, format!("{deleted} entries deleted"))?;
                Ok((deleted, intent))
            }
            Err(error) => {
                let _ = self.outcome(&intent, false, error.to_string());
                Err(HelperError::Conntrack {
                    detail: error.to_string(),
                })
            }
        }
    }

    /// Compares the kernel with the state and puts the state back where they differ. Returns
    /// the differences found (empty: none).
    pub fn reconcile(&self) -> Result<Vec<String>, HelperError> {
        let mut blocks = self.lock();
        let now = now_unix();
        let before = blocks.clone();
        blocks.retain(|b| b.expires_unix > now);
        // The guardrails again: the host may have gained an address inside a block since.
        let screened = self.screen(&blocks, now);
        *blocks = screened;
        let mut drift = Vec::new();
        if *blocks != before {
            self.store.save(&blocks).map_err(state_error)?;
            let discarded = before
                .iter()
                .filter(|b| b.expires_unix > now && !blocks.iter().any(|k| k.target == b.target))
                .count();
            match discarded {
                0 => {}
                1 => drift.push("1 block no longer passes the guardrails".to_owned()),
                n => drift.push(format!("{n} blocks no longer pass the guardrails")),
            }
        }
        // Elements about to expire may already be gone from the kernel, or not yet: either way
        // not drift.
        let (expected, tolerated): (Vec<ActiveBlock>, Vec<ActiveBlock>) = blocks
            .iter()
            .cloned()
            .partition(|b| b.expires_unix > now + 2);
        drift.extend(match self.firewall.observe().map_err(firewall_error)? {
            None => vec!["table inet ctguard is missing".to_owned()],
            Some(observed) => observed.drift(&elements(&expected, now), &elements(&tolerated, now)),
        });
        if !drift.is_empty() {
            tracing::warn!(
                ?drift,
                blocks = blocks.len(),
                "table inet ctguard drifted; restoring it"
            );
            self.rewrite(&blocks).map_err(firewall_error)?;
            // Restoring journaled state is not a new decision: it goes ahead even when the
            // journal cannot record it (and says so in the log).
            let missing = u64::try_from(drift.len()).unwrap_or(u64::MAX);
            let journaled = self.journal_own_action(
                JournalAction::Reconcile { missing },
                format!("restored {} blocks: {}", blocks.len(), drift.join("; ")),
            );
            if let Err(error) = journaled {
                tracing::error!(%error, "cannot journal a reconcile");
            }
        }
        Ok(drift)
    }
}

#[cfg(test)]
mod tests;

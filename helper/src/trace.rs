//! Traces: one time-boxed count of the new flows matching a filter, by source, destination and
//! destination port (the seed's `iptables -j LOG` step, without a log flood). At most one runs.
//! Starting and ending one are journaled like every change; its table goes at the deadline (the
//! kernel stops matching at the deadline by itself, see `trace/ruleset.rs`), when a user stops
//! it, and at the next start of the helper if one was left behind.

pub mod ruleset;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use ctguard_protocol::{
    BlockTarget, HelperError, JournalAction, JournalEvent, JournalRef, ShortText,
    trace::{MAX_TRACE_SECS, TraceEnd, TraceInfo, TraceReading},
};

use crate::{
    blocks::{Requester, now_unix},
    child,
    journal::Journal,
};

const NFT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct State {
    running: Option<TraceInfo>,
    /// The newest reading of the running trace, or the final one of the last trace.
    last: Option<TraceReading>,
}

#[derive(Debug)]
pub struct Tracer {
    nft: PathBuf,
    journal: Arc<Journal>,
    state: Mutex<State>,
}

fn firewall_error(detail: impl ToString) -> HelperError {
    HelperError::Firewall {
        detail: detail.to_string(),
    }
}

impl Tracer {
    pub fn new(journal: Arc<Journal>) -> Self {
        Self {
            nft: child::system_binary("nft"),
            journal,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn nft(&self, args: &[&str], script: Option<&str>) -> Result<Vec<u8>, HelperError> {
        let finished = child::run(
            &self.nft,
            args,
            script.map(str::as_bytes),
            child::Stdout::Keep,
            NFT_TIMEOUT,
        )
        .map_err(firewall_error)?;
        if finished.status.success() {
            Ok(finished.stdout)
        } else {
            Err(firewall_error(finished.stderr))
        }
    }

    fn intent(
        &self,
        action: JournalAction,
        who: Option<&Requester>,
    ) -> Result<JournalRef, HelperError> {
        self.journal
            .append(&JournalEvent::Intent {
                action,
                actor: who.map(|w| w.actor.clone()),
                requested_by: who.map(|w| w.requested_by),
                peer_uid: who.map(|w| w.peer_uid),
            })
            .map_err(HelperError::from)
    }

    fn outcome(&self, intent: &JournalRef, ok: bool, detail: String) {
        if let Err(error) = self.journal.append(&JournalEvent::Outcome {
            intent_seq: intent.seq,
            ok,
            detail,
        }) {
            tracing::error!(%error, "cannot journal a trace's outcome");
        }
    }

    /// At start: a trace table left by an earlier run goes, journaled.
    pub fn remove_leftover(&self) -> Result<(), HelperError> {
        let listed = self.nft(&["list", "tables"], None)?;
        let listed = String::from_utf8_lossy(&listed);
        if !listed
            .lines()
            .any(|line| line.trim().ends_with(&format!(" {}", ruleset::TABLE)))
        {
            return Ok(());
        }
        let intent = self.intent(
            JournalAction::EndTrace {
                filter: None,
                ended: TraceEnd::LeftByEarlierRun,
                reason: None,
            },
            None,
        )?;
        let removed = self.nft(&["-f", "-"], Some(&ruleset::delete_script()));
        self.outcome(
            &intent,
            removed.is_ok(),
            match &removed {
                Ok(_) => "the trace table an earlier run left was removed".to_owned(),
                Err(error) => error.to_string(),
            },
        );
        removed.map(drop)
    }

    pub fn start(
        &self,
        filter: BlockTarget,
        seconds: u32,
        reason: ShortText,
        who: &Requester,
    ) -> Result<(TraceInfo, JournalRef), HelperError> {
        if !(1..=MAX_TRACE_SECS).contains(&seconds) {
            return Err(HelperError::TraceLength {
                seconds,
                max: MAX_TRACE_SECS,
            });
        }
        // The lock is held through the change: two starts cannot both pass the check.
        let mut state = self.state();
        if let Some(running) = &state.running {
            return Err(HelperError::TraceRunning {
                filter: running.filter,
            });
        }
        let intent = self.intent(
            JournalAction::StartTrace {
                filter,
                seconds,
                reason,
            },
            Some(who),
        )?;
        let started_at = now_unix();
        let info = TraceInfo {
            filter,
            started_at,
            ends_at: started_at + u64::from(seconds),
        };
        match self.nft(&["-f", "-"], Some(&ruleset::script(&filter, seconds))) {
            Ok(_) => {
                self.outcome(&intent, true, format!("tracing {filter} for {seconds} s"));
                state.running = Some(info);
                state.last = None;
                Ok((info, intent))
            }
            Err(error) => {
                self.outcome(&intent, false, error.to_string());
                Err(error)
            }
        }
    }

    /// Ends the running trace (a user's stop, or its deadline): a last reading, then the table
    /// goes.
    fn end(
        &self,
        state: &mut State,
        ended: TraceEnd,
        reason: Option<ShortText>,
        who: Option<&Requester>,
    ) -> Result<(TraceInfo, JournalRef), HelperError> {
        let info = state.running.ok_or(HelperError::NoTrace)?;
        let intent = self.intent(
            JournalAction::EndTrace {
                filter: Some(info.filter),
                ended,
                reason,
            },
            who,
        )?;
        match self.read(&info) {
            Ok(reading) => state.last = Some(reading),
            Err(error) => tracing::warn!(%error, "no last reading of the trace"),
        }
        let removed = self.nft(&["-f", "-"], Some(&ruleset::delete_script()));
        let counted = state.last.as_ref().map_or(0, |r| r.new_flows);
        self.outcome(
            &intent,
            removed.is_ok(),
            match &removed {
                Ok(_) => format!("{counted} new flows matched; the trace table was removed"),
                Err(error) => error.to_string(),
            },
        );
        removed?;
        state.running = None;
        Ok((info, intent))
    }

    pub fn stop(
        &self,
        reason: ShortText,
        who: &Requester,
    ) -> Result<(TraceInfo, JournalRef), HelperError> {
        let mut state = self.state();
        self.end(&mut state, TraceEnd::Stopped, Some(reason), Some(who))
    }

    /// At a clean stop: a running trace ends with the helper, journaled.
    pub fn stop_with_helper(&self) {
        let mut state = self.state();
        if state.running.is_some() {
            let reason = ShortText::new("the helper stopped").ok();
            if let Err(error) = self.end(&mut state, TraceEnd::Stopped, reason, None) {
                tracing::error!(%error, "could not end the trace at stop");
            }
        }
    }

    /// Ends the running trace if its time is up (called every second).
    pub fn expire_if_due(&self) {
        let mut state = self.state();
        if state
            .running
            .is_some_and(|running| running.ends_at <= now_unix())
            && let Err(error) = self.end(&mut state, TraceEnd::Expired, None, None)
        {
            tracing::error!(%error, "could not end an expired trace; trying again");
        }
    }

    fn read(&self, info: &TraceInfo) -> Result<TraceReading, HelperError> {
        let family = if info.filter.is_ipv4() { "ip" } else { "ip6" };
        let listed = self.nft(&["-j", "list", "table", family, ruleset::TABLE], None)?;
        let counts =
            ruleset::parse_listing(&String::from_utf8_lossy(&listed)).map_err(firewall_error)?;
        Ok(TraceReading {
            info: *info,
            new_flows: counts.matched,
            sources: counts.sources,
            destinations: counts.destinations,
            destination_ports: counts.destination_ports,
            uncounted_sources: counts.uncounted_sources,
        })
    }

    /// The running trace's counts now (`true`), or the last trace's final ones (`false`), or
    /// nothing when no trace ran since the helper started.
    pub fn reading(&self) -> Result<Option<(TraceReading, bool)>, HelperError> {
        let mut state = self.state();
        match state.running {
            Some(info) => {
                let reading = self.read(&info)?;
                state.last = Some(reading.clone());
                Ok(Some((reading, true)))
            }
            None => Ok(state.last.clone().map(|last| (last, false))),
        }
    }

    /// Ends traces at their deadline, for the helper's lifetime.
    pub fn spawn_expiry(self: &Arc<Self>) {
        let tracer = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let tracer = Arc::clone(&tracer);
                if let Err(error) =
                    tokio::task::spawn_blocking(move || tracer.expire_if_due()).await
                {
                    tracing::error!(%error, "the trace expiry task failed");
                }
            }
        });
    }
}

//! Snapshot and Entries: one ctnetlink walk aggregated as it streams (bounded top-N maps, never
//! a list of flows), shared by concurrent callers and rate-limited by its own cost.

pub mod sources;
pub mod spread;
pub mod top;

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use ctguard_protocol::{
    ConntrackEntry, EntryFilter, HelperError, Protocol, Side, Snapshot, SourcePort, SourceSport,
    StateMix, TcpState,
    snapshot::{DestinationService, amplifier},
};

use crate::ctnetlink::{self, Flow, parse::protocol_name};
use sources::SourcedTracker;
use spread::SpreadTracker;
use top::TopTracker;

/// Groups listed per category.
pub const TOP_N: usize = 20;
/// Groups tracked per category while walking (bounded memory whatever the table size).
pub const TRACKED: usize = 16_384;
/// Sources whose spread is sketched (128 bytes each): the first this many a walk meets. The heavy
/// sources a suspicious table is about fill it early and often, so they are among them.
pub const SPREAD_TRACKED: usize = 4_096;
/// Groups tracked per victim category (destinations, destination services) while walking: each
/// carries a 256-byte sketch of its sources, so fewer than [`TRACKED`] (about 1.5 MiB each when
/// full). A victim big enough to matter survives the folding of the smallest half.
pub const VICTIMS_TRACKED: usize = 4_096;

/// The state mix of one entry.
pub fn mix_of(flow: &Flow) -> StateMix {
    let mut mix = StateMix {
        entries: 1,
        unreplied: u64::from(flow.unreplied()),
        assured: u64::from(flow.assured()),
        source_nat: u64::from(flow.source_nat()),
        ..StateMix::default()
    };
    match flow.tcp_state() {
        Some(TcpState::SynSent | TcpState::Syn2) => mix.syn_sent = 1,
        Some(TcpState::SynRecv) => mix.syn_recv = 1,
        Some(TcpState::Established) => mix.established = 1,
        Some(TcpState::TimeWait) => mix.time_wait = 1,
        Some(TcpState::FinWait | TcpState::CloseWait | TcpState::LastAck | TcpState::Close) => {
            mix.closing = 1;
        }
        Some(TcpState::None) | None => {}
    }
    mix
}

/// The aggregation of one walk.
#[derive(Debug)]
pub struct Aggregate {
    total: StateMix,
    sources: TopTracker<IpAddr>,
    destinations: TopTracker<IpAddr>,
    dports: TopTracker<u16>,
    source_dports: TopTracker<SourcePort>,
    source_sports: TopTracker<SourceSport>,
    spread: SpreadTracker,
    protocols: TopTracker<&'static str>,
    tcp_states: TopTracker<TcpState>,
    destination_sources: SourcedTracker<IpAddr>,
    destination_services: SourcedTracker<DestinationService>,
}

impl Default for Aggregate {
    fn default() -> Self {
        Self::with_cap(TRACKED)
    }
}

impl Aggregate {
    pub fn with_cap(cap: usize) -> Self {
        Self {
            total: StateMix::default(),
            sources: TopTracker::new(cap),
            destinations: TopTracker::new(cap),
            dports: TopTracker::new(cap),
            source_dports: TopTracker::new(cap),
            source_sports: TopTracker::new(cap),
            spread: SpreadTracker::new(cap.min(SPREAD_TRACKED)),
            protocols: TopTracker::new(64),
            tcp_states: TopTracker::new(16),
            destination_sources: SourcedTracker::new(cap.min(VICTIMS_TRACKED)),
            destination_services: SourcedTracker::new(cap.min(VICTIMS_TRACKED)),
        }
    }

    pub fn add(&mut self, flow: &Flow) {
        let mix = mix_of(flow);
        top::add(&mut self.total, &mix);
        let original = &flow.original;
        self.sources.add(original.source, &mix);
        self.destinations.add(original.destination, &mix);
        self.destination_sources
            .add(original.destination, original.source, &mix);
        if let Some(service) = service_of(flow) {
            self.destination_services
                .add(service, original.source, &mix);
        }
        self.spread
            .add(original.source, original.destination, original.dport);
        if original.protocol == 17
            && let Some(sport) = original.sport.filter(|port| amplifier(*port).is_some())
        {
            self.source_sports.add(
                SourceSport {
                    source: original.source,
                    protocol: Protocol::Udp,
                    sport,
                },
                &mix,
            );
        }
        if let Some(dport) = original.dport {
            self.dports.add(dport, &mix);
            self.source_dports.add(
                SourcePort {
                    source: original.source,
                    dport,
                },
                &mix,
            );
        }
        self.protocols.add(protocol_name(original.protocol), &mix);
        if let Some(state) = flow.tcp_state() {
            self.tcp_states.add(state, &mix);
        }
    }

    pub fn finish(self, taken_unix_ms: u64, walk_ms: u64) -> Snapshot {
        let sources = self.sources.finish(TOP_N);
        let source_spread = sources
            .top
            .iter()
            .filter_map(|group| self.spread.spread_of(group.key))
            .collect();
        Snapshot {
            taken_unix_ms,
            walk_ms,
            total: self.total,
            sources,
            source_spread,
            destinations: self.destinations.finish(TOP_N),
            dports: self.dports.finish(TOP_N),
            source_dports: self.source_dports.finish(TOP_N),
            source_sports: self.source_sports.finish(TOP_N),
            protocols: {
                let list = self.protocols.finish(TOP_N);
                ctguard_protocol::TopList {
                    top: list
                        .top
                        .into_iter()
                        .map(|g| ctguard_protocol::Group {
                            key: g.key.to_owned(),
                            mix: g.mix,
                        })
                        .collect(),
                    rest: list.rest,
                    distinct: list.distinct,
                }
            },
            tcp_states: self.tcp_states.finish(TOP_N),
            destination_sources: self.destination_sources.finish(TOP_N),
            destination_services: self.destination_services.finish(TOP_N),
        }
    }
}

/// The destination service an entry counts for, if any: TCP by its destination port, UDP from
/// an amplifier's source port (reflected answers). Other UDP is left out, as in the per-source
/// list: counting every ephemeral port would only churn the maps.
fn service_of(flow: &Flow) -> Option<DestinationService> {
    let original = &flow.original;
    let (protocol, side, port) = match original.protocol {
        6 => (Protocol::Tcp, Side::Destination, original.dport?),
        17 => (
            Protocol::Udp,
            Side::Source,
            original.sport.filter(|port| amplifier(*port).is_some())?,
        ),
        _ => return None,
    };
    Some(DestinationService {
        destination: original.destination,
        protocol,
        side,
        port,
    })
}

fn conntrack_error(error: impl ToString) -> HelperError {
    HelperError::Conntrack {
        detail: error.to_string(),
    }
}

/// One aggregated walk of the calling thread's namespace (blocking), walked again from scratch
/// when the kernel marks it interrupted (NLM_F_DUMP_INTR; `ctnetlink::walk_consistent`). The
/// `Snapshot` answer has no field saying it is partial, so a walk interrupted on every attempt
/// is refused as an error rather than answered as if it were whole. `walk_ms` counts every
/// attempt: it is what the cache's rate limit weighs.
pub fn walk_snapshot() -> Result<Snapshot, HelperError> {
    let started = Instant::now();
    let walked = ctnetlink::walk_consistent(Aggregate::default, |aggregate, flow| {
        aggregate.add(flow);
    })
    .map_err(conntrack_error)?;
    if !walked.consistent {
        return Err(conntrack_error(format!(
            "the table changed during each of {} walks (NLM_F_DUMP_INTR): no consistent snapshot",
            walked.attempts
        )));
    }
    let walk_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(walked.value.finish(crate::journal::now_unix_ms(), walk_ms))
}

/// Whether an entry matches a drill-down filter.
pub fn matches(filter: &EntryFilter, flow: &Flow) -> bool {
    let o = &flow.original;
    filter
        .network
        .is_none_or(|n| n.contains(&o.source) || n.contains(&o.destination))
        && filter
            .port
            .is_none_or(|p| o.sport == Some(p) || o.dport == Some(p))
        && filter
            .protocol
            .is_none_or(|p| protocol_name(o.protocol) == p.as_str())
        && filter.tcp_state.is_none_or(|s| flow.tcp_state() == Some(s))
}

pub fn entry_of(flow: &Flow) -> ConntrackEntry {
    ConntrackEntry {
        protocol: protocol_name(flow.original.protocol).to_owned(),
        source: flow.original.source,
        destination: flow.original.destination,
        sport: flow.original.sport,
        dport: flow.original.dport,
        reply_source: flow.reply.source,
        reply_destination: flow.reply.destination,
        tcp_state: flow.tcp_state(),
        timeout_secs: u64::from(flow.timeout_secs),
        unreplied: flow.unreplied(),
        assured: flow.assured(),
    }
}

/// The entries matching `filter`, at most `filter.limit`, and whether more matched (blocking).
pub fn entries(filter: &EntryFilter) -> Result<(Vec<ConntrackEntry>, bool), HelperError> {
    if filter.limit == 0 || filter.limit > EntryFilter::MAX_LIMIT {
        return Err(HelperError::LimitOutOfRange {
            limit: filter.limit,
            max: EntryFilter::MAX_LIMIT,
        });
    }
    let limit = filter.limit as usize;
    let mut found = Vec::new();
    let mut truncated = false;
    ctnetlink::walk(|flow| {
        if matches(filter, flow) {
            if found.len() < limit {
                found.push(entry_of(flow));
            } else {
                truncated = true;
            }
        }
    })
    .map_err(conntrack_error)?;
    Ok((found, truncated))
}

/// Shares walks between callers: a snapshot younger than the minimum interval is served again,
/// and while one walk runs, other callers wait for it instead of starting their own. The
/// interval grows with the walk's cost (4× the last walk, at least `floor`), so a huge table
/// cannot keep the helper walking.
#[derive(Debug)]
pub struct SnapshotCache {
    floor: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Arc<Snapshot>)>>,
}

impl SnapshotCache {
    pub fn new(floor: Duration) -> Self {
        Self {
            floor,
            last: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn get(
        &self,
        walk: impl FnOnce() -> Result<Snapshot, HelperError> + Send + 'static,
    ) -> Result<Arc<Snapshot>, HelperError> {
        let mut last = self.last.lock().await;
        if let Some((at, snapshot)) = last.as_ref() {
            let interval = self
                .floor
                .max(Duration::from_millis(snapshot.walk_ms.saturating_mul(4)));
            if at.elapsed() < interval {
                return Ok(Arc::clone(snapshot));
            }
        }
        let snapshot = tokio::task::spawn_blocking(walk)
            .await
            .map_err(conntrack_error)??;
        let snapshot = Arc::new(snapshot);
        *last = Some((Instant::now(), Arc::clone(&snapshot)));
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::ctnetlink::parse::{self, IPS_ASSURED, IPS_SEEN_REPLY, IPS_SRC_NAT};

    fn flow(src: [u8; 4], dport: u16, state: u8, status: u32) -> Flow {
        parse::flow(&parse::tests::tcp_entry(
            src,
            [198, 51, 100, 10],
            40_000,
            dport,
            state,
            status,
        ))
        .expect("parses")
    }

    #[test]
    fn a_walk_aggregates_sources_ports_and_state_mix() {
        let mut aggregate = Aggregate::with_cap(8);
        for _ in 0..5 {
            aggregate.add(&flow([203, 0, 113, 66], 80, 1, 0));
        }
        aggregate.add(&flow(
            [203, 0, 113, 10],
            8080,
            3,
            IPS_SEEN_REPLY | IPS_ASSURED | IPS_SRC_NAT,
        ));
        // UDP answers from port 53, and UDP from an ephemeral port, which is not counted by port.
        for sport in [53, 53, 40_001] {
            let mut reflected = flow([203, 0, 113, 53], 1024, 0, 0);
            reflected.original.protocol = 17;
            reflected.original.sport = Some(sport);
            aggregate.add(&reflected);
        }
        let snapshot = aggregate.finish(1, 2);
        assert_eq!(snapshot.total.source_nat, 1);
        assert_eq!(
            snapshot.source_sports.top.len(),
            1,
            "only the amplifier port"
        );
        let sport = &snapshot.source_sports.top[0];
        assert_eq!((sport.key.protocol, sport.key.sport), (Protocol::Udp, 53));
        assert_eq!(sport.mix.entries, 2);
        assert_eq!(snapshot.source_spread.len(), 3, "one per listed source");
        assert_eq!(snapshot.source_spread[0].dports, 1);
        assert_eq!(snapshot.total.entries, 9);
        assert_eq!(snapshot.total.unreplied, 8);
        assert_eq!(snapshot.total.assured, 1);
        let top = &snapshot.sources.top[0];
        assert_eq!(top.key, "203.0.113.66".parse::<IpAddr>().expect("ip"));
        assert_eq!(top.mix.syn_sent, 5);
        assert_eq!(snapshot.dports.top[0].key, 80);
        assert_eq!(snapshot.source_dports.top[0].key.dport, 80);
        assert_eq!(snapshot.protocols.top[0].key, "tcp");
        assert_eq!(snapshot.tcp_states.top[0].key, TcpState::SynSent);
        let established = snapshot
            .tcp_states
            .top
            .iter()
            .find(|group| group.key == TcpState::Established)
            .expect("listed");
        assert_eq!(established.mix.established, 1);
    }

    #[test]
    fn a_distributed_reflection_and_a_spoofed_syn_flood_each_show_as_one_victim_group() {
        let mut aggregate = Aggregate::with_cap(64);
        // 1,200 reflectors in 198.18.0.0/16, three answers each from port 53 to the victim,
        // interleaved with 2,000 spoofed SYNs to the victim's port 80, each from its own source.
        for n in 0..2_000u32 {
            let [_, _, high, low] = n.to_be_bytes();
            if n < 1_200 {
                for dport in 0..3 {
                    let mut reflected = flow([198, 18, high, low], 1024 + dport, 0, 0);
                    reflected.original.protocol = 17;
                    reflected.original.sport = Some(53);
                    aggregate.add(&reflected);
                }
            }
            aggregate.add(&flow([198, 19, high, low], 80, 2, IPS_SEEN_REPLY));
        }
        let snapshot = aggregate.finish(1, 2);
        assert!(
            snapshot.sources.top.iter().all(|g| g.mix.entries <= 3),
            "no source stands out"
        );
        let reflection = &snapshot.destination_services.top[0];
        assert_eq!(
            reflection.key,
            DestinationService {
                destination: "198.51.100.10".parse().expect("ip"),
                protocol: Protocol::Udp,
                side: Side::Source,
                port: 53,
            }
        );
        assert_eq!(reflection.mix.entries, 3_600);
        assert_eq!(reflection.mix.unreplied, 3_600);
        assert!(reflection.sources.abs_diff(1_200) < 300, "{reflection:?}");
        let syn = &snapshot.destination_services.top[1];
        assert_eq!(
            (syn.key.protocol, syn.key.side, syn.key.port),
            (Protocol::Tcp, Side::Destination, 80)
        );
        assert_eq!(syn.mix.syn_recv, 2_000);
        assert!(syn.sources.abs_diff(2_000) < 500, "{syn:?}");
        let victim = &snapshot.destination_sources.top[0];
        assert_eq!(victim.mix.entries, 5_600);
        assert!(victim.sources.abs_diff(3_200) < 800, "{victim:?}");
    }

    #[test]
    fn filters_narrow_by_every_field() {
        let syn = flow([203, 0, 113, 66], 80, 1, 0);
        let filter = |network: Option<&str>, port, state| EntryFilter {
            network: network.map(|n| n.parse().expect("net")),
            port,
            protocol: None,
            tcp_state: state,
            limit: 10,
        };
        assert!(matches(
            &filter(Some("203.0.113.0/24"), Some(80), Some(TcpState::SynSent)),
            &syn
        ));
        assert!(!matches(&filter(Some("192.0.2.0/24"), None, None), &syn));
        assert!(!matches(&filter(None, Some(81), None), &syn));
        assert!(!matches(
            &filter(None, None, Some(TcpState::Established)),
            &syn
        ));
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_walk() {
        let cache = Arc::new(SnapshotCache::new(Duration::from_secs(60)));
        let walks = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let cache = Arc::clone(&cache);
            let walks = Arc::clone(&walks);
            tasks.push(tokio::spawn(async move {
                cache
                    .get(move || {
                        walks.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        Ok(Aggregate::default().finish(0, 50))
                    })
                    .await
                    .expect("snapshot")
            }));
        }
        for task in tasks {
            task.await.expect("joins");
        }
        assert_eq!(walks.load(Ordering::SeqCst), 1);
    }
}

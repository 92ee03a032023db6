//! Who creates entries (issue 15): the helper's counts of new flows per source, destination and
//! service over the last 10 s, minute and 10 minutes, as the Suspicious page, the dashboard and
//! `GET /api/creators` show them. Holders (a walk of the table) are who has entries now; creators
//! are who makes them fastest, counted by the kernel as each entry is created, so the short flows
//! that expire between two walks show here too. `proposals` names the patterns in them (one
//! source, reflection, a distributed flood) and the block each calls for.

use ctguard_protocol::{
    CreatorCount, CreatorKey, CreatorWindow, Creators,
    creators::{TurnedAway, TurnedAwaySource},
};
use serde::{Deserialize, Serialize};

use crate::format;

pub mod proposals;

/// How many creators per key the panel asks the helper for and lists.
pub const CREATORS_LISTED: u16 = 10;

/// The window the dashboard, the suspects' reasons and `/metrics` use, and the page starts on.
pub const DEFAULT_WINDOW_SECS: u32 = 60;

/// The windows the Suspicious page offers, with their labels.
pub const WINDOW_CHOICES: [(u32, &str); 3] = [(10, "10 s"), (60, "1 min"), (600, "10 min")];

/// The most characters of the helper's `problem` passed on.
const PROBLEM_CHARS: usize = 300;

/// The helper's answer, or why there is none. The shape of `GET /api/creators`:
/// `{"available": {"creators": {...}}}` or `{"unavailable": {"reason": "unsupported"}}` or
/// `{"unavailable": {"reason": {"not_counting": {"problem": "..."}}}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreatorsView {
    /// The helper counts: its answer.
    Available {
        creators: Creators,
    },
    Unavailable {
        reason: CreatorsUnavailable,
    },
}

/// Why there are no creators to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreatorsUnavailable {
    /// The helper does not count creators (one from before protocol version 9, or one whose
    /// counting is not built yet).
    Unsupported,
    /// The helper's counting table is not in place (nftables refused it); its words say why.
    NotCounting { problem: Option<String> },
}

impl CreatorsView {
    /// The view of a helper's answer: available only while the helper counts.
    pub fn from_answer(creators: Creators) -> Self {
        if creators.counting {
            Self::Available { creators }
        } else {
            let problem = creators.problem.map(|text| {
                if text.chars().count() <= PROBLEM_CHARS {
                    text
                } else {
                    let mut cut: String = text.chars().take(PROBLEM_CHARS - 1).collect();
                    cut.push('…');
                    cut
                }
            });
            Self::Unavailable {
                reason: CreatorsUnavailable::NotCounting { problem },
            }
        }
    }
}

impl CreatorsUnavailable {
    /// What the page says instead of the tables.
    pub fn explain(&self) -> String {
        match self {
            Self::Unsupported => "Creators are not available: the helper does not count new \
                                  entries (it is older than this panel, or its counting is not \
                                  built yet)."
                .to_owned(),
            Self::NotCounting { problem } => format!(
                "Creators are not available: the helper's counting table is not in place{}",
                problem
                    .as_deref()
                    .map_or_else(|| ".".to_owned(), |problem| format!(" ({problem}).")),
            ),
        }
    }
}

/// A rate in words: `9,000 entries/s`, `1 entry/s`, `under 1 entry/s` (some, fewer than one a
/// second), `0 entries/s`.
pub fn per_second(per_second: u64, any: bool) -> String {
    match per_second {
        0 if any => "under 1 entry/s".to_owned(),
        1 => "1 entry/s".to_owned(),
        n => format!("{} entries/s", format::thousands(n)),
    }
}

/// `new_flows` of `window` as a rate in words (rounded down, as [`CreatorWindow::per_second`]).
pub fn rate(window: &CreatorWindow, new_flows: u64) -> String {
    per_second(window.per_second(new_flows), new_flows > 0)
}

/// `creates 9,000 entries/s`.
pub fn creates(rate_per_second: u64) -> String {
    format!("creates {}", per_second(rate_per_second, true))
}

/// A key's table title.
pub fn key_title(key: CreatorKey) -> &'static str {
    match key {
        CreatorKey::Source => "Sources",
        CreatorKey::Destination => "Destinations",
        CreatorKey::DestinationSourcePort => "Destination + source port",
        CreatorKey::SourceDestinationPort => "Source + destination port",
    }
}

/// Whether a key's creators carry a protocol and a port.
pub fn has_service(key: CreatorKey) -> bool {
    matches!(
        key,
        CreatorKey::DestinationSourcePort | CreatorKey::SourceDestinationPort
    )
}

/// The protocol and port of a creator of a key that has them: `from udp port 53` (answers from
/// a service's port to the address), `to tcp port 80` (the address to a service).
pub fn service(key: CreatorKey, creator: &CreatorCount) -> Option<String> {
    let direction = match key {
        CreatorKey::DestinationSourcePort => "from",
        CreatorKey::SourceDestinationPort => "to",
        CreatorKey::Source | CreatorKey::Destination => return None,
    };
    let protocol = creator
        .protocol
        .map(|protocol| format!(" {}", protocol.as_str()))
        .unwrap_or_default();
    let port = creator
        .port
        .map(|port| format!(" port {port}"))
        .unwrap_or_default();
    Some(format!("{direction}{protocol}{port}"))
}

/// The biggest creator of new entries by source over [`DEFAULT_WINDOW_SECS`], with its rate per
/// second (rounded down); `None` when nothing was counted.
pub fn top_source(creators: &Creators) -> Option<(CreatorCount, u64)> {
    let window = creators.window(DEFAULT_WINDOW_SECS)?;
    let top = *window.list(CreatorKey::Source)?.top.first()?;
    (top.new_flows > 0).then(|| (top, window.per_second(top.new_flows)))
}

/// Packets conntrack refused, in words: `1,200 packets refused`, `1 packet refused`.
pub fn refused(packets: u64) -> String {
    match packets {
        1 => "1 packet refused".to_owned(),
        n => format!("{} packets refused", format::thousands(n)),
    }
}

/// Packets of `window` as a rate in words: `200 packets/s`, `1 packet/s`, `under 1 packet/s`.
pub fn packet_rate(window: &CreatorWindow, packets: u64) -> String {
    match window.per_second(packets) {
        0 if packets > 0 => "under 1 packet/s".to_owned(),
        1 => "1 packet/s".to_owned(),
        n => format!("{} packets/s", format::thousands(n)),
    }
}

/// The counted total beside the kernel's own drop statistic over the same window.
pub fn kernel_comparison(turned_away: &TurnedAway) -> String {
    let drops = |n: u64| {
        format!(
            "{} {}",
            format::thousands(n),
            if n == 1 { "drop" } else { "drops" }
        )
    };
    let unwatched = if turned_away.unwatched_drops > 0 {
        format!(
            " It also counted {} in this window's other seconds, while the helper was not \
             counting per source: those are nobody's here.",
            drops(turned_away.unwatched_drops)
        )
    } else {
        String::new()
    };
    format!(
        "Counted per source: {} in all; the kernel counted {} in the same seconds.{unwatched}",
        refused(turned_away.counted()),
        drops(turned_away.kernel_drops),
    )
}

/// When the helper counts who is turned away, and why not always: that counting costs per
/// packet, and conntrack refuses nothing until its table is full.
pub fn watch_words(creators: &Creators) -> String {
    match (creators.watching_since, creators.watch_from_percent) {
        (Some(_), 0) => "Counted per source from the first packet (the helper runs with \
                         --watch-turned-away-from 0)."
            .to_owned(),
        (Some(since), from) => format!(
            "Counted per source since {}: the table reached {from} % of its limit, or the \
             kernel dropped a new flow. Counting stops 30 s after neither is seen.",
            format::clock_utc(since.saturating_mul(1000)),
        ),
        (None, from) => format!(
            "Not counted per source now: the table is below {from} % of its limit, where \
             conntrack refuses nothing, and counting every packet that could start a flow \
             would cost forwarding for nothing. It starts at {from} % or at the kernel's first \
             drop; refusals within the second before it show in the kernel's count only."
        ),
    }
}

/// The source conntrack turned away most over [`DEFAULT_WINDOW_SECS`] (its table full), with
/// its packets per second (rounded down); `None` when nobody was turned away.
pub fn top_turned_away(creators: &Creators) -> Option<(TurnedAwaySource, u64)> {
    let window = creators.window(DEFAULT_WINDOW_SECS)?;
    let top = *window.turned_away.top.first()?;
    (top.packets > 0).then(|| (top, window.per_second(top.packets)))
}

/// The window's length in words: `the last minute`.
pub fn window_words(seconds: u32) -> String {
    match seconds {
        60 => "the last minute".to_owned(),
        s if s % 60 == 0 => format!("the last {} minutes", s / 60),
        s => format!("the last {s} s"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use ctguard_protocol::{CreatorList, Protocol, creators::TurnedAway};

    use super::*;

    const ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 66));

    fn window(covered_secs: u32) -> CreatorWindow {
        CreatorWindow {
            seconds: 60,
            covered_secs,
            new_flows: 0,
            lists: Vec::new(),
            turned_away: TurnedAway {
                top: Vec::new(),
                rest: 0,
                uncounted: 0,
                kernel_drops: 0,
                unwatched_drops: 0,
            },
        }
    }

    fn count(protocol: Option<Protocol>, port: Option<u16>, new_flows: u64) -> CreatorCount {
        CreatorCount {
            address: ADDRESS,
            protocol,
            port,
            new_flows,
        }
    }

    #[test]
    fn rates_read_as_entries_per_second() {
        assert_eq!(rate(&window(60), 540_000), "9,000 entries/s");
        assert_eq!(rate(&window(60), 60), "1 entry/s");
        assert_eq!(rate(&window(60), 119), "1 entry/s", "rounded down");
        assert_eq!(rate(&window(60), 30), "under 1 entry/s", "some, not none");
        assert_eq!(rate(&window(60), 0), "0 entries/s");
        assert_eq!(rate(&window(0), 0), "0 entries/s", "nothing covered yet");
        // After a start the window covers less than its length: the rate is over what it covers.
        assert_eq!(rate(&window(20), 2_000), "100 entries/s");
        assert_eq!(creates(9_000), "creates 9,000 entries/s");
        assert_eq!(creates(1), "creates 1 entry/s");
        assert_eq!(creates(0), "creates under 1 entry/s");
    }

    #[test]
    fn services_name_the_side_their_port_is_on() {
        let udp_53 = count(Some(Protocol::Udp), Some(53), 1);
        assert_eq!(
            service(CreatorKey::DestinationSourcePort, &udp_53).as_deref(),
            Some("from udp port 53")
        );
        let tcp_80 = count(Some(Protocol::Tcp), Some(80), 1);
        assert_eq!(
            service(CreatorKey::SourceDestinationPort, &tcp_80).as_deref(),
            Some("to tcp port 80")
        );
        assert_eq!(service(CreatorKey::Source, &tcp_80), None);
        assert_eq!(
            service(CreatorKey::SourceDestinationPort, &count(None, None, 1)).as_deref(),
            Some("to")
        );
    }

    #[test]
    fn the_top_source_is_the_minute_windows_first_with_its_rate() {
        let answer = |new_flows: u64| Creators {
            counting: true,
            problem: None,
            set_capacity: 65_536,
            sample_secs: 10,
            sampled_at: 0,
            windows: vec![
                CreatorWindow {
                    lists: vec![CreatorList {
                        key: CreatorKey::Source,
                        top: vec![count(None, None, new_flows * 10)],
                        rest: 0,
                        uncounted: 0,
                    }],
                    seconds: 10,
                    ..window(10)
                },
                CreatorWindow {
                    lists: vec![CreatorList {
                        key: CreatorKey::Source,
                        top: vec![count(None, None, new_flows)],
                        rest: 0,
                        uncounted: 0,
                    }],
                    ..window(60)
                },
            ],
            watching_since: None,
            watch_from_percent: 90,
        };
        let (top, rate) = top_source(&answer(540_000)).expect("a top source");
        assert_eq!((top.address, rate), (ADDRESS, 9_000));
        assert_eq!(top_source(&answer(0)), None, "nothing created");
    }

    #[test]
    fn an_answer_without_counting_is_unavailable_with_its_problem_cut_short() {
        let answer = Creators {
            counting: false,
            problem: Some("x".repeat(1_000)),
            set_capacity: 0,
            sample_secs: 10,
            sampled_at: 0,
            windows: Vec::new(),
            watching_since: None,
            watch_from_percent: 90,
        };
        let CreatorsView::Unavailable {
            reason:
                CreatorsUnavailable::NotCounting {
                    problem: Some(problem),
                },
        } = CreatorsView::from_answer(answer)
        else {
            panic!("not counting");
        };
        assert_eq!(problem.chars().count(), PROBLEM_CHARS);
        assert!(
            CreatorsUnavailable::Unsupported
                .explain()
                .contains("does not count")
        );
        assert_eq!(
            CreatorsUnavailable::NotCounting {
                problem: Some("nft said no".into())
            }
            .explain(),
            "Creators are not available: the helper's counting table is not in place (nft said no)."
        );
    }

    #[test]
    fn the_turned_away_read_as_packets_refused_beside_the_kernels_drops() {
        let mut shown = window(60);
        shown.turned_away = TurnedAway {
            top: vec![TurnedAwaySource {
                address: ADDRESS,
                packets: 12_000,
            }],
            rest: 59,
            uncounted: 1,
            kernel_drops: 12_100,
            unwatched_drops: 0,
        };
        assert_eq!(refused(12_000), "12,000 packets refused");
        assert_eq!(refused(1), "1 packet refused");
        assert_eq!(packet_rate(&shown, 12_000), "200 packets/s");
        assert_eq!(packet_rate(&shown, 30), "under 1 packet/s");
        assert_eq!(
            kernel_comparison(&shown.turned_away),
            "Counted per source: 12,060 packets refused in all; the kernel counted 12,100 drops \
             in the same seconds."
        );
        let mut early = shown.turned_away.clone();
        early.unwatched_drops = 1;
        assert!(
            kernel_comparison(&early).ends_with(
                "It also counted 1 drop in this window's other seconds, while the helper was not \
                 counting per source: those are nobody's here."
            ),
            "{}",
            kernel_comparison(&early)
        );
        let creators = |shown: CreatorWindow| Creators {
            counting: true,
            problem: None,
            set_capacity: 65_536,
            sample_secs: 10,
            sampled_at: 0,
            windows: vec![shown],
            watching_since: None,
            watch_from_percent: 90,
        };
        let (top, rate) = top_turned_away(&creators(shown)).expect("a top source");
        assert_eq!((top.address, rate), (ADDRESS, 200));
        assert_eq!(
            top_turned_away(&creators(window(60))),
            None,
            "nobody refused"
        );
    }

    #[test]
    fn windows_read_as_words() {
        assert_eq!(window_words(10), "the last 10 s");
        assert_eq!(window_words(60), "the last minute");
        assert_eq!(window_words(600), "the last 10 minutes");
    }

    #[test]
    fn the_watch_says_when_who_is_turned_away_is_counted_and_why_not_always() {
        let mut answer = Creators {
            counting: true,
            problem: None,
            set_capacity: 4096,
            sample_secs: 10,
            sampled_at: 0,
            windows: Vec::new(),
            watching_since: None,
            watch_from_percent: 90,
        };
        let quiet = watch_words(&answer);
        assert!(
            quiet.starts_with("Not counted per source now: the table is below 90 %"),
            "{quiet}"
        );
        answer.watching_since = Some(1_795_698_245);
        assert!(
            watch_words(&answer)
                .starts_with("Counted per source since 13:04:05 UTC: the table reached 90 %"),
            "{}",
            watch_words(&answer)
        );
        answer.watch_from_percent = 0;
        assert!(watch_words(&answer).contains("from the first packet"));
    }
}

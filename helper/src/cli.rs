//! The helper's command line: the daemon's options, and the `journal verify` subcommand.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};
use ctguard_protocol::IpNet;

use crate::config::{HelperConfig, NetnsName};
use crate::guard::Guardrails;
use crate::kernel::StatsSource;
use crate::peer::{PeerPolicy, PeerPolicyError};

/// The root helper of ctguard: answers the panel's requests about the conntrack table.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Where to listen. The directory is created if missing.
    #[arg(
        long,
        env = "CTGUARD_HELPER_SOCKET",
        default_value = "/run/ctguard/helper.sock"
    )]
    pub socket: PathBuf,

    /// Group that owns the socket (mode 0660): the group the server runs in.
    #[arg(long, env = "CTGUARD_HELPER_GROUP", default_value = "ctguard")]
    pub group: String,

    /// User ids allowed to talk to the helper, checked with SO_PEERCRED. Root is always allowed.
    #[arg(long = "allow-uid", value_delimiter = ',')]
    pub allow_uids: Vec<u32>,

    /// Users allowed by name (resolved once at start), e.g. `ctguard`.
    #[arg(long = "allow-user", value_delimiter = ',')]
    pub allow_users: Vec<String>,

    /// Watch the network namespace with this name (as `ip netns` names it) instead of our own.
    #[arg(long, env = "CTGUARD_HELPER_NETNS", value_parser = NetnsName::parse)]
    pub netns: Option<NetnsName>,

    /// The helper's own directory: the blocks it holds (blocks.json), its journal
    /// (journal.jsonl) and the persisted settings (90-ctguard.conf, linked as
    /// /etc/sysctl.d/90-ctguard.conf at install; ctguard-conntrack.conf, linked into
    /// /etc/modprobe.d). It and every parent must be writable by root alone: the helper refuses
    /// to start otherwise. Never share it with the server.
    #[arg(
        long,
        env = "CTGUARD_HELPER_STATE_DIR",
        default_value = "/var/lib/ctguard-helper"
    )]
    pub state_dir: PathBuf,

    /// A network never to block or flush (gateways, resolvers, management). Repeatable.
    #[arg(long = "protect", value_parser = ctguard_protocol::target::parse_network)]
    pub protect: Vec<IpNet>,

    /// The shortest IPv4 prefix a target may have.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=32))]
    pub min_prefix_v4: u8,

    /// The shortest IPv6 prefix a target may have.
    #[arg(long, default_value_t = 48, value_parser = clap::value_parser!(u8).range(1..=128))]
    pub min_prefix_v6: u8,

    /// The most blocks in force at once (at most 400, so that listing them fits one answer).
    #[arg(long, default_value_t = crate::blocks::MAX_BLOCKS as u64,
          value_parser = clap::value_parser!(u64).range(1..=crate::blocks::MAX_BLOCKS as u64))]
    pub max_blocks: u64,

    /// The size in bytes past which the journal's active segment (journal.jsonl) is sealed,
    /// renamed after its first record (journal-<seq>.jsonl), and a new one begun.
    #[arg(long, default_value_t = crate::journal::DEFAULT_SEGMENT_BYTES,
          value_parser = clap::value_parser!(u64).range(4096..))]
    pub journal_segment_bytes: u64,

    /// Seconds between checks that `table inet ctguard` still holds every block.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub reconcile_secs: u64,

    /// Seconds a client may take to send its next request, whole, before it is disconnected.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub client_idle_secs: u64,

    /// Seconds a client may take to read an answer before it is disconnected.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub client_write_secs: u64,

    /// Where the per-CPU statistics come from: `auto` reads them over ctnetlink (as `conntrack -S`
    /// does) and falls back to /proc/net/stat/nf_conntrack; `netlink` and `procfs` use one only.
    #[arg(long, env = "CTGUARD_HELPER_STATS_SOURCE", value_enum, default_value_t = StatsSource::Auto)]
    pub stats_source: StatsSource,

    /// Which new flows the counting table `ctguard_creators` counts per source, destination and
    /// service. `ipv4-ipv6` makes conntrack track both families in the namespace (an nftables
    /// `ct` match turns tracking on for its table's families): choose `ipv4` on a host that
    /// tracks only IPv4, `off` for no counting table at all.
    #[arg(long, env = "CTGUARD_HELPER_COUNT_CREATORS", value_enum, default_value_t = CountCreators::Ipv4Ipv6)]
    pub count_creators: CountCreators,

    /// The most keys each counting set holds; new flows of further keys are counted as
    /// uncounted until idle keys expire (after 10 minutes).
    #[arg(long, default_value_t = crate::creators::DEFAULT_SET_SIZE,
        value_parser = clap::value_parser!(u32).range(i64::from(*crate::creators::SET_SIZE_RANGE.start())..=i64::from(*crate::creators::SET_SIZE_RANGE.end())))]
    pub creator_set_size: u32,

    /// How often the counting table is read, in seconds.
    #[arg(long, default_value_t = crate::creators::DEFAULT_SAMPLE_SECS,
        value_parser = clap::value_parser!(u64).range(*crate::creators::SAMPLE_SECS_RANGE.start()..=*crate::creators::SAMPLE_SECS_RANGE.end()))]
    pub creator_sample_secs: u64,

    /// From which fill of the table (percent of nf_conntrack_max) the helper counts who
    /// conntrack turns away, per source: that counting costs per packet (every UDP packet), and
    /// conntrack refuses nothing until its table is full. It also starts at the first drop.
    /// 0 counts always.
    #[arg(long, default_value_t = crate::creators::watch::DEFAULT_FROM_PERCENT,
        value_parser = clap::value_parser!(u8).range(0..=100))]
    pub watch_turned_away_from: u8,
}

/// `--count-creators`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CountCreators {
    Off,
    Ipv4,
    #[value(name = "ipv4-ipv6")]
    Ipv4Ipv6,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with an audit journal file.
    Journal {
        #[command(subcommand)]
        action: JournalCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Checks every record's hash and the chain; reports the first broken record.
    Verify {
        /// The helper's state directory (every segment, in order), or one journal file.
        #[arg(long)]
        path: PathBuf,
    },
}

impl Cli {
    /// Resolves names to ids once, so a typo stops the helper at start instead of locking out the
    /// server later.
    pub fn into_config(self) -> Result<HelperConfig, PeerPolicyError> {
        Ok(HelperConfig {
            socket: self.socket,
            group: self.group,
            peers: PeerPolicy::resolve(self.allow_uids, &self.allow_users)?,
            netns: self.netns,
            state_dir: self.state_dir,
            guard: Guardrails {
                min_prefix_v4: self.min_prefix_v4,
                min_prefix_v6: self.min_prefix_v6,
                protected: self.protect,
                max_blocks: usize::try_from(self.max_blocks).unwrap_or(crate::blocks::MAX_BLOCKS),
            },
            journal_segment_bytes: self.journal_segment_bytes,
            reconcile_interval: Duration::from_secs(self.reconcile_secs),
            client_limits: crate::connection::ClientLimits {
                idle: Duration::from_secs(self.client_idle_secs),
                write: Duration::from_secs(self.client_write_secs),
            },
            stats_source: self.stats_source,
            counting: crate::creators::CountingConfig {
                families: match self.count_creators {
                    CountCreators::Off => None,
                    CountCreators::Ipv4 => Some(crate::creators::Families::Ipv4),
                    CountCreators::Ipv4Ipv6 => Some(crate::creators::Families::Both),
                },
                set_size: self.creator_set_size,
                sample_every: Duration::from_secs(self.creator_sample_secs),
                watch_from_percent: self.watch_turned_away_from,
            },
        })
    }
}

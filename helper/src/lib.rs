//! The root helper of ctguard: the only code that touches the kernel. It listens on a Unix socket,
//! lets in only the peers its configuration names (checked with `SO_PEERCRED`), and answers the closed
//! set of requests of `ctguard-protocol`, one handler per request.

pub mod block_store;
pub mod blocks;
pub mod child;
pub mod cli;
pub mod config;
pub mod connection;
pub mod conntrack;
pub mod creators;
pub mod ctnetlink;
pub mod firewall;
pub mod guard;
pub mod handler;
pub mod journal;
pub mod kernel;
pub mod listener;
pub mod netns;
pub mod notify;
pub mod peer;
pub mod snapshot;
pub mod state_dir;
pub mod sysctl;
pub mod telemetry;
pub mod trace;

//! The helper's integration tests, one binary (issue 18, item 5): each module is one area's tests
//! against a real helper process, `support` what they share (the helper on a throwaway socket,
//! throwaway namespaces, a raw client, the routed topology). Its tests run in parallel threads of
//! one process: namespace names are unique per test, and what the whole machine's tables obey is
//! changed by one test at a time (`support::host_alone`). `bench.rs` stays a target of its own.

mod support;

mod blocks;
mod creators;
mod hostile;
mod journal;
mod kernel;
mod packaging;
mod snapshot;
mod socket;
mod sysctl;
mod trace;

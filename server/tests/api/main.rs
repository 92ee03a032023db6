//! The server's integration tests, one binary (issue 18, item 5): each module is one area's
//! tests, `support` what they share (the application on port 0, a fake helper, signed-in
//! clients). `audit_bench.rs` stays a target of its own, run by `scripts/bench.sh audit`.

mod support;

mod accounts;
mod audit;
mod creators;
mod live;
mod observability;
mod operations;
mod own_account;
mod rendering;
mod routing;
mod second_factor;
mod sessions;
mod traces;
mod tuning;

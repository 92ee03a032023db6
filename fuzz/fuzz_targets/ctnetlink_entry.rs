//! Any bytes as a datagram from the kernel: the netlink framing, a ctnetlink entry and a CPU's
//! statistics never panic, whatever the lengths and flags claim.
#![no_main]

use ctguard_helper::ctnetlink::{message, parse, stats};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Some(flow) = parse::flow(bytes) {
        let _ = flow.tcp_state();
    }
    let _ = stats::parse_cpu(bytes);
    let mut state = message::DumpState::default();
    let _ = message::read_datagram(bytes, bytes.len(), &mut state, |_, payload| {
        let _ = parse::flow(payload);
    });
});

//! Any bytes as a ctnetlink entry from the kernel: parsing never panics.
#![no_main]

use ctguard_helper::ctnetlink::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Some(flow) = parse::flow(bytes) {
        let _ = flow.tcp_state();
    }
});

//! Any text: parsing a block target never panics, a parsed target is in the one canonical form
//! (never an IPv4-mapped IPv6 network), and it prints to text and JSON that parse back to the
//! same target.
#![no_main]

use ctguard_protocol::BlockTarget;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(target) = text.parse::<BlockTarget>() {
        if let ctguard_protocol::IpNet::V6(v6) = target.network() {
            assert!(v6.addr().to_ipv4_mapped().is_none(), "{target} kept a mapped form");
        }
        let printed = target.to_string();
        assert_eq!(
            printed.parse::<BlockTarget>().expect("printed form parses"),
            target
        );
        let json = serde_json::to_string(&target).expect("serialises");
        assert_eq!(
            serde_json::from_str::<BlockTarget>(&json).expect("json parses"),
            target
        );
    }
    let _ = serde_json::from_str::<BlockTarget>(text);
});

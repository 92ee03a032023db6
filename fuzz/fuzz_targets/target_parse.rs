//! Any text: parsing a block target never panics, and a parsed target prints to text and JSON
//! that parse back to the same target.
#![no_main]

use ctguard_protocol::BlockTarget;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(target) = text.parse::<BlockTarget>() {
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

//! Any bytes as a journal line or a whole journal: checking never panics.
#![no_main]

use ctguard_helper::journal::{record, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = record::check(bytes, 0, record::GENESIS);
    let _ = verify(bytes);
});

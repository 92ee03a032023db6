//! Any frame body: decoding never panics, and whatever decodes re-encodes to an equal message.
#![no_main]

use ctguard_protocol::{Request, Response, frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(request) = frame::decode::<Request>(body) {
        let again = frame::encode(&request).expect("a decoded request encodes");
        assert_eq!(
            frame::decode::<Request>(&again).expect("round trip"),
            request
        );
    }
    if let Ok(response) = frame::decode::<Response>(body) {
        let again = frame::encode(&response).expect("a decoded response encodes");
        assert_eq!(
            frame::decode::<Response>(&again).expect("round trip"),
            response
        );
    }
});

//! Decode arbitrary bytes as an atomik message: never panic, never
//! allocate past what the input justifies, and whatever decodes must
//! re-encode to bytes that decode to the same message.
#![no_main]

use atomik_core::codec::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode(data) {
        let again = decode(&encode(&msg)).expect("re-encoded message decodes");
        assert_eq!(again, msg);
    }
    // Same bytes with a correct checksum, so the structure is exercised
    // behind the checksum too.
    if data.len() > 4 {
        let mut sealed = data[..data.len() - 4].to_vec();
        let crc = crc32fast::hash(&sealed);
        sealed.extend_from_slice(&crc.to_le_bytes());
        if let Ok(msg) = decode(&sealed) {
            assert_eq!(decode(&encode(&msg)).expect("re-encoded"), msg);
        }
    }
});

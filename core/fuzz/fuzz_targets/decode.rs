//! Decode arbitrary bytes as an atomik message (wire versions 1 and 2):
//! never panic, never allocate past what the input justifies, and whatever
//! decodes must re-encode to bytes that decode to the same message.
#![no_main]

use atomik_core::codec::v2::{decode_request, decode_response, encode_request, encode_response};
use atomik_core::codec::{decode, encode};
use libfuzzer_sys::fuzz_target;

/// Every decoder, version 1 and version 2: whatever decodes re-encodes to
/// bytes that decode to the same message.
fn check(data: &[u8]) {
    if let Ok(msg) = decode(data) {
        let again = decode(&encode(&msg)).expect("re-encoded message decodes");
        assert_eq!(again, msg);
    }
    if let Ok(req) = decode_request(data) {
        assert_eq!(decode_request(&encode_request(&req)).expect("re-encoded"), req);
    }
    if let Ok(resp) = decode_response(data) {
        assert_eq!(decode_response(&encode_response(&resp)).expect("re-encoded"), resp);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // Same bytes with a correct checksum, so the structure is exercised
    // behind the checksum too.
    if data.len() > 4 {
        let mut sealed = data[..data.len() - 4].to_vec();
        let crc = crc32fast::hash(&sealed);
        sealed.extend_from_slice(&crc.to_le_bytes());
        check(&sealed);
    }
});

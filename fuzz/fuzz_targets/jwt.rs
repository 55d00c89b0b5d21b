//! Arbitrary strings through every JWT decoder and the unverified peeks.
#![no_main]

use clan_nats::jwt::{self, AccountClaims, OperatorClaims, UserClaims};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = OperatorClaims::decode(&text);
    let _ = AccountClaims::decode_with_payload(&text);
    if let Ok(u) = UserClaims::decode(&text) {
        let _ = u.account();
    }
    let _ = jwt::peek(&text);
    let _ = jwt::peek_type(&text);
});

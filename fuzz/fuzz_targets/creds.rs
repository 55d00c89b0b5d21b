//! Arbitrary text through the `.creds` parsers.
#![no_main]

use clan_nats::jwt::creds;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok((jwt, seed)) = creds::parse(&text) {
        // A parsed pair formats back into text that parses to the same pair.
        if let Ok(formatted) = creds::format(&jwt, &seed) {
            assert_eq!(creds::parse(&formatted).ok(), Some((jwt, seed)));
        }
    }
    let _ = creds::parse_checked(&text);
});

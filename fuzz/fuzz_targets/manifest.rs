//! Arbitrary bytes through the manifest parser; a parsed manifest re-serializes
//! to something that parses to the same manifest.
#![no_main]

use clan_nats::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        let again = Manifest::parse(&m.to_bytes()).expect("a manifest we wrote parses");
        assert_eq!(again, m);
        let _ = m.account("core");
        let _ = m.key("user", "core", "x");
    }
});

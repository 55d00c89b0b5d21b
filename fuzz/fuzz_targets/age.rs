//! Arbitrary bytes through age decryption, with an X25519 and an ssh-ed25519
//! identity (the TEST ONLY keys of tests/fixtures/insecure).
#![no_main]

use std::sync::LazyLock;

use camino::Utf8PathBuf;
use clan_nats::vault::Identity;
use libfuzzer_sys::fuzz_target;

static IDS: LazyLock<[Identity; 2]> = LazyLock::new(|| {
    let dir = Utf8PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/insecure"));
    let load = |f: &str| Identity::load(&dir.join(f)).expect("test identity loads");
    [load("dev1.agekey"), load("nats1.ssh_host_ed25519_key")]
});

fuzz_target!(|data: &[u8]| {
    for id in IDS.iter() {
        let _ = id.decrypt(data);
    }
});

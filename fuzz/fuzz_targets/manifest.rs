//! Arbitrary bytes through the manifest parser; a parsed manifest re-serializes
//! (as its root and account files) to something that parses to the same
//! accounts, users and keys.
#![no_main]

use clan_nats::manifest::Manifest;
use clan_nats::store::{Tree, MANIFEST};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        let _ = m.account("core");
        let _ = m.key("user", "core", "x");
        // What generate can write: distinct account names that are file names,
        // every user key in an account of the manifest.
        let mut names: Vec<&str> = m.accounts.iter().map(|a| a.name.as_str()).collect();
        names.sort_unstable();
        let distinct = names.windows(2).all(|w| w[0] != w[1]);
        let plain = names.iter().all(|n| !n.is_empty() && !n.contains('/') && *n != "." && *n != "..");
        let keyed = m.keys.iter().filter(|k| k.role == "user").all(|k| names.binary_search(&k.account.as_str()).is_ok());
        if !(distinct && plain && keyed) {
            return;
        }
        let mut written = m.clone();
        let files: Tree = written.to_files().into_iter().collect();
        let again = if m.accounts.iter().all(|a| a.loaded) {
            Manifest::from_tree(&files).expect("a whole manifest we wrote loads")
        } else {
            Manifest::parse(&files[MANIFEST]).expect("a root we wrote parses")
        };
        let names = |m: &Manifest| -> Vec<(String, Vec<String>)> {
            m.accounts.iter().map(|a| (a.name.clone(), a.users.iter().map(|u| u.name.clone()).collect())).collect()
        };
        assert_eq!(names(&again), names(&m));
        let keys = |m: &Manifest| {
            let mut k: Vec<_> = m.keys.iter().map(|k| k.public_key.clone()).collect();
            k.sort();
            k
        };
        assert_eq!(keys(&again), keys(&m));
    }
});

//! Config text → parse → validate → (if valid) plan. Nothing may panic, and a
//! config that validates must plan into valid subjects and names.
#![no_main]

use camino::Utf8Path;
use clan_nats::config::{self, subject::subject_problem, validate::validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(cfg) = config::parse(Utf8Path::new("fuzz.json"), text) else { return };
    if !validate(&cfg).is_empty() {
        return;
    }
    let plan = clan_nats::plan::plan(&cfg);
    // What validation promises the later stages.
    assert!(config::validate::name_problem(&plan.operator).is_none(), "operator {:?}", plan.operator);
    for a in &plan.accounts {
        assert!(config::validate::name_problem(&a.name).is_none(), "account {:?}", a.name);
        for u in &a.users {
            assert!(config::validate::name_problem(&u.name).is_none(), "user {:?}", u.name);
            for s in u.permissions.publish.allow.iter().chain(&u.permissions.subscribe.allow) {
                let subject = s.split_once(' ').map_or(s.as_str(), |(s, _)| s);
                assert_eq!(subject_problem(subject), None, "user {:?} of account {:?}", u.name, a.name);
            }
        }
    }
});

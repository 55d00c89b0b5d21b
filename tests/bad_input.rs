//! Bad input is rejected with exit code 2, a message naming the config file,
//! the field path and the offending value, and nothing is written: neither the
//! store directory nor the owner identity.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_clan-nats");

/// This test binary's trust pins, in a temporary directory (never the home directory).
fn pins_file() -> PathBuf {
    static STATE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    STATE.get_or_init(|| tempfile::tempdir().expect("temp dir")).path().join("pins.json")
}
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/insecure/example.json");

// Indexes into tests/fixtures/insecure/example.json (the shipped example with test keys).
// Units: 0 Core (core), 1 Media (media), 2 Development (development).
// People: 3 policy-service (Core), 5 audio-service (Media), 10 spaces-service (Development).
// Hosts: 1 core1 (5 services), 2 media1 (audio, document, video), 3 dev1 (git, nix, spaces).

fn example() -> Value {
    serde_json::from_str(&fs::read_to_string(EXAMPLE).unwrap()).unwrap()
}

/// How the validator quotes a value (Rust's `{:?}`).
fn q(s: &str) -> String {
    format!("{s:?}")
}

fn run(cfg: &Path, out: &Path, key: &Path, extra: &[&str]) -> (i32, String) {
    let o = Command::new(BIN)
        .env("CLAN_NATS_PINS", pins_file())
        .env("CLAN_NATS_ALLOW_INSECURE_FIXTURE_KEYS", "1")
        .arg("generate")
        .arg("--config")
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .arg("--identity")
        .arg(key)
        // Allowed to create the identity: a bad config must still create nothing.
        .args((!key.exists()).then_some("--new-identity"))
        .args(extra)
        .output()
        .expect("run clan-nats");
    (o.status.code().expect("exited, not killed"), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Every entry below `root` (and `root` itself): relative path → (mode, bytes).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let bytes = if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            Vec::new()
        } else if m.file_type().is_symlink() {
            fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()
        } else {
            fs::read(&p).unwrap()
        };
        out.insert(p.strip_prefix(root).unwrap().to_path_buf(), (m.mode(), bytes));
    }
    out
}

struct Rejection {
    code: i32,
    stderr: String,
    /// Nothing was created or changed, in both variants.
    untouched: bool,
    config: String,
}

/// Run `generate` with config text `text` twice: (1) DIR and KEY do not exist
/// and must still not exist afterwards; (2) DIR holds a valid store generated
/// from the example, and it (and KEY) must be byte-, path- and mode-identical
/// afterwards. Both runs must fail the same way.
fn reject_text(text: &str, extra: &[&str]) -> Rejection {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.json");
    fs::write(&cfg, text).unwrap();

    let fresh = tmp.path().join("fresh");
    fs::create_dir(&fresh).unwrap();
    let (out, key) = (fresh.join("store"), fresh.join("owner.agekey"));
    let (code, stderr) = run(&cfg, &out, &key, extra);
    let mut untouched = !out.exists() && !key.exists() && fs::read_dir(&fresh).unwrap().next().is_none();

    let existing = tmp.path().join("existing");
    fs::create_dir(&existing).unwrap();
    let (out, key) = (existing.join("store"), existing.join("owner.agekey"));
    let (c, e) = run(Path::new(EXAMPLE), &out, &key, &[]);
    assert_eq!(c, 0, "the valid example must generate: {e}");
    let before = snapshot(&existing);
    assert!(before.len() > 20, "the valid store has files");
    let (code2, stderr2) = run(&cfg, &out, &key, extra);
    untouched &= snapshot(&existing) == before;
    assert_eq!((code2, &stderr2), (code, &stderr), "an existing store must not change the verdict");

    Rejection { code, stderr, untouched, config: cfg.to_str().unwrap().to_string() }
}

/// Mutate the example config and run it through [`reject_text`].
fn reject(mutate: impl FnOnce(&mut Value)) -> Rejection {
    let mut v = example();
    mutate(&mut v);
    reject_text(&serde_json::to_string_pretty(&v).unwrap(), &[])
}

/// Exit code 2, the file named, some line holding `field: ` with every needle,
/// nothing written. An empty `field` matches a problem without a path.
fn assert_rejected(r: &Rejection, field: &str, needles: &[&str]) {
    let err = &r.stderr;
    assert_eq!(r.code, 2, "exit code; stderr:\n{err}");
    assert!(err.contains(&r.config), "stderr must name the config file {}:\n{err}", r.config);
    let prefix = if field.is_empty() { format!("{}: ", r.config) } else { format!(" {field}: ") };
    assert!(
        err.lines().any(|l| l.contains(&prefix) && needles.iter().all(|n| l.contains(n))),
        "no line with {prefix:?} and all of {needles:?}:\n{err}"
    );
    assert!(r.untouched, "bad input must write nothing (store and identity); stderr:\n{err}");
}

fn check(field: &str, needles: &[&str], mutate: impl FnOnce(&mut Value)) {
    assert_rejected(&reject(mutate), field, needles);
}

fn person(name: &str, unit: &str, role: &str) -> Value {
    json!({ "name": name, "organizational_unit": unit, "role": role })
}

// ---- JSON level ----------------------------------------------------------

#[test]
fn invalid_json_reports_line_and_column() {
    // Line 3 is `    "name": "acme",,`: the second comma is column 20.
    let r = reject_text("{\n  \"organization\": {\n    \"name\": \"acme\",,\n  }\n}\n", &[]);
    assert_rejected(&r, "", &["invalid JSON at line 3 column 20", "key must be a string"]);
    // Truncated: the end of line 2 (33 characters) is column 34.
    let r = reject_text("{\n  \"organization\": {\"name\": \"acme\"}", &[]);
    assert_rejected(&r, "", &["invalid JSON at line 2 column 34", "EOF while parsing"]);
}

#[test]
fn wrong_json_type_reports_the_field_path() {
    check(
        "service_people[3].nats_permissions.max_payload",
        &["invalid type: string \"big\", expected i64", "line ", "column "],
        |v| v["service_people"][3]["nats_permissions"]["max_payload"] = json!("big"),
    );
    check("hosts[1].nats_server", &["invalid type: string \"yes\", expected a boolean"], |v| {
        v["hosts"][1]["nats_server"] = json!("yes")
    });
}

#[test]
fn unknown_field_typo_is_rejected_with_its_path() {
    check("service_people[0].nats_permision", &["unknown field `nats_permision`"], |v| {
        let p = v["service_people"][0].as_object_mut().unwrap();
        let perms = p.remove("nats_permissions").unwrap();
        p.insert("nats_permision".into(), perms);
    });
    check("service_people[2].nats_permissions.max_paylod", &["unknown field `max_paylod`"], |v| {
        v["service_people"][2]["nats_permissions"]["max_paylod"] = json!(1024)
    });
}

// ---- units and people ----------------------------------------------------

#[test]
fn person_in_unknown_unit() {
    check("service_people[5].organizational_unit", &["unknown unit \"Marketing\""], |v| {
        v["service_people"][5]["organizational_unit"] = json!("Marketing")
    });
}

#[test]
fn unit_with_unknown_parent() {
    check("organizational_units[1].parent", &["unknown unit \"Nowhere\""], |v| {
        v["organizational_units"][1]["parent"] = json!("Nowhere")
    });
}

#[test]
fn parent_cycle_of_two_units() {
    check("organizational_units[0].parent", &["parent cycle", "Core", "Media"], |v| {
        v["organizational_units"][0]["parent"] = json!("Media");
        v["organizational_units"][1]["parent"] = json!("Core");
    });
}

#[test]
fn parent_cycle_of_three_units() {
    check("organizational_units[0].parent", &["parent cycle", "Core", "Media", "Development"], |v| {
        v["organizational_units"][0]["parent"] = json!("Media");
        v["organizational_units"][1]["parent"] = json!("Development");
        v["organizational_units"][2]["parent"] = json!("Core");
    });
}

#[test]
fn duplicate_person_name() {
    let want = "duplicate person name \"spaces-service\" (first at service_people[10].name)";
    check("service_people[11].name", &[want], |v| {
        v["service_people"].as_array_mut().unwrap().push(person("spaces-service", "Development", "Service"))
    });
}

#[test]
fn duplicate_unit_name() {
    let want = "duplicate unit name \"Media\" (first at organizational_units[1].name)";
    check("organizational_units[3].name", &[want], |v| {
        v["organizational_units"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": "Media", "nats_account_name": "media2" }))
    });
}

#[test]
fn duplicate_nats_account_name() {
    let want = "duplicate nats_account_name \"media\" (first at organizational_units[1].nats_account_name)";
    check("organizational_units[2].nats_account_name", &[want], |v| {
        v["organizational_units"][2]["nats_account_name"] = json!("media")
    });
}

#[test]
fn person_names_differing_only_in_case() {
    check("service_people[11].name", &["\"Spaces-Service\"", "\"spaces-service\"", "only in case"], |v| {
        v["service_people"].as_array_mut().unwrap().push(person("Spaces-Service", "Development", "Service"))
    });
}

#[test]
fn unit_names_differing_only_in_case() {
    check("organizational_units[3].name", &["\"media\"", "\"Media\"", "only in case"], |v| {
        v["organizational_units"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": "media", "nats_account_name": "media2" }))
    });
}

#[test]
fn account_names_differing_only_in_case() {
    check("organizational_units[2].nats_account_name", &["\"MEDIA\"", "\"media\"", "only in case"], |v| {
        v["organizational_units"][2]["nats_account_name"] = json!("MEDIA")
    });
}

#[test]
fn derived_account_name_collides_with_explicit_one() {
    // "Platform" has no nats_account_name and no parent, so its account is "platform".
    let want = "account name \"platform\" is already used by unit \"Development\" (organizational_units[2])";
    check("organizational_units[3]", &[want], |v| {
        v["organizational_units"][2]["nats_account_name"] = json!("platform");
        v["organizational_units"].as_array_mut().unwrap().push(json!({ "name": "Platform" }));
    });
}

#[test]
fn system_account_name_is_reserved() {
    for a in ["SYS", "sys"] {
        let want = format!("{} is reserved for the system account", q(a));
        check("organizational_units[1].nats_account_name", &[want.as_str()], |v| {
            v["organizational_units"][1]["nats_account_name"] = json!(a)
        });
    }
    // Derived from the unit name.
    check("organizational_units[3].name", &["\"sys\"", "reserved for the system account"], |v| {
        v["organizational_units"].as_array_mut().unwrap().push(json!({ "name": "Sys" }))
    });
}

// ---- names that cannot be file names --------------------------------------

/// Check every bad name at `field`, written by `set`.
fn bad_names(field: &str, set: impl Fn(&mut Value, &str)) {
    let long = "n".repeat(200);
    for name in ["a/b", "..", ".hidden", "has space", "", long.as_str()] {
        let want = match name {
            "" => "name is empty".to_string(),
            n if n.len() > 128 => format!("{} is longer than 128 characters", q(n)),
            n => format!("{} cannot be used as a file name", q(n)),
        };
        check(field, &[want.as_str()], |v| set(v, name));
    }
}

#[test]
fn person_name_must_be_a_file_name() {
    bad_names("service_people[10].name", |v, n| v["service_people"][10]["name"] = json!(n));
}

#[test]
fn unit_name_must_be_a_file_name() {
    bad_names("organizational_units[3].name", |v, n| {
        v["organizational_units"].as_array_mut().unwrap().push(json!({ "name": n, "nats_account_name": "extra" }))
    });
}

#[test]
fn account_name_must_be_a_file_name() {
    bad_names("organizational_units[2].nats_account_name", |v, n| {
        v["organizational_units"][2]["nats_account_name"] = json!(n)
    });
}

#[test]
fn host_name_must_be_a_file_name() {
    bad_names("hosts[3].name", |v, n| v["hosts"][3]["name"] = json!(n));
}

#[test]
fn organization_name_must_be_a_file_name() {
    bad_names("organization.name", |v, n| v["organization"]["name"] = json!(n));
}

// ---- subjects -------------------------------------------------------------

/// (subject, expected message fragment); the value itself is quoted too unless empty.
const BAD_SUBJECTS: &[(&str, &str)] = &[
    ("", "subject is empty"),
    ("a..b", "has an empty token"),
    ("a b", "contains whitespace"),
    ("a.>.b", "'>' must be the last token"),
    ("a.b*", "'*' must be a whole token"),
    ("a.*b.c", "'*' must be a whole token"),
    ("a.b.", "has an empty token"),
];

fn bad_subjects(list: &str, cases: &[(&str, &str)]) {
    let field = format!("service_people[3].nats_permissions.{list}[1]");
    for &(s, why) in cases {
        let quoted = q(s);
        let needles: Vec<&str> = if s.is_empty() { vec![why] } else { vec![why, &quoted] };
        check(&field, &needles, |v| v["service_people"][3]["nats_permissions"][list] = json!(["ok.>", s]));
    }
}

#[test]
fn invalid_publish_subjects() {
    bad_subjects("publish", BAD_SUBJECTS);
}

#[test]
fn invalid_subscribe_subjects() {
    // In a subscribe permission one space separates subject and queue group, so
    // "a b" is the valid entry (subject "a", queue "b"); whitespace is checked
    // with a tab and with a queue group that itself contains a space.
    let mut cases: Vec<(&str, &str)> = BAD_SUBJECTS.iter().copied().filter(|(s, _)| *s != "a b").collect();
    cases.push(("a\tb", "contains whitespace"));
    cases.push(("a.b q x", "must be one token without wildcards"));
    bad_subjects("subscribe", &cases);
}

#[test]
fn queue_group_with_wildcard_in_subscribe() {
    let want = "\"a.b q*\": queue group \"q*\" must be one token without wildcards";
    check("service_people[3].nats_permissions.subscribe[0]", &[want], |v| {
        v["service_people"][3]["nats_permissions"]["subscribe"][0] = json!("a.b q*")
    });
}

// ---- age recipients -------------------------------------------------------

const BAD_RECIPIENTS: &[&str] = &["age1xyz", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@host", "not-a-key"];

#[test]
fn invalid_host_age_recipient() {
    for &r in BAD_RECIPIENTS {
        let want = format!("{} is not a valid age recipient", q(r));
        check("hosts[2].age_recipient", &[want.as_str()], |v| v["hosts"][2]["age_recipient"] = json!(r));
    }
}

#[test]
fn invalid_owner_age_recipient() {
    for &r in BAD_RECIPIENTS {
        let want = format!("{} is not a valid age recipient", q(r));
        check("owner.age_recipient", &[want.as_str()], |v| v["owner"]["age_recipient"] = json!(r));
    }
}

#[test]
fn invalid_recipient_flag_exits_2_and_writes_nothing() {
    let text = fs::read_to_string(EXAMPLE).unwrap();
    for r in ["not-a-key", "age1xyz"] {
        let res = reject_text(&text, &["--recipient", r]);
        assert_eq!(res.code, 2, "stderr:\n{}", res.stderr);
        let want = format!("--recipient #1: {} is not a valid age recipient", q(r));
        assert!(res.stderr.contains(&want), "want {want:?}:\n{}", res.stderr);
        assert!(res.untouched, "a bad --recipient must write nothing:\n{}", res.stderr);
    }
}

// ---- limits ---------------------------------------------------------------

#[test]
fn person_max_payload_out_of_range() {
    for mp in [-5i64, 0, 100_000_000] {
        let want = format!("{mp} is not a valid limit");
        check("service_people[3].nats_permissions.max_payload", &[want.as_str()], |v| {
            v["service_people"][3]["nats_permissions"]["max_payload"] = json!(mp)
        });
    }
}

#[test]
fn unit_limits_out_of_range() {
    for (key, val) in [("conn", -2i64), ("payload", 1_000_000_000), ("subs", 0)] {
        let field = format!("organizational_units[1].nats_limits.{key}");
        let want = format!("{val} is not a valid limit");
        check(&field, &[want.as_str()], |v| v["organizational_units"][1]["nats_limits"] = json!({ (key): val }));
    }
}

#[test]
fn jetstream_streams_without_storage() {
    let want = "streams or consumer is set but mem_storage and disk_storage are 0";
    check("organizational_units[1].nats_limits.jetstream", &[want], |v| {
        v["organizational_units"][1]["nats_limits"] =
            json!({ "jetstream": { "mem_storage": 0, "disk_storage": 0, "streams": 10 } })
    });
}

// ---- hosts ----------------------------------------------------------------

#[test]
fn host_names_unknown_service() {
    check("hosts[3].services[3]", &["unknown service \"billing-service\""], |v| {
        v["hosts"][3]["services"].as_array_mut().unwrap().push(json!("billing-service"))
    });
}

#[test]
fn host_names_person_without_service_role() {
    check("hosts[1].services[5]", &["\"alice\" has role \"Admin\", not \"Service\""], |v| {
        v["service_people"].as_array_mut().unwrap().push(person("alice", "Core", "Admin"));
        v["hosts"][1]["services"].as_array_mut().unwrap().push(json!("alice"));
    });
}

#[test]
fn host_lists_a_service_twice() {
    let want = "\"audio-service\" is listed twice (first at hosts[2].services[0])";
    check("hosts[2].services[3]", &[want], |v| {
        v["hosts"][2]["services"].as_array_mut().unwrap().push(json!("audio-service"))
    });
}

// ---- all problems at once -------------------------------------------------

#[test]
fn several_problems_are_all_listed() {
    let r = reject(|v| {
        v["organization"]["name"] = json!("has space");
        v["organizational_units"][1]["nats_limits"] = json!({ "conn": -2 });
        v["service_people"][3]["nats_permissions"]["publish"][0] = json!("a..b");
        v["hosts"][2]["age_recipient"] = json!("not-a-key");
    });
    assert!(r.stderr.contains(&format!("{}: 4 problems", r.config)), "{}", r.stderr);
    assert_rejected(&r, "organization.name", &["\"has space\" cannot be used as a file name"]);
    assert_rejected(&r, "organizational_units[1].nats_limits.conn", &["-2 is not a valid limit"]);
    assert_rejected(&r, "service_people[3].nats_permissions.publish[0]", &["\"a..b\" has an empty token"]);
    assert_rejected(&r, "hosts[2].age_recipient", &["\"not-a-key\" is not a valid age recipient"]);
}

#[test]
fn queue_group_with_unicode_whitespace_in_subscribe() {
    let want = "queue group \"q\\u{a0}x\" must be one token without wildcards";
    check("service_people[3].nats_permissions.subscribe[0]", &[want], |v| {
        v["service_people"][3]["nats_permissions"]["subscribe"][0] = json!("a.b q\u{a0}x")
    });
}

#[test]
fn service_role_in_the_wrong_case_is_an_error() {
    // "service" would silently produce no NATS user; say so instead.
    let want = "\"service\" is not \"Service\": roles are case-sensitive";
    check("service_people[3].role", &[want], |v| v["service_people"][3]["role"] = json!("service"));
}

// ---- bounds and subject spaces (issue: trust nothing) ----------------------

#[test]
fn free_text_fields_are_bounded_and_the_limit_is_named() {
    let long = "x".repeat(1025);
    let l2 = long.clone();
    check("organizational_units[1].description", &["1025 bytes", "limit of 1024 bytes"], move |v| {
        v["organizational_units"][1]["description"] = json!(l2)
    });
    let l3 = long.clone();
    check("service_people[5].description", &["1025 bytes", "limit of 1024 bytes"], move |v| {
        v["service_people"][5]["description"] = json!(l3)
    });
    check("organization.description", &["1025 bytes", "limit of 1024 bytes"], move |v| {
        v["organization"]["description"] = json!(long)
    });
    let subject = format!("a.{}", "b".repeat(600));
    check(
        "service_people[0].nats_permissions.publish[0]",
        &["602 bytes", "limit of 512 bytes for a subject"],
        move |v| v["service_people"][0]["nats_permissions"]["publish"][0] = json!(subject),
    );
}

#[test]
fn a_config_larger_than_16_mib_is_refused_before_parsing() {
    let mut v = example();
    v["metadata"] = json!({"blob": "x".repeat(17 * 1024 * 1024)});
    let r = reject_text(&v.to_string(), &[]);
    assert_rejected(&r, "", &["is larger than the limit of 16777216 bytes (16 MiB)"]);
}

#[test]
fn a_service_name_with_a_dot_is_refused() {
    // `a`'s reply inbox `_INBOX_a.>` would cover `a.b`'s `_INBOX_a.b.…`.
    check("service_people[11].name", &[&q("audio.x-service"), "contains '.'", "_INBOX_<name>.>"], |v| {
        v["service_people"].as_array_mut().unwrap().push(person("audio.x-service", "Media", "Service"))
    });
}

#[test]
fn equal_default_subject_spaces_in_one_account_are_refused() {
    // `x` and `x-service` would both get <operator>.<account>.x.>.
    check(
        "service_people[12].name",
        &[&q("probe-service"), "<operator>.core.probe.>", &q("probe"), "service_people[11]"],
        |v| {
            let people = v["service_people"].as_array_mut().unwrap();
            people.push(person("probe", "Core", "Service"));
            people.push(person("probe-service", "Core", "Service"));
        },
    );
    // In different accounts the same stem is fine: subjects are per account.
    let mut v = example();
    let people = v["service_people"].as_array_mut().unwrap();
    people.push(person("probe", "Core", "Service"));
    people.push(person("probe-service", "Media", "Service"));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("ok.json");
    fs::write(&cfg, v.to_string()).unwrap();
    let (code, err) = run(&cfg, &tmp.path().join("store"), &tmp.path().join("k"), &[]);
    assert_eq!(code, 0, "{err}");
}

// ---- issue 14: deny rules, response TTL, per-user limits -------------------

#[test]
fn bad_permission_and_limit_fields_name_path_and_value() {
    let p = "service_people[3]";
    check(&format!("{p}.nats_permissions.deny_publish[1]"), &[&q("a b")], |v| {
        v["service_people"][3]["nats_permissions"]["deny_publish"] = json!(["ok.>", "a b"])
    });
    check(&format!("{p}.nats_permissions.deny_subscribe[0]"), &[&q("a..b")], |v| {
        v["service_people"][3]["nats_permissions"]["deny_subscribe"] = json!(["a..b"])
    });
    check(&format!("{p}.nats_permissions.response_ttl"), &[&q("5 sec"), "not a duration"], |v| {
        v["service_people"][3]["nats_permissions"]["response_ttl"] = json!("5 sec")
    });
    check(&format!("{p}.nats_permissions.response_ttl"), &[&q("5s"), "allow_responses"], |v| {
        v["service_people"][3]["nats_permissions"]["allow_responses"] = json!(false);
        v["service_people"][3]["nats_permissions"]["response_ttl"] = json!("5s");
    });
    let limits: [(&str, Value, &str); 8] = [
        ("max_subscriptions", json!(-5), "-5 is not a valid limit"),
        ("max_data", json!(-2), "-2 is not a valid limit"),
        ("allowed_connection_types", json!(["STANDARD", "telnet"]), "\"telnet\" is not a connection type"),
        ("source_networks", json!(["10.0.0.0/8", "10.0.0.300/8"]), "\"10.0.0.300/8\" is not a CIDR"),
        ("time_windows", json!([{"start": "08:00:00", "end": "25:00:00"}]), "\"25:00:00\" is not a time of day"),
        ("time_zone", json!("../../etc/passwd"), "\"../../etc/passwd\" is not an IANA time zone"),
        ("expires", json!("next tuesday"), "\"next tuesday\" is neither a date"),
        ("expires", json!("2027-02-30"), "\"2027-02-30\" is neither a date"),
    ];
    for (field, value, needle) in limits {
        let path = match field {
            "allowed_connection_types" | "source_networks" => format!("{p}.nats_limits.{field}[1]"),
            "time_windows" => format!("{p}.nats_limits.{field}[0].end"),
            _ => format!("{p}.nats_limits.{field}"),
        };
        check(&path, &[needle], |v| {
            v["service_people"][3]["nats_limits"] = json!({ field: value });
            if field == "time_zone" {
                v["service_people"][3]["nats_limits"]["time_windows"] =
                    json!([{"start": "08:00:00", "end": "18:00:00"}]);
            }
        });
    }
    check(&format!("{p}.nats_limits.max_subscriptin"), &["unknown field `max_subscriptin`"], |v| {
        v["service_people"][3]["nats_limits"] = json!({"max_subscriptin": 3})
    });
    // Limits on a person without a NATS user would be ignored: refused, naming the role.
    check("service_people[11].nats_limits", &["\"Developer\"", "nats_user: true"], |v| {
        let mut who = person("dev-person", "Core", "Developer");
        who["nats_limits"] = json!({"max_subscriptions": 3});
        v["service_people"].as_array_mut().unwrap().push(who);
    });
}

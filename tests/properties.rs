//! Property tests of the mapping rules on arbitrary *valid* configs: a unit tree
//! (parents before or after their children in the file, with and without
//! `nats_account_name`, with limits), people of several roles with valid
//! subjects, queue groups and payloads or no permissions at all, and hosts with
//! X25519 recipients running random subsets of the services.
//!
//! `plan_follows_the_mapping_rules` checks the plan against an independent model
//! of the README's rules; `the_whole_pipeline_verifies` (fewer cases) generates,
//! writes and verifies a real store and checks who can decrypt which creds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use camino::{Utf8Path, Utf8PathBuf};
use clan_nats::config::subject::{subject_problem, subscribe_problem};
use clan_nats::config::{self, validate};
use clan_nats::jwt::user::ResponsePermission;
use clan_nats::manifest::Manifest;
use clan_nats::ops;
use clan_nats::plan::{self, Plan};

use clan_nats::vault::Identity;
use clan_nats::verify;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

/// Host keys the generated hosts pick from (two hosts may share one).
static HOST_KEYS: LazyLock<Vec<age::x25519::Identity>> =
    LazyLock::new(|| (0..5).map(|_| age::x25519::Identity::generate()).collect());

fn host_recipient(i: usize) -> String {
    HOST_KEYS[i].to_public().to_string()
}

const MAX_PEOPLE: usize = 8;

#[derive(Debug, Clone)]
struct UnitSpec {
    base: String,
    account: Option<String>,
    /// An index among the units before this one.
    parent: Option<Index>,
    limits: Option<Value>,
    description: Option<String>,
}

#[derive(Debug, Clone)]
struct PersonSpec {
    base: String,
    service_suffix: bool,
    unit: Index,
    role: &'static str,
    perms: Option<PermSpec>,
}

#[derive(Debug, Clone)]
struct PermSpec {
    publish: Vec<String>,
    subscribe: Vec<String>,
    allow_responses: bool,
    max_payload: Option<i64>,
}

#[derive(Debug, Clone)]
struct HostSpec {
    base: String,
    key: usize,
    nats_server: bool,
    /// Which people (by index) it lists, if they are services.
    runs: Vec<bool>,
}

#[derive(Debug, Clone)]
struct Spec {
    org: String,
    operator_name: Option<String>,
    units: Vec<UnitSpec>,
    people: Vec<PersonSpec>,
    hosts: Vec<HostSpec>,
    /// Owner id, and the host key to use as `owner.age_recipient`.
    owner: Option<(String, Option<usize>)>,
    /// The units are written to the file rotated by this much (parents may come after children).
    rotate: usize,
}

/// A valid entity name, possibly with '.' inside (a NATS token separator).
fn name_base() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_-]{0,5}(\\.[A-Za-z0-9_-]{1,4})?"
}

/// A valid service person name base: one NATS token (no '.'), since a
/// service's name is a token of its inbox and default subjects.
fn person_base() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_-]{0,7}"
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[A-Za-z0-9_$-]{1,6}",
        1 => "[a-zé日ü]{1,3}",
        2 => Just("*".to_string()),
    ]
}

fn subject() -> impl Strategy<Value = String> {
    (prop::collection::vec(token(), 0..4), any::<bool>()).prop_map(|(mut tokens, tail)| {
        if tail || tokens.is_empty() {
            tokens.push(">".into());
        }
        tokens.join(".")
    })
}

fn subscription() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => subject(),
        1 => (subject(), "[a-z0-9_-]{1,5}").prop_map(|(s, q)| format!("{s} {q}")),
        1 => Just("_INBOX.>".to_string()),
    ]
}

/// A list, sometimes with its first entry repeated (the plan removes duplicates).
fn list(item: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<String>> {
    (prop::collection::vec(item, 0..4), any::<bool>()).prop_map(|(mut v, dup)| {
        if dup && !v.is_empty() {
            v.push(v[0].clone());
        }
        v
    })
}

fn limit(min: i64, max: i64) -> impl Strategy<Value = Option<i64>> {
    prop_oneof![2 => Just(None), 1 => Just(Some(-1)), 2 => (min..=max).prop_map(Some)]
}

fn limits() -> impl Strategy<Value = Value> {
    (
        limit(1, validate::MAX_CONN),
        limit(1, validate::MAX_SUBS),
        limit(1, validate::MAX_PAYLOAD),
        limit(1, i64::MAX),
        prop::option::of((limit(0, i64::MAX), limit(0, i64::MAX), limit(0, 1000), limit(0, 1000))),
    )
        .prop_map(|(conn, subs, payload, data, js)| {
            let mut l = json!({});
            for (k, v) in [("conn", conn), ("subs", subs), ("payload", payload), ("data", data)] {
                if let Some(v) = v {
                    l[k] = json!(v);
                }
            }
            if let Some((mem, disk, streams, consumer)) = js {
                let storage = mem.unwrap_or(0) != 0 || disk.unwrap_or(0) != 0;
                let mut j = json!({});
                for (k, v) in [("mem_storage", mem), ("disk_storage", disk)] {
                    if let Some(v) = v {
                        j[k] = json!(v);
                    }
                }
                // Streams or consumers without storage are (rightly) refused.
                if storage {
                    for (k, v) in [("streams", streams), ("consumer", consumer)] {
                        if let Some(v) = v {
                            j[k] = json!(v);
                        }
                    }
                }
                l["jetstream"] = j;
            }
            l
        })
}

fn unit() -> impl Strategy<Value = UnitSpec> {
    (
        name_base(),
        prop::option::weighted(0.4, name_base()),
        prop::option::weighted(0.6, any::<Index>()),
        prop::option::weighted(0.3, limits()),
        prop::option::of("[ -~]{0,12}"),
    )
        .prop_map(|(base, account, parent, limits, description)| UnitSpec {
            base,
            account,
            parent,
            limits,
            description,
        })
}

fn person() -> impl Strategy<Value = PersonSpec> {
    let perms = (list(subject()), list(subscription()), any::<bool>(), limit(1, validate::MAX_PAYLOAD)).prop_map(
        |(publish, subscribe, allow_responses, max_payload)| PermSpec {
            publish,
            subscribe,
            allow_responses,
            max_payload,
        },
    );
    (
        person_base(),
        any::<bool>(),
        any::<Index>(),
        prop_oneof![5 => Just("Service"), 1 => Just("Admin"), 1 => Just("Developer")],
        prop::option::of(perms),
    )
        .prop_map(|(base, service_suffix, unit, role, perms)| PersonSpec {
            base,
            service_suffix,
            unit,
            role,
            perms,
        })
}

fn host() -> impl Strategy<Value = HostSpec> {
    (name_base(), 0..HOST_KEYS.len(), any::<bool>(), prop::collection::vec(any::<bool>(), MAX_PEOPLE))
        .prop_map(|(base, key, nats_server, runs)| HostSpec { base, key, nats_server, runs })
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        name_base(),
        prop::option::weighted(0.3, name_base()),
        prop::collection::vec(unit(), 1..7),
        prop::collection::vec(person(), 0..=MAX_PEOPLE),
        prop::collection::vec(host(), 0..4),
        prop::option::of(("github:[a-z]{1,6}", prop::option::of(0..HOST_KEYS.len()))),
        0..7usize,
    )
        .prop_map(|(org, operator_name, units, people, hosts, owner, rotate)| Spec {
            org,
            operator_name,
            units,
            people,
            hosts,
            owner,
            rotate,
        })
}

// Names get a suffix that makes them unique ignoring case: "<base>_<i>". The
// digits after the last '_' give back i, so two different indices never collide.
// Explicit account names end in "a" (derived ones end in a digit), so neither
// kind collides with the other nor with "SYS".

impl Spec {
    fn unit_name(&self, i: usize) -> String {
        format!("{}_{i}", self.units[i].base)
    }

    fn account_name(&self, i: usize) -> Option<String> {
        self.units[i].account.as_ref().map(|a| format!("{a}_{i}a"))
    }

    fn parent(&self, i: usize) -> Option<usize> {
        self.units[i].parent.as_ref().filter(|_| i > 0).map(|p| p.index(i))
    }

    fn person_name(&self, k: usize) -> String {
        let p = &self.people[k];
        format!("{}_{k}{}", p.base, if p.service_suffix { "-service" } else { "" })
    }

    fn person_unit(&self, k: usize) -> usize {
        self.people[k].unit.index(self.units.len())
    }

    fn host_name(&self, h: usize) -> String {
        format!("{}_{h}", self.hosts[h].base)
    }

    fn operator(&self) -> String {
        self.operator_name.clone().unwrap_or_else(|| self.org.clone())
    }

    /// The model of the README's rule: a unit's own `nats_account_name`, else its
    /// nearest ancestor's, else (top level) its own name in lower case.
    fn expected_account(&self, mut i: usize) -> String {
        loop {
            if let Some(a) = self.account_name(i) {
                return a;
            }
            match self.parent(i) {
                Some(p) => i = p,
                None => return self.unit_name(i).to_ascii_lowercase(),
            }
        }
    }

    fn is_service(&self, k: usize) -> bool {
        self.people[k].role == "Service"
    }

    /// Services each host runs, by person index.
    fn host_services(&self, h: usize) -> Vec<usize> {
        (0..self.people.len()).filter(|&k| self.hosts[h].runs[k] && self.is_service(k)).collect()
    }

    /// The payload limit of a unit's own `nats_limits`, if positive.
    fn unit_payload(&self, i: usize) -> Option<i64> {
        self.units[i].limits.as_ref()?.get("payload")?.as_i64().filter(|p| *p > 0)
    }

    /// `max_payload` as written: clamped to the unit's payload limit (validation requires it).
    fn max_payload(&self, k: usize) -> Option<i64> {
        let mp = self.people[k].perms.as_ref()?.max_payload?;
        Some(match self.unit_payload(self.person_unit(k)) {
            Some(ap) if mp > ap => ap,
            _ => mp,
        })
    }

    fn to_json(&self) -> Value {
        let n = self.units.len();
        let units: Vec<Value> = (0..n)
            .map(|j| (j + self.rotate) % n)
            .map(|i| {
                let u = &self.units[i];
                let mut v = json!({"name": self.unit_name(i), "unit_type": "Team"});
                if let Some(a) = self.account_name(i) {
                    v["nats_account_name"] = json!(a);
                }
                v["parent"] = self.parent(i).map_or(Value::Null, |p| json!(self.unit_name(p)));
                if let Some(l) = &u.limits {
                    v["nats_limits"] = l.clone();
                }
                if let Some(d) = &u.description {
                    v["description"] = json!(d);
                }
                v
            })
            .collect();
        let people: Vec<Value> = (0..self.people.len())
            .map(|k| {
                let p = &self.people[k];
                let mut v = json!({
                    "name": self.person_name(k),
                    "email": format!("p{k}@example.org"),
                    "organizational_unit": self.unit_name(self.person_unit(k)),
                    "role": p.role,
                });
                if let Some(perm) = &p.perms {
                    let mut np = json!({
                        "publish": perm.publish,
                        "subscribe": perm.subscribe,
                        "allow_responses": perm.allow_responses,
                    });
                    if let Some(mp) = self.max_payload(k) {
                        np["max_payload"] = json!(mp);
                    }
                    v["nats_permissions"] = np;
                }
                v
            })
            .collect();
        let hosts: Vec<Value> = (0..self.hosts.len())
            .map(|h| {
                let names: Vec<String> = self.host_services(h).into_iter().map(|k| self.person_name(k)).collect();
                let mut v = json!({
                    "name": self.host_name(h),
                    "age_recipient": host_recipient(self.hosts[h].key),
                    "nats_server": self.hosts[h].nats_server,
                    "services": names,
                });
                // Several servers form a cluster (issue 11): each needs an address.
                if self.hosts[h].nats_server {
                    v["address"] = format!("10.0.{}.{}", h / 250, h % 250 + 1).into();
                }
                v
            })
            .collect();
        let mut c = json!({
            "organization": {"name": self.org, "display_name": "Generated"},
            "organizational_units": units,
            "service_people": people,
            "hosts": hosts,
        });
        if let Some(op) = &self.operator_name {
            c["nsc_export_config"] = json!({"operator_name": op, "generate_user_creds": true});
        }
        if let Some((id, key)) = &self.owner {
            c["owner"] = json!({"id": id, "name": "Owner"});
            if let Some(k) = key {
                c["owner"]["age_recipient"] = json!(host_recipient(*k));
            }
        }
        c
    }

    /// The config text through the real parser and validator: it must be valid.
    fn config(&self) -> (String, config::Config) {
        let text = serde_json::to_string_pretty(&self.to_json()).unwrap();
        let c = config::parse(Utf8Path::new("generated.json"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let issues = validate::validate(&c);
        assert!(issues.is_empty(), "a generated valid config was refused: {issues:?}\n{text}");
        (text, c)
    }
}

fn dedup(items: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items.iter().filter(|s| seen.insert(s.as_str())).cloned().collect()
}

fn check_plan(spec: &Spec, plan: &Plan) {
    let op = spec.operator();
    assert_eq!(plan.operator, op);

    // Accounts: exactly the model's, plus SYS; names unique (also ignoring case).
    let mut expected_accounts: BTreeSet<String> = (0..spec.units.len()).map(|i| spec.expected_account(i)).collect();
    expected_accounts.insert(plan::SYSTEM_ACCOUNT.into());
    let names: Vec<&str> = plan.accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(), expected_accounts);
    let lower: BTreeSet<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    assert_eq!(lower.len(), names.len(), "account names must be unique ignoring case: {names:?}");
    for a in &plan.accounts {
        assert!(validate::name_problem(&a.name).is_none(), "account {:?}", a.name);
        let units: Vec<String> =
            (0..spec.units.len()).filter(|&i| spec.expected_account(i) == a.name).map(|i| spec.unit_name(i)).collect();
        let mut got = a.units.clone();
        got.sort();
        let mut want = units;
        want.sort();
        assert_eq!(got, want, "units of account {}", a.name);
    }
    let sys: Vec<_> = plan.accounts.iter().filter(|a| a.system).collect();
    assert_eq!(sys.len(), 1);
    assert_eq!(sys[0].name, plan::SYSTEM_ACCOUNT);
    assert_eq!(sys[0].users.len(), 1);
    assert_eq!(sys[0].users[0].name, plan::SYSTEM_USER);
    assert!(sys[0].users[0].hosts.is_empty(), "sys never goes to a host");

    // Users: every Service person exactly once, in the model's account; nobody else.
    let mut seen_users = BTreeSet::new();
    for a in plan.accounts.iter().filter(|a| !a.system) {
        for u in &a.users {
            assert!(seen_users.insert(u.name.to_ascii_lowercase()), "user {:?} appears twice", u.name);
        }
    }
    let services: Vec<usize> = (0..spec.people.len()).filter(|&k| spec.is_service(k)).collect();
    assert_eq!(seen_users.len(), services.len(), "one user per Service person, no other");
    for k in 0..spec.people.len() {
        let name = spec.person_name(k);
        let homes: Vec<&str> = plan
            .accounts
            .iter()
            .filter(|a| !a.system && a.users.iter().any(|u| u.name == name))
            .map(|a| a.name.as_str())
            .collect();
        if !spec.is_service(k) {
            assert!(homes.is_empty(), "{name} ({}) must not be a user", spec.people[k].role);
            continue;
        }
        let unit = spec.person_unit(k);
        let want = spec.expected_account(unit);
        assert_eq!(homes, [want.as_str()], "account of {name} (unit {})", spec.unit_name(unit));
        let account = plan.accounts.iter().find(|a| a.name == want).unwrap();
        let u = account.users.iter().find(|u| u.name == name).unwrap();
        assert_eq!(u.unit, spec.unit_name(unit));

        // Permissions: exactly the config's, or the documented default.
        let p = &u.permissions;
        match &spec.people[k].perms {
            Some(perm) => {
                assert_eq!(p.publish.allow, dedup(&perm.publish), "{name} pub");
                let mut sub = dedup(&perm.subscribe);
                let inbox = format!("_INBOX_{name}.>");
                if perm.allow_responses && !sub.contains(&inbox) {
                    sub.push(inbox);
                }
                assert_eq!(p.subscribe.allow, sub, "{name} sub");
                assert_eq!(p.resp, perm.allow_responses.then_some(ResponsePermission { max: 1, ttl: 0 }));
                assert_eq!(u.payload, spec.max_payload(k).unwrap_or(-1));
            }
            None => {
                let stem = name.strip_suffix("-service").unwrap_or(&name);
                let subject = format!("{op}.{want}.{stem}.>");
                assert_eq!(p.publish.allow, std::slice::from_ref(&subject), "{name} default pub");
                assert_eq!(p.subscribe.allow, [subject, format!("_INBOX_{name}.>")], "{name} default sub");
                assert_eq!(p.resp, Some(ResponsePermission { max: 1, ttl: 0 }));
                assert_eq!(u.payload, plan::DEFAULT_PAYLOAD);
            }
        }
        assert!(p.publish.deny.is_empty() && p.subscribe.deny.is_empty());
        for s in &p.publish.allow {
            assert_eq!(subject_problem(s), None, "{name} publishes {s:?}");
        }
        for s in &p.subscribe.allow {
            assert_eq!(subscribe_problem(s), None, "{name} subscribes {s:?}");
            let subject = s.split_once(' ').map_or(s.as_str(), |(s, _)| s);
            assert_eq!(subject_problem(subject), None, "{name} subscribes {s:?}");
        }

        // Hosts: exactly those listing it.
        let hosts: Vec<String> =
            (0..spec.hosts.len()).filter(|&h| spec.host_services(h).contains(&k)).map(|h| spec.host_name(h)).collect();
        let mut want_hosts = hosts;
        want_hosts.sort();
        assert_eq!(u.hosts, want_hosts, "hosts of {name}");
    }

    // Hosts in the plan: sorted by name, each with exactly its services.
    assert_eq!(plan.hosts.len(), spec.hosts.len());
    for w in plan.hosts.windows(2) {
        assert!(w[0].name < w[1].name);
    }
    for h in 0..spec.hosts.len() {
        let hp = plan.hosts.iter().find(|x| x.name == spec.host_name(h)).unwrap();
        let mut want: Vec<String> = spec.host_services(h).into_iter().map(|k| spec.person_name(k)).collect();
        want.sort();
        assert_eq!(hp.services, want);
        assert_eq!(hp.nats_server, spec.hosts[h].nats_server);
        assert_eq!(hp.recipient, host_recipient(spec.hosts[h].key));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048, max_global_rejects: 1 << 16, failure_persistence: None, ..ProptestConfig::default()
    })]

    /// Names become subject tokens: whenever a config whose operator, account and
    /// service names are drawn from the whole name alphabet validates, the default
    /// subject `<op>.<account>.<stem>.>` is valid.
    #[test]
    fn validated_names_make_valid_default_subjects(
        op in "[A-Za-z0-9_][A-Za-z0-9._-]{0,7}",
        account in "[A-Za-z0-9_][A-Za-z0-9._-]{0,7}",
        service in "[A-Za-z0-9_][A-Za-z0-9._-]{0,7}(-service)?",
    ) {
        let text = json!({
            "organization": {"name": op},
            "organizational_units": [{"name": "U", "nats_account_name": account}],
            "service_people": [{"name": service, "organizational_unit": "U", "role": "Service"}],
        })
        .to_string();
        let c = config::parse(Utf8Path::new("names.json"), &text).unwrap();
        prop_assume!(validate::validate(&c).is_empty());
        let plan = plan::plan(&c);
        let user = &plan.accounts.iter().find(|a| a.name == account).unwrap().users[0];
        for s in user.permissions.publish.allow.iter().chain(&user.permissions.subscribe.allow) {
            prop_assert_eq!(subject_problem(s), None);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn plan_follows_the_mapping_rules(spec in spec()) {
        let (_, c) = spec.config();
        check_plan(&spec, &plan::plan(&c));
    }
}

fn utf8(p: &std::path::Path) -> Utf8PathBuf {
    Utf8PathBuf::from_path_buf(p.to_path_buf()).unwrap()
}

fn pipeline(spec: &Spec) {
    let (text, _) = spec.config();
    let tmp = tempfile::tempdir().unwrap();
    let config = utf8(&tmp.path().join("org.json"));
    std::fs::write(&config, text).unwrap();
    let dir = utf8(&tmp.path().join("store"));
    let key = utf8(&tmp.path().join("owner.key"));
    // What `generate` does: validate, plan, build (sign, encrypt), governance record, atomic write.
    let mut pins = clan_nats::store::pin::Pins::load(&utf8(&tmp.path().join("pins.json"))).unwrap();
    let out = ops::reconcile(
        ops::Request {
            config: Some(&config),
            dir: &dir,
            identity: &key,
            admins: None,
            rotate: None,
            imported: None,
            action: "generate",
            format: None,
            now: 1_800_000_000,
            pins: &mut pins,
            confirm: &mut |_, _| Ok(false),
            dry_run: false,
            new_identity: true,
            allow_insecure_fixture_keys: true,
            clan_dir: None,
        },
        None,
    )
    .unwrap();
    assert!(out.identity_created && out.report.swapped);
    let owner = Identity::load(&key).unwrap();

    let report = verify::verify(&dir, Some(&owner), None);
    assert!(report.problems.is_empty(), "verify: {:#?}", report.problems);
    let m = Manifest::read_dir(&dir).unwrap();
    let users: usize = m.accounts.iter().map(|a| a.users.len()).sum();
    assert_eq!(report.users, users);
    assert_eq!(report.decrypted, m.keys.len() + users, "every seed and every creds decrypted");

    // Who can read each creds: the owner (plus the config's owner recipient) and
    // exactly the hosts that run the service; checked in the manifest and by decrypting.
    let config_owner = spec.owner.as_ref().and_then(|(id, k)| k.map(|k| (format!("owner:{id}"), k)));
    for a in &m.accounts {
        for u in &a.users {
            let mut want: BTreeSet<String> = u.hosts.iter().map(|h| format!("host:{h}")).collect();
            want.insert("owner".into());
            if let Some((name, _)) = &config_owner {
                want.insert(name.clone());
            }
            let entry = &m.secrets[&u.creds];
            assert_eq!(entry.kind, "creds");
            assert_eq!(entry.recipients.iter().cloned().collect::<BTreeSet<_>>(), want, "recipients of {}", u.creds);
            let expected_hosts: Vec<String> = (0..spec.hosts.len())
                .filter(|&h| spec.host_services(h).iter().any(|&k| spec.person_name(k) == u.name))
                .map(|h| spec.host_name(h))
                .collect();
            let mut sorted = expected_hosts.clone();
            sorted.sort();
            assert_eq!(u.hosts, sorted);
            let ct = std::fs::read(dir.join(&u.creds)).unwrap();
            let readers: BTreeMap<usize, bool> = (0..HOST_KEYS.len())
                .map(|key| {
                    let by_host = (0..spec.hosts.len())
                        .any(|h| spec.hosts[h].key == key && expected_hosts.contains(&spec.host_name(h)));
                    let by_owner = config_owner.as_ref().is_some_and(|(_, k)| *k == key);
                    (key, by_host || by_owner)
                })
                .collect();
            for (key, may) in readers {
                let ok = age::Decryptor::new_buffered(&ct[..])
                    .unwrap()
                    .decrypt(std::iter::once(&HOST_KEYS[key] as &dyn age::Identity))
                    .is_ok();
                assert_eq!(ok, may, "host key {key} and {}", u.creds);
            }
        }
    }
    // Seeds are encrypted to the owners only, never to a host.
    for k in &m.keys {
        let entry = &m.secrets[&k.path];
        assert!(entry.recipients.iter().all(|r| r.starts_with("owner")), "{}: {:?}", k.path, entry.recipients);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_whole_pipeline_verifies(spec in spec()) {
        pipeline(&spec);
    }
}

/// The wiring of a plan (issue 10), against the permissions themselves: every
/// overlapping (publish in A, subscribe in B ≠ A) pair, reply plumbing aside,
/// has an export/import path (a stream A → B or a service B → A covering the
/// overlap) or is reported as not wired; every flow has a covering export; no
/// account has overlapping exports of one type.
fn check_wiring(plan: &Plan) {
    use clan_nats::config::FlowType;
    use clan_nats::wiring::subject::{contains, intersect, is_plumbing, overlaps};
    let w = &plan.wiring;
    let users: Vec<(&str, &plan::UserPlan)> = plan
        .accounts
        .iter()
        .filter(|a| !a.system)
        .flat_map(|a| a.users.iter().map(move |u| (a.name.as_str(), u)))
        .collect();
    for (a, u) in &users {
        for p in u.permissions.publish.allow.iter().filter(|p| !is_plumbing(p)) {
            for (b, v) in users.iter().filter(|(b, _)| b != a) {
                for q in v.permissions.subscribe.allow.iter().map(|q| q.split(' ').next().unwrap()) {
                    if is_plumbing(q) {
                        continue;
                    }
                    let Some(s) = intersect(p, q) else { continue };
                    let path = w.flows.iter().chain(&w.unwired).any(|f| {
                        let ends = match f.kind {
                            FlowType::Stream => f.exporter == *a && f.importer == *b,
                            FlowType::Service => f.exporter == *b && f.importer == *a,
                        };
                        ends && contains(&f.subject, &s)
                    });
                    assert!(
                        path,
                        "{} ({a}) publishes {p}, {} ({b}) subscribes {q}: no flow covers {s}",
                        u.name, v.name
                    );
                }
            }
        }
    }
    assert_eq!(w.warnings.iter().filter(|m| m.contains(": not wired: ")).count(), w.unwired.len());
    for f in &w.flows {
        assert_ne!(f.exporter, f.importer);
        let e = w.export_for(f).unwrap_or_else(|| panic!("no export covers {f:?}"));
        assert!(!e.public, "derived exports are private");
    }
    for (account, list) in &w.exports {
        for (i, x) in list.iter().enumerate() {
            for y in &list[i + 1..] {
                assert!(
                    x.kind != y.kind || !overlaps(&x.subject, &y.subject),
                    "account {account}: exports {} and {} overlap",
                    x.subject,
                    y.subject
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_overlapping_pair_has_an_export_import_path(spec in spec()) {
        let (_, c) = spec.config();
        check_wiring(&plan::plan(&c));
    }
}

/// The property above must not hold vacuously: the generated configs do wire
/// accounts together, with streams and with services.
#[test]
fn the_wiring_property_is_not_vacuous() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut streams, mut services, mut unwired) = (0, 0, 0);
    for _ in 0..300 {
        let spec = spec().new_tree(&mut runner).unwrap().current();
        let (_, c) = spec.config();
        let w = plan::plan(&c).wiring;
        streams += usize::from(w.flows.iter().any(|f| f.kind == clan_nats::config::FlowType::Stream));
        services += usize::from(w.flows.iter().any(|f| f.kind == clan_nats::config::FlowType::Service));
        unwired += usize::from(!w.unwired.is_empty());
    }
    eprintln!("of 300 configs: {streams} with streams, {services} with services, {unwired} with unwired flows");
    assert!(streams >= 30 && services >= 10, "{streams} with streams, {services} with services");
}

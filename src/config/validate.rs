//! Validation: every rule, every problem collected with its field path.

use std::collections::{BTreeMap, HashMap};

use super::naming;
use super::schema::{Config, Limits, SERVICE_ROLE};
use super::subject::{subject_problem, subscribe_problem};
use super::Issue;
use crate::vault;

/// Largest message payload nats-server accepts (its hard limit, 64 MiB).
pub const MAX_PAYLOAD: i64 = 64 * 1024 * 1024;
/// Bounds past which a limit is a typo rather than a plan.
pub const MAX_CONN: i64 = 10_000_000;
pub const MAX_SUBS: i64 = 1_000_000_000;
pub const MAX_JS_COUNT: i64 = 10_000_000;
/// Longest entity name: it becomes a file name and a JWT `name`.
pub const MAX_NAME: usize = 128;
/// Longest free text (descriptions, display names, e-mail, …): it is copied
/// into JWTs and the server config, so it is bounded.
pub const MAX_TEXT: usize = 1024;
/// Longest subject in a permission.
pub const MAX_SUBJECT: usize = 512;
/// Most subjects in one permission list.
pub const MAX_SUBJECTS: usize = 1024;

/// Why `name` cannot be an entity (and file) name, or `None`.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("name is empty".into());
    }
    if name.len() > MAX_NAME {
        return Some(format!("{name:?} is longer than {MAX_NAME} characters"));
    }
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok_chars || name.starts_with(['.', '-']) {
        return Some(format!(
            "{name:?} cannot be used as a file name: use letters, digits, '.', '_' and '-', not starting with '.' or '-'"
        ));
    }
    // Names become NATS subject tokens (the default permissions are
    // `<operator>.<account>.<service>.>`): an empty '.'-separated part would
    // make an invalid subject.
    if name.ends_with('.') || name.contains("..") {
        return Some(format!(
            "{name:?} has an empty '.'-separated part: names are used in NATS subjects, so they must not end with '.' or contain \"..\""
        ));
    }
    None
}

struct Collector(Vec<Issue>);

impl Collector {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Issue { path: path.into(), message: message.into() });
    }

    fn name(&mut self, path: String, name: &str) {
        if let Some(p) = name_problem(name) {
            self.add(path, p);
        }
    }

    /// Report the second and later occurrences of a name, case-insensitively.
    fn unique<'a>(&mut self, what: &str, items: impl Iterator<Item = (String, &'a str)>) {
        let mut seen: HashMap<String, (String, &str)> = HashMap::new();
        for (path, name) in items {
            match seen.get(&name.to_ascii_lowercase()) {
                Some((first_path, first)) if *first == name => {
                    self.add(path, format!("duplicate {what} {name:?} (first at {first_path})"))
                }
                Some((first_path, first)) => self.add(
                    path,
                    format!("{what} {name:?} differs from {first:?} (at {first_path}) only in case; names must be unique ignoring case"),
                ),
                None => {
                    seen.insert(name.to_ascii_lowercase(), (path, name));
                }
            }
        }
    }

    fn text(&mut self, path: String, value: Option<&str>, max: usize) {
        let Some(t) = value else { return };
        if t.len() > max {
            self.add(path, format!("{} bytes is longer than the limit of {max} bytes for this field", t.len()));
        } else if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            self.add(path, "contains control characters");
        }
    }

    fn limit(&mut self, path: String, value: Option<i64>, min: i64, max: i64, hint: &str) {
        let Some(v) = value else { return };
        if v == -1 || (min..=max).contains(&v) {
            return;
        }
        self.add(path, format!("{v} is not a valid limit: use -1 for unlimited or {min}..={max}{hint}"));
    }
}

/// Check a parsed config. An empty result means the config is valid.
pub fn validate(c: &Config) -> Vec<Issue> {
    let mut v = Collector(Vec::new());
    v.name("organization.name".into(), &c.organization.name);
    if let Some(op) = c.nsc_export_config.as_ref().and_then(|n| n.operator_name.as_deref()) {
        v.name("nsc_export_config.operator_name".into(), op);
    }
    let o = &c.organization;
    v.text("organization.display_name".into(), o.display_name.as_deref(), MAX_TEXT);
    v.text("organization.description".into(), o.description.as_deref(), MAX_TEXT);
    v.text("organization.domain".into(), o.domain.as_deref(), MAX_TEXT);
    if let Some(n) = &c.nsc_export_config {
        v.text("nsc_export_config.output_path".into(), n.output_path.as_deref(), MAX_TEXT);
        v.text("nsc_export_config.key_permissions".into(), n.key_permissions.as_deref(), MAX_TEXT);
    }
    if let Some(s) = c.schema.as_deref() {
        if s != "cim-keys-clan-bootstrap-v1" {
            v.add("schema", format!("{s:?} is not a known schema (expected \"cim-keys-clan-bootstrap-v1\")"));
        }
    }
    let tree_ok = units(c, &mut v);
    people(c, &mut v);
    if tree_ok {
        namespaces(c, &mut v);
        v.0.extend(super::perms::check_roles(c)); // issue 14
    }
    hosts(c, &mut v);
    v.0.extend(crate::fleet::validate(c));
    if v.0.is_empty() {
        // Wiring needs the rest to be valid (units, permissions).
        v.0.extend(crate::wiring::of(c).as_ref().err().cloned().unwrap_or_default());
    }
    if let Some(owner) = &c.owner {
        v.text("owner.id".into(), owner.id.as_deref(), MAX_TEXT);
        v.text("owner.name".into(), owner.name.as_deref(), MAX_TEXT);
        if let Some(id) = &owner.id {
            if id.trim().is_empty() || id.chars().any(char::is_control) {
                v.add("owner.id", format!("{id:?} is not a valid owner id"));
            }
        }
        if let Some(r) = &owner.age_recipient {
            if let Err(e) = vault::parse_recipient(r) {
                v.add("owner.age_recipient", e.to_string());
            }
        }
    }
    v.0
}

/// The units; returns whether their tree is sound (known parents, no cycle),
/// so that accounts can be derived from it.
fn units(c: &Config, v: &mut Collector) -> bool {
    let us = &c.organizational_units;
    for (i, u) in us.iter().enumerate() {
        v.name(format!("organizational_units[{i}].name"), &u.name);
        v.text(format!("organizational_units[{i}].description"), u.description.as_deref(), MAX_TEXT);
        v.text(format!("organizational_units[{i}].unit_type"), u.unit_type.as_deref(), MAX_TEXT);
        if let Some(a) = &u.nats_account_name {
            v.name(format!("organizational_units[{i}].nats_account_name"), a);
            if a.eq_ignore_ascii_case(naming::SYSTEM_ACCOUNT) {
                v.add(
                    format!("organizational_units[{i}].nats_account_name"),
                    format!("{a:?} is reserved for the system account"),
                );
            }
        }
        if let Some(l) = &u.nats_limits {
            limits(&format!("organizational_units[{i}].nats_limits"), l, v);
        }
    }
    v.unique(
        "unit name",
        us.iter().enumerate().map(|(i, u)| (format!("organizational_units[{i}].name"), u.name.as_str())),
    );
    v.unique(
        "nats_account_name",
        us.iter().enumerate().filter_map(|(i, u)| {
            u.nats_account_name.as_deref().map(|a| (format!("organizational_units[{i}].nats_account_name"), a))
        }),
    );

    let index: HashMap<&str, usize> = us.iter().enumerate().map(|(i, u)| (u.name.as_str(), i)).collect();
    let mut tree_ok = true;
    for (i, u) in us.iter().enumerate() {
        if let Some(p) = &u.parent {
            if !index.contains_key(p.as_str()) {
                tree_ok = false;
                let known: Vec<&str> = us.iter().map(|u| u.name.as_str()).collect();
                v.add(format!("organizational_units[{i}].parent"), crate::suggest::unknown("unit", p, &known));
            }
        }
    }
    if !tree_ok {
        return false;
    }
    // Cycles: follow parents; a walk longer than the number of units loops.
    let mut reported = vec![false; us.len()];
    for start in 0..us.len() {
        let mut chain = vec![start];
        let mut cur = start;
        while let Some(p) = us[cur].parent.as_deref() {
            cur = index[p];
            if let Some(pos) = chain.iter().position(|&x| x == cur) {
                let cycle = &chain[pos..];
                if !cycle.iter().any(|&x| reported[x]) {
                    let names: Vec<&str> =
                        cycle.iter().chain(std::iter::once(&cur)).map(|&x| us[x].name.as_str()).collect();
                    v.add(
                        format!("organizational_units[{}].parent", cycle[0]),
                        format!("parent cycle: {}", names.join(" -> ")),
                    );
                    for &x in cycle {
                        reported[x] = true;
                    }
                }
                break;
            }
            chain.push(cur);
        }
    }
    if reported.iter().any(|r| *r) {
        return false;
    }
    // Derived account names must not collide with explicit ones or the system account.
    let accounts = naming::unit_accounts(us);
    let mut owners: BTreeMap<String, usize> = BTreeMap::new();
    for (i, u) in us.iter().enumerate() {
        if u.nats_account_name.is_none() && u.parent.is_none() {
            let derived = &accounts[i];
            if derived.eq_ignore_ascii_case(naming::SYSTEM_ACCOUNT) {
                v.add(format!("organizational_units[{i}].name"), format!("unit {:?} would get the account name {derived:?}, which is reserved for the system account; set nats_account_name", u.name));
            }
            if let Some(p) = name_problem(derived) {
                v.add(format!("organizational_units[{i}].name"), p);
            }
        }
        let defines = u.nats_account_name.is_some() || u.parent.is_none();
        if defines {
            let key = accounts[i].to_ascii_lowercase();
            if let Some(j) = owners.get(&key) {
                // Two explicit names are already reported as duplicates above.
                if u.nats_account_name.is_some() && us[*j].nats_account_name.is_some() {
                    continue;
                }
                v.add(
                    format!("organizational_units[{i}]"),
                    format!(
                        "account name {:?} is already used by unit {:?} (organizational_units[{j}]); set a distinct nats_account_name",
                        accounts[i], us[*j].name
                    ),
                );
            } else {
                owners.insert(key, i);
            }
        }
    }
    true
}

fn limits(path: &str, l: &Limits, v: &mut Collector) {
    v.limit(format!("{path}.conn"), l.conn, 1, MAX_CONN, "");
    v.limit(format!("{path}.subs"), l.subs, 1, MAX_SUBS, "");
    v.limit(format!("{path}.payload"), l.payload, 1, MAX_PAYLOAD, " (nats-server's maximum payload is 64 MiB)");
    v.limit(format!("{path}.data"), l.data, 1, i64::MAX, "");
    if let Some(js) = &l.jetstream {
        let p = format!("{path}.jetstream");
        v.limit(format!("{p}.mem_storage"), js.mem_storage, 0, i64::MAX, "");
        v.limit(format!("{p}.disk_storage"), js.disk_storage, 0, i64::MAX, "");
        v.limit(format!("{p}.streams"), js.streams, 0, MAX_JS_COUNT, "");
        v.limit(format!("{p}.consumer"), js.consumer, 0, MAX_JS_COUNT, "");
        let storage = js.mem_storage.unwrap_or(0) != 0 || js.disk_storage.unwrap_or(0) != 0;
        if !storage && (js.streams.unwrap_or(0) != 0 || js.consumer.unwrap_or(0) != 0) {
            v.add(
                p,
                "streams or consumer is set but mem_storage and disk_storage are 0, so JetStream would stay disabled",
            );
        }
    }
}

fn people(c: &Config, v: &mut Collector) {
    let unit_names: HashMap<&str, usize> =
        c.organizational_units.iter().enumerate().map(|(i, u)| (u.name.as_str(), i)).collect();
    for (i, p) in c.service_people.iter().enumerate() {
        let at = format!("service_people[{i}]");
        v.name(format!("{at}.name"), &p.name);
        v.text(format!("{at}.email"), p.email.as_deref(), MAX_TEXT);
        v.text(format!("{at}.description"), p.description.as_deref(), MAX_TEXT);
        v.text(format!("{at}.role"), Some(&p.role), MAX_NAME);
        // A service's name is a subject token of its own: its reply inbox is
        // `_INBOX_<name>.>` and its default namespace `<op>.<account>.<stem>.>`.
        // With a '.', `a`'s `_INBOX_a.>` would cover `a.b`'s inbox `_INBOX_a.b.…`.
        if p.is_nats_user() && p.name.contains('.') && name_problem(&p.name).is_none() {
            v.add(
                format!("{at}.name"),
                format!(
                    "{:?} contains '.': a service's name is one NATS subject token (its reply inbox is _INBOX_<name>.>), \
                     so a '.' would let another service's subjects fall inside its own; use '-' or '_'",
                    p.name
                ),
            );
        }
        if p.role.trim().is_empty() {
            v.add(format!("{at}.role"), "role is empty");
        } else if p.role != SERVICE_ROLE && p.role.trim().eq_ignore_ascii_case(SERVICE_ROLE) {
            v.add(
                format!("{at}.role"),
                format!("{:?} is not {SERVICE_ROLE:?}: roles are case-sensitive, and only {SERVICE_ROLE:?} gets NATS credentials", p.role),
            );
        }
        let unit = unit_names.get(p.organizational_unit.as_str());
        if unit.is_none() {
            let mut known: Vec<&str> = unit_names.keys().copied().collect();
            known.sort_unstable();
            v.add(format!("{at}.organizational_unit"), crate::suggest::unknown("unit", &p.organizational_unit, &known));
        }
        // ---- issue 14: deny rules, response TTL and per-user limits ----
        if let Some(perm) = &p.nats_permissions {
            v.0.extend(super::perms::check_permissions(
                &format!("{at}.nats_permissions"),
                &perm.deny_publish,
                &perm.deny_subscribe,
                perm.response_ttl.as_deref(),
                perm.allow_responses,
            ));
        }
        if let Some(l) = &p.nats_limits {
            v.0.extend(super::perms::check_limits(&format!("{at}.nats_limits"), l));
        }
        if !p.is_nats_user() && p.nats_limits.is_some() {
            v.add(
                format!("{at}.nats_limits"),
                format!("role {:?} gets no NATS user, so these limits would be ignored: set nats_user: true", p.role),
            );
        }
        // ---- end issue 14 ----
        if let Some(perm) = &p.nats_permissions {
            for (list, items) in [("publish", &perm.publish), ("subscribe", &perm.subscribe)] {
                if items.len() > MAX_SUBJECTS {
                    v.add(
                        format!("{at}.nats_permissions.{list}"),
                        format!("{} subjects is more than the limit of {MAX_SUBJECTS}", items.len()),
                    );
                }
                for (j, s) in items.iter().enumerate() {
                    if s.len() > MAX_SUBJECT {
                        v.add(
                            format!("{at}.nats_permissions.{list}[{j}]"),
                            format!("{} bytes is longer than the limit of {MAX_SUBJECT} bytes for a subject", s.len()),
                        );
                    }
                }
            }
            for (j, s) in perm.publish.iter().enumerate() {
                if let Some(msg) = subject_problem(s) {
                    v.add(format!("{at}.nats_permissions.publish[{j}]"), msg);
                }
            }
            for (j, s) in perm.subscribe.iter().enumerate() {
                if let Some(msg) = subscribe_problem(s) {
                    v.add(format!("{at}.nats_permissions.subscribe[{j}]"), msg);
                }
            }
            v.limit(
                format!("{at}.nats_permissions.max_payload"),
                perm.max_payload,
                1,
                MAX_PAYLOAD,
                " (nats-server's maximum payload is 64 MiB)",
            );
            let account_payload = unit
                .and_then(|&u| c.organizational_units[u].nats_limits.as_ref())
                .and_then(|l| l.payload)
                .filter(|p| *p > 0);
            if let (Some(mp), Some(ap)) = (perm.max_payload.filter(|p| *p > 0), account_payload) {
                if mp > ap {
                    v.add(
                        format!("{at}.nats_permissions.max_payload"),
                        format!("{mp} exceeds the payload limit {ap} of unit {:?}", p.organizational_unit),
                    );
                }
            }
        }
    }
    v.unique(
        "person name",
        c.service_people.iter().enumerate().map(|(i, p)| (format!("service_people[{i}].name"), p.name.as_str())),
    );
}

/// Within one account, the default subject spaces `<op>.<account>.<stem>.>` of
/// services without `nats_permissions` must be distinct: `x` and `x-service`
/// would both get `….x.>` and read each other's traffic. (Stems are single
/// tokens, since service names hold no '.', so two spaces are nested only if equal.)
fn namespaces(c: &Config, v: &mut Collector) {
    let accounts = naming::unit_accounts(&c.organizational_units);
    let account_of: HashMap<&str, &str> =
        c.organizational_units.iter().zip(&accounts).map(|(u, a)| (u.name.as_str(), a.as_str())).collect();
    let mut seen: HashMap<(String, String), (usize, &str)> = HashMap::new();
    for (i, p) in c.service_people.iter().enumerate() {
        if !p.is_nats_user() || p.nats_permissions.is_some() || p.nats_signing_role.is_some() || p.name.contains('.') {
            continue;
        }
        let Some(account) = account_of.get(p.organizational_unit.as_str()) else { continue };
        let stem = p.name.strip_suffix("-service").filter(|s| !s.is_empty()).unwrap_or(&p.name);
        let key = (account.to_ascii_lowercase(), stem.to_string());
        if let Some((j, other)) = seen.get(&key) {
            if other.eq_ignore_ascii_case(&p.name) {
                continue; // a duplicate name, reported as such
            }
            v.add(
                format!("service_people[{i}].name"),
                format!(
                    "{:?} gets the default subjects <operator>.{account}.{stem}.>, the same as {other:?} (service_people[{j}]) in account {account:?}: \
                     each would read the other's messages; rename one or give it nats_permissions",
                    p.name
                ),
            );
        } else {
            seen.insert(key, (i, &p.name));
        }
    }
}

fn hosts(c: &Config, v: &mut Collector) {
    let people: HashMap<&str, &str> = c
        .service_people
        .iter()
        .map(|p| (p.name.as_str(), if p.is_nats_user() { SERVICE_ROLE } else { p.role.as_str() }))
        .collect();
    for (i, h) in c.hosts.iter().enumerate() {
        let at = format!("hosts[{i}]");
        v.name(format!("{at}.name"), &h.name);
        v.text(format!("{at}.age_recipient"), Some(&h.age_recipient), MAX_TEXT);
        if h.age_recipient.starts_with("REPLACE-WITH-") {
            v.add(
                format!("{at}.age_recipient"),
                format!(
                    "placeholder: replace it with host {:?}'s public key (ssh-ed25519 … from its /etc/ssh/ssh_host_ed25519_key.pub, its clan age key age1…, or the output of `clan-nats keygen --output FILE` on that host)",
                    h.name
                ),
            );
        } else if let Err(e) = vault::parse_recipient(&h.age_recipient) {
            v.add(format!("{at}.age_recipient"), e.to_string());
        }
        let mut seen = HashMap::new();
        for (j, s) in h.services.iter().enumerate() {
            match people.get(s.as_str()) {
                None => {
                    let mut known: Vec<&str> = people.keys().copied().collect();
                    known.sort_unstable();
                    let message = crate::suggest::unknown("service", s, &known);
                    v.add(format!("{at}.services[{j}]"), format!("{message}: no service person has that name"))
                }
                Some(role) if *role != SERVICE_ROLE => v.add(
                    format!("{at}.services[{j}]"),
                    format!("{s:?} has role {role:?}, not {SERVICE_ROLE:?}, so it has no NATS credentials"),
                ),
                Some(_) => {}
            }
            if let Some(first) = seen.insert(s.as_str(), j) {
                v.add(
                    format!("{at}.services[{j}]"),
                    format!("{s:?} is listed twice (first at {at}.services[{first}])"),
                );
            }
        }
    }
    v.unique("host name", c.hosts.iter().enumerate().map(|(i, h)| (format!("hosts[{i}].name"), h.name.as_str())));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::subject::subject_problem;

    /// Regression (found writing tests/properties.rs, whose
    /// `validated_names_make_valid_default_subjects` fails without it; the `config`
    /// fuzz target asserts it too): names that are valid file names but end with
    /// '.' or contain ".." passed validation and gave users the invalid default
    /// subject `acme..core.x..y.>`.
    #[test]
    fn names_with_empty_subject_tokens_are_refused() {
        for bad in ["acme.", "x..y-service", "a..", "a...b"] {
            let p = name_problem(bad).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(p.contains("empty '.'-separated part"), "{p}");
            assert!(p.contains(&format!("{bad:?}")), "{p}");
        }
        for good in ["acme.io", "a.b.c", "x_y-service", "A1"] {
            assert_eq!(name_problem(good), None, "{good}");
        }
        let text = r#"{"organization": {"name": "acme."}, "organizational_units": [{"name": "Core"}],
            "service_people": [{"name": "x..y-service", "organizational_unit": "Core", "role": "Service"}]}"#;
        let c = crate::config::parse("t.json".into(), text).unwrap();
        let paths: Vec<String> = validate(&c).into_iter().map(|i| i.path).collect();
        assert_eq!(paths, ["organization.name", "service_people[0].name"]);
        // A stem ending in '.' (found by the same property test): refused, as any '.' in a service name.
        let stem = text.replace("acme.", "acme").replace("x..y-service", "x.-service");
        let c = crate::config::parse("t.json".into(), &stem).unwrap();
        let issues = validate(&c);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].path, "service_people[0].name");
        assert!(issues[0].message.contains("\"x.-service\" contains '.'"), "{}", issues[0]);
        // With the names fixed, every default subject is valid.
        let c =
            crate::config::parse("t.json".into(), &text.replace("acme.", "acme.io").replace("x..y", "x_y")).unwrap();
        assert!(validate(&c).is_empty());
        for a in crate::plan::plan(&c).accounts {
            for u in a.users {
                for s in u.permissions.publish.allow.iter().chain(&u.permissions.subscribe.allow) {
                    assert_eq!(subject_problem(s), None);
                }
            }
        }
    }
}

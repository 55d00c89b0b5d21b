//! The mapping rules, as a pure function of a validated config:
//! Organization → Operator, unit → Account, `Service` person → User,
//! permissions → user permissions, hosts → who receives which creds.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::config::perms::{parse_expiry, parse_ttl_nanos, Expiry};
use crate::config::{Config, Limits, Person};
use crate::jwt::account::AccountLimits;
use crate::jwt::user::{Permission, Permissions, ResponsePermission, TimeRange, UserPermissionLimits};

pub use crate::config::naming::{operator_name, unit_accounts, SYSTEM_ACCOUNT};
/// The system account's admin user.
pub const SYSTEM_USER: &str = "sys";
/// The default payload limit of a user without `nats_permissions`.
pub const DEFAULT_PAYLOAD: i64 = 1024 * 1024;

impl Plan {
    /// The server's `max_payload`: the largest payload any user may send (the
    /// server's limit caps every user), at least the server default of 1 MiB.
    pub fn max_payload(&self) -> i64 {
        self.accounts.iter().flat_map(|a| &a.users).map(|u| u.payload).fold(DEFAULT_PAYLOAD, i64::max)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub operator: String,
    /// Sorted by name; the system account is among them (`system: true`).
    pub accounts: Vec<AccountPlan>,
    /// Sorted by name.
    pub hosts: Vec<HostPlan>,
    /// The owner's recipient from the config's `owner` block, if any.
    pub owner_recipient: Option<String>,
    pub owner_id: Option<String>,
    pub owner_name: Option<String>,
    /// Every unit with its parent and account, in config order.
    pub units: Vec<UnitPlan>,
    /// Exports and imports between accounts ([`crate::wiring`]).
    pub wiring: crate::wiring::Wiring,
    /// The cluster of a multi-server fleet ([`crate::fleet`]).
    pub fleet: Option<crate::fleet::Fleet>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitPlan {
    pub name: String,
    pub parent: Option<String>,
    pub account: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPlan {
    pub name: String,
    pub system: bool,
    /// Units mapped to this account, in config order.
    pub units: Vec<String>,
    pub description: String,
    pub limits: AccountLimits,
    /// Sorted by name.
    pub users: Vec<UserPlan>,
    /// Issue 14: the account's `default_permissions`.
    pub default_permissions: Permissions,
    /// Issue 14: scoped signing keys, sorted by name.
    pub roles: Vec<RolePlan>,
}

/// A scoped signing key of an account (`nats_signing_roles[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePlan {
    pub name: String,
    pub description: String,
    pub template: UserPermissionLimits,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserPlan {
    pub name: String,
    /// The unit the person belongs to (empty for the system user).
    pub unit: String,
    pub permissions: Permissions,
    pub payload: i64,
    /// Per-user limits beyond permissions (`nats_limits`, issue 14).
    pub restrictions: Restrictions,
    /// Issue 14: signed by this role's scoped key (then it has no permissions of its own).
    pub signing_role: Option<String>,
    /// Hosts that run this service and receive its creds, sorted.
    pub hosts: Vec<String>,
}

/// A user's `nats_limits` as they land in its JWT (issue 14); empty = none.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restrictions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_connection_types: Vec<String>,
    /// CIDRs, lower-cased as nats-io/jwt's `CIDRList` stores them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub src: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<TimeRange>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub times_location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Expiry>,
}

impl Restrictions {
    pub fn is_empty(&self) -> bool {
        *self == Restrictions::default()
    }
}

/// A `nats_signing_roles[]` entry → its scoped key's template. With
/// `allow_responses` the role's users may subscribe to their own reply inbox,
/// `_INBOX_{{name()}}.>` (nats-server fills in each user's name).
fn role_plan(r: &crate::config::perms::SigningRole) -> RolePlan {
    let mut t = UserPermissionLimits { subs: -1, data: -1, payload: -1, ..Default::default() };
    if let Some(np) = &r.permissions {
        let mut sub = dedup(&np.subscribe);
        let inbox = format!("{}.>", inbox_prefix("{{name()}}"));
        if np.allow_responses && !sub.contains(&inbox) {
            sub.push(inbox);
        }
        let ttl = np.response_ttl.as_deref().and_then(|t| parse_ttl_nanos(t).ok()).unwrap_or(0);
        t.permissions = Permissions {
            publish: Permission { allow: dedup(&np.publish), deny: dedup(&np.deny_publish) },
            subscribe: Permission { allow: sub, deny: dedup(&np.deny_subscribe) },
            resp: np.allow_responses.then_some(ResponsePermission { max: 1, ttl }),
        };
        t.payload = np.max_payload.unwrap_or(-1);
    }
    if let Some(l) = &r.limits {
        let rs = user_restrictions_of(l);
        t.src = rs.src;
        t.times = rs.times;
        t.times_location = rs.times_location;
        t.subs = rs.subs.unwrap_or(-1);
        t.data = rs.data.unwrap_or(-1);
        t.allowed_connection_types = rs.allowed_connection_types;
    }
    RolePlan { name: r.name.clone(), description: r.description.clone().unwrap_or_default(), template: t }
}

/// A person's `nats_limits` → [`Restrictions`] (validated input).
pub fn user_restrictions(p: &Person) -> Restrictions {
    p.nats_limits.as_ref().map(user_restrictions_of).unwrap_or_default()
}

fn user_restrictions_of(l: &crate::config::perms::UserLimits) -> Restrictions {
    let mut src: Vec<String> = Vec::new();
    for c in &l.source_networks {
        let c = c.trim().to_ascii_lowercase();
        if !src.contains(&c) {
            src.push(c);
        }
    }
    Restrictions {
        subs: l.max_subscriptions,
        data: l.max_data,
        allowed_connection_types: dedup(&l.allowed_connection_types),
        src,
        times: l.time_windows.iter().map(|w| TimeRange { start: w.start.clone(), end: w.end.clone() }).collect(),
        times_location: l.time_zone.clone().unwrap_or_default(),
        expires: l.expires.as_deref().and_then(|e| parse_expiry(e).ok()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlan {
    pub name: String,
    pub recipient: String,
    pub nats_server: bool,
    /// Sorted service (user) names.
    pub services: Vec<String>,
}

/// The reply-inbox prefix of a user: `_INBOX_<name>`. Each service gets its
/// own, so no service can subscribe to the replies meant for another (with a
/// shared `_INBOX.>` every responder-capable service could read them all).
/// Clients set it as their custom inbox prefix (nats-py `inbox_prefix`,
/// async-nats `custom_inbox_prefix`, nats.go `nats.CustomInboxPrefix`).
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

/// A person's permissions: the config's, or the default namespace
/// `<operator>.<account>.<stem>.>` with responses allowed and a 1 MiB payload.
/// Either way a user that may make requests subscribes only to its own inbox.
pub fn user_permissions(p: &Person, operator: &str, account: &str) -> (Permissions, i64) {
    let inbox = format!("{}.>", inbox_prefix(&p.name));
    let allow_inbox = |subs: &mut Vec<String>| {
        if !subs.contains(&inbox) {
            subs.push(inbox.clone());
        }
    };
    let resp = Some(ResponsePermission { max: 1, ttl: 0 });
    match &p.nats_permissions {
        Some(np) => {
            let mut sub = dedup(&np.subscribe);
            if np.allow_responses {
                allow_inbox(&mut sub);
            }
            let ttl = np.response_ttl.as_deref().and_then(|t| parse_ttl_nanos(t).ok()).unwrap_or(0);
            let perms = Permissions {
                publish: Permission { allow: dedup(&np.publish), deny: dedup(&np.deny_publish) },
                subscribe: Permission { allow: sub, deny: dedup(&np.deny_subscribe) },
                resp: if np.allow_responses { Some(ResponsePermission { max: 1, ttl }) } else { None },
            };
            (perms, np.max_payload.unwrap_or(-1))
        }
        None => {
            let stem = p.name.strip_suffix("-service").filter(|s| !s.is_empty()).unwrap_or(&p.name);
            let subject = format!("{operator}.{account}.{stem}.>");
            let mut sub = vec![subject.clone()];
            allow_inbox(&mut sub);
            let perms = Permissions {
                publish: Permission { allow: vec![subject], deny: vec![] },
                subscribe: Permission { allow: sub, deny: vec![] },
                resp,
            };
            (perms, DEFAULT_PAYLOAD)
        }
    }
}

fn dedup(items: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items.iter().filter(|s| seen.insert(s.as_str())).cloned().collect()
}

fn account_limits(l: Option<&Limits>) -> AccountLimits {
    let mut out = AccountLimits::default();
    let Some(l) = l else { return out };
    let set = |field: &mut i64, v: Option<i64>| {
        if let Some(v) = v {
            *field = v;
        }
    };
    set(&mut out.conn, l.conn);
    set(&mut out.subs, l.subs);
    set(&mut out.payload, l.payload);
    set(&mut out.data, l.data);
    if let Some(js) = &l.jetstream {
        set(&mut out.mem_storage, js.mem_storage);
        set(&mut out.disk_storage, js.disk_storage);
        set(&mut out.streams, js.streams);
        set(&mut out.consumer, js.consumer);
    }
    out
}

/// Build the plan. `config` must have passed [`crate::config::validate::validate`].
pub fn plan(c: &Config) -> Plan {
    let operator = operator_name(c);
    let unit_account = unit_accounts(&c.organizational_units);
    let mut hosts_of: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for h in &c.hosts {
        for s in &h.services {
            hosts_of.entry(s.as_str()).or_default().insert(h.name.clone());
        }
    }

    let mut accounts: BTreeMap<String, AccountPlan> = BTreeMap::new();
    for (i, u) in c.organizational_units.iter().enumerate() {
        let name = &unit_account[i];
        // The unit that names the account (or a top-level unit without a name) sets its limits.
        let defines = u.nats_account_name.is_some() || u.parent.is_none();
        let a = accounts.entry(name.clone()).or_insert_with(|| AccountPlan {
            name: name.clone(),
            system: false,
            units: vec![],
            description: String::new(),
            limits: AccountLimits::default(),
            users: vec![],
            default_permissions: Permissions::default(),
            roles: vec![],
        });
        if let Some(d) = &u.nats_default_permissions {
            a.default_permissions = Permissions {
                publish: Permission { allow: dedup(&d.publish), deny: dedup(&d.deny_publish) },
                subscribe: Permission { allow: dedup(&d.subscribe), deny: dedup(&d.deny_subscribe) },
                resp: None,
            };
        }
        a.roles.extend(u.nats_signing_roles.iter().map(role_plan));
        a.units.push(u.name.clone());
        if defines {
            a.limits = account_limits(u.nats_limits.as_ref());
            a.description = u.description.clone().unwrap_or_default();
        }
    }
    let unit_index: HashMap<&str, usize> =
        c.organizational_units.iter().enumerate().map(|(i, u)| (u.name.as_str(), i)).collect();
    for p in c.service_people.iter().filter(|p| p.is_nats_user()) {
        let account = &unit_account[unit_index[p.organizational_unit.as_str()]];
        let (permissions, payload) = user_permissions(p, &operator, account);
        let hosts = hosts_of.get(p.name.as_str()).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        accounts.get_mut(account).expect("unit accounts exist").users.push(UserPlan {
            name: p.name.clone(),
            unit: p.organizational_unit.clone(),
            permissions,
            payload,
            restrictions: user_restrictions(p),
            signing_role: p.nats_signing_role.clone(),
            hosts,
        });
    }
    accounts.insert(
        SYSTEM_ACCOUNT.into(),
        AccountPlan {
            name: SYSTEM_ACCOUNT.into(),
            system: true,
            units: vec![],
            description: "System account: server internals and monitoring".into(),
            limits: AccountLimits::default(),
            users: vec![UserPlan {
                name: SYSTEM_USER.into(),
                unit: String::new(),
                permissions: Permissions::default(),
                payload: -1,
                restrictions: Restrictions::default(),
                signing_role: None,
                hosts: vec![],
            }],
            default_permissions: Permissions::default(),
            roles: vec![],
        },
    );
    let mut accounts: Vec<AccountPlan> = accounts.into_values().collect();
    for a in &mut accounts {
        a.users.sort_by(|x, y| x.name.cmp(&y.name));
        a.roles.sort_by(|x, y| x.name.cmp(&y.name));
    }
    let mut hosts: Vec<HostPlan> = c
        .hosts
        .iter()
        .map(|h| {
            let mut services = h.services.clone();
            services.sort();
            HostPlan {
                name: h.name.clone(),
                recipient: h.age_recipient.trim().to_string(),
                nats_server: h.nats_server,
                services,
            }
        })
        .collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    let fleet = crate::fleet::plan(c, &operator);
    Plan {
        fleet,
        operator,
        accounts,
        hosts,
        owner_recipient: c.owner.as_ref().and_then(|o| o.age_recipient.clone()),
        owner_id: c.owner.as_ref().and_then(|o| o.id.clone()),
        owner_name: c.owner.as_ref().and_then(|o| o.name.clone()),
        units: c
            .organizational_units
            .iter()
            .zip(&unit_account)
            .map(|(u, a)| UnitPlan { name: u.name.clone(), parent: u.parent.clone(), account: a.clone() })
            .collect(),
        wiring: crate::wiring::of(c).clone().expect("validated config wires"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn cfg(json: &str) -> Config {
        let c = parse("t.json".into(), json).unwrap();
        let issues = crate::config::validate::validate(&c);
        assert!(issues.is_empty(), "{issues:?}");
        c
    }

    const TREE: &str = r#"{
      "organization": {"name": "acme"},
      "organizational_units": [
        {"name": "Core", "nats_account_name": "core", "parent": null},
        {"name": "Ops", "parent": "Core"},
        {"name": "Deep", "parent": "Ops"},
        {"name": "Media", "parent": null},
        {"name": "Billing", "nats_account_name": "billing", "parent": "Core"}
      ],
      "service_people": [
        {"name": "deep-service", "organizational_unit": "Deep", "role": "Service"},
        {"name": "bill-service", "organizational_unit": "Billing", "role": "Service",
         "nats_permissions": {"publish": ["bill.>", "bill.>"], "subscribe": ["bill.>"], "allow_responses": false, "max_payload": 2048}},
        {"name": "alice", "organizational_unit": "Media", "role": "Admin"}
      ],
      "hosts": [{"name": "h2", "age_recipient": "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p", "services": ["deep-service"]},
                {"name": "h1", "age_recipient": "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p", "services": ["deep-service"]}]
    }"#;

    #[test]
    fn units_inherit_the_nearest_account() {
        let c = cfg(TREE);
        assert_eq!(unit_accounts(&c.organizational_units), ["core", "core", "core", "media", "billing"]);
    }

    #[test]
    fn mapping() {
        let p = plan(&cfg(TREE));
        assert_eq!(p.operator, "acme");
        let names: Vec<&str> = p.accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["SYS", "billing", "core", "media"]);
        let core = &p.accounts[2];
        assert_eq!(core.units, ["Core", "Ops", "Deep"]);
        let deep = &core.users[0];
        assert_eq!(deep.name, "deep-service");
        assert_eq!(deep.permissions.publish.allow, ["acme.core.deep.>"]);
        assert_eq!(deep.permissions.subscribe.allow, ["acme.core.deep.>", "_INBOX_deep-service.>"]);
        assert_eq!(deep.permissions.resp, Some(ResponsePermission { max: 1, ttl: 0 }));
        assert_eq!(deep.payload, DEFAULT_PAYLOAD);
        assert_eq!(deep.hosts, ["h1", "h2"]);
        let bill = &p.accounts[1].users[0];
        assert_eq!(bill.permissions.publish.allow, ["bill.>"]);
        assert_eq!(bill.permissions.subscribe.allow, ["bill.>"]);
        assert_eq!(bill.permissions.resp, None);
        assert_eq!(bill.payload, 2048);
        assert!(p.accounts[3].users.is_empty(), "non-Service roles get no user");
        let sys = &p.accounts[0];
        assert!(sys.system);
        assert_eq!(sys.users[0].name, SYSTEM_USER);
        assert!(sys.users[0].hosts.is_empty(), "sys creds never go to a host");
        assert_eq!(p.hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["h1", "h2"]);
    }

    #[test]
    fn operator_name_prefers_export_config() {
        let c = cfg(r#"{"organization": {"name": "org"}, "nsc_export_config": {"operator_name": "OP"}}"#);
        assert_eq!(plan(&c).operator, "OP");
    }

    #[test]
    fn limits_and_jetstream() {
        let c = cfg(r#"{"organization": {"name": "org"}, "organizational_units": [
            {"name": "A", "nats_limits": {"conn": 10, "jetstream": {"mem_storage": -1, "disk_storage": 1000, "streams": 5}}},
            {"name": "B"}]}"#);
        let p = plan(&c);
        let a = p.accounts.iter().find(|a| a.name == "a").unwrap();
        assert_eq!(a.limits.conn, 10);
        assert_eq!(
            (a.limits.mem_storage, a.limits.disk_storage, a.limits.streams, a.limits.consumer),
            (-1, 1000, 5, 0)
        );
        assert!(a.limits.jetstream_enabled());
        let b = p.accounts.iter().find(|a| a.name == "b").unwrap();
        assert!(!b.limits.jetstream_enabled(), "JetStream stays disabled unless asked");
    }
}

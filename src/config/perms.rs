//! The NATS user restrictions beyond allow lists (issue 14): deny rules,
//! response TTL, per-user limits (`nats_limits` of a person), connection types,
//! source networks, time windows and expiry, with their validation.
//!
//! Everything here maps one to one onto nats-io/jwt v2 `UserPermissionLimits`
//! (`v2/user_claims.go`, `v2/types.go`); [`crate::plan`] does the mapping.

use serde::Deserialize;

use super::subject::{subject_problem, subscribe_problem};
use super::Issue;

/// `allowed_connection_types` nats-io/jwt v2.8.1 knows (`ConnectionType*`).
pub const CONNECTION_TYPES: &[&str] =
    &["STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS", "IN_PROCESS"];

/// A person's own limits (`service_people[].nats_limits`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserLimits {
    /// JWT `subs`: most subscriptions at once (-1 unlimited).
    #[serde(default)]
    pub max_subscriptions: Option<i64>,
    /// JWT `data`: most bytes the user may send in total (-1 unlimited).
    #[serde(default)]
    pub max_data: Option<i64>,
    /// JWT `allowed_connection_types`.
    #[serde(default)]
    pub allowed_connection_types: Vec<String>,
    /// JWT `src`: CIDRs the user may connect from.
    #[serde(default)]
    pub source_networks: Vec<String>,
    /// JWT `times`: windows of the day the user may connect in.
    #[serde(default)]
    pub time_windows: Vec<TimeWindow>,
    /// JWT `times_location`: the IANA time zone of `time_windows` (default: the server's local time).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// JWT `exp`: a date (`2027-01-31`, `2027-01-31T12:00:00Z`) or a duration
    /// after the JWT is issued (`90d`, `12h`, `30m`, `2w`).
    #[serde(default)]
    pub expires: Option<String>,
}

/// A unit's `nats_default_permissions`: the account JWT's `default_permissions`,
/// which apply to users of the account that have no permissions of their own.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultPermissions {
    #[serde(default)]
    pub publish: Vec<String>,
    #[serde(default)]
    pub subscribe: Vec<String>,
    #[serde(default)]
    pub deny_publish: Vec<String>,
    #[serde(default)]
    pub deny_subscribe: Vec<String>,
}

/// A unit's `nats_signing_roles[]`: a scoped signing key (nsc `edit signing-key
/// --role`). Its users get `permissions` and `limits` from the key's template, so
/// changing them re-scopes every user of the role without re-issuing one.
/// Subjects may use nats-server's templates, e.g. `app.{{name()}}.>`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SigningRole {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub permissions: Option<super::schema::NatsPermissions>,
    #[serde(default)]
    pub limits: Option<UserLimits>,
}

/// The template functions nats-server expands in a scoped key's subjects.
pub const TEMPLATE_FUNCTIONS: &[&str] =
    &["name()", "subject()", "account-name()", "account-subject()", "tag(", "account-tag("];

/// Why a role subject's `{{…}}` templates are not ones nats-server knows.
pub fn template_problem(subject: &str) -> Option<String> {
    let mut rest = subject;
    while let Some(i) = rest.find("{{") {
        let Some(j) = rest[i..].find("}}") else {
            return Some(format!("{subject:?} has an unclosed {{{{"));
        };
        let f = rest[i + 2..i + j].trim();
        let known = TEMPLATE_FUNCTIONS.iter().any(|t| {
            if t.ends_with('(') {
                f.starts_with(t) && f.ends_with(')')
            } else {
                f == *t
            }
        });
        if !known {
            return Some(format!(
                "{subject:?}: {{{{{f}}}}} is not a template nats-server knows (name(), subject(), account-name(), account-subject(), tag(NAME), account-tag(NAME))"
            ));
        }
        rest = &rest[i + j + 2..];
    }
    None
}

/// One `time_windows` entry: `HH:MM:SS` start and end.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeWindow {
    pub start: String,
    pub end: String,
}

/// When a user JWT expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Expiry {
    /// At this unix time.
    At(i64),
    /// This many seconds after the JWT's `iat`.
    After(i64),
}

/// Parse `expires`.
pub fn parse_expiry(s: &str) -> Result<Expiry, String> {
    if let Some(secs) = parse_duration_secs(s) {
        return if secs > 0 { Ok(Expiry::After(secs)) } else { Err(format!("{s:?} is not a positive duration")) };
    }
    parse_date(s).map(Expiry::At).ok_or_else(|| {
        format!("{s:?} is neither a date (2027-01-31 or 2027-01-31T12:00:00Z) nor a duration (90d, 12h, 30m, 2w, 45s)")
    })
}

/// `90d`, `12h`, `30m`, `2w`, `45s` → seconds.
fn parse_duration_secs(s: &str) -> Option<i64> {
    let unit = s.chars().last()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    let n = &s[..s.len() - 1];
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 9 {
        return None;
    }
    n.parse::<i64>().ok().map(|n| n * mult)
}

/// `response_ttl`: `250ms`, `5s`, `2m`, `1h` → nanoseconds (Go `time.Duration`).
pub fn parse_ttl_nanos(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a duration like 250ms, 5s, 2m or 1h");
    let (n, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000_000)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000_000_000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000_000_000)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000_000_000)
    } else {
        return Err(bad());
    };
    if n.is_empty() || n.len() > 6 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let v: i64 = n.parse().map_err(|_| bad())?;
    if v == 0 {
        return Err(format!("{s:?} is zero: leave response_ttl out for no time limit"));
    }
    Ok(v * mult)
}

/// `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ` → unix seconds.
fn parse_date(s: &str) -> Option<i64> {
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z')?)),
        None => (s, None),
    };
    let p: Vec<&str> = date.split('-').collect();
    if p.len() != 3 || p[0].len() != 4 || p[1].len() != 2 || p[2].len() != 2 {
        return None;
    }
    let num = |t: &str| t.bytes().all(|b| b.is_ascii_digit()).then(|| t.parse::<i64>().ok()).flatten();
    let (y, m, d) = (num(p[0])?, num(p[1])?, num(p[2])?);
    let days_in = [31, if is_leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > days_in[(m - 1) as usize] {
        return None;
    }
    let secs = match time {
        None => 0,
        Some(t) => clock_secs(t)?,
    };
    Some(days_from_civil(y, m, d) * 86_400 + secs)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days since 1970-01-01 (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `HH:MM:SS` (Go's `15:04:05`) → seconds of the day.
fn clock_secs(t: &str) -> Option<i64> {
    let p: Vec<&str> = t.split(':').collect();
    if p.len() != 3 || p.iter().any(|x| x.len() != 2 || !x.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let (h, m, s) = (p[0].parse::<i64>().ok()?, p[1].parse::<i64>().ok()?, p[2].parse::<i64>().ok()?);
    (h < 24 && m < 60 && s < 60).then_some(h * 3600 + m * 60 + s)
}

/// Why `cidr` is not an IPv4/IPv6 CIDR as Go's `net.ParseCIDR` reads it.
fn cidr_problem(cidr: &str) -> Option<String> {
    let bad = || Some(format!("{cidr:?} is not a CIDR such as 10.0.0.0/8 or fd00::/8"));
    let Some((ip, bits)) = cidr.split_once('/') else { return bad() };
    let max = if ip.parse::<std::net::Ipv4Addr>().is_ok() {
        32
    } else if ip.parse::<std::net::Ipv6Addr>().is_ok() {
        128
    } else {
        return bad();
    };
    match bits.parse::<u8>() {
        Ok(b) if b <= max && !bits.starts_with('+') && (bits == "0" || !bits.starts_with('0')) => None,
        _ => bad(),
    }
}

/// Why `tz` cannot be an IANA time zone name (syntax only: the server's zone
/// database decides whether it exists, as Go's `time.LoadLocation` does).
fn zone_problem(tz: &str) -> Option<String> {
    let ok = !tz.is_empty()
        && tz.len() <= 64
        && tz != "Local"
        && !tz.starts_with('/')
        && !tz.contains("..")
        && tz.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'));
    (!ok).then(|| format!("{tz:?} is not an IANA time zone name such as UTC or Europe/Berlin"))
}

/// Check the deny lists and `response_ttl` of `nats_permissions` at `at`.
pub fn check_permissions(
    at: &str,
    deny_pub: &[String],
    deny_sub: &[String],
    ttl: Option<&str>,
    resp: bool,
) -> Vec<Issue> {
    let mut out = Vec::new();
    for (j, s) in deny_pub.iter().enumerate() {
        if let Some(m) = subject_problem(s) {
            out.push(Issue { path: format!("{at}.deny_publish[{j}]"), message: m });
        }
    }
    for (j, s) in deny_sub.iter().enumerate() {
        if let Some(m) = subscribe_problem(s) {
            out.push(Issue { path: format!("{at}.deny_subscribe[{j}]"), message: m });
        }
    }
    if let Some(t) = ttl {
        if !resp {
            out.push(Issue {
                path: format!("{at}.response_ttl"),
                message: format!("{t:?} needs allow_responses: true (the TTL limits the response permission)"),
            });
        }
        if let Err(m) = parse_ttl_nanos(t) {
            out.push(Issue { path: format!("{at}.response_ttl"), message: m });
        }
    }
    out
}

/// Check a person's `nats_limits` at `at`.
pub fn check_limits(at: &str, l: &UserLimits) -> Vec<Issue> {
    let mut out = Vec::new();
    let mut add = |path: String, message: String| out.push(Issue { path, message });
    for (name, v, max) in
        [("max_subscriptions", l.max_subscriptions, 1_000_000_000), ("max_data", l.max_data, i64::MAX / 2)]
    {
        if let Some(v) = v {
            if v != -1 && !(0..=max).contains(&v) {
                add(format!("{at}.{name}"), format!("{v} is not a valid limit: use -1 for unlimited or 0..={max}"));
            }
        }
    }
    for (j, t) in l.allowed_connection_types.iter().enumerate() {
        if !CONNECTION_TYPES.contains(&t.as_str()) {
            add(
                format!("{at}.allowed_connection_types[{j}]"),
                format!("{t:?} is not a connection type (one of {})", CONNECTION_TYPES.join(", ")),
            );
        }
    }
    for (j, c) in l.source_networks.iter().enumerate() {
        if let Some(m) = cidr_problem(c) {
            add(format!("{at}.source_networks[{j}]"), m);
        }
    }
    for (j, w) in l.time_windows.iter().enumerate() {
        for (f, v) in [("start", &w.start), ("end", &w.end)] {
            if clock_secs(v).is_none() {
                add(format!("{at}.time_windows[{j}].{f}"), format!("{v:?} is not a time of day HH:MM:SS"));
            }
        }
    }
    if let Some(tz) = &l.time_zone {
        if let Some(m) = zone_problem(tz) {
            add(format!("{at}.time_zone"), m);
        } else if l.time_windows.is_empty() {
            add(format!("{at}.time_zone"), format!("{tz:?} has no time_windows to apply to"));
        }
    }
    if let Some(e) = &l.expires {
        if let Err(m) = parse_expiry(e) {
            add(format!("{at}.expires"), m);
        }
    }
    out
}

/// Check every unit's `nats_default_permissions` and `nats_signing_roles`, and
/// every person's `nats_signing_role` (issue 14). Needs a valid unit tree.
pub fn check_roles(c: &super::Config) -> Vec<Issue> {
    let mut out = Vec::new();
    let accounts = crate::plan::unit_accounts(&c.organizational_units);
    let subjects = |out: &mut Vec<Issue>, at: String, list: &[String], sub: bool, templates: bool| {
        for (j, s) in list.iter().enumerate() {
            let p = if sub { subscribe_problem(s) } else { subject_problem(s) };
            let p = p.or_else(|| if templates { template_problem(s) } else { None });
            if let Some(m) = p {
                out.push(Issue { path: format!("{at}[{j}]"), message: m });
            }
        }
    };
    let mut roles: std::collections::HashMap<(String, String), String> = std::collections::HashMap::new();
    for (i, u) in c.organizational_units.iter().enumerate() {
        let at = format!("organizational_units[{i}]");
        if let Some(d) = &u.nats_default_permissions {
            let at = format!("{at}.nats_default_permissions");
            subjects(&mut out, format!("{at}.publish"), &d.publish, false, false);
            subjects(&mut out, format!("{at}.subscribe"), &d.subscribe, true, false);
            subjects(&mut out, format!("{at}.deny_publish"), &d.deny_publish, false, false);
            subjects(&mut out, format!("{at}.deny_subscribe"), &d.deny_subscribe, true, false);
        }
        for (r, role) in u.nats_signing_roles.iter().enumerate() {
            let at = format!("{at}.nats_signing_roles[{r}]");
            if let Some(m) = super::validate::name_problem(&role.name) {
                out.push(Issue { path: format!("{at}.name"), message: m });
            }
            let key = (accounts[i].clone(), role.name.clone());
            if let Some(first) = roles.get(&key) {
                out.push(Issue {
                    path: format!("{at}.name"),
                    message: format!("duplicate role {:?} in account {:?} (first at {first})", role.name, accounts[i]),
                });
            } else {
                roles.insert(key, format!("{at}.name"));
            }
            if let Some(p) = &role.permissions {
                let at = format!("{at}.permissions");
                subjects(&mut out, format!("{at}.publish"), &p.publish, false, true);
                subjects(&mut out, format!("{at}.subscribe"), &p.subscribe, true, true);
                subjects(&mut out, format!("{at}.deny_publish"), &p.deny_publish, false, true);
                subjects(&mut out, format!("{at}.deny_subscribe"), &p.deny_subscribe, true, true);
                if let Some(t) = &p.response_ttl {
                    if let Err(m) = parse_ttl_nanos(t) {
                        out.push(Issue { path: format!("{at}.response_ttl"), message: m });
                    }
                }
                if let Some(mp) = p.max_payload {
                    if mp != -1 && !(1..=super::validate::MAX_PAYLOAD).contains(&mp) {
                        out.push(Issue {
                            path: format!("{at}.max_payload"),
                            message: format!("{mp} is not a valid limit"),
                        });
                    }
                }
            }
            if let Some(l) = &role.limits {
                out.extend(check_limits(&format!("{at}.limits"), l));
                if let Some(e) = &l.expires {
                    out.push(Issue {
                        path: format!("{at}.limits.expires"),
                        message: format!(
                            "{e:?}: a role cannot expire (exp is a claim of each user JWT); set it on the person"
                        ),
                    });
                }
            }
        }
    }
    let unit_account: std::collections::HashMap<&str, &str> =
        c.organizational_units.iter().zip(&accounts).map(|(u, a)| (u.name.as_str(), a.as_str())).collect();
    for (i, p) in c.service_people.iter().enumerate() {
        let Some(role) = &p.nats_signing_role else { continue };
        let at = format!("service_people[{i}].nats_signing_role");
        let Some(account) = unit_account.get(p.organizational_unit.as_str()) else { continue };
        if !roles.contains_key(&(account.to_string(), role.clone())) {
            out.push(Issue {
                path: at.clone(),
                message: format!("{role:?} is not a nats_signing_roles name of account {account:?}"),
            });
        }
        if !p.is_nats_user() {
            out.push(Issue {
                path: at.clone(),
                message: format!("role {:?} gets no NATS user: set nats_user: true", p.role),
            });
        }
        if p.nats_permissions.is_some() || p.nats_limits.is_some() {
            out.push(Issue {
                path: at,
                message: format!(
                    "{role:?}: a user signed by a scoped key carries no permissions or limits of its own; remove nats_permissions/nats_limits"
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_durations() {
        assert_eq!(parse_expiry("1970-01-02"), Ok(Expiry::At(86_400)));
        assert_eq!(parse_expiry("2027-01-31T12:00:00Z"), Ok(Expiry::At(1_801_396_800)));
        assert_eq!(parse_expiry("2024-02-29"), Ok(Expiry::At(1_709_164_800)));
        assert_eq!(parse_expiry("90d"), Ok(Expiry::After(90 * 86_400)));
        assert_eq!(parse_expiry("2w"), Ok(Expiry::After(1_209_600)));
        for bad in ["2023-02-29", "2027-13-01", "tomorrow", "0d", "-5d", "2027-01-31T25:00:00Z", "2027-1-31"] {
            let e = parse_expiry(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert_eq!(parse_ttl_nanos("250ms"), Ok(250_000_000));
        assert_eq!(parse_ttl_nanos("5s"), Ok(5_000_000_000));
        assert!(parse_ttl_nanos("5").is_err() && parse_ttl_nanos("0s").is_err());
    }

    #[test]
    fn cidrs_zones_and_paths() {
        assert_eq!(cidr_problem("10.0.0.0/8"), None);
        assert_eq!(cidr_problem("fd00::/8"), None);
        for bad in ["10.0.0.0", "10.0.0.0/33", "300.0.0.0/8", "x/1", "::/129", "10.0.0.0/08"] {
            assert!(cidr_problem(bad).unwrap().contains(bad));
        }
        assert_eq!(zone_problem("Europe/Berlin"), None);
        assert!(zone_problem("../etc/passwd").is_some() && zone_problem("Local").is_some());
        let l = UserLimits {
            allowed_connection_types: vec!["STANDARD".into(), "TELNET".into()],
            time_windows: vec![TimeWindow { start: "08:00:00".into(), end: "8pm".into() }],
            max_subscriptions: Some(-2),
            ..Default::default()
        };
        let paths: Vec<String> = check_limits("p", &l).into_iter().map(|i| format!("{i}")).collect();
        assert!(paths.iter().any(|p| p.starts_with("p.allowed_connection_types[1]: \"TELNET\"")), "{paths:?}");
        assert!(paths.iter().any(|p| p.starts_with("p.time_windows[0].end: \"8pm\"")), "{paths:?}");
        assert!(paths.iter().any(|p| p.starts_with("p.max_subscriptions: -2")), "{paths:?}");
    }
}

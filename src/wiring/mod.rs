//! Cross-account wiring: which account exports what to which account.
//!
//! Derived (the default): for every publish pattern P of a user in account A
//! and subscribe pattern Q of a user in another account B that overlap, a flow
//! carries the overlap S from A to B on the same subject names:
//! - a **stream** exported by A and imported by B, when A itself listens on S
//!   (S is A's own namespace) or B's subscriber cannot respond;
//! - a **service** exported by B and imported by A, when nobody in A listens
//!   on S and B's subscriber has `allow_responses`: A's publishes are requests
//!   to B, and replies cross back on `_R_.…` subjects, which `resp` covers.
//!
//! Reply plumbing (`_INBOX…`, `_R_`, `$SYS`) is never a flow. Overlapping
//! imports from one exporter and overlapping exports of one account are merged
//! into covering patterns (nats-io/jwt refuses overlapping exports). Declared
//! `nats_exports`/`nats_imports` are added; with `"nats_wiring": "explicit"`
//! they are the only flows. Import cycles are config errors (the server drops
//! a cyclic import). Every export is private (`token_req`) unless declared
//! `public`: each import carries an activation token.

pub mod show;
pub mod subject;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::config::{Config, FlowType, Issue, Wiring as Mode};
use crate::plan;
use subject::{contains, intersect, is_plumbing, merge, overlaps, Index};

use crate::config::validate::{MAX_SUBJECT, MAX_TEXT};

/// `subject_problem`, plus the length limit of permission subjects.
fn subject_problem(s: &str) -> Option<String> {
    if s.len() > MAX_SUBJECT {
        return Some(format!("{} bytes is longer than the limit of {MAX_SUBJECT} bytes for a subject", s.len()));
    }
    crate::config::subject::subject_problem(s)
}

/// Where a flow comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Derived,
    Declared,
}

/// One import: `exporter`'s `subject` reaches `importer` (on `local_subject` if set).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    pub exporter: String,
    pub importer: String,
    pub subject: String,
    #[serde(rename = "type")]
    pub kind: FlowType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_subject: Option<String>,
    pub origin: Origin,
}

impl Flow {
    /// The subject on the importer's side.
    pub fn local(&self) -> &str {
        self.local_subject.as_deref().unwrap_or(&self.subject)
    }

    pub fn describe(&self) -> String {
        let local = self.local_subject.as_ref().map(|l| format!(" as {l}")).unwrap_or_default();
        format!(
            "{} {} → {}: {}{local} ({})",
            self.kind.as_str(),
            self.exporter,
            self.importer,
            self.subject,
            match self.origin {
                Origin::Derived => "derived",
                Origin::Declared => "declared",
            }
        )
    }
}

/// One export of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPlan {
    pub subject: String,
    pub kind: FlowType,
    /// Services only: `Singleton` unless declared otherwise.
    pub response_type: String,
    pub public: bool,
    pub description: String,
}

/// The wiring of a whole config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Wiring {
    /// Sorted.
    pub flows: Vec<Flow>,
    /// Account → its exports, sorted by subject.
    pub exports: BTreeMap<String, Vec<ExportPlan>>,
    /// Not errors, but usually typos (a subscription nobody may publish to) or
    /// derived flows that cannot be wired (each also in `unwired`).
    pub warnings: Vec<String>,
    /// Derived flows left out because they would form a cycle or an ambiguous
    /// service import.
    pub unwired: Vec<Flow>,
}

impl Wiring {
    pub fn imports_of<'a>(&'a self, account: &'a str) -> impl Iterator<Item = &'a Flow> + 'a {
        self.flows.iter().filter(move |f| f.importer == account)
    }

    /// The export of `f.exporter` that covers the flow.
    pub fn export_for(&self, f: &Flow) -> Option<&ExportPlan> {
        self.exports.get(&f.exporter)?.iter().find(|e| e.kind == f.kind && contains(&e.subject, &f.subject))
    }
}

/// A user, as the wiring sees it.
struct User {
    index: usize,
    account: String,
    pubs: Vec<String>,
    /// (index in the config's subscribe list, subject without queue group).
    subs: Vec<(usize, String)>,
    responds: bool,
    declared: bool,
}

fn users(c: &Config, accounts: &[String]) -> Vec<User> {
    let operator = plan::operator_name(c);
    let unit_index: BTreeMap<&str, usize> =
        c.organizational_units.iter().enumerate().map(|(i, u)| (u.name.as_str(), i)).collect();
    c.service_people
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_nats_user() && p.nats_signing_role.is_none())
        .filter_map(|(index, p)| {
            let account = accounts.get(*unit_index.get(p.organizational_unit.as_str())?)?.clone();
            let (perms, _) = plan::user_permissions(p, &operator, &account);
            let subs = perms
                .subscribe
                .allow
                .iter()
                .enumerate()
                .map(|(j, s)| (j, s.split(' ').next().unwrap_or_default().to_string()))
                .filter(|(_, s)| !is_plumbing(s))
                .collect();
            let pubs = perms.publish.allow.into_iter().filter(|s| !is_plumbing(s)).collect();
            Some(User {
                index,
                account,
                pubs,
                subs,
                responds: perms.resp.is_some(),
                declared: p.nats_permissions.is_some(),
            })
        })
        .collect()
}

fn sub_path(u: &User, j: usize) -> String {
    if u.declared {
        format!("service_people[{}].nats_permissions.subscribe[{j}]", u.index)
    } else {
        format!("service_people[{}]", u.index)
    }
}

/// Derive and check the wiring of a config whose other parts are valid.
/// Returns the wiring, or every problem with its field path.
/// [`derive`] of a config, computed once per config value.
pub fn of(c: &Config) -> &Result<Wiring, Vec<Issue>> {
    c.wiring.get_or_init(|| derive(c))
}

pub fn derive(c: &Config) -> Result<Wiring, Vec<Issue>> {
    let accounts = plan::unit_accounts(&c.organizational_units);
    let users = users(c, &accounts);
    let mut issues = Vec::new();
    let mut warnings = Vec::new();
    let mode = c.nats_wiring.unwrap_or_default();

    // Declared exports, per account.
    let mut exports: BTreeMap<String, Vec<ExportPlan>> = BTreeMap::new();
    for (i, unit) in c.organizational_units.iter().enumerate() {
        let account = &accounts[i];
        for (j, e) in unit.nats_exports.iter().enumerate() {
            let at = format!("organizational_units[{i}].nats_exports[{j}]");
            if let Some(p) = subject_problem(&e.subject) {
                issues.push(issue(format!("{at}.subject"), p));
                continue;
            }
            if let Some(d) = e.description.as_deref() {
                if d.len() > MAX_TEXT {
                    let m = format!("{} bytes is longer than the limit of {MAX_TEXT} bytes for this field", d.len());
                    issues.push(issue(format!("{at}.description"), m));
                } else if d.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                    issues.push(issue(format!("{at}.description"), "contains control characters"));
                }
            }
            let mine = users.iter().filter(|u| &u.account == account);
            let able = match e.kind {
                FlowType::Stream => mine.clone().any(|u| u.pubs.iter().any(|p| overlaps(p, &e.subject))),
                FlowType::Service => mine.clone().any(|u| u.subs.iter().any(|(_, q)| overlaps(q, &e.subject))),
            };
            if !able {
                let what = if e.kind == FlowType::Stream { "publish to" } else { "subscribe to (answer)" };
                issues.push(issue(
                    format!("{at}.subject"),
                    format!("no service of account {account:?} may {what} {:?}", e.subject),
                ));
            }
            let response_type = match (e.kind, e.response_type.as_deref()) {
                (FlowType::Service, None) => "Singleton".to_string(),
                (FlowType::Service, Some(r @ ("Singleton" | "Stream" | "Chunked"))) => r.to_string(),
                (FlowType::Service, Some(r)) => {
                    issues.push(issue(
                        format!("{at}.response_type"),
                        format!("{r:?} is not a response type (Singleton, Stream or Chunked)"),
                    ));
                    continue;
                }
                (FlowType::Stream, None) => String::new(),
                (FlowType::Stream, Some(_)) => {
                    issues.push(issue(format!("{at}.response_type"), "only a service export has a response type"));
                    continue;
                }
            };
            let list = exports.entry(account.clone()).or_default();
            if let Some(other) = list.iter().find(|o| o.kind == e.kind && overlaps(&o.subject, &e.subject)) {
                issues.push(issue(
                    format!("{at}.subject"),
                    format!(
                        "{:?} overlaps the {} export {:?} of account {account:?} (nats-io/jwt refuses overlapping exports)",
                        e.subject,
                        e.kind.as_str(),
                        other.subject
                    ),
                ));
                continue;
            }
            list.push(ExportPlan {
                subject: e.subject.clone(),
                kind: e.kind,
                response_type,
                public: e.public,
                description: e.description.clone().unwrap_or_default(),
            });
        }
    }

    // Declared imports.
    let unit_index: BTreeMap<&str, usize> =
        c.organizational_units.iter().enumerate().map(|(i, u)| (u.name.as_str(), i)).collect();
    let mut flows: Vec<(Flow, String)> = Vec::new();
    for (i, unit) in c.organizational_units.iter().enumerate() {
        let importer = &accounts[i];
        for (j, d) in unit.nats_imports.iter().enumerate() {
            let at = format!("organizational_units[{i}].nats_imports[{j}]");
            let Some(&from) = unit_index.get(d.from_unit.as_str()) else {
                issues
                    .push(issue(format!("{at}.from_unit"), format!("{:?} is not a unit of this config", d.from_unit)));
                continue;
            };
            let exporter = &accounts[from];
            if exporter == importer {
                issues.push(issue(
                    format!("{at}.from_unit"),
                    format!(
                        "{:?} is in the same account {importer:?}: an account needs no import of its own subjects",
                        d.from_unit
                    ),
                ));
                continue;
            }
            if let Some(p) = subject_problem(&d.subject) {
                issues.push(issue(format!("{at}.subject"), p));
                continue;
            }
            let covered = exports
                .get(exporter)
                .is_some_and(|l| l.iter().any(|e| e.kind == d.kind && contains(&e.subject, &d.subject)));
            if !covered {
                issues.push(issue(
                    format!("{at}.subject"),
                    format!(
                        "account {exporter:?} (unit {:?}) has no {} export in nats_exports covering {:?}",
                        d.from_unit,
                        d.kind.as_str(),
                        d.subject
                    ),
                ));
                continue;
            }
            if let Some(l) = &d.local_subject {
                if let Some(p) = subject_problem(l) {
                    issues.push(issue(format!("{at}.local_subject"), p));
                    continue;
                }
                let ends = |s: &str| s == ">" || s.ends_with(".>");
                let stars = |s: &str| s.split('.').filter(|t| *t == "*").count();
                if ends(l) != ends(&d.subject) || stars(l) != stars(&d.subject) {
                    issues.push(issue(
                        format!("{at}.local_subject"),
                        format!("{l:?} must have the same wildcards as {:?} ('*' count, ending in '>')", d.subject),
                    ));
                    continue;
                }
                let mine = users.iter().filter(|u| &u.account == importer);
                let named = match d.kind {
                    FlowType::Stream => mine.clone().any(|u| u.subs.iter().any(|(_, q)| contains(q, l))),
                    FlowType::Service => mine.clone().any(|u| u.pubs.iter().any(|p| contains(p, l))),
                };
                if !named {
                    let what = if d.kind == FlowType::Stream { "sub.allow" } else { "pub.allow" };
                    issues.push(issue(
                        format!("{at}.local_subject"),
                        format!(
                            "no service of account {importer:?} has {l:?} in its {what}: nothing could use this import"
                        ),
                    ));
                    continue;
                }
            }
            flows.push((
                Flow {
                    exporter: exporter.clone(),
                    importer: importer.clone(),
                    subject: d.subject.clone(),
                    kind: d.kind,
                    local_subject: d.local_subject.clone(),
                    origin: Origin::Declared,
                },
                at,
            ));
        }
    }

    // A subscription nobody may publish to (nor a renaming import feeds) is usually a typo.
    let mut pubs: Index<()> = Index::new();
    for p in users.iter().flat_map(|w| &w.pubs) {
        pubs.insert(p, ());
    }
    for u in &users {
        for (j, q) in &u.subs {
            let published = pubs.overlaps_any(q);
            let fed = flows.iter().any(|(f, _)| {
                f.kind == FlowType::Stream
                    && f.importer == u.account
                    && f.local_subject.is_some()
                    && overlaps(f.local(), q)
            });
            if !published && !fed {
                warnings.push(format!("{}: no service may publish to {q:?}", sub_path(u, *j)));
            }
        }
    }
    // Declared imports that conflict are errors.
    for n in 0..flows.len() {
        if let Some(why) = conflict(&flows[..n], &flows[n].0).or_else(|| cycle(&flows, n)) {
            issues.push(issue(flows[n].1.clone(), why));
        }
    }
    // Derived ones are added unless they conflict: then they are reported, not wired.
    let mut unwired = Vec::new();
    if mode == Mode::Derived && issues.is_empty() {
        for (f, at) in derived_flows(&users, &flows) {
            flows.push((f, at));
            let n = flows.len() - 1;
            if let Some(why) = conflict(&flows[..n], &flows[n].0).or_else(|| cycle(&flows, n)) {
                let (f, at) = flows.pop().expect("just pushed");
                warnings
                    .push(format!("{at}: not wired: {why}; declare the flows (nats_wiring \"explicit\") to choose"));
                unwired.push(f);
            }
        }
        derived_exports(&flows, &mut exports, &mut issues);
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    let mut flows: Vec<Flow> = flows.into_iter().map(|(f, _)| f).collect();
    flows.sort();
    flows.dedup();
    for list in exports.values_mut() {
        list.sort_by(|a, b| (&a.subject, a.kind).cmp(&(&b.subject, b.kind)));
    }
    Ok(Wiring { flows, exports, warnings, unwired })
}

/// Why `f` cannot join `accepted`: service imports of one account must not
/// overlap (nats-io/jwt refuses overlaps from one exporter; across exporters a
/// request would have two destinations).
fn conflict(accepted: &[(Flow, String)], f: &Flow) -> Option<String> {
    if f.kind != FlowType::Service {
        return None;
    }
    let (o, _) = accepted
        .iter()
        .find(|(o, _)| o.kind == FlowType::Service && o.importer == f.importer && overlaps(o.local(), f.local()))?;
    Some(format!(
        "service import {:?} of account {:?} from {:?} overlaps its import {:?} from {:?}: requests would be ambiguous",
        f.local(),
        f.importer,
        f.exporter,
        o.local(),
        o.exporter
    ))
}

fn issue(path: String, message: impl Into<String>) -> Issue {
    Issue { path, message: message.into() }
}

/// The flows that follow from the permissions, merged per (exporter, importer,
/// type), minus those a declared import already carries; each with the first
/// subscribe permission that asks for it.
fn derived_flows(users: &[User], declared: &[(Flow, String)]) -> Vec<(Flow, String)> {
    let mut raw: BTreeMap<(String, String, FlowType), Vec<(String, String)>> = BTreeMap::new();
    // Every subscription by subject, grouped per (subject, account): a subject
    // that all users of an account subscribe to is one entry, skipped at once
    // for a publisher of that same account.
    let mut account_ids: HashMap<&str, usize> = HashMap::new();
    for u in users {
        let n = account_ids.len();
        account_ids.entry(u.account.as_str()).or_insert(n);
    }
    let mut groups: Vec<(usize, Vec<(usize, usize)>)> = Vec::new();
    let mut group_of: HashMap<(&str, usize), usize> = HashMap::new();
    let mut subs: Index<usize> = Index::new();
    for (vi, v) in users.iter().enumerate() {
        let a = account_ids[v.account.as_str()];
        for (j, q) in &v.subs {
            let g = *group_of.entry((q.as_str(), a)).or_insert_with(|| {
                groups.push((a, Vec::new()));
                subs.insert(q, groups.len() - 1);
                groups.len() - 1
            });
            groups[g].1.push((vi, *j));
        }
    }
    for u in users {
        let ua = account_ids[u.account.as_str()];
        for p in &u.pubs {
            let mut hits: Vec<(usize, usize, &String)> = Vec::new();
            for (q, &g) in subs.overlapping(p) {
                let (a, members) = &groups[g];
                if *a != ua {
                    hits.extend(members.iter().map(|&(vi, j)| (vi, j, q)));
                }
            }
            // In the order a pairwise walk would meet them (users, then their subscriptions).
            hits.sort_by_key(|(vi, j, _)| (*vi, users[*vi].subs.iter().position(|(k, _)| k == j)));
            for (vi, j, q) in hits {
                let v = &users[vi];
                let Some(s) = intersect(p, q) else { continue };
                let home = subs.overlapping(&s).any(|(_, &g)| groups[g].0 == ua);
                let key = if !home && v.responds {
                    (v.account.clone(), u.account.clone(), FlowType::Service)
                } else {
                    (u.account.clone(), v.account.clone(), FlowType::Stream)
                };
                raw.entry(key).or_default().push((s, sub_path(v, j)));
            }
        }
    }
    let mut out = Vec::new();
    for ((exporter, importer, kind), subjects) in raw {
        for s in merge(subjects.iter().map(|(s, _)| s.clone())) {
            let carried = declared.iter().any(|(d, _)| {
                d.exporter == exporter
                    && d.importer == importer
                    && d.kind == kind
                    && d.local_subject.is_none()
                    && contains(&d.subject, &s)
            });
            if carried {
                continue;
            }
            let at = subjects.iter().find(|(x, _)| contains(&s, x)).map(|(_, p)| p.clone()).unwrap_or_default();
            let flow = Flow {
                exporter: exporter.clone(),
                importer: importer.clone(),
                subject: s,
                kind,
                local_subject: None,
                origin: Origin::Derived,
            };
            out.push((flow, at));
        }
    }
    out
}

/// Exports covering the derived flows, merged so that no two of one account
/// and type overlap, and none overlaps a declared one.
fn derived_exports(flows: &[(Flow, String)], exports: &mut BTreeMap<String, Vec<ExportPlan>>, issues: &mut Vec<Issue>) {
    let mut wanted: BTreeMap<(String, FlowType), Vec<String>> = BTreeMap::new();
    for (f, _) in flows.iter().filter(|(f, _)| f.origin == Origin::Derived) {
        wanted.entry((f.exporter.clone(), f.kind)).or_default().push(f.subject.clone());
    }
    for ((exporter, kind), subjects) in wanted {
        let list = exports.entry(exporter.clone()).or_default();
        let mine: Vec<String> =
            subjects.into_iter().filter(|s| !list.iter().any(|e| e.kind == kind && contains(&e.subject, s))).collect();
        for s in merge(mine) {
            if let Some(other) = list.iter().find(|e| e.kind == kind && overlaps(&e.subject, &s)) {
                issues.push(issue(
                    String::new(),
                    format!(
                        "account {exporter:?}: the derived {} export {s:?} overlaps the declared export {:?}; declare one export covering both",
                        kind.as_str(),
                        other.subject
                    ),
                ));
                continue;
            }
            list.push(ExportPlan {
                subject: s,
                kind,
                response_type: if kind == FlowType::Service { "Singleton".into() } else { String::new() },
                public: false,
                description: String::new(),
            });
        }
    }
}

/// Does import `n` close a cycle of imports of its kind with colliding subjects
/// (what nats-server's `checkStreamImportsForCycles` / `checkServiceImportsForCycles` refuse)?
fn cycle(flows: &[(Flow, String)], n: usize) -> Option<String> {
    let f = &flows[n].0;
    cycle_path(flows, n).map(|path| {
        format!(
            "{} import of {:?} into {:?} from {:?} forms a cycle ({path}): nats-server would drop it",
            f.kind.as_str(),
            f.subject,
            f.importer,
            f.exporter
        )
    })
}

fn cycle_path(flows: &[(Flow, String)], n: usize) -> Option<String> {
    let start = &flows[n].0;
    let mut visited = BTreeSet::new();
    let mut stack =
        vec![(start.exporter.clone(), start.local().to_string(), vec![start.importer.clone(), start.exporter.clone()])];
    visited.insert(start.exporter.clone());
    while let Some((account, subject, path)) = stack.pop() {
        for (f, _) in flows.iter().filter(|(f, _)| f.importer == account && f.kind == start.kind) {
            let Some(next) = intersect(f.local(), &subject).map(|_| f.subject.clone()) else { continue };
            if f.exporter == start.importer {
                let mut p = path.clone();
                p.push(f.exporter.clone());
                return Some(p.join(" ← "));
            }
            if visited.insert(f.exporter.clone()) {
                let mut p = path.clone();
                p.push(f.exporter.clone());
                stack.push((f.exporter.clone(), next, p));
            }
        }
    }
    None
}

/// Flows in `new` and not in `old`, and in `old` and not in `new`.
pub fn diff<'a>(old: &'a [Flow], new: &'a [Flow]) -> (Vec<&'a Flow>, Vec<&'a Flow>) {
    let added = new.iter().filter(|f| !old.contains(f)).collect();
    let removed = old.iter().filter(|f| !new.contains(f)).collect();
    (added, removed)
}

#[cfg(test)]
mod tests;

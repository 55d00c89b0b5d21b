//! What a reconcile changes, in the words of the domain: accounts and users
//! created, re-keyed, re-issued or removed (and why), who gained or lost the
//! ability to decrypt which files, and what servers and hosts must do next.
//! A pure function of the old and the new store ([`diff`]); `clan-nats plan`
//! prints it without writing, `generate` prints its next steps after writing.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::manifest::{Manifest, UserEntry};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChangeSet {
    /// One line per change, e.g. `user core/person-service re-issued: permissions changed`.
    pub accounts: Vec<String>,
    pub users: Vec<String>,
    /// Flows between accounts added or removed.
    pub flows: Vec<String>,
    /// `host:nats1 gains 2 file(s)`, `admin-1 loses 36 file(s)`.
    pub recipients: Vec<String>,
    /// Files added, changed or removed (paths), for the count.
    pub files_changed: usize,
    /// Changes that stop deployed credentials from working (need confirmation).
    pub destructive: Vec<String>,
    /// What must happen next, one line each.
    pub next_steps: Vec<String>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.files_changed == 0
    }

    /// The plan as text, one section per kind of change.
    pub fn render(&self) -> String {
        if self.is_empty() {
            return "no changes: the store already matches the config\n".into();
        }
        let mut out = String::new();
        for (title, lines) in [
            ("accounts", &self.accounts),
            ("users", &self.users),
            ("flows between accounts", &self.flows),
            ("who can decrypt", &self.recipients),
            ("kills deployed credentials", &self.destructive),
            ("next steps", &self.next_steps),
        ] {
            if lines.is_empty() {
                continue;
            }
            out.push_str(&format!("{title}:\n"));
            for l in lines {
                out.push_str(&format!("  {l}\n"));
            }
        }
        out.push_str(&format!("{} file(s) would change\n", self.files_changed));
        out
    }
}

/// More users than this removed in one run asks for confirmation.
pub const MANY_USERS: usize = 3;

/// The change from `old` (absent for a new store) to `new`.
pub fn diff(old: Option<&Manifest>, new: &Manifest, files_changed: usize, rotating: bool) -> ChangeSet {
    let mut c = ChangeSet { files_changed, ..Default::default() };
    // By digest: the manifests list every file a run touched (and the same
    // digest for what it carried), so nothing needs to be read to compare.
    let changed = |path: &str| old.and_then(|m| m.files.get(path)) != new.files.get(path);
    let Some(om) = old else {
        let users: usize = new.accounts.iter().map(|a| a.users.len()).sum();
        c.accounts.push(format!("{} account(s) created (a new store)", new.accounts.len()));
        c.users.push(format!("{users} user(s) created"));
        c.flows.extend(new.flows.iter().map(|f| format!("new flow: {}", f.describe())));
        let what = if crate::fleet::server_dirs(new).is_empty() {
            "configure them with server/nats-server.conf (or the NixOS module)"
        } else {
            "configure each with server/<host>/nats-server.conf and the route credential server/cluster.env.age (or the NixOS module)"
        };
        c.next_steps.push(servers_step(new, what));
        return c;
    };

    // Accounts.
    let old_accounts: BTreeMap<&str, _> = om.accounts.iter().map(|a| (a.name.as_str(), a)).collect();
    let new_accounts: BTreeMap<&str, _> = new.accounts.iter().map(|a| (a.name.as_str(), a)).collect();
    let mut accounts_changed = false;
    for (name, a) in &new_accounts {
        match old_accounts.get(name) {
            None => {
                c.accounts.push(format!("account {name} created"));
                accounts_changed = true;
            }
            Some(o) if o.public_key != a.public_key => {
                let line =
                    format!("account {name} re-keyed: every user of it gets new creds, the old ones stop working");
                if !rotating {
                    c.destructive.push(line.clone());
                }
                c.accounts.push(line);
                accounts_changed = true;
            }
            Some(o) if changed(&a.jwt) => {
                let why = if o.signing_keys != a.signing_keys { "signing key rotated" } else { "claims changed" };
                c.accounts.push(format!("account {name} re-issued: {why}"));
                accounts_changed = true;
            }
            Some(_) => {}
        }
    }
    for name in old_accounts.keys().filter(|n| !new_accounts.contains_key(*n)) {
        let line = format!("account {name} removed: all its users stop working");
        c.destructive.push(line.clone());
        c.accounts.push(line);
        accounts_changed = true;
    }
    if om.operator.public_key == new.operator.public_key && changed(&new.operator.jwt) {
        c.accounts.push("operator re-issued (signing keys or system account changed)".into());
    }

    let (added, gone) = crate::wiring::diff(&om.flows, &new.flows);
    c.flows.extend(added.iter().map(|f| format!("new flow: {}", f.describe())));
    c.flows.extend(gone.iter().map(|f| format!("removed flow: {}", f.describe())));

    // Users.
    let users = |m| -> BTreeMap<(&str, &str), &UserEntry> {
        let m: &Manifest = m;
        m.accounts.iter().flat_map(|a| a.users.iter().map(move |u| ((a.name.as_str(), u.name.as_str()), u))).collect()
    };
    let (ou, nu) = (users(om), users(new));
    let mut removed = Vec::new();
    let mut host_losses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut redeploy: BTreeSet<String> = BTreeSet::new();
    for ((acct, name), u) in &nu {
        let id = format!("{acct}/{name}");
        match ou.get(&(*acct, *name)) {
            None => c.users.push(format!("user {id} created")),
            Some(o) => {
                if o.public_key != u.public_key {
                    c.users.push(format!("user {id} re-keyed: new creds, the old key is revoked"));
                } else if changed(&u.jwt) {
                    let mut why = Vec::new();
                    if o.permissions != u.permissions {
                        why.push("permissions changed");
                    }
                    if o.payload != u.payload {
                        why.push("payload limit changed");
                    }
                    if o.restrictions != u.restrictions {
                        why.push("limits changed");
                    }
                    if why.is_empty() {
                        why.push("its account's signing key changed");
                    }
                    c.users.push(format!("user {id} re-issued: {}", why.join(", ")));
                }
                let (oh, nh): (BTreeSet<&String>, BTreeSet<&String>) =
                    (o.hosts.iter().collect(), u.hosts.iter().collect());
                for h in oh.difference(&nh) {
                    host_losses.entry(h.to_string()).or_default().insert(name.to_string());
                }
                if oh != nh {
                    c.users.push(format!("user {id} hosts: {} -> {}", join(o.hosts.iter()), join(u.hosts.iter())));
                }
            }
        }
        if changed(&u.creds) {
            redeploy.extend(u.hosts.iter().cloned());
        }
    }
    for ((acct, name), o) in &ou {
        if !nu.contains_key(&(*acct, *name)) {
            c.users.push(format!("user {acct}/{name} removed: its key is revoked"));
            removed.push(format!("{acct}/{name}"));
            for h in &o.hosts {
                host_losses.entry(h.clone()).or_default();
            }
        }
    }
    if removed.len() > MANY_USERS {
        c.destructive.push(format!("{} users removed: {}", removed.len(), removed.join(", ")));
    }

    // Who can decrypt: per recipient name, files gained and lost.
    let mut gains: BTreeMap<&str, usize> = BTreeMap::new();
    let mut losses: BTreeMap<&str, usize> = BTreeMap::new();
    for (path, s) in &new.secrets {
        let before: BTreeSet<&str> =
            om.secrets.get(path).map(|o| o.recipients.iter().map(String::as_str).collect()).unwrap_or_default();
        let after: BTreeSet<&str> = s.recipients.iter().map(String::as_str).collect();
        if om.secrets.contains_key(path) {
            for r in after.difference(&before) {
                *gains.entry(r).or_default() += 1;
            }
            for r in before.difference(&after) {
                *losses.entry(r).or_default() += 1;
            }
        }
    }
    for (r, n) in &gains {
        c.recipients.push(format!("{r} can now decrypt {n} more file(s)"));
    }
    for (r, n) in &losses {
        c.recipients.push(format!("{r} can no longer decrypt {n} file(s) (copies it already has stay readable)"));
    }

    // Next steps.
    if om.operator.public_key == new.operator.public_key && changed(&new.operator.jwt) {
        c.next_steps
            .push(servers_step(new, "restart nats-server (the operator JWT changed, which a reload does not pick up)"));
    } else if accounts_changed && !crate::fleet::server_dirs(new).is_empty() {
        c.next_steps.push(servers_step(
            new,
            "push the changed accounts now: clan-nats push --dir DIR --identity KEY --server nats://HOST:PORT (a deploy also preloads them)",
        ));
    } else if accounts_changed {
        c.next_steps.push(servers_step(new, "reload nats-server (SIGHUP; the NixOS module does it on switch)"));
    }
    let known: BTreeSet<&str> = new.hosts.iter().map(|h| h.name.as_str()).collect();
    let redeploy: Vec<&String> = redeploy.iter().filter(|h| known.contains(h.as_str())).collect();
    if !redeploy.is_empty() {
        c.next_steps.push(format!("redeploy hosts {} (their creds changed)", join(redeploy.into_iter())));
    }
    for (h, lost) in &host_losses {
        let users: Vec<&String> = lost.iter().collect();
        if users.is_empty() {
            continue;
        }
        let cmds: Vec<String> = users.iter().map(|u| format!("clan-nats rotate user {u}")).collect();
        c.next_steps.push(format!(
            "host {h} still holds valid creds of {} until they are rotated: {}",
            join(users.iter()),
            cmds.join("; ")
        ));
    }
    for (r, _) in losses.iter().filter(|(r, _)| r.starts_with("specialist:") || r.starts_with("admin-")) {
        c.next_steps.push(format!("{r} may keep copies of what it could read: rotate those users if that matters"));
    }
    c
}

fn servers_step(m: &Manifest, what: &str) -> String {
    let servers: Vec<&str> = m.hosts.iter().filter(|h| h.nats_server).map(|h| h.name.as_str()).collect();
    if servers.is_empty() {
        format!("nats servers: {what}")
    } else {
        format!("nats servers {}: {what}", servers.join(", "))
    }
}

fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let v: Vec<String> = items.map(|i| i.to_string()).collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

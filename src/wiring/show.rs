//! Flows for people: `clan-nats info --flows` and the flow changes `generate` prints.

use serde_json::json;

use super::subject::overlaps;
use super::{Flow, Origin};
use crate::config::FlowType;
use crate::manifest::Manifest;

/// Who sends into a flow and who hears it: (senders, receivers) as `user (account)`.
/// A stream goes from the exporter's publishers to the importer's subscribers; a
/// service from the importer's requesters to the exporter's responders.
pub fn ends(m: &Manifest, f: &Flow) -> (Vec<String>, Vec<String>) {
    let users = |account: &str, subject: &str, publish: bool| -> Vec<String> {
        m.accounts
            .iter()
            .filter(|a| a.name == account)
            .flat_map(|a| &a.users)
            .filter(|u| {
                let list = if publish { &u.permissions.publish.allow } else { &u.permissions.subscribe.allow };
                list.iter().any(|s| overlaps(s.split(' ').next().unwrap_or_default(), subject))
            })
            .map(|u| format!("{} ({account})", u.name))
            .collect()
    };
    match f.kind {
        FlowType::Stream => (users(&f.exporter, &f.subject, true), users(&f.importer, f.local(), false)),
        FlowType::Service => (users(&f.importer, f.local(), true), users(&f.exporter, &f.subject, false)),
    }
}

pub fn text(m: &Manifest) -> String {
    if m.flows.is_empty() {
        return "no flows between accounts\n".into();
    }
    let mut out = String::new();
    for f in &m.flows {
        let (senders, receivers) = ends(m, f);
        out.push_str(&format!("{}\n", f.describe()));
        out.push_str(&format!("  {} → {}\n", senders.join(", "), receivers.join(", ")));
    }
    out
}

pub fn json(m: &Manifest) -> serde_json::Value {
    let flows: Vec<serde_json::Value> = m
        .flows
        .iter()
        .map(|f| {
            let (senders, receivers) = ends(m, f);
            json!({
                "exporter": f.exporter,
                "importer": f.importer,
                "subject": f.subject,
                "local_subject": f.local_subject,
                "type": f.kind,
                "origin": match f.origin { Origin::Derived => "derived", Origin::Declared => "declared" },
                "senders": senders,
                "receivers": receivers,
            })
        })
        .collect();
    json!({ "flows": flows })
}

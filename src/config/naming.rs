//! The names the config gives NATS entities: each unit's account, the
//! operator, the system account. Pure functions of the config, used by both
//! validation (to check the names) and the plan (to build on them), so that
//! validation never depends on the plan.

use std::collections::HashMap;

use super::{Config, Unit};

/// The system account (its name is reserved).
pub const SYSTEM_ACCOUNT: &str = "SYS";

/// The account each unit belongs to, index for index: its own `nats_account_name`,
/// else its nearest ancestor's, else (top level) its name in lower case.
/// Requires a parent tree without unknown parents or cycles (validation checks).
pub fn unit_accounts(units: &[Unit]) -> Vec<String> {
    let index: HashMap<&str, usize> = units.iter().enumerate().map(|(i, u)| (u.name.as_str(), i)).collect();
    (0..units.len())
        .map(|mut i| loop {
            let u = &units[i];
            if let Some(a) = &u.nats_account_name {
                break a.clone();
            }
            match u.parent.as_deref().and_then(|p| index.get(p)) {
                Some(&p) => i = p,
                None => break u.name.to_ascii_lowercase(),
            }
        })
        .collect()
}

/// The operator's name: `nsc_export_config.operator_name`, else `organization.name`.
pub fn operator_name(c: &Config) -> String {
    c.nsc_export_config.as_ref().and_then(|n| n.operator_name.clone()).unwrap_or_else(|| c.organization.name.clone())
}

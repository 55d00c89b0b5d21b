//! The crate's error, with the exit code each kind maps to.

use crate::config::ConfigError;
use crate::generate::GenerateError;
use crate::governance::GovernanceError;
use crate::nsc::NscError;
use crate::store::pin::PinError;
use crate::store::tree::StoreError;
use crate::vault::VaultError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Generate(#[from] GenerateError),
    #[error("{0}")]
    Vault(#[from] VaultError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Nsc(#[from] NscError),
    #[error("{0}")]
    Governance(#[from] GovernanceError),
    #[error("{0}")]
    Pins(#[from] PinError),
    /// Bad arguments or a request that is refused as such.
    #[error("{0}")]
    Usage(String),
    /// The identity given may not do this.
    #[error("{0}")]
    Denied(String),
    #[error("verification failed with {} problem(s):\n  {}", .0.len(), .0.join("\n  "))]
    Verify(Vec<String>),
    /// DIR differs from the state its owner signed: nothing was written.
    #[error("{dir}: refusing to use this store: it is not in the state its owner signed ({} problem(s)):\n  {}\nNothing was written. `clan-nats verify {dir}` shows the full check; restore the files from a commit the owner made.", .problems.len(), .problems.join("\n  "))]
    Untrusted { dir: String, problems: Vec<String> },
    /// The store's organization has no pin on this machine.
    #[error("{dir}: this store (organization {org_id}, operator {operator}) is not pinned on this machine ({pins}){}. Nothing was written. If it is yours, compare the operator key with one you trust (your servers' `operator` setting, the key you noted when you created it) and adopt it: clan-nats trust --dir {dir} --operator {operator}", if .same_operator.is_empty() { String::new() } else { format!("; the same operator is pinned for organization(s) {}", .same_operator.join(", ")) })]
    NotPinned { dir: String, org_id: String, operator: String, pins: String, same_operator: Vec<String> },
    #[error("{0}")]
    Pin(String),
    /// Talking to running servers failed (`push`).
    #[error("{0}")]
    Live(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    /// 2: bad input; 3: the identity may not do this; 1: anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_)
            | Error::Usage(_)
            | Error::Nsc(NscError::Input(_))
            | Error::Vault(VaultError::BadRecipient(_)) => 2,
            Error::Generate(GenerateError::NotOwner { .. })
            | Error::Nsc(NscError::NotOwner { .. })
            | Error::Governance(GovernanceError::NotMaster(_))
            | Error::Denied(_)
            | Error::Untrusted { .. }
            | Error::Vault(VaultError::UntrustedIdentity { .. })
            | Error::NotPinned { .. } => 3,
            Error::Nsc(NscError::Interrupted(sig)) => 128 + sig,
            _ => 1,
        }
    }

    /// A closed standard output (`clan-nats list users | head -1`): not an error.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The error as `--json` prints it: `{"error": {...}}` with the message, the
    /// exit code and, where the error has them, the file and its issues by field path.
    pub fn to_json(&self) -> serde_json::Value {
        let kind = match self {
            Error::Config(_) => "config",
            Error::Usage(_) => "usage",
            Error::Denied(_) | Error::Generate(GenerateError::NotOwner { .. }) => "denied",
            Error::Verify(_) => "verify",
            Error::Untrusted { .. } => "untrusted",
            Error::NotPinned { .. } => "not-pinned",
            Error::Vault(_) => "vault",
            Error::Governance(_) => "governance",
            Error::Store(_) => "store",
            Error::Nsc(_) => "nsc",
            Error::Pins(_) | Error::Pin(_) => "pins",
            Error::Generate(_) => "generate",
            Error::Output(_) => "output",
            Error::Live(_) => "live",
        };
        let mut e = serde_json::json!({"kind": kind, "message": self.to_string(), "exit_code": self.exit_code()});
        match self {
            Error::Config(c) => {
                e["file"] = c.file.to_string().into();
                e["issues"] =
                    c.issues.iter().map(|i| serde_json::json!({"path": i.path, "message": i.message})).collect();
            }
            Error::Verify(p) => e["problems"] = serde_json::json!(p),
            Error::Untrusted { dir, problems } => {
                e["dir"] = dir.clone().into();
                e["problems"] = serde_json::json!(problems);
            }
            Error::NotPinned { dir, org_id, operator, .. } => {
                e["dir"] = dir.clone().into();
                e["org_id"] = org_id.clone().into();
                e["operator"] = operator.clone().into();
            }
            _ => {}
        }
        serde_json::json!({ "error": e })
    }
}

//! The crate's error, with the exit code each kind maps to.

use crate::config::ConfigError;
use crate::generate::GenerateError;
use crate::governance::GovernanceError;
use crate::nsc::NscError;
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
    /// Bad arguments or a request that is refused as such.
    #[error("{0}")]
    Usage(String),
    /// The identity given may not do this.
    #[error("{0}")]
    Denied(String),
    #[error("verification failed with {} problem(s):\n  {}", .0.len(), .0.join("\n  "))]
    Verify(Vec<String>),
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
            | Error::Denied(_) => 3,
            _ => 1,
        }
    }
}

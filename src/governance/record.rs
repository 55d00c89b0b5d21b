//! `ownership.json` and `ownership.sig`.

use nkeys::KeyPair;
use serde::{Deserialize, Serialize};

use super::{canonical, invalid, rfc3339, sha256_tagged, sign, GovernanceError, OWNERSHIP, OWNERSHIP_SIG};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ownership {
    pub org_id: String,
    pub owner_id: String,
    pub owner_name: String,
    pub owner_recipient: String,
    pub created_at: String,
    pub team_members: Vec<Member>,
    /// `sha256:` of the canonical record without this field.
    pub signed_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub role: String,
    pub recipient: String,
    pub units: Vec<String>,
    pub added_at: String,
    pub active: bool,
}

pub const SPECIALIST: &str = "specialist";

impl Ownership {
    pub fn new(owner_id: &str, owner_name: &str, owner_recipient: &str, now: i64) -> Ownership {
        let mut o = Ownership {
            org_id: uuid::Uuid::new_v4().to_string(),
            owner_id: owner_id.into(),
            owner_name: owner_name.into(),
            owner_recipient: owner_recipient.into(),
            created_at: rfc3339(now),
            team_members: Vec::new(),
            signed_hash: String::new(),
        };
        o.signed_hash = o.compute_hash();
        o
    }

    /// The hash of the canonical record with `signed_hash` left out.
    pub fn compute_hash(&self) -> String {
        let mut v = serde_json::to_value(self).expect("serializes");
        v.as_object_mut().expect("an object").remove("signed_hash");
        sha256_tagged(&canonical(&v))
    }

    pub fn parse(bytes: &[u8]) -> Result<Ownership, GovernanceError> {
        serde_json::from_slice(bytes).map_err(|e| invalid(OWNERSHIP, e.to_string()))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("serializes");
        v.push(b'\n');
        v
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.team_members.iter().find(|m| m.id == id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnershipSig {
    pub state_hash: String,
    pub signed_by: String,
    pub signing_key: String,
    pub signed_at: String,
    pub signature: String,
}

impl OwnershipSig {
    pub fn sign(o: &Ownership, operator: &KeyPair, now: i64) -> OwnershipSig {
        let state_hash = o.compute_hash();
        OwnershipSig {
            signature: sign(operator, &state_hash),
            state_hash,
            signed_by: o.owner_id.clone(),
            signing_key: operator.public_key(),
            signed_at: rfc3339(now),
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<OwnershipSig, GovernanceError> {
        serde_json::from_slice(bytes).map_err(|e| invalid(OWNERSHIP_SIG, e.to_string()))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("serializes");
        v.push(b'\n');
        v
    }
}

//! Operator claims (nats-io/jwt `v2/operator_claims.go`).

use serde::{Deserialize, Serialize};

use super::{is_false, ClaimKind, Claims, KeyKind};

/// `nats` of an operator JWT, fields in Go's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorNats {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account_server_url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operator_service_urls: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub system_account: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub assert_server_version: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub strict_signing_key_usage: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
}

impl Default for OperatorNats {
    fn default() -> Self {
        OperatorNats {
            signing_keys: Vec::new(),
            account_server_url: String::new(),
            operator_service_urls: Vec::new(),
            system_account: String::new(),
            assert_server_version: String::new(),
            strict_signing_key_usage: false,
            tags: Vec::new(),
            kind: OperatorNats::TYPE.into(),
            version: 2,
        }
    }
}

impl ClaimKind for OperatorNats {
    const TYPE: &'static str = "operator";
    const SUBJECT: KeyKind = KeyKind::Operator;
    const ISSUERS: &'static [KeyKind] = &[KeyKind::Operator];
    const ISSUERS_TEXT: &'static str = "an operator key";
    fn nats_type(&self) -> &str {
        &self.kind
    }
    fn nats_version(&self) -> u64 {
        self.version
    }
}

pub type OperatorClaims = Claims<OperatorNats>;

impl OperatorClaims {
    /// True when `key` may sign accounts for this operator: the identity key
    /// (unless strict signing key usage is on) or one of its signing keys.
    pub fn trusts(&self, key: &str) -> bool {
        (!self.nats.strict_signing_key_usage && key == self.std.sub) || self.nats.signing_keys.iter().any(|k| k == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::JwtError;
    use nkeys::KeyPair;

    #[test]
    fn round_trip_self_signed() {
        let op = KeyPair::new_operator();
        let sk = KeyPair::new_operator();
        let mut c = OperatorClaims::new(op.public_key(), "acme", OperatorNats::default());
        c.nats.signing_keys.push(sk.public_key());
        let tok = c.encode(&op, 100).unwrap();
        let back = OperatorClaims::decode(&tok).unwrap();
        assert_eq!(back, c);
        assert!(back.trusts(&sk.public_key()));
        assert!(back.trusts(&op.public_key()));
        assert!(!back.trusts(&KeyPair::new_operator().public_key()));
    }

    #[test]
    fn subject_and_issuer_kinds_are_checked() {
        let acct = KeyPair::new_account();
        let op = KeyPair::new_operator();
        let mut c = OperatorClaims::new(acct.public_key(), "x", OperatorNats::default());
        assert!(matches!(c.encode(&op, 1), Err(JwtError::SubjectKind { .. })));
        let mut c = OperatorClaims::new(op.public_key(), "x", OperatorNats::default());
        assert!(matches!(c.encode(&acct, 1), Err(JwtError::IssuerKind { .. })));
    }

    #[test]
    fn account_token_is_not_an_operator() {
        let op = KeyPair::new_operator();
        let acct = KeyPair::new_account();
        let mut a = crate::jwt::AccountClaims::new(acct.public_key(), "a", crate::jwt::AccountNats::default());
        let tok = a.encode(&op, 1).unwrap();
        assert!(matches!(OperatorClaims::decode(&tok), Err(JwtError::Type { .. })));
    }
}

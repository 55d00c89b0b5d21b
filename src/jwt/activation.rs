//! Activation claims (nats-io/jwt `v2/activation_claims.go`): the token an
//! exporting account gives an importing account for a private export
//! (`token_req: true`). `sub` is the importer, `iss` the exporter or one of its
//! signing keys (then `issuer_account` names the exporter), `nats.subject` the
//! subjects it grants and `nats.kind` the import type.

use serde::{Deserialize, Serialize};

use super::account::AccountClaims;
use super::{ClaimKind, Claims, KeyKind};

/// `Activation` plus `GenericFields`, in Go's field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationNats {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// `stream` or `service`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer_account: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(rename = "type")]
    pub kind_of_claim: String,
    pub version: u64,
}

impl ActivationNats {
    pub fn new(subject: &str, kind: &str, issuer_account: &str) -> ActivationNats {
        ActivationNats {
            subject: subject.into(),
            kind: kind.into(),
            issuer_account: issuer_account.into(),
            tags: Vec::new(),
            kind_of_claim: ActivationNats::TYPE.into(),
            version: 2,
        }
    }
}

impl ClaimKind for ActivationNats {
    const TYPE: &'static str = "activation";
    const SUBJECT: KeyKind = KeyKind::Account;
    const ISSUERS: &'static [KeyKind] = &[KeyKind::Account, KeyKind::Operator];
    const ISSUERS_TEXT: &'static str = "an account key";
    fn nats_type(&self) -> &str {
        &self.kind_of_claim
    }
    fn nats_version(&self) -> u64 {
        self.version
    }
}

pub type ActivationClaims = Claims<ActivationNats>;

impl ActivationClaims {
    /// An activation for `importer` on `subject`, named like nsc names them (the subject).
    pub fn for_import(importer: &str, subject: &str, kind: &str, exporter: &str) -> ActivationClaims {
        ActivationClaims::new(importer, subject, ActivationNats::new(subject, kind, exporter))
    }

    /// The exporting account this token speaks for: `issuer_account`, else `iss`.
    pub fn exporter(&self) -> &str {
        if self.nats.issuer_account.is_empty() {
            &self.std.iss
        } else {
            &self.nats.issuer_account
        }
    }

    /// Signed by `exporter` itself, or by one of its signing keys with `issuer_account` set.
    pub fn signed_for(&self, exporter: &AccountClaims) -> bool {
        if self.std.iss == exporter.std.sub {
            self.nats.issuer_account.is_empty() || self.nats.issuer_account == exporter.std.sub
        } else {
            self.nats.issuer_account == exporter.std.sub
                && exporter.nats.signing_keys.iter().any(|k| k.key() == self.std.iss)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{go_json, AccountNats, JwtError};
    use nkeys::KeyPair;

    #[test]
    fn payload_shape_matches_go() {
        // Test vector: json.Marshal of these ActivationClaims, run with Debian's
        // golang-github-nats-io-jwt-dev 2.3.0.
        let mut c = ActivationClaims::for_import("AIMP", "thecowboyai.org.person.>", "stream", "AEXP");
        c.std.iat = 1795392119;
        c.std.iss = "ASK".into();
        assert_eq!(
            String::from_utf8(go_json(&c)).unwrap(),
            r#"{"iat":1795392119,"iss":"ASK","name":"thecowboyai.org.person.\u003e","sub":"AIMP","nats":{"subject":"thecowboyai.org.person.\u003e","kind":"stream","issuer_account":"AEXP","type":"activation","version":2}}"#
        );
    }

    #[test]
    fn signed_by_a_signing_key_of_the_exporter() {
        let op = KeyPair::new_operator();
        let exp = KeyPair::new_account();
        let sk = KeyPair::new_account();
        let imp = KeyPair::new_account();
        let mut ea = AccountClaims::new(exp.public_key(), "core", AccountNats::default());
        ea.nats.signing_keys = vec![sk.public_key().into()];
        ea.encode(&op, 1).unwrap();
        let mut a = ActivationClaims::for_import(&imp.public_key(), "a.>", "stream", &exp.public_key());
        let tok = a.encode(&sk, 5).unwrap();
        let back = ActivationClaims::decode(&tok).unwrap();
        assert_eq!(back.exporter(), exp.public_key());
        assert!(back.signed_for(&ea));
        // A stranger's key claiming to speak for the exporter is not trusted.
        let mut forged = ActivationClaims::for_import(&imp.public_key(), "a.>", "stream", &exp.public_key());
        let tok = forged.encode(&KeyPair::new_account(), 5).unwrap();
        assert!(!ActivationClaims::decode(&tok).unwrap().signed_for(&ea));
        // The subject must be an account.
        let mut bad = ActivationClaims::for_import(&KeyPair::new_user().public_key(), "a", "stream", "");
        assert!(matches!(bad.encode(&sk, 1), Err(JwtError::SubjectKind { .. })));
    }
}

//! User claims (nats-io/jwt `v2/user_claims.go`, permission types of `types.go`).

use serde::{Deserialize, Serialize};

use super::{is_false, ClaimKind, Claims, KeyKind};

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// `Permission`: allow and deny lists. Go always writes the object, even empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Permission {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// `ResponsePermission`: `ttl` is a Go `time.Duration`, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsePermission {
    pub max: i64,
    pub ttl: i64,
}

/// `Permissions`: pub, sub and the optional response permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Permissions {
    #[serde(rename = "pub", default)]
    pub publish: Permission,
    #[serde(rename = "sub", default)]
    pub subscribe: Permission,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<ResponsePermission>,
}

/// `TimeRange`: a window of the day, `HH:MM:SS` (Go's `15:04:05`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end: String,
}

/// `UserPermissionLimits`: the template of a scoped signing key (`UserScope.template`),
/// fields in Go's order. A user signed by a scoped key carries none of these itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UserPermissionLimits {
    #[serde(flatten)]
    pub permissions: Permissions,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub src: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<TimeRange>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub times_location: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subs: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub data: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub payload: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub bearer_token: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub proxy_required: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_connection_types: Vec<String>,
}

/// `nats` of a user JWT, fields in Go's order: the embedded
/// `UserPermissionLimits` (permissions, limits, flags), then issuer_account and
/// the generic fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserNats {
    #[serde(flatten)]
    pub limits: UserPermissionLimits,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer_account: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
}

impl Default for UserNats {
    /// `NewUserClaims`: no permissions, unlimited subs/data/payload.
    fn default() -> Self {
        UserNats {
            limits: UserPermissionLimits { subs: -1, data: -1, payload: -1, ..Default::default() },
            issuer_account: String::new(),
            tags: Vec::new(),
            kind: UserNats::TYPE.into(),
            version: 2,
        }
    }
}

/// Go embeds `UserPermissionLimits` in `User`; its fields read through as Go's do.
impl std::ops::Deref for UserNats {
    type Target = UserPermissionLimits;
    fn deref(&self) -> &UserPermissionLimits {
        &self.limits
    }
}

impl std::ops::DerefMut for UserNats {
    fn deref_mut(&mut self) -> &mut UserPermissionLimits {
        &mut self.limits
    }
}

impl ClaimKind for UserNats {
    const TYPE: &'static str = "user";
    const SUBJECT: KeyKind = KeyKind::User;
    const ISSUERS: &'static [KeyKind] = &[KeyKind::Account];
    const ISSUERS_TEXT: &'static str = "an account key";
    fn nats_type(&self) -> &str {
        &self.kind
    }
    fn nats_version(&self) -> u64 {
        self.version
    }
}

pub type UserClaims = Claims<UserNats>;

impl UserNats {
    /// A scoped user: no permissions and no limits at all (`UserPermissionLimits{}`),
    /// as nats-io/jwt `HasEmptyPermissions` requires of a user signed by a scoped key.
    pub fn scoped(issuer_account: &str) -> UserNats {
        UserNats {
            limits: UserPermissionLimits::default(),
            issuer_account: issuer_account.into(),
            ..Default::default()
        }
    }
}

impl UserClaims {
    /// The account this user belongs to: `issuer_account` when a signing key signed it, else `iss`.
    pub fn account(&self) -> &str {
        if self.nats.issuer_account.is_empty() {
            &self.std.iss
        } else {
            &self.nats.issuer_account
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::JwtError;
    use nkeys::KeyPair;

    #[test]
    fn matches_go_output_shape() {
        let mut n = UserNats::default();
        n.permissions.publish.allow = vec!["thecowboyai.org.person.>".into()];
        n.permissions.subscribe.allow = vec!["thecowboyai.org.person.>".into(), "_INBOX.>".into()];
        n.permissions.resp = Some(ResponsePermission { max: 1, ttl: 0 });
        n.issuer_account = "AARH".into();
        let json = String::from_utf8(crate::jwt::go_json(&n)).unwrap();
        // The reference output of the Go library (nats-reference.md, section 2).
        assert_eq!(
            json,
            r#"{"pub":{"allow":["thecowboyai.org.person.\u003e"]},"sub":{"allow":["thecowboyai.org.person.\u003e","_INBOX.\u003e"]},"resp":{"max":1,"ttl":0},"subs":-1,"data":-1,"payload":-1,"issuer_account":"AARH","type":"user","version":2}"#
        );
    }

    #[test]
    fn signed_by_account_signing_key() {
        let acct = KeyPair::new_account();
        let sk = KeyPair::new_account();
        let u = KeyPair::new_user();
        let mut c = UserClaims::new(u.public_key(), "svc", UserNats::default());
        c.nats.issuer_account = acct.public_key();
        let tok = c.encode(&sk, 5).unwrap();
        let back = UserClaims::decode(&tok).unwrap();
        assert_eq!(back.std.iss, sk.public_key());
        assert_eq!(back.account(), acct.public_key());
    }

    #[test]
    fn operator_cannot_sign_users() {
        let u = KeyPair::new_user();
        let mut c = UserClaims::new(u.public_key(), "svc", UserNats::default());
        assert!(matches!(c.encode(&KeyPair::new_operator(), 1), Err(JwtError::IssuerKind { .. })));
        let mut c = UserClaims::new(KeyPair::new_account().public_key(), "svc", UserNats::default());
        assert!(matches!(c.encode(&KeyPair::new_account(), 1), Err(JwtError::SubjectKind { .. })));
    }
}

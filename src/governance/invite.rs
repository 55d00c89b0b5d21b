//! Invitations: the owner signs an invite token; the specialist answers it with
//! a join request carrying their recipient; the owner accepts it after checking
//! the recipient's fingerprint over another channel.
//!
//! `clan-nats-invite.v1.<b64url(json)>.<b64url(ed25519 signature by the operator key)>`
//! `clan-nats-join.v1.<b64url(json {token, recipient})>`

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const INVITE_PREFIX: &str = "clan-nats-invite.v1.";
const JOIN_PREFIX: &str = "clan-nats-join.v1.";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    pub org_id: String,
    /// The operator identity key that signed the token (compare it out of band).
    pub operator: String,
    pub member_id: String,
    pub name: String,
    pub units: Vec<String>,
    pub issued_at: i64,
    pub expires: i64,
    pub nonce: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InviteError {
    #[error("not an invite token (expected {INVITE_PREFIX}…)")]
    NotInvite,
    #[error("not a join request (expected {JOIN_PREFIX}…)")]
    NotJoin,
    #[error("the token is damaged: {0}")]
    Damaged(String),
    #[error("the token's signature does not verify: it was altered or not signed by operator {0}")]
    BadSignature(String),
}

impl Invite {
    pub fn sign(&self, operator: &KeyPair) -> String {
        let body = BASE64URL_NOPAD.encode(&serde_json::to_vec(self).expect("serializes"));
        let sig = operator.sign(body.as_bytes()).expect("a seed can sign");
        format!("{INVITE_PREFIX}{body}.{}", BASE64URL_NOPAD.encode(&sig))
    }

    /// Decode a token and check its signature against the operator key it names.
    pub fn open(token: &str) -> Result<Invite, InviteError> {
        let rest = token.trim().strip_prefix(INVITE_PREFIX).ok_or(InviteError::NotInvite)?;
        let (body, sig) = rest.split_once('.').ok_or_else(|| InviteError::Damaged("no signature".into()))?;
        let bytes = BASE64URL_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| InviteError::Damaged("body is not base64url".into()))?;
        let invite: Invite = serde_json::from_slice(&bytes).map_err(|e| InviteError::Damaged(e.to_string()))?;
        let sig = BASE64URL_NOPAD
            .decode(sig.as_bytes())
            .map_err(|_| InviteError::Damaged("signature is not base64url".into()))?;
        let kp = KeyPair::from_public_key(&invite.operator)
            .ok()
            .filter(|_| invite.operator.starts_with('O'))
            .ok_or_else(|| InviteError::Damaged(format!("{:?} is not an operator key", invite.operator)))?;
        kp.verify(body.as_bytes(), &sig).map_err(|_| InviteError::BadSignature(invite.operator.clone()))?;
        Ok(invite)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub token: String,
    pub recipient: String,
}

impl JoinRequest {
    pub fn encode(&self) -> String {
        format!("{JOIN_PREFIX}{}", BASE64URL_NOPAD.encode(&serde_json::to_vec(self).expect("serializes")))
    }

    pub fn decode(text: &str) -> Result<JoinRequest, InviteError> {
        let body = text.trim().strip_prefix(JOIN_PREFIX).ok_or(InviteError::NotJoin)?;
        let bytes =
            BASE64URL_NOPAD.decode(body.as_bytes()).map_err(|_| InviteError::Damaged("not base64url".into()))?;
        serde_json::from_slice(&bytes).map_err(|e| InviteError::Damaged(e.to_string()))
    }
}

/// A short, readable fingerprint of a recipient: 80 bits of its SHA-256 in
/// four groups of base32, e.g. `K4TQ-3XGA-PZ7M-Q2DL`.
pub fn fingerprint(recipient: &str) -> String {
    let digest = Sha256::digest(recipient.trim().as_bytes());
    let b32 = BASE32_NOPAD.encode(&digest[..10]);
    b32.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).expect("ascii")).collect::<Vec<_>>().join("-")
}

/// Fingerprints compare without case, spaces or dashes.
pub fn same_fingerprint(a: &str, b: &str) -> bool {
    let norm =
        |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect::<String>();
    norm(a) == norm(b)
}

/// `72h`, `30m`, `7d`, `3600s` → seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = num.parse().map_err(|_| format!("{text:?} is not a duration like 72h, 30m, 7d or 3600s"))?;
    let mult = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use s, m, h or d)")),
    };
    if n <= 0 {
        return Err(format!("{text:?}: an invitation must last at least 1 second"));
    }
    let secs = n.checked_mul(mult).ok_or_else(|| format!("{text:?} is too long"))?;
    if secs > 365 * 86_400 {
        return Err(format!("{text:?}: an invitation lasts at most 365 days"));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> Invite {
        Invite {
            org_id: "org".into(),
            operator: String::new(),
            member_id: "github:bob".into(),
            name: "Bob".into(),
            units: vec!["Billing".into()],
            issued_at: 10,
            expires: 100,
            nonce: "n".into(),
        }
    }

    #[test]
    fn signed_tokens_open_and_tampered_ones_do_not() {
        let op = KeyPair::new_operator();
        let mut i = invite();
        i.operator = op.public_key();
        let token = i.sign(&op);
        assert_eq!(Invite::open(&token).unwrap(), i);
        // Change the body (another unit) but keep the signature.
        let mut forged = i.clone();
        forged.units = vec!["Core".into()];
        let body = BASE64URL_NOPAD.encode(&serde_json::to_vec(&forged).unwrap());
        let sig = token.rsplit('.').next().unwrap();
        assert!(matches!(Invite::open(&format!("{INVITE_PREFIX}{body}.{sig}")), Err(InviteError::BadSignature(_))));
        // Signed by another operator key while naming ours.
        let other = KeyPair::new_operator();
        assert!(matches!(Invite::open(&i.sign(&other)), Err(InviteError::BadSignature(_))));
        assert_eq!(Invite::open("hello"), Err(InviteError::NotInvite));
    }

    #[test]
    fn fingerprints() {
        let f = fingerprint("age1abc");
        assert_eq!(f.len(), 19);
        assert_eq!(f, fingerprint(" age1abc\n"));
        assert_ne!(f, fingerprint("age1abd"));
        assert!(same_fingerprint(&f, &f.to_lowercase().replace('-', " ")));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("72h"), Ok(259_200));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert!(parse_duration("0h").is_err());
        assert!(parse_duration("400d").is_err());
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("h").is_err());
    }
}

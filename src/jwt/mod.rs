//! NATS JWT v2: the shared core (header, standard claims, `jti`, sign, decode).
//!
//! Byte-for-byte the scheme of nats-io/jwt `v2/claims.go` and `v2/decoder.go`:
//! header `{"typ":"JWT","alg":"ed25519-nkey"}`, `jti` = base32 (no padding) of
//! SHA-512/256 over the JSON of the standard claims with `jti` blanked, an
//! ed25519 signature (nkeys) over `b64url(header).b64url(payload)`.
//! One claim type per file: [`operator`], [`account`], [`user`]; [`creds`] is the
//! `.creds` format.

pub mod account;
pub mod activation;
pub mod creds;
pub mod operator;
pub mod user;

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use nkeys::KeyPair;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512_256};

pub use account::{AccountClaims, AccountNats, Export, Import};
pub use activation::{ActivationClaims, ActivationNats};
pub use operator::{OperatorClaims, OperatorNats};
pub use user::{UserClaims, UserNats};

/// The only header nats-io/jwt v2 writes.
pub const HEADER_JSON: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;
/// `jwt.Decode` refuses tokens larger than this.
pub const MAX_TOKEN_SIZE: usize = 1024 * 1024;
/// The `nats.version` of every claim we write.
pub const VERSION: u32 = 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("token is larger than 1 MiB")]
    TooLarge,
    #[error("expected 3 dot-separated parts, found {0}")]
    Parts(usize),
    #[error("{0} is not base64url without padding")]
    Base64(&'static str),
    #[error("header is not {HEADER_JSON}: {0}")]
    Header(String),
    #[error("payload is not valid claims JSON: {0}")]
    Payload(String),
    #[error("claim type is {found:?}, expected {expected:?}")]
    Type { expected: &'static str, found: String },
    #[error("nats.version is {0}, expected 2")]
    Version(u64),
    #[error("issuer {0:?} is not a public nkey")]
    IssuerKey(String),
    #[error("signature does not verify with issuer {0}")]
    Signature(String),
    #[error("{kind} claims must be issued by {allowed}, but issuer is {issuer}")]
    IssuerKind { kind: &'static str, allowed: &'static str, issuer: String },
    #[error("{kind} claims need a subject that is {expected} public key, got {subject:?}")]
    SubjectKind { kind: &'static str, expected: &'static str, subject: String },
    #[error("claims have no name (nsc refuses nameless JWTs)")]
    NoName,
    #[error("signing failed: {0}")]
    Sign(String),
}

/// The standard claims (`ClaimsData` in nats-io/jwt), in Go's field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClaimsData {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub aud: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exp: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub iat: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub iss: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nbf: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub: String,
}

pub(crate) fn is_zero(v: &i64) -> bool {
    *v == 0
}

pub(crate) fn is_false(v: &bool) -> bool {
    !*v
}

impl ClaimsData {
    /// `ClaimsData.hash()`: SHA-512/256 over the standard claims with `jti` blanked.
    pub fn compute_jti(&self) -> String {
        let mut blank = self.clone();
        blank.jti.clear();
        let json = go_json(&blank);
        BASE32_NOPAD.encode(&Sha512_256::digest(&json))
    }
}

/// JSON exactly as Go's `encoding/json` writes it: serde_json's compact form plus
/// Go's HTML-safe escapes of `<`, `>`, `&`, U+2028 and U+2029. Those characters
/// can only occur inside JSON strings, so replacing them is exact.
pub fn go_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let json = serde_json::to_string(value).expect("claims always serialize");
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json.into_bytes();
    }
    let mut out = String::with_capacity(json.len() + 32);
    for ch in json.chars() {
        match ch {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// The key kinds of nkeys, by the first letter of a public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Operator,
    Account,
    User,
}

impl KeyKind {
    pub fn prefix(self) -> char {
        match self {
            KeyKind::Operator => 'O',
            KeyKind::Account => 'A',
            KeyKind::User => 'U',
        }
    }

    fn article(self) -> &'static str {
        match self {
            KeyKind::Operator => "an operator",
            KeyKind::Account => "an account",
            KeyKind::User => "a user",
        }
    }
}

/// True when `key` is a valid public nkey of the given kind (checksum included).
pub fn is_public_key(key: &str, kind: KeyKind) -> bool {
    key.starts_with(kind.prefix()) && KeyPair::from_public_key(key).is_ok()
}

/// What each claim type says about itself: its `nats.type`, which key kind its
/// subject is, and which key kinds may sign it (`ExpectedPrefixes` upstream).
pub trait ClaimKind: Serialize + DeserializeOwned {
    const TYPE: &'static str;
    const SUBJECT: KeyKind;
    const ISSUERS: &'static [KeyKind];
    const ISSUERS_TEXT: &'static str;
    fn nats_type(&self) -> &str;
    fn nats_version(&self) -> u64;
}

/// A complete claim set: standard claims plus the type-specific `nats` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims<N> {
    #[serde(flatten)]
    pub std: ClaimsData,
    pub nats: N,
}

impl<N: ClaimKind> Claims<N> {
    pub fn new(subject: impl Into<String>, name: impl Into<String>, nats: N) -> Self {
        Claims { std: ClaimsData { sub: subject.into(), name: name.into(), ..Default::default() }, nats }
    }

    /// Encode and sign. `iat` is a parameter, never the clock: callers decide it
    /// (a content change must raise it; see the resolver pitfall in the README).
    pub fn encode(&mut self, signer: &KeyPair, iat: i64) -> Result<String, JwtError> {
        self.std.iss = signer.public_key();
        self.std.iat = iat;
        self.check_kinds()?;
        self.std.jti = self.std.compute_jti();
        let payload = go_json(self);
        let mut token = String::with_capacity(64 + payload.len() * 4 / 3 + 90);
        token.push_str(&BASE64URL_NOPAD.encode(HEADER_JSON.as_bytes()));
        token.push('.');
        token.push_str(&BASE64URL_NOPAD.encode(&payload));
        let sig = signer.sign(token.as_bytes()).map_err(|e| JwtError::Sign(e.to_string()))?;
        token.push('.');
        token.push_str(&BASE64URL_NOPAD.encode(&sig));
        Ok(token)
    }

    /// The payload JSON this claim set would have if encoded by `issuer` at `iat`,
    /// without signing. Reconcile compares it with an existing token's payload.
    pub fn payload_as(&self, issuer: &str, iat: i64) -> Vec<u8> {
        let mut c = Claims { std: self.std.clone(), nats: &self.nats };
        c.std.iss = issuer.to_string();
        c.std.iat = iat;
        c.std.jti.clear();
        c.std.jti = c.std.compute_jti();
        go_json(&c)
    }

    fn check_kinds(&self) -> Result<(), JwtError> {
        if self.std.name.trim().is_empty() {
            return Err(JwtError::NoName);
        }
        if !is_public_key(&self.std.sub, N::SUBJECT) {
            return Err(JwtError::SubjectKind {
                kind: N::TYPE,
                expected: N::SUBJECT.article(),
                subject: self.std.sub.clone(),
            });
        }
        if !N::ISSUERS.iter().any(|k| is_public_key(&self.std.iss, *k)) {
            return Err(JwtError::IssuerKind { kind: N::TYPE, allowed: N::ISSUERS_TEXT, issuer: self.std.iss.clone() });
        }
        Ok(())
    }

    /// Decode a token: split, header, payload, type, signature by `iss`, key kinds.
    pub fn decode(token: &str) -> Result<Self, JwtError> {
        let (claims, _) = Self::decode_with_payload(token)?;
        Ok(claims)
    }

    /// As [`Claims::decode`], also returning the raw payload bytes.
    pub fn decode_with_payload(token: &str) -> Result<(Self, Vec<u8>), JwtError> {
        let token = token.trim();
        let parts = split(token)?;
        let payload = BASE64URL_NOPAD.decode(parts[1].as_bytes()).map_err(|_| JwtError::Base64("payload"))?;
        let claims: Claims<N> = serde_json::from_slice(&payload).map_err(|e| JwtError::Payload(e.to_string()))?;
        if claims.nats.nats_type() != N::TYPE {
            return Err(JwtError::Type { expected: N::TYPE, found: claims.nats.nats_type().to_string() });
        }
        if claims.nats.nats_version() != u64::from(VERSION) {
            return Err(JwtError::Version(claims.nats.nats_version()));
        }
        verify_signature(token, &claims.std.iss)?;
        claims.check_kinds()?;
        Ok((claims, payload))
    }
}

fn split(token: &str) -> Result<Vec<&str>, JwtError> {
    if token.len() > MAX_TOKEN_SIZE {
        return Err(JwtError::TooLarge);
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(JwtError::Parts(parts.len()));
    }
    let header = BASE64URL_NOPAD.decode(parts[0].as_bytes()).map_err(|_| JwtError::Base64("header"))?;
    let h: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| JwtError::Header(String::from_utf8_lossy(&header).into()))?;
    let ok = h.as_object().is_some_and(|o| {
        o.len() == 2
            && o.get("typ").and_then(|v| v.as_str()).is_some_and(|t| t.eq_ignore_ascii_case("JWT"))
            && o.get("alg").and_then(|v| v.as_str()) == Some("ed25519-nkey")
    });
    if !ok {
        return Err(JwtError::Header(String::from_utf8_lossy(&header).into()));
    }
    Ok(parts)
}

fn verify_signature(token: &str, issuer: &str) -> Result<(), JwtError> {
    let (signed, sig_b64) = token.rsplit_once('.').ok_or(JwtError::Parts(1))?;
    let sig = BASE64URL_NOPAD.decode(sig_b64.as_bytes()).map_err(|_| JwtError::Base64("signature"))?;
    let kp = KeyPair::from_public_key(issuer).map_err(|_| JwtError::IssuerKey(issuer.to_string()))?;
    kp.verify(signed.as_bytes(), &sig).map_err(|_| JwtError::Signature(issuer.to_string()))
}

/// The standard claims and the payload of a token, without verifying anything.
/// Only for tokens whose integrity is known otherwise (reconcile reads its own
/// output back after checking each file's sha256 against the manifest).
pub fn peek(token: &str) -> Option<(ClaimsData, Vec<u8>)> {
    let payload = token.trim().split('.').nth(1)?;
    let bytes = BASE64URL_NOPAD.decode(payload.as_bytes()).ok()?;
    let std: ClaimsData = serde_json::from_slice(&bytes).ok()?;
    Some((std, bytes))
}

/// The `nats.type` of a token, read without verifying anything (for dispatch).
pub fn peek_type(token: &str) -> Option<String> {
    let payload = token.trim().split('.').nth(1)?;
    let bytes = BASE64URL_NOPAD.decode(payload.as_bytes()).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("nats")?.get("type")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jti_matches_go_hash_of_standard_claims() {
        // Test vectors: json.Marshal + sha512.New512_256 + base32 NoPadding, run with
        // Debian's golang-github-nats-io-jwt-dev 2.3.0 on these exact ClaimsData.
        let cd = ClaimsData {
            iat: 1795392119,
            iss: "OAAAA".into(),
            name: "thecowboyai".into(),
            sub: "OAAAA".into(),
            ..Default::default()
        };
        assert_eq!(go_json(&cd), br#"{"iat":1795392119,"iss":"OAAAA","name":"thecowboyai","sub":"OAAAA"}"#);
        let jti = cd.compute_jti();
        assert_eq!(jti, "7XOYTT2DS56CSPCWMV3NC5BFYPPC7KS35PM7BR7LVTBJGGMUUEAA");
        let all = ClaimsData {
            aud: "aud".into(),
            exp: 5,
            jti: String::new(),
            iat: 7,
            iss: "AX".into(),
            name: "n<>&".into(),
            nbf: 3,
            sub: "UX".into(),
        };
        assert_eq!(
            go_json(&all),
            br#"{"aud":"aud","exp":5,"iat":7,"iss":"AX","name":"n\u003c\u003e\u0026","nbf":3,"sub":"UX"}"#
        );
        assert_eq!(all.compute_jti(), "SP5S2KHGDRYQREAY7GV33RQ3Q7FRC5GKDCFACB3S245FWDDBQIKQ");
        // jti never hashes itself
        let mut with_jti = cd.clone();
        with_jti.jti = "SOMETHING".into();
        assert_eq!(with_jti.compute_jti(), jti);
    }

    #[test]
    fn header_is_exactly_v2() {
        let kp = KeyPair::new_operator();
        let mut c = Claims::new(kp.public_key(), "op", OperatorNats::default());
        let tok = c.encode(&kp, 1).unwrap();
        let h = BASE64URL_NOPAD.decode(tok.split('.').next().unwrap().as_bytes()).unwrap();
        assert_eq!(h, HEADER_JSON.as_bytes());
    }

    #[test]
    fn tampered_payload_fails_signature() {
        let kp = KeyPair::new_operator();
        let mut c = Claims::new(kp.public_key(), "op", OperatorNats::default());
        let tok = c.encode(&kp, 10).unwrap();
        let parts: Vec<&str> = tok.split('.').collect();
        let mut payload = String::from_utf8(BASE64URL_NOPAD.decode(parts[1].as_bytes()).unwrap()).unwrap();
        payload = payload.replace("\"op\"", "\"xx\"");
        let forged = format!("{}.{}.{}", parts[0], BASE64URL_NOPAD.encode(payload.as_bytes()), parts[2]);
        assert!(matches!(OperatorClaims::decode(&forged), Err(JwtError::Signature(_))));
    }

    #[test]
    fn wrong_part_count_and_header() {
        assert_eq!(OperatorClaims::decode("a.b").unwrap_err(), JwtError::Parts(2));
        let bad_header = format!("{}.e30.AA", BASE64URL_NOPAD.encode(br#"{"typ":"JWT","alg":"ed25519"}"#));
        assert!(matches!(OperatorClaims::decode(&bad_header), Err(JwtError::Header(_))));
        let big = "a".repeat(MAX_TOKEN_SIZE + 1);
        assert_eq!(OperatorClaims::decode(&big).unwrap_err(), JwtError::TooLarge);
    }

    #[test]
    fn nameless_claims_are_refused() {
        let kp = KeyPair::new_operator();
        let mut c = Claims::new(kp.public_key(), " ", OperatorNats::default());
        assert_eq!(c.encode(&kp, 1).unwrap_err(), JwtError::NoName);
    }

    #[test]
    fn payload_as_equals_encoded_payload() {
        let kp = KeyPair::new_operator();
        let mut c = Claims::new(kp.public_key(), "op", OperatorNats::default());
        let expected = c.payload_as(&kp.public_key(), 42);
        let tok = c.encode(&kp, 42).unwrap();
        let (_, payload) = OperatorClaims::decode_with_payload(&tok).unwrap();
        assert_eq!(payload, expected);
    }
}

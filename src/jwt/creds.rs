//! The `.creds` format (nats-io/jwt `v2/creds_utils.go`: `FormatUserConfig`, `ParseDecoratedJWT`).

use nkeys::KeyPair;

use super::UserClaims;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredsError {
    #[error("the JWT is not a valid user JWT: {0}")]
    Jwt(#[from] super::JwtError),
    #[error("the seed is not a user seed (SU…)")]
    NotUserSeed,
    #[error("the seed's public key {seed} does not match the JWT subject {sub}")]
    Mismatch { seed: String, sub: String },
    #[error("missing the {0} block")]
    Missing(&'static str),
}

/// Decorate a user JWT and its seed exactly as `FormatUserConfig` does. Refuses a
/// seed that is not a user seed or that does not belong to the JWT's subject.
pub fn format(jwt: &str, seed: &str) -> Result<String, CredsError> {
    let claims = UserClaims::decode(jwt)?;
    let kp = KeyPair::from_seed(seed).map_err(|_| CredsError::NotUserSeed)?;
    if !seed.starts_with("SU") {
        return Err(CredsError::NotUserSeed);
    }
    if kp.public_key() != claims.std.sub {
        return Err(CredsError::Mismatch { seed: kp.public_key(), sub: claims.std.sub });
    }
    Ok(format_unchecked(jwt, seed))
}

/// The decoration alone, for callers that already hold a matching pair.
pub(crate) fn format_unchecked(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
************************* IMPORTANT *************************\n\
NKEY Seed printed below can be used to sign and prove identity.\n\
NKEYs are sensitive and should be treated as secrets.\n\n\
-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
*************************************************************\n"
    )
}

/// Extract the (JWT, seed) pair the way the Go parser does: the first and second
/// blocks framed by lines of at least three dashes.
pub fn parse(text: &str) -> Result<(String, String), CredsError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim_end).peekable();
    while let Some(line) = lines.next() {
        if is_frame(line) {
            if let Some(body) = lines.peek().copied() {
                let body = body.trim();
                if !body.is_empty() && body.chars().all(|c| c.is_ascii_alphanumeric() || "-_.=".contains(c)) {
                    lines.next();
                    if lines.next().is_some_and(is_frame) {
                        blocks.push(body.to_string());
                    }
                }
            }
        }
    }
    let mut it = blocks.into_iter();
    let jwt = it.next().ok_or(CredsError::Missing("NATS USER JWT"))?;
    let seed = it.next().ok_or(CredsError::Missing("USER NKEY SEED"))?;
    Ok((jwt, seed))
}

fn is_frame(line: &str) -> bool {
    let l = line.trim();
    l.len() >= 6 && l.starts_with("---") && l.ends_with("---")
}

/// Parse and check: a valid user JWT and a seed that matches its subject.
pub fn parse_checked(text: &str) -> Result<(UserClaims, KeyPair), CredsError> {
    let (jwt, seed) = parse(text)?;
    let claims = UserClaims::decode(&jwt)?;
    if !seed.starts_with("SU") {
        return Err(CredsError::NotUserSeed);
    }
    let kp = KeyPair::from_seed(&seed).map_err(|_| CredsError::NotUserSeed)?;
    if kp.public_key() != claims.std.sub {
        return Err(CredsError::Mismatch { seed: kp.public_key(), sub: claims.std.sub.clone() });
    }
    Ok((claims, kp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::UserNats;

    fn user_token(kp: &KeyPair) -> String {
        let acct = KeyPair::new_account();
        UserClaims::new(kp.public_key(), "svc", UserNats::default()).encode(&acct, 1).unwrap()
    }

    #[test]
    fn format_is_byte_exact_and_parses_back() {
        let u = KeyPair::new_user();
        let jwt = user_token(&u);
        let seed = u.seed().unwrap();
        let text = format(&jwt, &seed).unwrap();
        assert!(text.starts_with("-----BEGIN NATS USER JWT-----\n"));
        assert!(text.contains(&format!("\n{jwt}\n------END NATS USER JWT------\n\n*****")));
        assert!(text.ends_with(
            "------END USER NKEY SEED------\n\n*************************************************************\n"
        ));
        assert_eq!(parse(&text).unwrap(), (jwt, seed));
        let (claims, kp) = parse_checked(&text).unwrap();
        assert_eq!(claims.std.sub, kp.public_key());
    }

    #[test]
    fn refuses_foreign_or_wrong_seed() {
        let u = KeyPair::new_user();
        let jwt = user_token(&u);
        let other = KeyPair::new_user().seed().unwrap();
        assert!(matches!(format(&jwt, &other), Err(CredsError::Mismatch { .. })));
        let acct_seed = KeyPair::new_account().seed().unwrap();
        assert_eq!(format(&jwt, &acct_seed), Err(CredsError::NotUserSeed));
        let swapped = format_unchecked(&jwt, &other);
        assert!(matches!(parse_checked(&swapped), Err(CredsError::Mismatch { .. })));
    }

    #[test]
    fn text_outside_the_blocks_is_ignored() {
        let u = KeyPair::new_user();
        let text = format!("# a comment line\n{}", format(&user_token(&u), &u.seed().unwrap()).unwrap());
        assert_eq!(parse_checked(&text).unwrap().1.public_key(), u.public_key());
    }

    #[test]
    fn missing_blocks() {
        assert_eq!(parse("nothing here"), Err(CredsError::Missing("NATS USER JWT")));
        let only_jwt = "-----BEGIN NATS USER JWT-----\nabc.def.ghi\n------END NATS USER JWT------\n";
        assert_eq!(parse(only_jwt), Err(CredsError::Missing("USER NKEY SEED")));
    }
}

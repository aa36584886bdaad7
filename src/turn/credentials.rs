//! Short-lived TURN credentials in the "TURN REST API" form that coturn also reads
//! (draft-uberti-behave-turn-rest): the username is `<expiry unix seconds>:<user>`, the
//! password base64(HMAC-SHA1(secret, username)). The server that shares the secret checks a
//! username by computing its password again: nothing is stored, any replica can check it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// A username/password pair as `RTCIceServer` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

/// Why a username is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the username is not <expiry>:<user>")]
    Malformed,
    #[error("the credential has expired")]
    Expired,
}

/// A credential for `user` valid for `ttl` from `now`.
pub fn mint(secret: &[u8], user: &str, ttl: Duration, now: SystemTime) -> Credential {
    let expiry = unix(now) + ttl.as_secs();
    let username = format!("{expiry}:{user}");
    let password = password(secret, &username);
    Credential { username, password }
}

/// The password that goes with `username` under `secret`.
pub fn password(secret: &[u8], username: &str) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The user named by a username that has not expired at `now`. Whether the password matches
/// is for the message integrity to show (the password is the key's input).
pub fn user_of(username: &str, now: SystemTime) -> Result<&str, CredentialError> {
    let (expiry, user) = username.split_once(':').ok_or(CredentialError::Malformed)?;
    let expiry: u64 = expiry.parse().map_err(|_| CredentialError::Malformed)?;
    if user.is_empty() || user.len() > 128 {
        return Err(CredentialError::Malformed);
    }
    if expiry <= unix(now) {
        return Err(CredentialError::Expired);
    }
    Ok(user)
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_credential_names_its_user_until_it_expires() {
        let now = SystemTime::now();
        let c = mint(b"secret", "u-1", Duration::from_secs(60), now);
        assert_eq!(user_of(&c.username, now), Ok("u-1"));
        assert_eq!(c.password, password(b"secret", &c.username));
        assert_ne!(c.password, password(b"other", &c.username));
        assert_eq!(
            user_of(&c.username, now + Duration::from_secs(61)),
            Err(CredentialError::Expired)
        );
    }

    #[test]
    fn the_format_matches_what_coturn_computes() {
        // coturn's use-auth-secret computes base64(hmac-sha1(secret, "<expiry>:<user>")); the
        // value below is Python's hmac module's answer for the same input.
        assert_eq!(
            password(b"s3cret", "1700000000:alice"),
            "TtElzSjT0GdnTQ9xdcRNxx96yQs="
        );
        assert_eq!(
            user_of("nonsense", SystemTime::now()),
            Err(CredentialError::Malformed)
        );
        assert_eq!(
            user_of("12:", SystemTime::now()),
            Err(CredentialError::Malformed)
        );
    }
}

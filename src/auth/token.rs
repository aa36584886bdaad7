//! JWTs (HS256): issue for a user, verify, and the secret kept under `data/` when none is set.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::ids::UserId;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub iat: i64,
    pub exp: i64,
    /// Guests carry the flag so clients can tell without a lookup.
    #[serde(default)]
    pub guest: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2),
        }
    }

    pub fn issue(
        &self,
        user_id: UserId,
        guest: bool,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            iat: now,
            exp: now.saturating_add(self.ttl_secs),
            guest,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

/// The configured secret, or the one kept in `<data_dir>/jwt_secret`, created on first start.
pub fn load_or_create_secret(configured: &str, data_dir: &Path) -> std::io::Result<Vec<u8>> {
    if let Some(secret) = existing_secret(configured, data_dir)? {
        return Ok(secret);
    }
    let path = data_dir.join("jwt_secret");
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "generated a new JWT secret");
    Ok(secret.into_bytes())
}

/// The configured secret, or the one kept in `<data_dir>/jwt_secret` if there is one; never
/// creates it (the doctor reads what a server would use, and leaves no file behind).
pub fn existing_secret(configured: &str, data_dir: &Path) -> std::io::Result<Option<Vec<u8>>> {
    if !configured.is_empty() {
        return Ok(Some(configured.as_bytes().to_vec()));
    }
    match std::fs::read_to_string(data_dir.join("jwt_secret")) {
        Ok(existing) if !existing.trim().is_empty() => {
            Ok(Some(existing.trim().as_bytes().to_vec()))
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_carry_the_user() {
        let keys = JwtKeys::new(b"secret-one", 60);
        let id = UserId::random();
        let claims = keys.verify(&keys.issue(id, true).unwrap()).unwrap();
        assert_eq!(claims.sub, id);
        assert!(claims.guest);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_invalid() {
        let other = JwtKeys::new(b"secret-two", 60);
        let token = other.issue(UserId::random(), false).unwrap();
        assert_eq!(
            JwtKeys::new(b"secret-one", 60).verify(&token).unwrap_err(),
            TokenError::Invalid
        );
        assert_eq!(
            JwtKeys::new(b"x", 60).verify("garbage").unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn an_expired_token_says_so() {
        let keys = JwtKeys::new(b"secret", 60);
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: UserId::random(),
            iat: now - 3600,
            exp: now - 600,
            guest: false,
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&token).unwrap_err(), TokenError::Expired);
    }

    #[test]
    fn the_generated_secret_is_kept_and_reused() {
        let dir = std::env::temp_dir().join(format!("tc-secret-{}", UserId::random()));
        assert_eq!(existing_secret("", &dir).unwrap(), None);
        assert!(!dir.exists(), "reading creates nothing");
        let first = load_or_create_secret("", &dir).unwrap();
        let second = load_or_create_secret("", &dir).unwrap();
        assert_eq!(first, second);
        assert_eq!(existing_secret("", &dir).unwrap(), Some(first.clone()));
        assert!(first.len() >= 32);
        assert_eq!(
            load_or_create_secret("configured", &dir).unwrap(),
            b"configured"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}

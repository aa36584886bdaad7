//! Session and socket ids: 20 random URL-safe characters, `Copy`, no allocation.

use std::fmt;

use rand::Rng as _;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const LEN: usize = 20;

/// An Engine.IO session id or a Socket.IO socket id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid([u8; LEN]);

impl Sid {
    /// A fresh random id (120 bits of entropy).
    pub fn random() -> Sid {
        let mut rng = rand::thread_rng();
        let mut bytes = [0u8; LEN];
        for b in &mut bytes {
            *b = ALPHABET[rng.gen_range(0..ALPHABET.len())];
        }
        Sid(bytes)
    }

    pub fn as_str(&self) -> &str {
        // Only ALPHABET bytes are ever stored, so this never fails.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::str::FromStr for Sid {
    type Err = InvalidSid;

    fn from_str(s: &str) -> Result<Sid, InvalidSid> {
        let bytes: [u8; LEN] = s.as_bytes().try_into().map_err(|_| InvalidSid)?;
        if bytes.iter().all(|b| ALPHABET.contains(b)) {
            Ok(Sid(bytes))
        } else {
            Err(InvalidSid)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid sid")]
pub struct InvalidSid;

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({})", self.as_str())
    }
}

impl serde::Serialize for Sid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_round_trip_and_differ() {
        let a = Sid::random();
        let b = Sid::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 20);
        assert_eq!(a.as_str().parse::<Sid>(), Ok(a));
    }

    #[test]
    fn rejects_foreign_strings() {
        assert!("short".parse::<Sid>().is_err());
        assert!("aaaaaaaaaaaaaaaaaaa/".parse::<Sid>().is_err());
        assert!("ééééééééééé".parse::<Sid>().is_err());
    }
}

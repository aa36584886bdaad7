//! Typed ids. A room's id and a user's id are both UUIDs; as types of their own they cannot be
//! passed for each other (`kick(room, host, target)` does not compile with two swapped). They
//! read and write as the plain UUID string everywhere: JSON, paths, the database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn as_uuid(self) -> Uuid {
                self.0
            }

            /// An id read back from the database, where this program wrote it as a UUID; a
            /// row that is not would be a bug, logged here.
            pub fn from_stored(stored: &str) -> Self {
                Self(Uuid::parse_str(stored).unwrap_or_else(|e| {
                    tracing::error!(id = stored, error = %e, "a stored id is not a UUID");
                    Uuid::nil()
                }))
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A room's id.
    RoomId
);
uuid_id!(
    /// A user's id (registered or guest).
    UserId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_and_write_as_plain_uuids() {
        let id = RoomId::random();
        let json = serde_json::to_value(id).unwrap();
        assert_eq!(json, serde_json::Value::String(id.as_uuid().to_string()));
        assert_eq!(serde_json::from_value::<RoomId>(json).unwrap(), id);
        assert_eq!(id.to_string().parse::<RoomId>().unwrap(), id);
        assert!("not-a-uuid".parse::<UserId>().is_err());
        assert_eq!(UserId::from_stored("nonsense").as_uuid(), Uuid::nil());
    }
}

//! What replicas say to each other over Redis pub/sub (bus events, Socket.IO adapter messages,
//! media requests and answers) goes in one envelope that names its version:
//! `{"v": 1, ...the message's own fields}`.
//!
//! The rule that keeps rolling upgrades working, one release at a time (docs/CLUSTER.md):
//! - within a version, changes are additive only: a new field has a default (older readers
//!   ignore it, newer readers default it), a new kind of message is ignored by older readers;
//! - anything else bumps [`WIRE_VERSION`], and a release reads its own version and the ones
//!   just before and after it, so replicas one release apart keep understanding each other.
//!
//! Messages without `v` come from the releases before the field existed: version 1.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The version of the messages this release sends.
pub const WIRE_VERSION: u32 = 1;

fn unversioned() -> u32 {
    1
}

/// Can this release read a message of `version`?
pub fn readable(version: u32) -> bool {
    version.abs_diff(WIRE_VERSION) <= 1
}

#[derive(Serialize)]
struct Outgoing<'a, T> {
    v: u32,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Deserialize)]
struct Incoming<T> {
    #[serde(default = "unversioned")]
    v: u32,
    #[serde(flatten)]
    body: T,
}

/// Only the version, from a message whose body could not be read.
#[derive(Deserialize)]
struct Header {
    #[serde(default = "unversioned")]
    v: u32,
}

/// `body` in this release's envelope.
pub fn encode<T: Serialize>(body: &T) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Outgoing {
        v: WIRE_VERSION,
        body,
    })
}

/// The body of a message from another replica; `None` (logged) when it cannot be used: a
/// version too far from this one, or a kind of message this release does not know.
pub fn decode<T: DeserializeOwned>(what: &'static str, payload: &[u8]) -> Option<T> {
    match serde_json::from_slice::<Incoming<T>>(payload) {
        Ok(incoming) if readable(incoming.v) => Some(incoming.body),
        Ok(incoming) => {
            tracing::warn!(
                what,
                version = incoming.v,
                ours = WIRE_VERSION,
                "a message from a release more than one apart: ignored (upgrade one release at a time)"
            );
            None
        }
        Err(error) => {
            match serde_json::from_slice::<Header>(payload) {
                // A newer release may send what this one does not know yet.
                Ok(header) if header.v > WIRE_VERSION => tracing::debug!(
                    what,
                    version = header.v,
                    %error,
                    "a message from a newer release that this one cannot read: ignored"
                ),
                _ => tracing::warn!(what, %error, "an unreadable message: ignored"),
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "t", rename_all = "camelCase")]
    enum Message {
        Hello {
            name: String,
            #[serde(default)]
            count: u32,
        },
        Bye {
            name: String,
        },
    }

    #[test]
    fn messages_carry_the_version_beside_their_own_fields() {
        let bytes = encode(&Message::Bye { name: "a".into() }).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            serde_json::json!({ "v": WIRE_VERSION, "t": "bye", "name": "a" })
        );
        assert_eq!(
            decode::<Message>("test", &bytes),
            Some(Message::Bye { name: "a".into() })
        );
    }

    #[test]
    fn the_previous_release_without_a_version_is_read() {
        let old = br#"{"t":"hello","name":"a"}"#;
        assert_eq!(
            decode::<Message>("test", old),
            Some(Message::Hello {
                name: "a".into(),
                count: 0
            })
        );
    }

    #[test]
    fn the_next_release_is_read_when_it_only_added_fields() {
        let next = format!(
            r#"{{"v":{},"t":"hello","name":"a","count":2,"colour":"red"}}"#,
            WIRE_VERSION + 1
        );
        assert_eq!(
            decode::<Message>("test", next.as_bytes()),
            Some(Message::Hello {
                name: "a".into(),
                count: 2
            })
        );
    }

    #[test]
    fn what_cannot_be_read_is_ignored_not_misread() {
        // A kind of message from the next release.
        let next = format!(r#"{{"v":{},"t":"wave","name":"a"}}"#, WIRE_VERSION + 1);
        assert_eq!(decode::<Message>("test", next.as_bytes()), None);
        // Two releases ahead: not read even when it parses.
        let far = format!(r#"{{"v":{},"t":"bye","name":"a"}}"#, WIRE_VERSION + 2);
        assert_eq!(decode::<Message>("test", far.as_bytes()), None);
        assert_eq!(decode::<Message>("test", b"not json"), None);
        assert_eq!(decode::<Message>("test", br#"{"v":"x"}"#), None);
    }

    #[test]
    fn neighbours_are_readable_and_the_rest_is_not() {
        assert!(readable(WIRE_VERSION));
        assert!(readable(WIRE_VERSION + 1));
        assert!(readable(WIRE_VERSION - 1));
        assert!(!readable(WIRE_VERSION + 2));
    }
}

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
//! Each message also says when it was sent (`at`, Unix milliseconds), for the pub/sub lag
//! metric.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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
    at: u64,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Deserialize)]
struct Incoming<T> {
    #[serde(default = "unversioned")]
    v: u32,
    #[serde(default)]
    at: Option<u64>,
    #[serde(flatten)]
    body: T,
}

/// How late the messages from the other replicas arrive (their clocks against ours, so the
/// figure is only as good as the hosts' time sync; a message from the future counts as 0).
#[derive(Debug, Default)]
pub struct Lag {
    messages: AtomicU64,
    total_ms: AtomicU64,
}

impl Lag {
    fn record(&self, sent_at_ms: u64) {
        let late = now_ms().saturating_sub(sent_at_ms);
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.total_ms.fetch_add(late, Ordering::Relaxed);
    }

    /// (messages timed, sum of their delays in milliseconds).
    pub fn read(&self) -> (u64, u64) {
        (
            self.messages.load(Ordering::Relaxed),
            self.total_ms.load(Ordering::Relaxed),
        )
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
        at: now_ms(),
        body,
    })
}

/// The body of a message from another replica; `None` (logged) when it cannot be used: a
/// version too far from this one, or a kind of message this release does not know.
pub fn decode<T: DeserializeOwned>(what: &'static str, payload: &[u8], lag: &Lag) -> Option<T> {
    match serde_json::from_slice::<Incoming<T>>(payload) {
        Ok(incoming) if readable(incoming.v) => {
            if let Some(at) = incoming.at {
                lag.record(at);
            }
            Some(incoming.body)
        }
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
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let at = value["at"].as_u64().expect("the time it was sent");
        assert!(at.abs_diff(now_ms()) < 60_000, "{at}");
        value.as_object_mut().unwrap().remove("at");
        assert_eq!(
            value,
            serde_json::json!({ "v": WIRE_VERSION, "t": "bye", "name": "a" })
        );
        let lag = Lag::default();
        assert_eq!(
            decode::<Message>("test", &bytes, &lag),
            Some(Message::Bye { name: "a".into() })
        );
        assert_eq!(lag.read().0, 1, "timed");
    }

    #[test]
    fn the_previous_release_without_a_version_is_read() {
        let old = br#"{"t":"hello","name":"a"}"#;
        assert_eq!(
            decode::<Message>("test", old, &Lag::default()),
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
            decode::<Message>("test", next.as_bytes(), &Lag::default()),
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
        assert_eq!(
            decode::<Message>("test", next.as_bytes(), &Lag::default()),
            None
        );
        // Two releases ahead: not read even when it parses.
        let far = format!(r#"{{"v":{},"t":"bye","name":"a"}}"#, WIRE_VERSION + 2);
        assert_eq!(
            decode::<Message>("test", far.as_bytes(), &Lag::default()),
            None
        );
        assert_eq!(
            decode::<Message>("test", b"not json", &Lag::default()),
            None
        );
        assert_eq!(
            decode::<Message>("test", br#"{"v":"x"}"#, &Lag::default()),
            None
        );
    }

    #[test]
    fn the_lag_is_the_delay_since_sending() {
        let lag = Lag::default();
        let sent = format!(r#"{{"v":1,"at":{},"t":"bye","name":"a"}}"#, now_ms() - 250);
        assert!(decode::<Message>("test", sent.as_bytes(), &lag).is_some());
        let (messages, total_ms) = lag.read();
        assert_eq!(messages, 1);
        assert!((250..60_000).contains(&total_ms), "{total_ms}");
        // A sender whose clock runs ahead does not make the lag negative.
        let ahead = format!(
            r#"{{"v":1,"at":{},"t":"bye","name":"a"}}"#,
            now_ms() + 5_000
        );
        assert!(decode::<Message>("test", ahead.as_bytes(), &lag).is_some());
        assert_eq!(lag.read(), (2, total_ms));
    }

    #[test]
    fn neighbours_are_readable_and_the_rest_is_not() {
        assert!(readable(WIRE_VERSION));
        assert!(readable(WIRE_VERSION + 1));
        assert!(readable(WIRE_VERSION - 1));
        assert!(!readable(WIRE_VERSION + 2));
    }
}

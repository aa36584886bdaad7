//! Timestamps in answers and events: RFC 3339 in UTC with exactly six fractional digits
//! (`2026-12-07T06:39:41.120000Z`), the precision every database keeps (`db::now`).
//! chrono's own form drops trailing zeros (`.12Z`, or no fraction at all), so the same
//! kind of field would come in three lengths; clients and logs get one.
//!
//! Use with `#[serde(with = "crate::timestamp")]`, or `crate::timestamp::option` for an
//! `Option`. Reading accepts any RFC 3339 time.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// The one written form.
pub fn format(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn serialize<S: Serializer>(at: &DateTime<Utc>, out: S) -> Result<S::Ok, S::Error> {
    out.serialize_str(&format(at))
}

pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<DateTime<Utc>, D::Error> {
    DateTime::<Utc>::deserialize(input)
}

/// The same, for an optional time (`null` when absent).
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, out: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => out.serialize_some(&super::format(at)),
            None => out.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        input: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<DateTime<Utc>>::deserialize(input)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct At {
        #[serde(with = "crate::timestamp")]
        at: DateTime<Utc>,
        #[serde(with = "crate::timestamp::option")]
        until: Option<DateTime<Utc>>,
    }

    #[test]
    fn always_six_digits_and_read_back() {
        let whole = Utc.with_ymd_and_hms(2026, 12, 7, 6, 39, 41).unwrap();
        for (at, text) in [
            (whole, "2026-12-07T06:39:41.000000Z"),
            (
                whole + chrono::Duration::milliseconds(120),
                "2026-12-07T06:39:41.120000Z",
            ),
            (
                whole + chrono::Duration::microseconds(5),
                "2026-12-07T06:39:41.000005Z",
            ),
        ] {
            let value = At {
                at,
                until: Some(at),
            };
            let json = serde_json::to_value(&value).unwrap();
            assert_eq!(json["at"], text);
            assert_eq!(json["until"], text);
            assert_eq!(serde_json::from_value::<At>(json).unwrap(), value);
        }
        let none = serde_json::to_value(At {
            at: whole,
            until: None,
        })
        .unwrap();
        assert!(none["until"].is_null());
        // Chrono's own shorter forms are still read.
        let read: At = serde_json::from_str(
            r#"{"at":"2026-12-07T06:39:41Z","until":"2026-12-07T06:39:41.12Z"}"#,
        )
        .unwrap();
        assert_eq!(read.at, whole);
    }
}

//! Opaque page cursors for newest-first lists ordered by (timestamp, id).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDateTime};

/// The last row of a page: the next page starts strictly after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    pub at: NaiveDateTime,
    pub id: String,
}

impl PageCursor {
    pub fn encode(&self) -> String {
        let micros = self.at.and_utc().timestamp_micros();
        URL_SAFE_NO_PAD.encode(format!("{micros}:{}", self.id))
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (micros, id) = text.split_once(':')?;
        let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
        uuid::Uuid::parse_str(id).ok()?;
        Some(Self {
            at,
            id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let cursor = PageCursor {
            at: crate::db::now(),
            id: uuid::Uuid::new_v4().to_string(),
        };
        assert_eq!(PageCursor::decode(&cursor.encode()), Some(cursor));
    }

    #[test]
    fn garbage_is_not_a_cursor() {
        assert_eq!(PageCursor::decode("!!!"), None);
        assert_eq!(
            PageCursor::decode(&URL_SAFE_NO_PAD.encode("12:not-a-uuid")),
            None
        );
        assert_eq!(PageCursor::decode(&URL_SAFE_NO_PAD.encode("x:y")), None);
    }
}

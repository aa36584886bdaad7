//! Page cursors for newest-first lists ordered by (timestamp, id): `<µs since 1970>_<uuid>`,
//! exactly the shape docs/openapi.json states, so a cursor fits it if and only if it names a
//! position (a cursor from before this form is refused; paging starts again).

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
        format!("{micros}_{}", self.id)
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let (micros, id) = raw.split_once('_')?;
        if micros.is_empty() || micros.len() > 16 || !micros.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
        // The hyphenated lowercase form only, as encode writes it.
        let parsed = uuid::Uuid::parse_str(id).ok()?;
        if parsed.to_string() != id {
            return None;
        }
        Some(Self {
            at,
            id: id.to_owned(),
        })
    }
}

/// Splits the `limit + 1` rows a page query loaded into the page and the next page's cursor:
/// the extra row only tells that a next page exists; the cursor names the page's last row.
pub fn split_page<R, C>(
    mut rows: Vec<R>,
    limit: i64,
    cursor_of: impl FnOnce(&R) -> C,
) -> (Vec<R>, Option<C>) {
    if rows.len() as i64 <= limit {
        return (rows, None);
    }
    rows.truncate(limit as usize);
    let next = rows.last().map(cursor_of);
    (rows, next)
}

/// The last row of a page of a list ordered by a count first (most first), then newest:
/// `<count>_<µs since 1970>_<uuid>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankedCursor {
    pub rank: i32,
    pub position: PageCursor,
}

impl RankedCursor {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.rank, self.position.encode())
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let (rank, rest) = raw.split_once('_')?;
        if rank.is_empty() || rank.len() > 4 || !rank.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            rank: rank.parse().ok()?,
            position: PageCursor::decode(rest)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn cursors_round_trip() {
        let cursor = PageCursor {
            at: crate::db::now(),
            id: uuid::Uuid::new_v4().to_string(),
        };
        assert_eq!(PageCursor::decode(&cursor.encode()), Some(cursor));
    }

    #[test]
    fn only_the_documented_shape_is_read() {
        let id = uuid::Uuid::new_v4();
        let legacy = URL_SAFE_NO_PAD.encode(format!("1764000000000000:{id}"));
        assert_eq!(PageCursor::decode(&legacy), None);
        let upper = id.to_string().to_uppercase();
        assert_eq!(PageCursor::decode(&format!("1_{upper}")), None);
        assert_eq!(PageCursor::decode(" 1_x"), None);
    }

    #[test]
    fn every_cursor_of_the_documented_shape_is_a_position() {
        let id = "00000000-0000-0000-0000-000000000000";
        assert!(PageCursor::decode(&format!("9999999999999999_{id}")).is_some());
        assert!(PageCursor::decode(&format!("0_{id}")).is_some());
        assert!(PageCursor::decode(&format!("99999999999999999_{id}")).is_none());
        assert!(PageCursor::decode(&format!("-1_{id}")).is_none());
    }

    #[test]
    fn ranked_cursors_round_trip_and_are_not_plain_ones() {
        let cursor = RankedCursor {
            rank: 12,
            position: PageCursor {
                at: crate::db::now(),
                id: uuid::Uuid::new_v4().to_string(),
            },
        };
        assert_eq!(RankedCursor::decode(&cursor.encode()), Some(cursor.clone()));
        assert_eq!(PageCursor::decode(&cursor.encode()), None);
        assert_eq!(RankedCursor::decode(&cursor.position.encode()), None);
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_a_row_is_left_over() {
        assert_eq!(split_page(vec![1, 2], 2, |r| *r), (vec![1, 2], None));
        assert_eq!(split_page(vec![1, 2, 3], 2, |r| *r), (vec![1, 2], Some(2)));
        assert_eq!(split_page(Vec::<i32>::new(), 2, |r| *r), (vec![], None));
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

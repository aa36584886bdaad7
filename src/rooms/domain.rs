//! Room labels as typed values: what a valid title, topic, language, level and seat limit are.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::text::{TextError, TextRule};

pub const MIN_SEATS: i32 = 2;
pub const MAX_SEATS: i32 = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomTitle(String);

impl RoomTitle {
    pub const RULE: TextRule = TextRule {
        max_chars: 100,
        multiline: false,
    };

    pub fn parse(raw: &str) -> Result<Self, TextError> {
        Self::RULE.require(raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text such as "Daily conversation"; blank means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic(String);

impl Topic {
    pub const RULE: TextRule = TextRule {
        max_chars: 100,
        multiline: false,
    };

    pub fn parse(raw: &str) -> Result<Option<Self>, TextError> {
        let topic = Self::RULE.clean(raw)?;
        Ok((!topic.is_empty()).then_some(Self(topic)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A language code from the configured list (`rooms.languages`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageCode(String);

impl LanguageCode {
    pub fn parse(raw: &str, known: &[String]) -> Result<Self, String> {
        let code = raw.trim().to_lowercase();
        if known.contains(&code) {
            Ok(Self(code))
        } else {
            Err(format!("must be one of: {}", known.join(", ")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The learners' level a room is meant for, as Free4Talk labels rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Any,
    Beginner,
    UpperBeginner,
    Intermediate,
    UpperIntermediate,
    Advanced,
    UpperAdvanced,
}

impl Level {
    pub const ALL: [Level; 7] = [
        Level::Any,
        Level::Beginner,
        Level::UpperBeginner,
        Level::Intermediate,
        Level::UpperIntermediate,
        Level::Advanced,
        Level::UpperAdvanced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Any => "any",
            Level::Beginner => "beginner",
            Level::UpperBeginner => "upper_beginner",
            Level::Intermediate => "intermediate",
            Level::UpperIntermediate => "upper_intermediate",
            Level::Advanced => "advanced",
            Level::UpperAdvanced => "upper_advanced",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let wanted = raw.trim().to_lowercase().replace(['-', ' '], "_");
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == wanted)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|l| l.as_str()).collect();
                format!("must be one of: {}", names.join(", "))
            })
    }

    /// Rows hold what `as_str` wrote; anything else reads as `Any` rather than failing a page.
    pub fn from_stored(stored: &str) -> Self {
        Self::parse(stored).unwrap_or(Level::Any)
    }
}

/// Seats in a room, host included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatLimit(i32);

impl SeatLimit {
    pub fn parse(raw: i64) -> Result<Self, &'static str> {
        if (i64::from(MIN_SEATS)..=i64::from(MAX_SEATS)).contains(&raw) {
            Ok(Self(raw as i32))
        } else {
            Err("must be between 2 and 12")
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RoomStatus {
    Live,
    Ended,
}

impl RoomStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomStatus::Live => "LIVE",
            RoomStatus::Ended => "ENDED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_uppercase().as_str() {
            "LIVE" => Some(RoomStatus::Live),
            "ENDED" => Some(RoomStatus::Ended),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    Host,
    /// Named by the host: moderates like the host, but cannot change the host or end the room.
    Cohost,
    Participant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "HOST",
            Role::Cohost => "COHOST",
            Role::Participant => "PARTICIPANT",
        }
    }

    pub fn from_stored(stored: &str) -> Self {
        match stored {
            "HOST" => Role::Host,
            "COHOST" => Role::Cohost,
            _ => Role::Participant,
        }
    }

    /// Hosts and co-hosts: mute others, lock, change settings, moderate chat, kick.
    pub fn moderates(self) -> bool {
        matches!(self, Role::Host | Role::Cohost)
    }
}

/// Text folded for search: lowercase, accents and tones removed, `đ` → `d`, so that
/// "tieng anh" finds "Tiếng Anh" — how Vietnamese users type on a keyboard without IME.
pub fn fold_for_search(text: &str) -> String {
    text.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'đ' { 'd' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the lobby's filters compare a room by: its topic key (`?topic=`, the folded topic)
/// and its search text (`?q=`, the folded title and topic).
pub fn search_keys(title: &str, topic: Option<&str>) -> (Option<String>, String) {
    (
        topic.map(fold_for_search),
        fold_for_search(&format!("{} {}", title, topic.unwrap_or(""))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded_in_characters() {
        assert_eq!(RoomTitle::parse("  Hi  ").unwrap().as_str(), "Hi");
        assert!(RoomTitle::parse("   ").is_err());
        assert!(RoomTitle::parse(&"ệ".repeat(100)).is_ok());
        assert!(RoomTitle::parse(&"a".repeat(101)).is_err());
    }

    #[test]
    fn blank_topics_are_none() {
        assert_eq!(Topic::parse("  ").unwrap(), None);
        assert!(Topic::parse(&"a".repeat(101)).is_err());
    }

    #[test]
    fn languages_come_from_the_configured_list() {
        let known = vec!["en".to_string(), "vi".to_string()];
        assert_eq!(LanguageCode::parse(" VI ", &known).unwrap().as_str(), "vi");
        assert!(
            LanguageCode::parse("xx", &known)
                .unwrap_err()
                .contains("en, vi")
        );
    }

    #[test]
    fn levels_accept_spellings_users_type() {
        assert_eq!(
            Level::parse("Upper Intermediate").unwrap(),
            Level::UpperIntermediate
        );
        assert_eq!(
            Level::parse("upper-beginner").unwrap(),
            Level::UpperBeginner
        );
        assert!(Level::parse("expert").is_err());
    }

    #[test]
    fn seat_limits_are_two_to_twelve() {
        assert!(SeatLimit::parse(1).is_err());
        assert_eq!(SeatLimit::parse(2).unwrap().get(), 2);
        assert_eq!(SeatLimit::parse(12).unwrap().get(), 12);
        assert!(SeatLimit::parse(13).is_err());
    }

    #[test]
    fn search_folding_removes_vietnamese_marks() {
        assert_eq!(
            fold_for_search("Tiếng  Anh Giao Tiếp"),
            "tieng anh giao tiep"
        );
        assert_eq!(fold_for_search("Đà Nẵng"), "da nang");
        assert_eq!(fold_for_search("日本語"), "日本語");
    }
}

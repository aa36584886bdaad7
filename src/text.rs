//! Text people type for others to read: names, room titles and topics, chat. One rule for
//! all of it, so that nobody can make a name look like the host's with invisible characters,
//! flip a line with a bidi override, or pile up combining marks over the page:
//! - at most `max_chars` characters as sent (what docs/openapi.json's `maxLength` counts);
//! - no control characters (chat keeps line breaks and tabs);
//! - no invisible format characters: zero-width spaces and joiners, bidi marks and overrides,
//!   word joiners, the BOM (chat keeps the zero-width joiners that emoji sequences need);
//! - stored in Unicode NFC (what Vietnamese keyboards mostly send already), trimmed;
//! - at most three combining marks in a row;
//! - not blank, unless the field is optional.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// How a field of text is checked.
#[derive(Debug, Clone, Copy)]
pub struct TextRule {
    pub max_chars: usize,
    /// Line breaks and tabs allowed (chat).
    pub multiline: bool,
}

/// Combining marks allowed in a row (Vietnamese needs at most two once in NFC).
pub const MAX_COMBINING_RUN: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("must not contain control characters")]
    Control,
    #[error("must not contain invisible formatting characters")]
    Format,
    #[error("must not stack more than 3 accents on one letter")]
    Combining,
}

/// Zero-width and bidi formatting characters (Unicode general category Cf, in the Basic
/// Multilingual Plane), except the soft hyphen. `joiners` are U+200C/U+200D.
fn is_invisible_format(c: char, allow_joiners: bool) -> bool {
    match c {
        '\u{200C}' | '\u{200D}' => !allow_joiners,
        '\u{0600}'..='\u{0605}'
        | '\u{061C}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{180E}'
        | '\u{200B}'
        | '\u{200E}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}' => true,
        _ => false,
    }
}

impl TextRule {
    /// The cleaned text (NFC, trimmed); an empty result is `Ok("")`: whether a field may be
    /// blank is the caller's rule (`require`).
    pub fn clean(self, raw: &str) -> Result<String, TextError> {
        if raw.chars().count() > self.max_chars {
            return Err(TextError::TooLong(self.max_chars));
        }
        for c in raw.chars() {
            if c.is_control() && !(self.multiline && (c == '\n' || c == '\t')) {
                return Err(TextError::Control);
            }
            if is_invisible_format(c, self.multiline) {
                return Err(TextError::Format);
            }
        }
        let text: String = raw.nfc().collect();
        let text = text.trim();
        let mut run = 0;
        for c in text.chars() {
            run = if is_combining_mark(c) { run + 1 } else { 0 };
            if run > MAX_COMBINING_RUN {
                return Err(TextError::Combining);
            }
        }
        Ok(text.to_owned())
    }

    /// `clean`, and the result must not be blank.
    pub fn require(self, raw: &str) -> Result<String, TextError> {
        let text = self.clean(raw)?;
        if text.is_empty() {
            return Err(TextError::Empty);
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: TextRule = TextRule {
        max_chars: 32,
        multiline: false,
    };
    const CHAT: TextRule = TextRule {
        max_chars: 1000,
        multiline: true,
    };

    #[test]
    fn text_is_trimmed_and_stored_in_nfc() {
        assert_eq!(NAME.require("  Lan  ").unwrap(), "Lan");
        // "ế" typed as e + circumflex + acute becomes the one precomposed letter.
        assert_eq!(NAME.require("Tie\u{302}\u{301}ng").unwrap(), "Tiếng");
        assert_eq!(NAME.require(" \t ").unwrap_err(), TextError::Control);
        assert_eq!(NAME.require("   ").unwrap_err(), TextError::Empty);
        assert_eq!(NAME.clean("   ").unwrap(), "");
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for sneaky in [
            "Ho\u{200B}st",
            "\u{202E}tsoH",
            "Host\u{2060}",
            "\u{FEFF}Host",
        ] {
            assert_eq!(
                NAME.require(sneaky).unwrap_err(),
                TextError::Format,
                "{sneaky:?}"
            );
        }
        assert_eq!(NAME.require("a\u{7}b").unwrap_err(), TextError::Control);
        assert_eq!(NAME.require("a\nb").unwrap_err(), TextError::Control);
        assert_eq!(
            CHAT.require("line one\nline\ttwo").unwrap(),
            "line one\nline\ttwo"
        );
        // A family emoji is joined with U+200D: fine in chat, not in a name.
        assert!(CHAT.require("👨\u{200D}👩\u{200D}👧").is_ok());
        assert_eq!(NAME.require("👨\u{200D}👩").unwrap_err(), TextError::Format);
    }

    #[test]
    fn lengths_count_characters_as_sent_and_accents_may_not_pile_up() {
        assert!(NAME.require(&"ế".repeat(32)).is_ok());
        assert_eq!(
            NAME.require(&"a".repeat(33)).unwrap_err(),
            TextError::TooLong(32)
        );
        assert!(NAME.require("Nguyễn Thị Ánh").is_ok());
        assert!(NAME.require("x\u{301}\u{302}\u{303}").is_ok());
        assert_eq!(
            NAME.require("x\u{301}\u{302}\u{303}\u{304}").unwrap_err(),
            TextError::Combining
        );
    }
}

//! Engine.IO v4 packet codec: one packet per websocket frame, `\x1e`-separated
//! payloads with `b`+base64 binary over HTTP long-polling.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use bytestring::ByteString;

/// Separator between packets in a long-polling payload.
pub const SEPARATOR: char = '\x1e';

/// One decoded Engine.IO packet received from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Open,
    Close,
    /// `2`, or `2probe` when `probe` is set (only valid during an upgrade).
    Ping {
        probe: bool,
    },
    /// `3`, or `3probe`.
    Pong {
        probe: bool,
    },
    Message(Message),
    Upgrade,
    Noop,
}

/// The data of a `message` packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(ByteString),
    Binary(Bytes),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty packet")]
    Empty,
    #[error("unknown packet type")]
    UnknownType,
    #[error("invalid base64 binary packet")]
    InvalidBase64,
    #[error("payload is not valid UTF-8")]
    InvalidUtf8,
}

/// An outgoing frame, already encoded; cloning shares the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete text packet including its type digit (`4hello`, `2`, `6`, …).
    Text(ByteString),
    /// The data of a binary `message` packet.
    Binary(Bytes),
}

impl Frame {
    pub const PING: Frame = Frame::Text(ByteString::from_static("2"));
    pub const PONG_PROBE: Frame = Frame::Text(ByteString::from_static("3probe"));
    pub const CLOSE: Frame = Frame::Text(ByteString::from_static("1"));
    pub const NOOP: Frame = Frame::Text(ByteString::from_static("6"));

    /// Bytes this frame holds.
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(text) => text.len(),
            Frame::Binary(data) => data.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A `message` packet carrying text (the `4` prefix is added here).
    pub fn message_text(text: &str) -> Frame {
        let mut s = String::with_capacity(text.len() + 1);
        s.push('4');
        s.push_str(text);
        Frame::Text(ByteString::from(s))
    }

    fn encoded_len(&self) -> usize {
        match self {
            Frame::Text(t) => t.len(),
            Frame::Binary(b) => 1 + b.len().div_ceil(3) * 4,
        }
    }
}

/// Decodes one text packet (a websocket text frame or one segment of a polling payload).
/// `b`-prefixed base64 binary is accepted only when `allow_base64` (polling).
pub fn decode_text(text: ByteString, allow_base64: bool) -> Result<Packet, DecodeError> {
    let first = *text.as_bytes().first().ok_or(DecodeError::Empty)?;
    // A multi-byte first character is no packet type; `get` avoids slicing inside it.
    let rest = text.get(1..).ok_or(DecodeError::UnknownType)?;
    Ok(match first {
        b'0' => Packet::Open,
        b'1' => Packet::Close,
        b'2' => Packet::Ping {
            probe: rest == "probe",
        },
        b'3' => Packet::Pong {
            probe: rest == "probe",
        },
        b'4' => Packet::Message(Message::Text(text.slice_ref(rest))),
        b'5' => Packet::Upgrade,
        b'6' => Packet::Noop,
        b'b' if allow_base64 => {
            let data = BASE64
                .decode(rest.as_bytes())
                .map_err(|_| DecodeError::InvalidBase64)?;
            Packet::Message(Message::Binary(Bytes::from(data)))
        }
        _ => return Err(DecodeError::UnknownType),
    })
}

/// Decodes a long-polling request body into its packets.
pub fn decode_payload(body: Bytes) -> Result<Vec<Packet>, DecodeError> {
    let text = ByteString::try_from(body).map_err(|_| DecodeError::InvalidUtf8)?;
    text.split(SEPARATOR)
        .map(|segment| decode_text(text.slice_ref(segment), true))
        .collect()
}

/// Encodes frames into one long-polling response body.
pub fn encode_payload<'a>(frames: impl IntoIterator<Item = &'a Frame> + Clone) -> String {
    let len: usize = frames
        .clone()
        .into_iter()
        .map(|f| f.encoded_len() + 1)
        .sum();
    let mut out = String::with_capacity(len);
    for (i, frame) in frames.into_iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        match frame {
            Frame::Text(t) => out.push_str(t),
            Frame::Binary(b) => {
                out.push('b');
                BASE64.encode_string(b, &mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bs(s: &'static str) -> ByteString {
        ByteString::from_static(s)
    }

    #[test]
    fn decodes_every_packet_type() {
        assert_eq!(decode_text(bs("0"), false), Ok(Packet::Open));
        assert_eq!(decode_text(bs("1"), false), Ok(Packet::Close));
        assert_eq!(
            decode_text(bs("2"), false),
            Ok(Packet::Ping { probe: false })
        );
        assert_eq!(
            decode_text(bs("2probe"), false),
            Ok(Packet::Ping { probe: true })
        );
        assert_eq!(
            decode_text(bs("3"), false),
            Ok(Packet::Pong { probe: false })
        );
        assert_eq!(
            decode_text(bs("4hello"), false),
            Ok(Packet::Message(Message::Text(bs("hello"))))
        );
        assert_eq!(decode_text(bs("5"), false), Ok(Packet::Upgrade));
        assert_eq!(decode_text(bs("6"), false), Ok(Packet::Noop));
    }

    #[test]
    fn rejects_malformed_packets() {
        assert_eq!(decode_text(bs(""), true), Err(DecodeError::Empty));
        assert_eq!(decode_text(bs("abc"), true), Err(DecodeError::UnknownType));
        assert_eq!(decode_text(bs("7"), true), Err(DecodeError::UnknownType));
        assert_eq!(
            decode_text(bs("bAQIDBA=="), false),
            Err(DecodeError::UnknownType)
        );
        assert_eq!(
            decode_text(bs("b!!!"), true),
            Err(DecodeError::InvalidBase64)
        );
    }

    #[test]
    fn never_panics_on_arbitrary_input() {
        use rand::Rng as _;
        let mut rng = rand::thread_rng();
        assert_eq!(decode_text(bs("é4"), true), Err(DecodeError::UnknownType));
        let alphabet = [
            "0", "1", "2", "3", "4", "5", "6", "b", "é", "\x1e", "probe", "A", "=", "€",
        ];
        for _ in 0..5000 {
            let len = rng.gen_range(0..8);
            let s: String = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            let _ = decode_text(ByteString::from(s.clone()), true);
            let _ = decode_payload(Bytes::from(s));
            let raw: Vec<u8> = (0..len).map(|_| rng.r#gen::<u8>()).collect();
            let _ = decode_payload(Bytes::from(raw));
        }
    }

    #[test]
    fn decodes_a_mixed_polling_payload() {
        let packets = decode_payload(Bytes::from_static(b"4hello\x1ebAQIDBA==\x1e3")).unwrap();
        assert_eq!(
            packets,
            vec![
                Packet::Message(Message::Text(bs("hello"))),
                Packet::Message(Message::Binary(Bytes::from_static(&[1, 2, 3, 4]))),
                Packet::Pong { probe: false },
            ]
        );
    }

    #[test]
    fn rejects_a_payload_with_one_bad_packet_or_bad_utf8() {
        assert!(decode_payload(Bytes::from_static(b"4a\x1eabc")).is_err());
        assert!(decode_payload(Bytes::from_static(b"4a\x1e")).is_err());
        assert_eq!(
            decode_payload(Bytes::from_static(&[b'4', 0xff])),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn encodes_a_polling_payload_with_binary_as_base64() {
        let frames = [
            Frame::message_text("hello"),
            Frame::Binary(Bytes::from_static(&[1, 2, 3, 4])),
            Frame::PING,
        ];
        assert_eq!(encode_payload(&frames), "4hello\x1ebAQIDBA==\x1e2");
        assert_eq!(encode_payload(&[]), "");
    }
}

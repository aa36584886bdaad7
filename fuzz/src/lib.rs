//! What the fuzz targets share: turning decoded packets back into what a client sends, and
//! comparing JSON the way a round trip can promise.

use bytestring::ByteString;
use serde_json::Value;
use talkconnect::realtime::engine::packet::{Frame, Message, Packet};

/// The frame a client sends for `packet` (the inverse of `decode_text`, up to what the
/// decoder ignores: the text after `0`, `1`, `5`, `6`, and after `2`/`3` unless `probe`).
pub fn engine_frame(packet: &Packet) -> Frame {
    let text = match packet {
        Packet::Open => "0",
        Packet::Close => "1",
        Packet::Ping { probe: false } => "2",
        Packet::Ping { probe: true } => "2probe",
        Packet::Pong { probe: false } => "3",
        Packet::Pong { probe: true } => "3probe",
        Packet::Message(Message::Text(text)) => return Frame::message_text(text),
        Packet::Message(Message::Binary(data)) => return Frame::Binary(data.clone()),
        Packet::Upgrade => "5",
        Packet::Noop => "6",
    };
    Frame::Text(ByteString::from_static(text))
}

/// JSON equality where floats may differ in their last bit: serde_json's default float
/// parser is not correctly rounded, so a float printed and parsed again can move by an ulp.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || ((x - y) / x).abs() < 1e-12,
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Splits the input in chunks whose sizes cycle through `sizes` (each 1..=256), as a
/// client's bytes may arrive; an empty `sizes` gives the whole input at once.
pub fn chunks<'a>(data: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    if sizes.is_empty() {
        return vec![data];
    }
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let size = (usize::from(sizes[i % sizes.len()]) + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        out.push(chunk);
        rest = tail;
        i += 1;
    }
    out
}

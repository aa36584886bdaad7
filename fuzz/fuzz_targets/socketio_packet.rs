//! Socket.IO decoding with binary attachments (`Reassembly`, what each connection runs on
//! its Engine.IO messages): no panic; a complete packet carries exactly the attachments it
//! announced, within `max_attachments` and `max_payload`; an event or ack encodes back
//! (`encode_event_args` / `encode_ack`) to text that decodes to the same packet.
//! Input: records of one tag byte (bit 0: text or binary; the rest: length) and the bytes.
#![no_main]

use bytes::Bytes;
use bytestring::ByteString;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use talkconnect::realtime::engine::Message;
use talkconnect::realtime::packet::{
    self, Args, MAX_NAMESPACE_BYTES, Packet, PacketType, Reassembly, decode,
};
use talkconnect_fuzz::same_json;

const MAX_ATTACHMENTS: usize = 4;
const MAX_PAYLOAD: usize = 512;

fn check_round_trip(packet: &Packet, binary: &[Bytes]) {
    let args = |values: &[Value]| Args {
        values: values.to_vec(),
        binary: binary.to_vec(),
    };
    let encoded = match (packet.kind, packet.data.as_ref(), packet.id) {
        (PacketType::Event | PacketType::BinaryEvent, Some(Value::Array(data)), id) => {
            let Some(Value::String(event)) = data.first() else {
                panic!("an event without a name was accepted: {packet:?}");
            };
            packet::encode_event_args(&packet.nsp, event, args(&data[1..]), id)
        }
        (PacketType::Ack | PacketType::BinaryAck, Some(Value::Array(data)), Some(id)) => {
            packet::encode_ack(&packet.nsp, id, args(data))
        }
        (PacketType::Connect | PacketType::Disconnect, ..) => return,
        _ => panic!("a packet the decoder should refuse: {packet:?}"),
    };
    let encoded = encoded.unwrap_or_else(|e| panic!("decoded JSON does not encode: {e}"));
    let text = encoded
        .text
        .strip_prefix('4')
        .unwrap_or_else(|| panic!("no `4`: {encoded:?}"));
    let again = decode(text, MAX_ATTACHMENTS).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    // The encoder picks the binary type only when there are attachments.
    let kind = match (packet.kind, binary.is_empty()) {
        (PacketType::BinaryEvent, true) => PacketType::Event,
        (PacketType::BinaryAck, true) => PacketType::Ack,
        (kind, _) => kind,
    };
    assert_eq!(
        (again.kind, &again.nsp, again.id, again.attachments),
        (kind, &packet.nsp, packet.id, binary.len())
    );
    let (Some(a), Some(b)) = (&packet.data, &again.data) else {
        panic!("data lost: {packet:?} {again:?}");
    };
    assert!(same_json(a, b), "{a} != {b}");
}

fuzz_target!(|data: &[u8]| {
    let mut reassembly = Reassembly::default();
    let mut rest = data;
    let mut text_len = 0;
    let mut held = 0;
    while let [tag, tail @ ..] = rest {
        let len = usize::from(tag >> 1).min(tail.len());
        let (bytes, tail) = tail.split_at(len);
        rest = tail;
        let message = if tag & 1 == 0 {
            let Ok(text) = std::str::from_utf8(bytes) else {
                return;
            };
            if let Ok(p) = decode(text, MAX_ATTACHMENTS) {
                assert!(p.attachments <= MAX_ATTACHMENTS);
                assert!(p.nsp.starts_with('/') && p.nsp.len() <= MAX_NAMESPACE_BYTES);
            }
            text_len = text.len();
            held = 0;
            Message::Text(ByteString::from(text))
        } else {
            held += bytes.len();
            Message::Binary(Bytes::copy_from_slice(bytes))
        };
        match reassembly.push(message, MAX_ATTACHMENTS, MAX_PAYLOAD) {
            Ok(Some((packet, binary))) => {
                assert_eq!(binary.len(), packet.attachments);
                if !binary.is_empty() {
                    assert!(text_len + held <= MAX_PAYLOAD);
                }
                check_round_trip(&packet, &binary);
            }
            Ok(None) => {}
            // The connection closes on a violation.
            Err(_) => return,
        }
    }
});

//! Engine.IO packet decoder (`decode_text`), as a websocket text frame (no base64) and as one
//! segment of a polling payload: no panic, and a decoded packet encodes back to a frame that
//! decodes to the same packet.
#![no_main]

use bytestring::ByteString;
use libfuzzer_sys::fuzz_target;
use talkconnect::realtime::engine::packet::{
    Frame, Message, Packet, SEPARATOR, decode_payload, decode_text, encode_payload,
};
use talkconnect_fuzz::engine_frame;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for allow_base64 in [false, true] {
        let Ok(packet) = decode_text(ByteString::from(text), allow_base64) else {
            continue;
        };
        let frame = engine_frame(&packet);
        match &frame {
            Frame::Text(encoded) => {
                assert_eq!(
                    decode_text(encoded.clone(), allow_base64),
                    Ok(packet.clone())
                );
            }
            Frame::Binary(_) => assert!(allow_base64, "binary from a websocket text frame"),
        }
        let in_one_segment = match &packet {
            Packet::Message(Message::Text(text)) => !text.contains(SEPARATOR),
            _ => true,
        };
        if in_one_segment {
            let body = encode_payload([&frame]);
            assert_eq!(decode_payload(body.into()), Ok(vec![packet]));
        }
    }
});

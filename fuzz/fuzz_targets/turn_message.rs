//! TURN's STUN message parser (`turn::message`), what strangers send to the relay on UDP 3478,
//! TCP and TLS: no panic, integrity checks that never pass on a key the input was not made
//! with, and a parsed message's addresses that encode back to the same addresses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use talkconnect::turn::message::{
    self as stun, Builder, Message, parse_channel_data, stream_frame_len,
};

fuzz_target!(|data: &[u8]| {
    let _ = stream_frame_len(data);
    let _ = parse_channel_data(data);
    let Some(m) = Message::parse(data) else {
        return;
    };
    let _ = m.unknown_required();
    let _ = m.text(stun::USERNAME);
    let _ = m.u32(stun::LIFETIME);
    // A key the fuzzer cannot have computed an HMAC with.
    assert!(!m.integrity_ok(b"a key the input was not signed with"));
    for kind in [stun::XOR_PEER_ADDRESS, stun::XOR_RELAYED_ADDRESS] {
        if let Some(address) = m.xor_address(kind) {
            let rebuilt = Builder::new(m.method, m.class, m.transaction)
                .xor_address(kind, address)
                .finish(None);
            let again = Message::parse(&rebuilt).expect("a built message parses");
            assert_eq!(again.xor_address(kind), Some(address));
        }
    }
});

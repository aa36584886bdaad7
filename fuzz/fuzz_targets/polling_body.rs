//! A long-polling POST body as its chunks arrive (`PostBody`): never holds more than
//! `max_payload`, refuses exactly the bodies over it, decodes like `decode_payload` on the
//! whole body, and decoded packets encode back (`encode_payload`) to the same packets.
//! Input: one byte for the limit, one for the chunk size, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use talkconnect::realtime::engine::packet::{decode_payload, encode_payload};
use talkconnect::realtime::engine::polling::PostBody;
use talkconnect_fuzz::{chunks, engine_frame};

fuzz_target!(|data: &[u8]| {
    let [limit, chunk_size, body @ ..] = data else {
        return;
    };
    let max = usize::from(*limit) * 8;
    let mut post = PostBody::new(max);
    let mut refused = false;
    for chunk in chunks(body, &[*chunk_size]) {
        if post.push(chunk).is_err() {
            refused = true;
            break;
        }
        assert!(post.len() <= max);
    }
    assert_eq!(
        refused,
        body.len() > max,
        "refused exactly the bodies over the limit"
    );
    if refused {
        return;
    }
    let decoded = post.decode();
    assert_eq!(decoded, decode_payload(bytes::Bytes::copy_from_slice(body)));
    let Ok(packets) = decoded else {
        return;
    };
    let frames: Vec<_> = packets.iter().map(engine_frame).collect();
    let again = decode_payload(encode_payload(&frames).into());
    assert_eq!(again, Ok(packets));
});

//! The websocket frame reader (`FrameDecoder`, what each websocket connection runs on the
//! client's bytes): no panic; the messages do not depend on how the bytes were split (the
//! refusal may: a header that is both malformed and too long is refused as whichever check
//! sees it first, and either closes the connection); no
//! message over the limit; and while it waits for more bytes it holds at most one frame the
//! declared-length check admitted (header + `max`, + a 125-byte control frame in the middle
//! of a fragmented message). Input: one byte for the limit, two for chunk sizes, the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use talkconnect::realtime::engine::websocket::{FrameDecoder, Incoming};
use talkconnect_fuzz::chunks;

/// Longest frame header (RFC 6455 §5.2): 2 bytes, a 64-bit length, the mask key.
const MAX_FRAME_HEADER: usize = 14;
const MAX_CONTROL_PAYLOAD: usize = 125;

fn read(stream: &[u8], sizes: &[u8], max: usize) -> Vec<Incoming> {
    let mut decoder = FrameDecoder::new(max);
    let mut out = Vec::new();
    for chunk in chunks(stream, sizes) {
        decoder.feed(chunk);
        loop {
            let Some(incoming) = decoder.next_message() else {
                assert!(
                    decoder.buffered() <= max + MAX_FRAME_HEADER + MAX_CONTROL_PAYLOAD,
                    "holds {} bytes with max {max}",
                    decoder.buffered()
                );
                break;
            };
            match &incoming {
                Incoming::Text(text) => assert!(text.len() <= max),
                Incoming::Binary(data) => assert!(data.len() <= max),
                Incoming::Ping(data) => assert!(data.len() <= MAX_CONTROL_PAYLOAD),
                Incoming::Closed | Incoming::TooLarge | Incoming::Invalid => {}
            }
            // The connection ends on these; the reader is not asked again.
            let last = matches!(
                incoming,
                Incoming::Closed | Incoming::TooLarge | Incoming::Invalid
            );
            out.push(incoming);
            if last {
                return out;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [limit, a, b, stream @ ..] = data else {
        return;
    };
    let max = usize::from(*limit) * 4;
    let refusal = |incoming: Incoming| match incoming {
        Incoming::TooLarge => Incoming::Invalid,
        other => other,
    };
    let whole: Vec<_> = read(stream, &[], max).into_iter().map(refusal).collect();
    let split: Vec<_> = read(stream, &[*a, *b], max)
        .into_iter()
        .map(refusal)
        .collect();
    assert_eq!(whole, split, "messages depend on how the bytes arrived");
});

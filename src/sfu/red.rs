//! Redundant audio (RFC 2198, `audio/red`): each packet of a RED sender carries the last
//! Opus frame (or two) again beside the new one, so a listener that lost a packet plays its
//! frame from the next one instead of concealing it. The SFU forwards RED as it comes to a
//! subscriber that negotiated it, with the payload types inside renumbered for that
//! subscriber, and takes out the new frame alone (plain Opus) for one that did not.
//!
//! A RED payload: one 4-byte header per redundant block (F=1, payload type, 14-bit timestamp
//! offset, 10-bit length), a 1-byte header for the primary block (F=0, payload type), then
//! the blocks' data in the same order, the primary last.

use bytes::Bytes;

/// The MIME type that names RED in SDP.
pub(crate) const MIME_TYPE_RED: &str = "audio/red";

/// Each block header's offset (the payload type is in its low 7 bits), and where the primary
/// block's data starts. `None` for a malformed payload.
fn layout(payload: &[u8]) -> Option<(Vec<usize>, usize)> {
    let mut headers = Vec::new();
    let mut at = 0;
    let mut redundant_len = 0usize;
    loop {
        let first = *payload.get(at)?;
        headers.push(at);
        if first & 0x80 == 0 {
            at += 1;
            break;
        }
        let block = payload.get(at..at + 4)?;
        redundant_len += (usize::from(block[2] & 0x03) << 8) | usize::from(block[3]);
        at += 4;
    }
    let primary = at.checked_add(redundant_len)?;
    (primary <= payload.len()).then_some((headers, primary))
}

/// The primary block of a RED payload: its payload type and its data (the frame a plain
/// Opus packet would have carried). `None` for a malformed payload.
pub(crate) fn primary(payload: &Bytes) -> Option<(u8, Bytes)> {
    let (headers, primary) = layout(payload)?;
    let pt = payload[*headers.last()?] & 0x7f;
    Some((pt, payload.slice(primary..)))
}

/// The RED payload with the payload type of every block mapped through `map` (publisher
/// payload type → subscriber's, 0 = none). `None` when a block's type has no mapping or the
/// payload is malformed. Unchanged (no copy) when every type maps to itself.
pub(crate) fn remap(payload: &Bytes, map: &[u8; 128]) -> Option<Bytes> {
    let (headers, _) = layout(payload)?;
    let mapped = |at: usize| map[usize::from(payload[at] & 0x7f)];
    if headers.iter().any(|&at| mapped(at) == 0) {
        return None;
    }
    if headers.iter().all(|&at| mapped(at) == payload[at] & 0x7f) {
        return Some(payload.clone());
    }
    let mut out = payload.to_vec();
    for at in headers {
        out[at] = (out[at] & 0x80) | mapped(at);
    }
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A RED payload: one redundant block (type 111, 960 ticks old) then the primary (111).
    fn red(redundant: &[u8], primary_data: &[u8]) -> Bytes {
        let len = redundant.len();
        let mut p = vec![
            0x80 | 111,
            (960u16 >> 6) as u8,
            (((960u16 & 0x3f) << 2) as u8) | (len >> 8) as u8,
            len as u8,
            111,
        ];
        p.extend_from_slice(redundant);
        p.extend_from_slice(primary_data);
        Bytes::from(p)
    }

    #[test]
    fn the_primary_block_is_the_last_one() {
        let payload = red(b"old frame", b"new frame");
        assert_eq!(
            primary(&payload),
            Some((111, Bytes::from_static(b"new frame")))
        );
        // Only a primary block (a sender with nothing to repeat yet).
        let alone = Bytes::from_static(&[111, 1, 2, 3]);
        assert_eq!(primary(&alone), Some((111, Bytes::from_static(&[1, 2, 3]))));
    }

    #[test]
    fn malformed_payloads_are_refused() {
        // A redundant block longer than the packet.
        let mut bad = red(b"old", b"new").to_vec();
        bad[3] = 200;
        assert_eq!(primary(&Bytes::from(bad)), None);
        // Headers that never end, and nothing at all.
        assert_eq!(primary(&Bytes::from_static(&[0x80 | 111, 0, 0])), None);
        assert_eq!(primary(&Bytes::new()), None);
        assert_eq!(remap(&Bytes::new(), &[0; 128]), None);
    }

    #[test]
    fn block_types_are_renumbered_for_the_subscriber() {
        let payload = red(b"old", b"new");
        let mut same = [0u8; 128];
        same[111] = 111;
        assert_eq!(remap(&payload, &same), Some(payload.clone()));

        let mut firefox = [0u8; 128];
        firefox[111] = 109;
        let out = remap(&payload, &firefox).expect("mapped");
        assert_eq!(out[0], 0x80 | 109, "the redundant block's header keeps F=1");
        assert_eq!(out[4], 109);
        assert_eq!(&out[1..4], &payload[1..4], "offset and length unchanged");
        assert_eq!(primary(&out), Some((109, Bytes::from_static(b"new"))));

        assert_eq!(
            remap(&payload, &[0; 128]),
            None,
            "no Opus for this subscriber"
        );
    }
}

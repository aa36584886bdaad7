//! Simulcast: a publisher sends its video as 2–3 encodings (layers), each on its own SSRC,
//! all through one `TrackRemote`; each subscriber leg gets one of them. This module is the
//! pure part: which layer a leg should get, keyframe detection, and the per-leg rewrite that
//! keeps sequence numbers, timestamps and VP8 picture ids continuous for the subscriber across
//! switches (which happen only on a keyframe of the new layer).

use bytes::{Bytes, BytesMut};
use rtc::rtp;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// A layer that sent nothing for this long is not chosen (the publisher's browser turns a
/// layer off when its own uplink is short). Long enough for a low layer whose encoder drops
/// frames to fit its bitrate.
pub(crate) const LAYER_IDLE: Duration = Duration::from_millis(3000);

/// Epochs (switches) remembered per leg to map NACKed sequence numbers back.
const EPOCHS: usize = 4;

/// What a leg adds to the publisher's numbers (all wrapping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Shift {
    pub seq: u16,
    pub ts: u32,
    /// VP8 picture id (15 bits, or 7 when the publisher sends short ids) and TL0PICIDX.
    pub pic: u16,
    pub tl0: u8,
}

impl Shift {
    pub(crate) fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// The packet's header fields and VP8 descriptor as the leg sends them.
    pub(crate) fn apply_header(&self, header: &mut rtp::header::Header) {
        header.sequence_number = header.sequence_number.wrapping_add(self.seq);
        header.timestamp = header.timestamp.wrapping_add(self.ts);
    }

    /// The payload with the VP8 ids shifted (a copy), or the same bytes when nothing changes.
    pub(crate) fn apply_vp8(&self, payload: &Bytes) -> Bytes {
        if self.pic == 0 && self.tl0 == 0 {
            return payload.clone();
        }
        let Some(ids) = Vp8Ids::parse(payload) else {
            return payload.clone();
        };
        let mut out = BytesMut::from(payload.as_ref());
        if let Some((at, long, pic)) = ids.pic {
            if long {
                let value = (pic.wrapping_add(self.pic) & 0x7fff) | 0x8000;
                out[at..at + 2].copy_from_slice(&value.to_be_bytes());
            } else {
                out[at] = (pic.wrapping_add(self.pic) & 0x7f) as u8;
            }
        }
        if let Some((at, tl0)) = ids.tl0 {
            out[at] = tl0.wrapping_add(self.tl0);
        }
        out.freeze()
    }
}

/// The ids in a VP8 payload descriptor (RFC 7741 §4.2), with their byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vp8Ids {
    /// Offset, 15-bit form, value.
    pub pic: Option<(usize, bool, u16)>,
    pub tl0: Option<(usize, u8)>,
    /// Start of a partition 0 (S=1, PID=0) whose frame is a keyframe.
    pub keyframe: bool,
    /// Width and height from a keyframe's header.
    pub size: Option<(u16, u16)>,
}

impl Vp8Ids {
    pub(crate) fn parse(payload: &[u8]) -> Option<Self> {
        let first = *payload.first()?;
        let mut at = 1;
        let (mut pic, mut tl0) = (None, None);
        if first & 0x80 != 0 {
            let x = *payload.get(at)?;
            at += 1;
            if x & 0x80 != 0 {
                let m = *payload.get(at)?;
                if m & 0x80 != 0 {
                    let low = *payload.get(at + 1)?;
                    pic = Some((at, true, u16::from_be_bytes([m & 0x7f, low])));
                    at += 2;
                } else {
                    pic = Some((at, false, u16::from(m)));
                    at += 1;
                }
            }
            if x & 0x40 != 0 {
                tl0 = Some((at, *payload.get(at)?));
                at += 1;
            }
            if x & 0x30 != 0 {
                at += 1;
            }
        }
        let start = first & 0x10 != 0 && first & 0x07 == 0;
        let header = payload.get(at..)?;
        let keyframe = start && header.first().is_some_and(|b| b & 0x01 == 0);
        let size =
            (keyframe && header.len() >= 10 && header[3..6] == [0x9d, 0x01, 0x2a]).then(|| {
                (
                    u16::from_le_bytes([header[6], header[7]]) & 0x3fff,
                    u16::from_le_bytes([header[8], header[9]]) & 0x3fff,
                )
            });
        Some(Self {
            pic,
            tl0,
            keyframe,
            size,
        })
    }
}

/// The video codecs a forwarder tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VideoCodec {
    Vp8,
    H264,
    Other,
}

impl VideoCodec {
    pub(crate) fn from_mime(mime: &str) -> Self {
        if mime.eq_ignore_ascii_case("video/VP8") {
            Self::Vp8
        } else if mime.eq_ignore_ascii_case("video/H264") {
            Self::H264
        } else {
            Self::Other
        }
    }
}

/// Whether the packet starts a keyframe (VP8: a key frame's first partition; H.264: an IDR or
/// an SPS, alone, aggregated in STAP-A or the start of an FU-A).
pub(crate) fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => Vp8Ids::parse(payload).is_some_and(|ids| ids.keyframe),
        VideoCodec::H264 => h264_keyframe(payload),
        VideoCodec::Other => false,
    }
}

fn h264_keyframe(payload: &[u8]) -> bool {
    let key = |nal: u8| matches!(nal & 0x1f, 5 | 7);
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        24 => {
            let mut at = 1;
            while at + 2 < payload.len() {
                let size = usize::from(u16::from_be_bytes([payload[at], payload[at + 1]]));
                if key(payload[at + 2]) {
                    return true;
                }
                at += 2 + size;
            }
            false
        }
        28 => payload.get(1).is_some_and(|&fu| fu & 0x80 != 0 && key(fu)),
        _ => key(first),
    }
}

/// What the forwarder knows of one layer when choosing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerView {
    /// 0 = the lowest.
    pub rank: u8,
    pub active: bool,
    /// Picture height from its last keyframe (VP8 only).
    pub height: Option<u16>,
}

/// The layer (index into `layers`) a leg should get: the highest active layer of a rank below
/// `level` (the subscriber's network allows that many layers; 0 is treated as 1: the pause is
/// applied elsewhere) and not taller than needed for a tile `max_height` pixels high (the
/// smallest layer at least that tall; heights unknown do not limit). With no active layer
/// under the limits, the lowest active one; `None` when nothing is active.
pub(crate) fn choose_layer(
    layers: &[LayerView],
    level: u8,
    max_height: Option<u16>,
) -> Option<usize> {
    let mut max_rank = level.max(1) - 1;
    if let Some(want) = max_height {
        let enough = layers
            .iter()
            .filter(|l| l.active && l.height.is_some_and(|h| h >= want))
            .map(|l| l.rank)
            .min();
        if let Some(rank) = enough {
            max_rank = max_rank.min(rank);
        }
    }
    let active = || layers.iter().enumerate().filter(|(_, l)| l.active);
    active()
        .filter(|(_, l)| l.rank <= max_rank)
        .max_by_key(|(_, l)| l.rank)
        .or_else(|| active().min_by_key(|(_, l)| l.rank))
        .map(|(i, _)| i)
}

/// The leg's last packet as the subscriber saw it.
#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u16,
    ts: u32,
    pic: Option<u16>,
    tl0: Option<u8>,
    at: Instant,
}

/// One incoming packet, as [`LegLayers::offer`] needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Incoming {
    pub layer: usize,
    pub seq: u16,
    pub ts: u32,
    pub keyframe: bool,
    pub vp8: Option<Vp8Ids>,
    pub at: Instant,
}

/// Which layer one leg forwards and how its numbers are shifted.
#[derive(Debug, Default)]
pub(crate) struct LegLayers {
    current: Option<usize>,
    shift: Shift,
    last: Option<Sent>,
    /// (first sequence number as sent, layer, shift), newest last.
    epochs: Vec<(u16, usize, Shift)>,
}

impl LegLayers {
    pub(crate) fn current(&self) -> Option<usize> {
        self.current
    }

    /// Forgets the layer (its forwarder lost it): the leg waits for a keyframe of another.
    pub(crate) fn drop_layer(&mut self, layer: usize) {
        if self.current == Some(layer) {
            self.current = None;
        }
    }

    /// The shift to send this packet with, or `None` when the leg does not take it: packets of
    /// the current layer pass; a keyframe of `target` switches to it (the first one starts the
    /// leg), with numbers continuing from the last packet sent.
    pub(crate) fn offer(
        &mut self,
        packet: &Incoming,
        target: usize,
        clock_rate: u32,
    ) -> Option<Shift> {
        let switching = self.current != Some(packet.layer);
        if switching {
            if packet.layer != target || !packet.keyframe {
                return None;
            }
            self.shift = match self.last {
                None => Shift::default(),
                Some(last) => {
                    let elapsed = packet.at.saturating_duration_since(last.at);
                    let ticks = (elapsed.as_micros() as u64 * u64::from(clock_rate) / 1_000_000)
                        .clamp(1, u64::from(clock_rate)) as u32;
                    let pic_ids = packet.vp8.and_then(|ids| ids.pic);
                    Shift {
                        seq: last.seq.wrapping_add(1).wrapping_sub(packet.seq),
                        ts: last.ts.wrapping_add(ticks).wrapping_sub(packet.ts),
                        pic: match (last.pic, pic_ids) {
                            (Some(sent), Some((_, _, pic))) => {
                                sent.wrapping_add(1).wrapping_sub(pic)
                            }
                            _ => 0,
                        },
                        tl0: match (last.tl0, packet.vp8.and_then(|ids| ids.tl0)) {
                            (Some(sent), Some((_, tl0))) => sent.wrapping_add(1).wrapping_sub(tl0),
                            _ => 0,
                        },
                    }
                }
            };
            self.current = Some(packet.layer);
            if self.epochs.len() == EPOCHS {
                self.epochs.remove(0);
            }
            self.epochs.push((
                packet.seq.wrapping_add(self.shift.seq),
                packet.layer,
                self.shift,
            ));
        }
        let seq = packet.seq.wrapping_add(self.shift.seq);
        let newer = self
            .last
            .is_none_or(|last| switching || seq.wrapping_sub(last.seq).wrapping_sub(1) < 0x8000);
        if newer {
            let pic_mask = |long: bool| if long { 0x7fff } else { 0x7f };
            self.last = Some(Sent {
                seq,
                ts: packet.ts.wrapping_add(self.shift.ts),
                pic: packet
                    .vp8
                    .and_then(|ids| ids.pic)
                    .map(|(_, long, pic)| pic.wrapping_add(self.shift.pic) & pic_mask(long)),
                tl0: packet
                    .vp8
                    .and_then(|ids| ids.tl0)
                    .map(|(_, tl0)| tl0.wrapping_add(self.shift.tl0)),
                at: packet.at,
            });
        }
        Some(self.shift)
    }

    /// Whether a sequence number this leg sent comes before its last switch. Nothing after the
    /// keyframe it switched on refers to such a packet, so a NACK for it is not worth
    /// answering.
    pub(crate) fn before_switch(&self, sent: u16) -> bool {
        self.epochs
            .last()
            .is_some_and(|(start, ..)| sent.wrapping_sub(*start) >= 0x8000)
    }

    /// The layer, publisher sequence number and shift behind a sequence number this leg sent.
    pub(crate) fn map_back(&self, sent: u16) -> Option<(usize, u16, Shift)> {
        let last = self.last?.seq;
        self.epochs
            .iter()
            .rev()
            .filter(|(start, ..)| last.wrapping_sub(*start) < 0x8000)
            .find(|(start, ..)| {
                sent.wrapping_sub(*start) < 0x8000 && last.wrapping_sub(sent) < 0x8000
            })
            .map(|&(_, layer, shift)| (layer, sent.wrapping_sub(shift.seq), shift))
    }
}

/// Keeps a publisher's simulcast receivers through renegotiations. At every negotiation
/// webrtc-rs 0.21.1 rebuilds the receiver of each m-line the remote description names a track
/// for (`start_rtp`), and a simulcast receiver is rebuilt with no SSRCs: it learnt them from
/// the rid header extension, which browsers stop sending once the SFU's receiver reports
/// arrive, so from then on every layer's packets would be dropped. For the sending m-lines
/// with rids whose mid is in `known` (set up by an earlier negotiation), the lines that name
/// a track (`a=msid`, `a=ssrc`, `a=ssrc-group`) are left out of the copy webrtc-rs applies,
/// so it leaves that receiver alone; rids and `a=simulcast` stay (the answer keeps simulcast).
/// Returns the SDP to apply and the simulcast mids it sets up for the first time (to add to
/// `known` once it is applied).
pub(crate) fn keep_simulcast_receivers(
    sdp: &str,
    known: &HashSet<String>,
) -> (String, Vec<String>) {
    let mut out = String::with_capacity(sdp.len());
    let mut new = Vec::new();
    let mut sections: Vec<Vec<&str>> = vec![Vec::new()];
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        if let Some(last) = sections.last_mut() {
            last.push(line);
        }
    }
    for (i, section) in sections.iter().enumerate() {
        let attr = |prefix: &str| section.iter().find_map(|l| l.strip_prefix(prefix));
        let simulcast = i > 0
            && section.iter().any(|l| l.starts_with("a=rid:"))
            && section
                .iter()
                .any(|l| l.starts_with("a=sendonly") || l.starts_with("a=sendrecv"));
        let mid = attr("a=mid:").map(|m| m.trim().to_owned());
        let keep_receiver = match (&mid, simulcast) {
            (Some(mid), true) if known.contains(mid) => true,
            (Some(mid), true) => {
                new.push(mid.clone());
                false
            }
            _ => false,
        };
        for line in section {
            let names_track = line.starts_with("a=msid:")
                || line.starts_with("a=ssrc:")
                || line.starts_with("a=ssrc-group:");
            if !(keep_receiver && names_track) {
                out.push_str(line);
            }
        }
    }
    (out, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 packet with a 15-bit picture id and TL0PICIDX; `key` marks a keyframe start.
    fn vp8(pic: u16, tl0: u8, key: bool, size: (u16, u16)) -> Vec<u8> {
        let mut p = vec![0x90, 0xc0, 0x80 | (pic >> 8) as u8, pic as u8, tl0];
        let tag = if key { 0x00 } else { 0x01 };
        p.extend_from_slice(&[tag, 0, 0, 0x9d, 0x01, 0x2a]);
        p.extend_from_slice(&size.0.to_le_bytes());
        p.extend_from_slice(&size.1.to_le_bytes());
        p
    }

    #[test]
    fn vp8_descriptor_and_keyframe() {
        let key = Vp8Ids::parse(&vp8(0x1234, 7, true, (640, 360))).expect("parses");
        assert_eq!(key.pic, Some((2, true, 0x1234)));
        assert_eq!(key.tl0, Some((4, 7)));
        assert!(key.keyframe);
        assert_eq!(key.size, Some((640, 360)));
        let delta = Vp8Ids::parse(&vp8(5, 1, false, (0, 0))).expect("parses");
        assert!(!delta.keyframe);
        assert_eq!(delta.size, None);
        // Not the first partition: never a keyframe start.
        let mut cont = vp8(5, 1, true, (640, 360));
        cont[0] = 0x80;
        assert!(!Vp8Ids::parse(&cont).expect("parses").keyframe);
        assert!(Vp8Ids::parse(&[0x80]).is_none(), "truncated");
        // 7-bit picture id, no TL0PICIDX.
        let short = Vp8Ids::parse(&[0x90, 0x80, 0x05, 0x00]).expect("parses");
        assert_eq!(short.pic, Some((2, false, 5)));
        assert!(short.keyframe);
    }

    #[test]
    fn shift_rewrites_vp8_ids_in_a_copy() {
        let payload = Bytes::from(vp8(0x7ffe, 255, false, (0, 0)));
        let shift = Shift {
            pic: 3,
            tl0: 2,
            ..Shift::default()
        };
        let out = shift.apply_vp8(&payload);
        let ids = Vp8Ids::parse(&out).expect("parses");
        assert_eq!(ids.pic, Some((2, true, 1)), "wraps at 15 bits");
        assert_eq!(ids.tl0, Some((4, 1)));
        assert_eq!(payload[2], 0xff, "the shared packet is untouched");
        assert_eq!(out[5..], payload[5..]);
    }

    #[test]
    fn h264_keyframes() {
        assert!(h264_keyframe(&[0x65, 0x88]), "IDR");
        assert!(h264_keyframe(&[0x67, 0x42]), "SPS");
        assert!(!h264_keyframe(&[0x41, 0x9a]), "non-IDR slice");
        assert!(
            h264_keyframe(&[0x78, 0, 2, 0x67, 0x42, 0, 1, 0x68]),
            "STAP-A with SPS"
        );
        assert!(!h264_keyframe(&[0x78, 0, 1, 0x41]), "STAP-A without");
        assert!(h264_keyframe(&[0x7c, 0x85, 0]), "FU-A start of IDR");
        assert!(!h264_keyframe(&[0x7c, 0x05, 0]), "FU-A middle");
        assert!(!h264_keyframe(&[]));
    }

    fn view(rank: u8, active: bool, height: Option<u16>) -> LayerView {
        LayerView {
            rank,
            active,
            height,
        }
    }

    #[test]
    fn layer_choice_follows_level_tile_and_activity() {
        // Layers listed in arrival order, not rank order.
        let layers = [
            view(2, true, Some(720)),
            view(0, true, Some(180)),
            view(1, true, Some(360)),
        ];
        assert_eq!(choose_layer(&layers, 3, None), Some(0));
        assert_eq!(choose_layer(&layers, 2, None), Some(2));
        assert_eq!(choose_layer(&layers, 1, None), Some(1));
        assert_eq!(
            choose_layer(&layers, 0, None),
            Some(1),
            "paused: the lowest is kept ready"
        );
        assert_eq!(
            choose_layer(&layers, 3, Some(200)),
            Some(2),
            "a 200 px tile needs 360"
        );
        assert_eq!(choose_layer(&layers, 3, Some(100)), Some(1));
        assert_eq!(
            choose_layer(&layers, 3, Some(1000)),
            Some(0),
            "nothing tall enough: all"
        );
        let no_high = [
            view(2, false, Some(720)),
            view(0, true, None),
            view(1, true, None),
        ];
        assert_eq!(
            choose_layer(&no_high, 3, None),
            Some(2),
            "an idle layer is skipped"
        );
        let only_high = [view(2, true, None), view(0, false, None)];
        assert_eq!(
            choose_layer(&only_high, 1, None),
            Some(0),
            "the lowest active one"
        );
        assert_eq!(choose_layer(&[view(0, false, None)], 3, None), None);
    }

    fn incoming(
        layer: usize,
        seq: u16,
        ts: u32,
        keyframe: bool,
        pic: u16,
        at: Instant,
    ) -> Incoming {
        Incoming {
            layer,
            seq,
            ts,
            keyframe,
            vp8: Vp8Ids::parse(&vp8(pic, pic as u8, keyframe, (320, 180))),
            at,
        }
    }

    #[test]
    fn a_leg_switches_on_a_keyframe_with_continuous_numbers() {
        let t0 = Instant::now();
        let mut leg = LegLayers::default();
        assert_eq!(
            leg.offer(&incoming(0, 100, 9000, false, 40, t0), 0, 90_000),
            None,
            "waits for a keyframe"
        );
        assert_eq!(
            leg.offer(&incoming(0, 101, 9000, true, 41, t0), 0, 90_000),
            Some(Shift::default())
        );
        assert_eq!(
            leg.offer(&incoming(0, 102, 12000, false, 42, t0), 0, 90_000),
            Some(Shift::default())
        );
        // Layer 1 is wanted: its delta frames are not taken, nor layer 0's once switched.
        assert_eq!(
            leg.offer(&incoming(1, 5000, 777, false, 900, t0), 1, 90_000),
            None
        );
        let at = t0 + Duration::from_millis(100);
        let shift = leg
            .offer(&incoming(1, 5001, 1000, true, 901, at), 1, 90_000)
            .expect("switches on the keyframe");
        assert_eq!(5001u16.wrapping_add(shift.seq), 103, "sequence continues");
        assert_eq!(
            1000u32.wrapping_add(shift.ts),
            12000 + 9000,
            "100 ms later at 90 kHz"
        );
        assert_eq!(
            901u16.wrapping_add(shift.pic) & 0x7fff,
            43,
            "picture id continues"
        );
        assert_eq!(leg.current(), Some(1));
        assert_eq!(
            leg.offer(&incoming(0, 103, 15000, false, 43, at), 1, 90_000),
            None
        );
        assert_eq!(
            leg.offer(&incoming(1, 5002, 4000, false, 902, at), 1, 90_000),
            Some(shift)
        );
        // NACKs map back through the epochs.
        assert_eq!(leg.map_back(102), Some((0, 102, Shift::default())));
        assert_eq!(leg.map_back(104), Some((1, 5002, shift)));
        assert_eq!(leg.map_back(99), None, "before the leg's first packet");
        assert!(
            leg.before_switch(102),
            "layer 0's packets came before the switch"
        );
        assert!(!leg.before_switch(103) && !leg.before_switch(104));
        // The layer is lost: the next keyframe of any target restarts the leg.
        leg.drop_layer(1);
        assert_eq!(leg.current(), None);
        let back = leg
            .offer(&incoming(0, 110, 30000, true, 50, at), 0, 90_000)
            .expect("keyframe of the new target");
        assert_eq!(110u16.wrapping_add(back.seq), 105);
    }

    #[test]
    fn a_known_simulcast_section_names_no_track_on_renegotiation() {
        let sdp = "v=0\r\ns=-\r\nm=audio 9 UDP 111\r\na=mid:0\r\na=sendonly\r\na=msid:s a\r\n\
                   m=video 9 UDP 96\r\na=mid:1\r\na=sendonly\r\na=msid:s v\r\na=ssrc:5 cname:x\r\n\
                   a=rid:l send\r\na=rid:h send\r\na=simulcast:send l;h\r\n\
                   m=video 9 UDP 96\r\na=mid:2\r\na=recvonly\r\na=rid:l recv\r\n";
        let (first, new) = keep_simulcast_receivers(sdp, &HashSet::new());
        assert_eq!(first, sdp, "the first negotiation sets the receiver up");
        assert_eq!(
            new,
            vec!["1".to_owned()],
            "only the sending section with rids"
        );
        let known: HashSet<String> = new.into_iter().collect();
        let (again, new) = keep_simulcast_receivers(sdp, &known);
        assert!(new.is_empty());
        assert!(
            again.contains("a=msid:s a\r\n"),
            "other sections keep their track"
        );
        assert!(!again.contains("a=msid:s v"));
        assert!(!again.contains("a=ssrc:5"));
        assert!(again.contains("a=simulcast:send l;h\r\n") && again.contains("a=rid:h send\r\n"));
        assert_eq!(
            again.len(),
            sdp.len() - "a=msid:s v\r\na=ssrc:5 cname:x\r\n".len()
        );
    }
}

//! Answering subscribers' NACKs from the SFU. Each published video track keeps its last
//! packets (bounded by age and bytes) in one [`RetransmitBuffer`], owned by its forwarder and
//! shared by every subscriber leg: the packets are the same `Arc`s the legs were sent. Each leg
//! has a [`ResendLimiter`], so a subscriber cannot make the SFU resend without bound.

use rtc::rtp;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sequence numbers one buffer spans at most, held or missing (about 4 s of a 1000 packet/s
/// stream). Bounds the slot queue when packets are small or a publisher skips numbers.
const MAX_SLOTS: usize = 4096;

/// A subscriber may have the same sequence number resent at most once per this interval.
/// Below webrtc-rs' and libwebrtc's NACK repeat interval on short round trips (100 ms), so an
/// honest receiver's second request for a retransmission that was lost again is answered.
pub(crate) const SAME_PACKET_INTERVAL: Duration = Duration::from_millis(80);

/// Sequence numbers of one NACK message that are considered; the rest are refused (counted as
/// limited). A NACK pair names up to 17, and a browser asks for far fewer at a time.
pub(crate) const MAX_PACKETS_PER_NACK: usize = 128;

/// Packets one leg may have resent or asked of the publisher: a burst of this many, refilled
/// at this many per second (5 % loss of a 1000 packet/s stream is 50/s).
pub(crate) const LEG_BUDGET_PACKETS: u32 = 200;

/// How long and how much a buffer keeps; `window` zero turns buffering off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetransmitSettings {
    pub window: Duration,
    pub max_bytes: usize,
}

impl RetransmitSettings {
    pub(crate) fn enabled(&self) -> bool {
        !self.window.is_zero() && self.max_bytes > 0
    }
}

enum Slot {
    /// A sequence number skipped by the publisher (lost upstream, or not yet arrived), noted
    /// at this time; the packet is stored if it comes within the window.
    Missing(Instant),
    Held {
        at: Instant,
        bytes: usize,
        packet: Arc<rtp::Packet>,
    },
}

impl Slot {
    fn at(&self) -> Instant {
        match self {
            Slot::Missing(at) | Slot::Held { at, .. } => *at,
        }
    }
}

/// The recent packets of one published track, indexed by sequence number: slot `i` holds
/// sequence number `first_seq + i` (wrapping). Inserting, evicting and looking up are O(1).
pub(crate) struct RetransmitBuffer {
    settings: RetransmitSettings,
    first_seq: u16,
    slots: VecDeque<Slot>,
    bytes: usize,
}

impl RetransmitBuffer {
    pub(crate) fn new(settings: RetransmitSettings) -> Self {
        Self {
            settings,
            first_seq: 0,
            slots: VecDeque::new(),
            bytes: 0,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.settings.enabled()
    }

    /// Bytes held now (RTP header and payload, as received).
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps `packet` (`bytes` long on the wire), then drops what is too old or over the cap.
    pub(crate) fn insert(&mut self, now: Instant, packet: &Arc<rtp::Packet>, bytes: usize) {
        if !self.enabled() {
            return;
        }
        let seq = packet.header.sequence_number;
        let held = Slot::Held {
            at: now,
            bytes,
            packet: Arc::clone(packet),
        };
        let offset = usize::from(seq.wrapping_sub(self.first_seq));
        if self.slots.is_empty() {
            self.first_seq = seq;
            self.slots.push_back(held);
            self.bytes = bytes;
        } else if offset < self.slots.len() {
            // A late packet filling a gap (a repeat was dropped by the forwarder already).
            if let Some(slot @ Slot::Missing(_)) = self.slots.get_mut(offset) {
                *slot = held;
                self.bytes += bytes;
            }
        } else if offset >= 0x8000 {
            // Behind the oldest slot: older than anything kept.
            return;
        } else if offset - self.slots.len() < MAX_SLOTS {
            while self.slots.len() < offset {
                self.slots.push_back(Slot::Missing(now));
            }
            self.slots.push_back(held);
            self.bytes += bytes;
        } else {
            // A jump far ahead (the publisher restarted its numbering): start again.
            self.slots.clear();
            self.first_seq = seq;
            self.slots.push_back(held);
            self.bytes = bytes;
        }
        self.evict(now);
    }

    fn evict(&mut self, now: Instant) {
        while let Some(front) = self.slots.front() {
            let expired = now.saturating_duration_since(front.at()) > self.settings.window;
            if !expired && self.bytes <= self.settings.max_bytes && self.slots.len() <= MAX_SLOTS {
                break;
            }
            if let Some(Slot::Held { bytes, .. }) = self.slots.pop_front() {
                self.bytes -= bytes;
            }
            self.first_seq = self.first_seq.wrapping_add(1);
        }
    }

    /// The packet with sequence number `seq`, if held and not older than the window.
    pub(crate) fn get(&self, now: Instant, seq: u16) -> Option<&Arc<rtp::Packet>> {
        let offset = usize::from(seq.wrapping_sub(self.first_seq));
        match self.slots.get(offset)? {
            Slot::Held { at, packet, .. }
                if now.saturating_duration_since(*at) <= self.settings.window =>
            {
                Some(packet)
            }
            _ => None,
        }
    }
}

/// What one subscriber leg may still ask for: each sequence number once per
/// [`SAME_PACKET_INTERVAL`], and [`LEG_BUDGET_PACKETS`] per second overall.
pub(crate) struct ResendLimiter {
    recent: VecDeque<(u16, Instant)>,
    tokens: f64,
    refilled: Instant,
}

impl ResendLimiter {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            recent: VecDeque::new(),
            tokens: f64::from(LEG_BUDGET_PACKETS),
            refilled: now,
        }
    }

    /// True when `seq` may be resent (or asked of the publisher) now; records it.
    pub(crate) fn allow(&mut self, now: Instant, seq: u16) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) >= SAME_PACKET_INTERVAL)
        {
            self.recent.pop_front();
        }
        if self.recent.iter().any(|(s, _)| *s == seq) {
            return false;
        }
        let budget = f64::from(LEG_BUDGET_PACKETS);
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * budget).min(budget);
        self.refilled = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        self.recent.push_back((seq, now));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn packet(seq: u16) -> Arc<rtp::Packet> {
        Arc::new(rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                sequence_number: seq,
                ..Default::default()
            },
            payload: Bytes::from_static(&[0; 88]),
        })
    }

    fn buffer(window_ms: u64, max_bytes: usize) -> RetransmitBuffer {
        RetransmitBuffer::new(RetransmitSettings {
            window: Duration::from_millis(window_ms),
            max_bytes,
        })
    }

    fn held(b: &RetransmitBuffer, now: Instant, seq: u16) -> bool {
        b.get(now, seq)
            .is_some_and(|p| p.header.sequence_number == seq)
    }

    #[test]
    fn lookups_find_held_packets_across_the_wrap() {
        let now = Instant::now();
        let mut b = buffer(1000, 1 << 20);
        for seq in [65533u16, 65534, 65535, 0, 1, 2] {
            b.insert(now, &packet(seq), 100);
        }
        for seq in [65533u16, 65535, 0, 2] {
            assert!(held(&b, now, seq), "{seq} held");
        }
        assert!(!held(&b, now, 3), "not yet sent");
        assert!(!held(&b, now, 65532), "before the first");
        assert!(!held(&b, now, 30000), "far away");
        assert_eq!(b.bytes(), 600);
    }

    #[test]
    fn gaps_are_missing_until_the_late_packet_comes() {
        let now = Instant::now();
        let mut b = buffer(1000, 1 << 20);
        b.insert(now, &packet(10), 100);
        b.insert(now, &packet(14), 100);
        assert!(!held(&b, now, 12), "skipped by the publisher");
        b.insert(now, &packet(12), 100);
        assert!(held(&b, now, 12), "stored when it arrives late");
        b.insert(now, &packet(12), 100);
        assert_eq!(b.bytes(), 300, "a repeat is not counted twice");
        b.insert(now, &packet(9), 100);
        assert!(!held(&b, now, 9), "older than the first slot");
    }

    #[test]
    fn old_packets_are_evicted_and_never_returned() {
        let start = Instant::now();
        let mut b = buffer(1000, 1 << 20);
        b.insert(start, &packet(1), 100);
        b.insert(start + Duration::from_millis(500), &packet(2), 100);
        let later = start + Duration::from_millis(1200);
        assert!(!held(&b, later, 1), "past the window even before eviction");
        assert!(held(&b, later, 2));
        b.insert(later, &packet(3), 100);
        assert_eq!(b.bytes(), 200, "packet 1 evicted");
        assert!(!held(&b, later, 1));
        b.insert(start + Duration::from_millis(5000), &packet(4), 100);
        assert_eq!(b.bytes(), 100, "only the newest left");
    }

    #[test]
    fn byte_cap_evicts_the_oldest() {
        let now = Instant::now();
        let mut b = buffer(1000, 350);
        for seq in 0..10u16 {
            b.insert(now, &packet(seq), 100);
        }
        assert!(b.bytes() <= 350);
        assert!(held(&b, now, 9) && held(&b, now, 7));
        assert!(!held(&b, now, 6), "evicted by bytes");
        let mut tiny = buffer(1000, 50);
        tiny.insert(now, &packet(1), 100);
        assert_eq!(tiny.bytes(), 0, "a packet over the cap is not kept");
        assert!(!held(&tiny, now, 1));
    }

    #[test]
    fn slot_count_is_bounded_and_a_far_jump_restarts() {
        let now = Instant::now();
        let mut b = buffer(1000, 1 << 20);
        b.insert(now, &packet(0), 100);
        b.insert(now, &packet(4000), 100);
        assert!(held(&b, now, 0) && held(&b, now, 4000));
        b.insert(now, &packet(5000), 100);
        assert!(!held(&b, now, 0), "dropped to keep at most MAX_SLOTS");
        assert!(held(&b, now, 4000) && held(&b, now, 5000));
        b.insert(now, &packet(20000), 100);
        assert!(held(&b, now, 20000));
        assert!(!held(&b, now, 5000), "restarted after a jump");
        assert_eq!(b.bytes(), 100);
    }

    #[test]
    fn disabled_buffer_keeps_nothing() {
        let now = Instant::now();
        let mut b = buffer(0, 1 << 20);
        b.insert(now, &packet(1), 100);
        assert!(!held(&b, now, 1));
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn limiter_allows_a_packet_once_per_interval_and_caps_the_rate() {
        let start = Instant::now();
        let mut l = ResendLimiter::new(start);
        assert!(l.allow(start, 5));
        assert!(!l.allow(start + Duration::from_millis(10), 5), "too soon");
        assert!(
            l.allow(start + SAME_PACKET_INTERVAL, 5),
            "asked again later"
        );
        let t = start + Duration::from_secs(1);
        let allowed = (0..1000u16).filter(|s| l.allow(t, 100 + s)).count();
        assert_eq!(allowed, LEG_BUDGET_PACKETS as usize, "a burst is capped");
        assert!(!l.allow(t, 5000));
        assert!(
            l.allow(t + Duration::from_millis(10), 5000),
            "refilled over time"
        );
    }
}

//! Media fan-out. One forwarder task per published track polls it without pause and hands
//! each packet, as an `Arc`, to the downlink queue of every subscriber; one downlink task per
//! subscriber rewrites the packet for its leg (SSRC, payload type, extension ids) and writes it
//! to that subscriber's connection. A slow subscriber fills only its own queue. Subscribers'
//! NACKs are answered from the forwarder's retransmission buffer through the same queue.

use super::congestion::DownlinkVideo;
use super::red;
use super::retransmit::{
    MAX_PACKETS_PER_NACK, ResendLimiter, RetransmitBuffer, RetransmitSettings,
};
use super::signal::MediaKind;
use super::simulcast::{
    Incoming, LAYER_IDLE, LayerView, LegLayers, Shift, VideoCodec, Vp8Ids, choose_layer,
    starts_keyframe,
};
use super::stats::SfuMetrics;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    NackPair, TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use rtc::shared::marshal::MarshalSize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// Identifies one published track across the SFU.
pub(crate) type SourceId = u64;

/// A packet on its way to one subscriber.
pub(crate) struct DownlinkPacket {
    pub source: SourceId,
    pub packet: Arc<rtp::Packet>,
    /// The leg's simulcast rewrite (zero without simulcast).
    pub shift: Shift,
    /// The payload is VP8 (its picture ids follow `shift`).
    pub vp8: bool,
}

/// How one subscriber leg differs from its publisher on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LegMapping {
    /// The leg's own SSRC.
    pub ssrc: u32,
    /// Publisher payload type → subscriber payload type (0 = not forwardable).
    pub payload_types: [u8; 128],
    /// Publisher extension id → subscriber extension id (0 = drop).
    pub extensions: [u8; 256],
    /// The publisher's RED payload type, if it offered RED (`red.rs`): its packets reach
    /// this leg as RED with the types inside renumbered, or as their primary block alone
    /// when the subscriber has no RED.
    pub red: Option<u8>,
}

impl LegMapping {
    /// Builds the mapping from both sides' negotiated parameters. `None` when no publisher
    /// codec has a counterpart on the subscriber side (nothing could be forwarded).
    pub(crate) fn negotiate(
        ssrc: u32,
        publisher_codecs: &[(u8, RTCRtpCodec)],
        subscriber_codecs: &[(u8, RTCRtpCodec)],
        publisher_extensions: &[(u16, String)],
        subscriber_extensions: &[(u16, String)],
        forwarded_uris: &[&str],
    ) -> Option<Self> {
        let mut payload_types = [0u8; 128];
        let mut any = false;
        let red = publisher_codecs
            .iter()
            .find(|(_, c)| c.mime_type.eq_ignore_ascii_case(red::MIME_TYPE_RED))
            .map(|(pt, _)| *pt)
            .filter(|pt| *pt < 128);
        for (pub_pt, pub_codec) in publisher_codecs {
            if let Some((sub_pt, _)) = subscriber_codecs
                .iter()
                .find(|(_, sub_codec)| same_codec(pub_codec, sub_codec))
                && let Some(slot) = payload_types.get_mut(usize::from(*pub_pt))
                && *sub_pt < 128
            {
                *slot = *sub_pt;
                any = true;
            }
        }
        if !any {
            return None;
        }
        let mut extensions = [0u8; 256];
        for (pub_id, uri) in publisher_extensions {
            if !forwarded_uris.contains(&uri.as_str()) {
                continue;
            }
            if let Some((sub_id, _)) = subscriber_extensions.iter().find(|(_, u)| u == uri)
                && let (Ok(pub_id), Ok(sub_id)) = (u8::try_from(*pub_id), u8::try_from(*sub_id))
            {
                extensions[usize::from(pub_id)] = sub_id;
            }
        }
        Some(Self {
            ssrc,
            payload_types,
            extensions,
            red,
        })
    }

    /// The packet as this leg must send it, or `None` when its payload type has no mapping.
    #[cfg(test)]
    pub(crate) fn rewrite(&self, source: &rtp::Packet) -> Option<rtp::Packet> {
        self.rewrite_shifted(source, Shift::default(), false)
    }

    /// [`Self::rewrite`], with a simulcast leg's numbers shifted.
    pub(crate) fn rewrite_shifted(
        &self,
        source: &rtp::Packet,
        shift: Shift,
        vp8: bool,
    ) -> Option<rtp::Packet> {
        let mut payload_type = *self
            .payload_types
            .get(usize::from(source.header.payload_type))?;
        // A RED packet: renumbered for a subscriber with RED, else its primary block alone.
        let mut red_payload = None;
        if self.red == Some(source.header.payload_type) {
            if payload_type != 0 {
                red_payload = Some(red::remap(&source.payload, &self.payload_types)?);
            } else {
                let (inner, primary) = red::primary(&source.payload)?;
                payload_type = *self.payload_types.get(usize::from(inner))?;
                red_payload = Some(primary);
            }
        }
        if payload_type == 0 {
            return None;
        }
        let extensions: Vec<rtp::header::Extension> = source
            .header
            .extensions
            .iter()
            .filter_map(|ext| {
                let id = self.extensions[usize::from(ext.id)];
                (id != 0).then(|| rtp::header::Extension {
                    id,
                    payload: ext.payload.clone(),
                })
            })
            .collect();
        let one_byte = extensions
            .iter()
            .all(|e| (1..=14).contains(&e.id) && (1..=16).contains(&e.payload.len()));
        let mut header = rtp::header::Header {
            version: 2,
            padding: false,
            extension: !extensions.is_empty(),
            marker: source.header.marker,
            payload_type,
            sequence_number: source.header.sequence_number,
            timestamp: source.header.timestamp,
            ssrc: self.ssrc,
            csrc: source.header.csrc.clone(),
            extension_profile: if one_byte {
                rtp::header::EXTENSION_PROFILE_ONE_BYTE
            } else {
                rtp::header::EXTENSION_PROFILE_TWO_BYTE
            },
            extensions,
            extensions_padding: 0,
        };
        if let Some(payload) = red_payload {
            // Audio: never simulcast, nothing to shift.
            return Some(rtp::Packet { header, payload });
        }
        if shift.is_zero() {
            return Some(rtp::Packet {
                header,
                payload: source.payload.clone(),
            });
        }
        shift.apply_header(&mut header);
        let payload = if vp8 {
            shift.apply_vp8(&source.payload)
        } else {
            source.payload.clone()
        };
        Some(rtp::Packet { header, payload })
    }
}

/// Same codec for forwarding purposes: MIME type and clock rate, and for H.264 the same
/// packetization mode and profile (the level may differ).
pub(crate) fn same_codec(a: &RTCRtpCodec, b: &RTCRtpCodec) -> bool {
    if !a.mime_type.eq_ignore_ascii_case(&b.mime_type) || a.clock_rate != b.clock_rate {
        return false;
    }
    if !a.mime_type.eq_ignore_ascii_case("video/H264") {
        return true;
    }
    let fmtp = |codec: &RTCRtpCodec, key: &str| -> String {
        codec
            .sdp_fmtp_line
            .split(';')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_default()
    };
    let mode = |codec: &RTCRtpCodec| {
        let m = fmtp(codec, "packetization-mode");
        if m.is_empty() { "0".to_owned() } else { m }
    };
    let profile = |codec: &RTCRtpCodec| {
        fmtp(codec, "profile-level-id")
            .chars()
            .take(4)
            .collect::<String>()
    };
    mode(a) == mode(b) && profile(a) == profile(b)
}

/// Drops packets already forwarded (a publisher answering a relayed NACK for a packet the SFU
/// had): a 1024-packet window behind the highest sequence number seen.
#[derive(Debug, Default)]
pub(crate) struct SeqWindow {
    highest: Option<u16>,
    bits: [u64; 16],
}

impl SeqWindow {
    const SIZE: u16 = 1024;

    fn bit(seq: u16) -> (usize, u64) {
        let i = usize::from(seq % Self::SIZE);
        (i / 64, 1u64 << (i % 64))
    }

    fn set(&mut self, seq: u16) {
        let (w, b) = Self::bit(seq);
        self.bits[w] |= b;
    }

    fn clear(&mut self, seq: u16) {
        let (w, b) = Self::bit(seq);
        self.bits[w] &= !b;
    }

    fn get(&self, seq: u16) -> bool {
        let (w, b) = Self::bit(seq);
        self.bits[w] & b != 0
    }

    /// Records `seq`; true when it was seen before.
    pub(crate) fn is_duplicate(&mut self, seq: u16) -> bool {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            self.set(seq);
            return false;
        };
        let ahead = seq.wrapping_sub(highest);
        if ahead == 0 {
            return true;
        }
        if ahead < 0x8000 {
            for step in 1..=ahead.min(Self::SIZE) {
                self.clear(highest.wrapping_add(step));
            }
            self.highest = Some(seq);
            self.set(seq);
            return false;
        }
        let behind = highest.wrapping_sub(seq);
        if behind >= Self::SIZE {
            return false;
        }
        let seen = self.get(seq);
        self.set(seq);
        seen
    }
}

/// Commands to a forwarder, from the room owner and from subscriber feedback readers.
pub(crate) enum ForwarderCmd {
    AddSubscriber {
        peer: u64,
        queue: mpsc::Sender<DownlinkPacket>,
        /// The subscriber's video level (simulcast layers it may get).
        video: Arc<DownlinkVideo>,
    },
    RemoveSubscriber {
        peer: u64,
    },
    SetMuted(bool),
    KeyframeRequest,
    /// The subscriber shows this track in a tile `height` device pixels high (`None`: no
    /// limit); a simulcast leg gets the smallest layer at least that tall.
    TileHeight {
        peer: u64,
        height: Option<u16>,
    },
}

/// What subscribers' RTCP asks of a publisher's forwarder. It comes at the rate subscribers
/// send it, so it goes through a queue of [`FEEDBACK_QUEUE`] entries (each at most one RTCP
/// packet's NACK list): when the forwarder falls behind, the rest is dropped, as a lost RTCP
/// packet would be.
#[derive(Debug)]
pub(crate) enum LegFeedback {
    /// A PLI or FIR.
    KeyframeRequest,
    /// A subscriber leg's NACK: answered from the buffer, the rest asked of the publisher.
    Nack { peer: u64, nacks: Vec<NackPair> },
}

/// What a packet asked of the publisher is taken to weigh against the leg's resend budget.
const RELAYED_PACKET_BYTES: u64 = 1200;

/// Entries of a forwarder's feedback queue.
pub(crate) const FEEDBACK_QUEUE: usize = 256;

/// One subscriber of a forwarder: its downlink queue, its simulcast layer and what it may
/// still have resent.
struct Leg {
    peer: u64,
    queue: mpsc::Sender<DownlinkPacket>,
    limiter: ResendLimiter,
    video: Arc<DownlinkVideo>,
    max_height: Option<u16>,
    layers: LegLayers,
    /// Counted in `video`'s legs above the lowest layer.
    above_low: bool,
    /// This leg's share of `video`'s step-up bitrate.
    step_up_bps: u64,
}

impl Leg {
    fn set_above_low(&mut self, above: bool) {
        if above != self.above_low {
            self.above_low = above;
            self.video.leg_above_low(above);
        }
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        self.set_above_low(false);
        self.video.step_up_share(self.step_up_bps, 0);
    }
}

/// One encoding of the publisher's track: all of it without simulcast, else one layer.
struct Layer {
    ssrc: u32,
    rid: Option<String>,
    /// 0 = the lowest (the order of the publisher's encodings).
    rank: u8,
    seen: SeqWindow,
    buffer: RetransmitBuffer,
    last_packet: Option<std::time::Instant>,
    height: Option<u16>,
    last_keyframe_request: Option<Instant>,
    /// Its bitrate in each of the last `RATE_WINDOWS` seconds, newest at `bps_at` (and the
    /// bytes counted since `rate_since`). One second of a simulcast layer swings from a tenth
    /// to twice its mean (a noisy picture, keyframes, the encoder dropping frames).
    bps: [u64; RATE_WINDOWS],
    bps_at: usize,
    rate_bytes: u64,
    rate_since: Option<std::time::Instant>,
}

/// Seconds over which a layer's bitrate is averaged.
const RATE_WINDOWS: usize = 4;

impl Layer {
    /// Its mean bitrate over the last seconds (those measured so far).
    fn mean_bps(&self) -> u64 {
        let (sum, count) = self
            .bps
            .iter()
            .filter(|&&b| b > 0)
            .fold((0, 0), |(sum, count), &b| (sum + b, count + 1));
        sum / count.max(1)
    }
}

/// Simulcast tracks have at most this many layers (more SSRCs are ignored).
const MAX_LAYERS: usize = 4;

pub(crate) struct Forwarder {
    pub source: SourceId,
    pub kind: MediaKind,
    pub media_ssrc: u32,
    pub track: Arc<dyn TrackRemote>,
    /// From the room: few, and never dropped.
    pub commands: mpsc::UnboundedReceiver<ForwarderCmd>,
    /// From the subscribers' legs (bounded, see [`LegFeedback`]).
    pub feedback: mpsc::Receiver<LegFeedback>,
    pub cancel: CancellationToken,
    pub metrics: Arc<SfuMetrics>,
    pub keyframe_interval: Duration,
    pub retransmission: RetransmitSettings,
    pub muted: bool,
}

/// The forwarder's moving parts, apart from its fixed settings.
struct State {
    subscribers: Vec<Leg>,
    layers: Vec<Layer>,
    codec: VideoCodec,
}

impl Forwarder {
    fn buffer_settings(&self) -> RetransmitSettings {
        // Only video is NACKed (no codec of ours negotiates `nack` for audio).
        if self.kind == MediaKind::Video {
            self.retransmission
        } else {
            RetransmitSettings {
                window: Duration::ZERO,
                max_bytes: 0,
            }
        }
    }

    /// Polls the publisher's track until it ends, the room drops the forwarder, or shutdown.
    pub(crate) async fn run(mut self) {
        let mut state = State {
            subscribers: Vec::new(),
            layers: Vec::new(),
            codec: VideoCodec::Other,
        };
        let mut last_keyframe_request: Option<Instant> = None;
        let mut keyframe_due: Option<Instant> = None;
        loop {
            let due = keyframe_due;
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                command = self.commands.recv() => match command {
                    None => break,
                    Some(ForwarderCmd::AddSubscriber { peer, queue, video }) => {
                        state.subscribers.retain(|leg| leg.peer != peer);
                        state.subscribers.push(Leg {
                            peer,
                            queue,
                            limiter: ResendLimiter::new(std::time::Instant::now()),
                            video,
                            max_height: None,
                            layers: LegLayers::default(),
                            above_low: false,
                            step_up_bps: 0,
                        });
                    }
                    Some(ForwarderCmd::RemoveSubscriber { peer }) => {
                        state.subscribers.retain(|leg| leg.peer != peer);
                    }
                    Some(ForwarderCmd::SetMuted(muted)) => {
                        let unmuted = self.muted && !muted;
                        self.muted = muted;
                        if unmuted {
                            keyframe_due = Some(keyframe_due.unwrap_or_else(Instant::now));
                        }
                    }
                    Some(ForwarderCmd::KeyframeRequest) => {
                        keyframe_due = self.keyframe_due(keyframe_due, last_keyframe_request);
                    }
                    Some(ForwarderCmd::TileHeight { peer, height }) => {
                        if let Some(leg) = state.subscribers.iter_mut().find(|l| l.peer == peer) {
                            leg.max_height = height;
                        }
                    }
                },
                Some(feedback) = self.feedback.recv() => match feedback {
                    LegFeedback::KeyframeRequest => {
                        keyframe_due = self.keyframe_due(keyframe_due, last_keyframe_request);
                    }
                    LegFeedback::Nack { peer, nacks } => {
                        self.answer_nack(peer, &nacks, &mut state).await;
                    }
                },
                () = sleep_until_opt(due) => {
                    keyframe_due = None;
                    if self.kind == MediaKind::Video && !self.muted {
                        last_keyframe_request = Some(Instant::now());
                        self.request_keyframes_in_use(&mut state).await;
                    }
                }
                event = self.track.poll() => match event {
                    None | Some(TrackRemoteEvent::OnEnded) => break,
                    Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                        let bytes = packet.marshal_size();
                        self.metrics.received_packets.add(1);
                        self.metrics
                            .received_bytes
                            .add(bytes as u64);
                        if self.muted {
                            continue;
                        }
                        let Some(layer) = self.layer_of(&packet, &mut state).await else {
                            continue;
                        };
                        if state.layers[layer].seen.is_duplicate(packet.header.sequence_number) {
                            continue;
                        }
                        let wanted = self.fan_out(packet, bytes, layer, &mut state);
                        for want in wanted {
                            self.request_layer_keyframe(&mut state.layers[want]).await;
                        }
                    }
                    Some(_) => {}
                },
            }
        }
        tracing::debug!(source = self.source, "sfu: forwarder ended");
    }

    /// When to ask the publisher for a keyframe after another request: at once, but at most
    /// once per `keyframe_interval`.
    fn keyframe_due(&self, due: Option<Instant>, last: Option<Instant>) -> Option<Instant> {
        let earliest = last.map_or_else(Instant::now, |t| t + self.keyframe_interval);
        Some(due.map_or(earliest, |d| d.min(earliest)))
    }

    /// The layer a packet belongs to, registering a new SSRC (its rid and rank from the
    /// publisher's encodings) on its first packet. Without rids everything is layer 0.
    async fn layer_of(&self, packet: &rtp::Packet, state: &mut State) -> Option<usize> {
        let ssrc = packet.header.ssrc;
        if let Some(i) = state.layers.iter().position(|l| l.ssrc == ssrc) {
            return Some(i);
        }
        let rid = if self.kind == MediaKind::Video {
            self.track.rid(ssrc).await.filter(|rid| !rid.is_empty())
        } else {
            None
        };
        if rid.is_none() && !state.layers.is_empty() && state.layers.iter().all(|l| l.rid.is_none())
        {
            // One encoding whose SSRC changed: as before, one layer.
            return Some(0);
        }
        if state.layers.len() >= MAX_LAYERS {
            return None;
        }
        let codings = self.track.codings().await;
        if state.codec == VideoCodec::Other && self.kind == MediaKind::Video {
            // A simulcast encoding may carry no codec of its own: any encoding's will do (one
            // m-line, one codec).
            let codec = match self.track.codec(ssrc).await {
                Some(codec) => Some(codec),
                None => codings
                    .iter()
                    .find(|c| !c.codec.mime_type.is_empty())
                    .map(|c| c.codec.clone()),
            };
            state.codec = codec.map_or(VideoCodec::Other, |c| VideoCodec::from_mime(&c.mime_type));
        }
        state.layers.push(Layer {
            ssrc,
            rid,
            rank: 0,
            seen: SeqWindow::default(),
            buffer: RetransmitBuffer::new(self.buffer_settings()),
            last_packet: None,
            height: None,
            last_keyframe_request: None,
            bps: [0; RATE_WINDOWS],
            bps_at: 0,
            rate_bytes: 0,
            rate_since: None,
        });
        // Rank by the order of the publisher's encodings (browsers list them lowest first),
        // rids not listed after them in order of arrival.
        let order: Vec<String> = codings
            .into_iter()
            .map(|c| c.rtp_coding_parameters.rid)
            .collect();
        let mut keys: Vec<(usize, usize)> = state
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let listed = l
                    .rid
                    .as_ref()
                    .and_then(|rid| order.iter().position(|o| o == rid));
                (listed.unwrap_or(order.len() + i), i)
            })
            .collect();
        keys.sort_unstable();
        for (rank, (_, i)) in keys.into_iter().enumerate() {
            state.layers[i].rank = rank as u8;
        }
        tracing::debug!(
            source = self.source,
            ssrc,
            rid = state.layers.last().and_then(|l| l.rid.clone()),
            layers = state.layers.len(),
            codec = ?state.codec,
            "sfu: publisher layer"
        );
        Some(state.layers.len() - 1)
    }

    /// Hands the packet to every leg that takes it. Returns the layers whose keyframe some
    /// leg waits for (to switch to them).
    fn fan_out(
        &self,
        packet: rtp::Packet,
        bytes: usize,
        layer: usize,
        state: &mut State,
    ) -> Vec<usize> {
        let now = std::time::Instant::now();
        let simulcast = state.layers.iter().any(|l| l.rid.is_some());
        let vp8_ids = (state.codec == VideoCodec::Vp8)
            .then(|| Vp8Ids::parse(&packet.payload))
            .flatten();
        {
            let l = &mut state.layers[layer];
            l.last_packet = Some(now);
            l.rate_bytes += bytes as u64;
            let since = *l.rate_since.get_or_insert(now);
            let elapsed = now.duration_since(since);
            if elapsed >= Duration::from_secs(1) {
                l.bps_at = (l.bps_at + 1) % RATE_WINDOWS;
                l.bps[l.bps_at] = (l.rate_bytes as f64 * 8.0 / elapsed.as_secs_f64()) as u64;
                l.rate_bytes = 0;
                l.rate_since = Some(now);
            }
            if let Some((_, height)) = vp8_ids.and_then(|ids| ids.size) {
                l.height = Some(height);
            }
        }
        if state.subscribers.is_empty() {
            return Vec::new();
        }
        let packet = Arc::new(packet);
        state.layers[layer].buffer.insert(now, &packet, bytes);
        let vp8 = state.codec == VideoCodec::Vp8;
        let mut wanted = Vec::new();
        let mut closed = false;
        if simulcast {
            let views: Vec<LayerView> = state
                .layers
                .iter()
                .map(|l| LayerView {
                    rank: l.rank,
                    active: l
                        .last_packet
                        .is_some_and(|t| now.duration_since(t) < LAYER_IDLE),
                    height: l.height,
                })
                .collect();
            let state_bps: Vec<u64> = state.layers.iter().map(Layer::mean_bps).collect();
            let incoming = Incoming {
                layer,
                seq: packet.header.sequence_number,
                ts: packet.header.timestamp,
                keyframe: starts_keyframe(state.codec, &packet.payload),
                vp8: vp8_ids,
                at: now,
            };
            for leg in &mut state.subscribers {
                if let Some(current) = leg.layers.current()
                    && !views[current].active
                {
                    leg.layers.drop_layer(current);
                }
                let Some(target) = choose_layer(&views, leg.video.level(), leg.max_height) else {
                    continue;
                };
                if leg.layers.current() != Some(target) && !wanted.contains(&target) {
                    wanted.push(target);
                }
                let before = leg.layers.current();
                let Some(shift) = leg.layers.offer(&incoming, target, 90_000) else {
                    continue;
                };
                if before != leg.layers.current() {
                    tracing::debug!(
                        source = self.source,
                        peer = leg.peer,
                        from = ?before.map(|l| views[l].rank),
                        to = views[layer].rank,
                        "sfu: leg layer"
                    );
                    if before.is_some() {
                        self.metrics.layer_switches.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if leg.layers.current() == Some(layer) {
                    leg.set_above_low(views[layer].rank > 0);
                    // What the next layer up would add on this leg (the gate's step-up test).
                    let next = choose_layer(&views, views[layer].rank + 2, leg.max_height)
                        .filter(|&next| views[next].rank > views[layer].rank);
                    let extra =
                        next.map_or(0, |next| state_bps[next].saturating_sub(state_bps[layer]));
                    if extra != leg.step_up_bps {
                        leg.video.step_up_share(leg.step_up_bps, extra);
                        leg.step_up_bps = extra;
                    }
                }
                closed |= self.send(&leg.queue, &packet, shift, vp8);
            }
        } else {
            for leg in &state.subscribers {
                closed |= self.send(&leg.queue, &packet, Shift::default(), vp8);
            }
        }
        if closed {
            state.subscribers.retain(|leg| !leg.queue.is_closed());
        }
        wanted
    }

    /// Queues one packet for a leg; true when the leg's downlink is gone.
    fn send(
        &self,
        queue: &mpsc::Sender<DownlinkPacket>,
        packet: &Arc<rtp::Packet>,
        shift: Shift,
        vp8: bool,
    ) -> bool {
        match queue.try_send(DownlinkPacket {
            source: self.source,
            packet: Arc::clone(packet),
            shift,
            vp8,
        }) {
            Ok(()) => false,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.dropped_packets.add(1);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => true,
        }
    }

    /// A keyframe of one layer, for a leg waiting to switch to it: at most one request per
    /// `keyframe_interval` per layer.
    async fn request_layer_keyframe(&self, layer: &mut Layer) {
        let now = Instant::now();
        if layer
            .last_keyframe_request
            .is_some_and(|t| now.duration_since(t) < self.keyframe_interval)
        {
            return;
        }
        layer.last_keyframe_request = Some(now);
        self.metrics
            .keyframe_requests
            .fetch_add(1, Ordering::Relaxed);
        self.send_pli(layer.ssrc).await;
    }

    /// A subscriber lost a picture (or video resumed): keyframes of the layers the legs get
    /// (all of them before any is chosen).
    async fn request_keyframes_in_use(&self, state: &mut State) {
        self.metrics
            .keyframe_requests
            .fetch_add(1, Ordering::Relaxed);
        let in_use: Vec<usize> = state
            .subscribers
            .iter()
            .filter_map(|leg| leg.layers.current())
            .collect();
        let mut ssrcs: Vec<u32> = state
            .layers
            .iter()
            .enumerate()
            .filter(|(i, l)| l.rid.is_none() || in_use.is_empty() || in_use.contains(i))
            .map(|(_, l)| l.ssrc)
            .collect();
        if ssrcs.is_empty() {
            ssrcs.push(self.media_ssrc);
        }
        let now = Instant::now();
        for layer in &mut state.layers {
            if ssrcs.contains(&layer.ssrc) {
                layer.last_keyframe_request = Some(now);
            }
        }
        for ssrc in ssrcs {
            self.send_pli(ssrc).await;
        }
    }

    async fn send_pli(&self, media_ssrc: u32) {
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        if let Err(e) = self.track.write_rtcp(vec![Box::new(pli)]).await {
            tracing::debug!(error = %e, "sfu: PLI to publisher not sent");
        }
    }

    /// Resends what the buffer holds into the leg's downlink queue (the downlink applies the
    /// leg's rewrite) and asks the publisher for the rest, within the leg's limits.
    async fn answer_nack(&self, peer: u64, nacks: &[NackPair], state: &mut State) {
        let simulcast = state.layers.iter().any(|l| l.rid.is_some());
        let vp8 = state.codec == VideoCodec::Vp8;
        let Some(leg) = state.subscribers.iter_mut().find(|leg| leg.peer == peer) else {
            return;
        };
        let now = std::time::Instant::now();
        let (mut requested, mut answered, mut limited) = (0u64, 0u64, 0u64);
        // Per layer: the publisher's sequence numbers the buffer lacks.
        let mut missing: Vec<(usize, Vec<u16>)> = Vec::new();
        for seq in nacks.iter().flat_map(|pair| pair.into_iter()) {
            requested += 1;
            if requested > MAX_PACKETS_PER_NACK as u64 || !leg.limiter.allow(now, seq) {
                limited += 1;
                continue;
            }
            if simulcast && leg.layers.before_switch(seq) {
                limited += 1;
                continue;
            }
            let (layer, original, shift) = if simulcast {
                match leg.layers.map_back(seq) {
                    Some(found) => found,
                    None => continue,
                }
            } else {
                (0, seq, Shift::default())
            };
            let packet = state
                .layers
                .get(layer)
                .and_then(|l| l.buffer.get(now, original));
            // What the answer will send: the buffered packet, or what the publisher resends.
            let size = packet.map_or(RELAYED_PACKET_BYTES, |p| {
                (p.header.marshal_size() + p.payload.len()) as u64
            });
            if !leg.video.take_resend(now, size) {
                limited += 1;
                continue;
            }
            let Some(packet) = packet else {
                match missing.iter_mut().find(|(l, _)| *l == layer) {
                    Some((_, seqs)) => seqs.push(original),
                    None => missing.push((layer, vec![original])),
                }
                continue;
            };
            let resend = DownlinkPacket {
                source: self.source,
                packet: Arc::clone(packet),
                shift,
                vp8,
            };
            if leg.queue.try_send(resend).is_ok() {
                answered += 1;
            } else {
                self.metrics.dropped_packets.add(1);
            }
        }
        let relayed: usize = missing.iter().map(|(_, seqs)| seqs.len()).sum();
        let m = &self.metrics;
        m.nack_requested_packets
            .fetch_add(requested, Ordering::Relaxed);
        m.nack_answered_packets
            .fetch_add(answered, Ordering::Relaxed);
        m.nack_limited_packets.fetch_add(limited, Ordering::Relaxed);
        m.nack_relayed_packets
            .fetch_add(relayed as u64, Ordering::Relaxed);
        for (layer, seqs) in missing {
            let ssrc = state.layers.get(layer).map_or(self.media_ssrc, |l| l.ssrc);
            self.relay_nack(ssrc, nack_pairs_from_sequence_numbers(&seqs))
                .await;
        }
    }

    async fn relay_nack(&self, media_ssrc: u32, nacks: Vec<NackPair>) {
        self.metrics.relayed_nacks.fetch_add(1, Ordering::Relaxed);
        let nack = TransportLayerNack {
            sender_ssrc: 0,
            media_ssrc,
            nacks,
        };
        if let Err(e) = self.track.write_rtcp(vec![Box::new(nack)]).await {
            tracing::debug!(error = %e, "sfu: NACK to publisher not sent");
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Changes to a subscriber's set of legs.
pub(crate) enum DownlinkCmd {
    SetLeg {
        source: SourceId,
        kind: MediaKind,
        track: Arc<TrackLocalStaticRTP>,
        mapping: Box<LegMapping>,
    },
    RemoveLeg {
        source: SourceId,
    },
    /// Audio-only (false) or not: the subscriber wants no video legs' packets for now; the
    /// legs and their m-lines stay.
    ReceiveVideo(bool),
}

/// Writes queued packets of every leg into one subscriber's connection.
pub(crate) async fn run_downlink(
    mut packets: mpsc::Receiver<DownlinkPacket>,
    mut commands: mpsc::UnboundedReceiver<DownlinkCmd>,
    cancel: CancellationToken,
    metrics: Arc<SfuMetrics>,
    video: Arc<DownlinkVideo>,
) {
    type Leg = (MediaKind, Arc<TrackLocalStaticRTP>, Box<LegMapping>);
    let mut legs: HashMap<SourceId, Leg> = HashMap::new();
    let mut receive_video = true;
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            command = commands.recv() => match command {
                None => break,
                Some(DownlinkCmd::SetLeg { source, kind, track, mapping }) => {
                    legs.insert(source, (kind, track, mapping));
                }
                Some(DownlinkCmd::RemoveLeg { source }) => {
                    legs.remove(&source);
                }
                Some(DownlinkCmd::ReceiveVideo(video)) => receive_video = video,
            },
            queued = packets.recv() => {
                let Some(queued) = queued else { break };
                let Some((kind, track, mapping)) = legs.get(&queued.source) else {
                    metrics.dropped_packets.add(1);
                    continue;
                };
                // Audio-only, or audio first while this subscriber's downlink is congested.
                if *kind == MediaKind::Video && (!receive_video || video.paused()) {
                    continue;
                }
                let Some(packet) = mapping.rewrite_shifted(&queued.packet, queued.shift, queued.vp8)
                else {
                    metrics.dropped_packets.add(1);
                    continue;
                };
                let bytes = packet.marshal_size() as u64;
                match track.write_rtp(packet).await {
                    Ok(()) => {
                        metrics.forwarded_packets.add(1);
                        metrics.forwarded_bytes.add(bytes);
                        video.count_sent(bytes);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "sfu: packet not written");
                        metrics.dropped_packets.add(1);
                    }
                }
            }
        }
    }
}

/// Reads one leg's feedback (PLI/FIR/NACK marked by [`super::rtcp::FeedbackMarker`]) and
/// hands it to the publisher's forwarder, NACKs labelled with the subscriber's `peer`. Ends
/// when the leg is removed or its connection closes.
pub(crate) async fn run_leg_feedback(
    track: Arc<TrackLocalStaticRTP>,
    peer: u64,
    forwarder: mpsc::Sender<LegFeedback>,
    cancel: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => break,
            event = track.poll() => event,
        };
        let Some(TrackLocalEvent::OnRtcpPacket(packets)) = event else {
            break;
        };
        for packet in packets {
            let any = packet.as_any();
            let feedback = if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                LegFeedback::KeyframeRequest
            } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                LegFeedback::Nack {
                    peer,
                    nacks: nack.nacks.clone(),
                }
            } else {
                continue;
            };
            match forwarder.try_send(feedback) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::debug!(peer, "sfu: forwarder behind, subscriber feedback dropped");
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn codec(mime: &str, fmtp: &str) -> RTCRtpCodec {
        RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate: if mime.starts_with("audio") {
                48000
            } else {
                90000
            },
            channels: 0,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: vec![],
        }
    }

    fn mapping() -> LegMapping {
        LegMapping::negotiate(
            0xabcd,
            &[
                (100, codec("video/VP8", "")),
                (
                    101,
                    codec("video/H264", "packetization-mode=1;profile-level-id=42e01f"),
                ),
            ],
            &[
                (96, codec("video/vp8", "")),
                (
                    102,
                    codec("video/H264", "profile-level-id=42e034;packetization-mode=1"),
                ),
            ],
            &[
                (3, "urn:3gpp:video-orientation".into()),
                (4, "urn:ietf:params:rtp-hdrext:sdes:mid".into()),
            ],
            &[
                (13, "urn:3gpp:video-orientation".into()),
                (1, "urn:ietf:params:rtp-hdrext:sdes:mid".into()),
            ],
            &super::super::peer::FORWARDED_EXTENSIONS,
        )
        .expect("VP8 maps")
    }

    #[test]
    fn rewrite_changes_ssrc_pt_and_extension_ids_and_drops_mid() {
        let map = mapping();
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                extension: true,
                marker: true,
                payload_type: 100,
                sequence_number: 7,
                timestamp: 9000,
                ssrc: 1,
                extension_profile: rtp::header::EXTENSION_PROFILE_ONE_BYTE,
                extensions: vec![
                    rtp::header::Extension {
                        id: 3,
                        payload: Bytes::from_static(&[1]),
                    },
                    rtp::header::Extension {
                        id: 4,
                        payload: Bytes::from_static(b"0"),
                    },
                ],
                ..Default::default()
            },
            payload: Bytes::from_static(&[0x10, 0, 0, 0]),
        };
        let out = map.rewrite(&packet).expect("forwardable");
        assert_eq!(out.header.ssrc, 0xabcd);
        assert_eq!(out.header.payload_type, 96);
        assert_eq!(out.header.sequence_number, 7);
        assert!(out.header.marker);
        assert_eq!(out.header.extensions.len(), 1, "mid dropped");
        assert_eq!(out.header.extensions[0].id, 13);
        assert_eq!(out.payload, packet.payload);
        let mut h264 = packet.clone();
        h264.header.payload_type = 101;
        assert_eq!(
            map.rewrite(&h264).map(|p| p.header.payload_type),
            Some(102),
            "same profile, other level"
        );
        h264.header.payload_type = 55;
        assert!(map.rewrite(&h264).is_none(), "unknown payload type");
        let mut no_ext = packet;
        no_ext.header.extensions.clear();
        assert!(!map.rewrite(&no_ext).expect("ok").header.extension);
    }

    /// An audio packet of the publisher's: `payload_type` 63 is RED (one redundant block of
    /// type 111, then the primary), 111 is Opus.
    fn audio(payload_type: u8) -> rtp::Packet {
        let payload: &'static [u8] = if payload_type == 63 {
            &[
                0x80 | 111,
                0x0f,
                0x00,
                0x03,
                111,
                b'o',
                b'l',
                b'd',
                b'n',
                b'e',
                b'w',
            ]
        } else {
            b"new"
        };
        rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                payload_type,
                sequence_number: 1,
                timestamp: 960,
                ssrc: 5,
                ..Default::default()
            },
            payload: Bytes::from_static(payload),
        }
    }

    fn audio_mapping(subscriber: &[(u8, RTCRtpCodec)]) -> LegMapping {
        let publisher = [
            (63, codec("audio/red", "111/111")),
            (111, codec("audio/opus", "")),
        ];
        LegMapping::negotiate(7, &publisher, subscriber, &[], &[], &[]).expect("Opus maps")
    }

    #[test]
    fn red_goes_to_a_red_subscriber_renumbered_and_to_others_as_its_primary_block() {
        // Same numbers: forwarded untouched.
        let chrome = audio_mapping(&[
            (111, codec("audio/opus", "")),
            (63, codec("audio/red", "111/111")),
        ]);
        let out = chrome.rewrite(&audio(63)).expect("forwarded");
        assert_eq!(out.header.payload_type, 63);
        assert_eq!(out.payload, audio(63).payload);

        // Other numbers (Firefox's Opus is 109): the block headers follow.
        let other = audio_mapping(&[
            (109, codec("audio/opus", "")),
            (120, codec("audio/red", "109/109")),
        ]);
        let out = other.rewrite(&audio(63)).expect("forwarded");
        assert_eq!(out.header.payload_type, 120);
        assert_eq!(out.payload[0], 0x80 | 109);
        assert_eq!(out.payload[4], 109);
        assert_eq!(&out.payload[5..], b"oldnew");

        // No RED on the subscriber's side: plain Opus, the new frame alone.
        let plain = audio_mapping(&[(111, codec("audio/opus", ""))]);
        let out = plain.rewrite(&audio(63)).expect("unwrapped");
        assert_eq!(out.header.payload_type, 111);
        assert_eq!(&out.payload[..], b"new");
        assert_eq!(out.header.timestamp, 960);
        // Plain Opus from the same publisher passes as before.
        assert_eq!(
            &plain.rewrite(&audio(111)).expect("opus").payload[..],
            b"new"
        );

        // A malformed RED payload is dropped, not forwarded half-read.
        let mut broken = audio(63);
        broken.payload = Bytes::from_static(&[0x80 | 111, 0, 0]);
        assert!(plain.rewrite(&broken).is_none());
        assert!(chrome.rewrite(&broken).is_none());
    }

    #[test]
    fn no_common_codec_gives_no_mapping() {
        let none = LegMapping::negotiate(
            1,
            &[(100, codec("video/VP8", ""))],
            &[(
                102,
                codec("video/H264", "packetization-mode=1;profile-level-id=42e01f"),
            )],
            &[],
            &[],
            &[],
        );
        assert!(none.is_none());
        assert!(!same_codec(
            &codec("video/H264", "packetization-mode=1;profile-level-id=42e01f"),
            &codec("video/H264", "packetization-mode=0;profile-level-id=42e01f")
        ));
    }

    #[test]
    fn seq_window_drops_repeats_only() {
        let mut w = SeqWindow::default();
        assert!(!w.is_duplicate(65530));
        assert!(!w.is_duplicate(65533));
        assert!(!w.is_duplicate(2), "wraps forward");
        assert!(!w.is_duplicate(65531), "late but new");
        assert!(w.is_duplicate(65531), "second copy");
        assert!(w.is_duplicate(2));
        assert!(!w.is_duplicate(3000), "big jump");
        assert!(!w.is_duplicate(2), "too old to judge: forwarded");
    }
}

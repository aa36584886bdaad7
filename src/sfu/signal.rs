//! Signaling messages between a browser and the SFU, as plain serde types (camelCase JSON).
//! The gateway carries each as one Socket.IO event named by [`ClientSignal::EVENT_NAMES`] /
//! [`ServerSignal::event_name`]; docs/SFU.md describes the sequence.

use super::error::SfuError;
use serde::{Deserialize, Serialize};

/// `{ "sdp": "v=0…" }`: the payload of a client `sfu:offer` or `sfu:answer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SdpPayload {
    /// The complete session description.
    pub sdp: String,
}

/// One trickled ICE candidate, shaped like the browser's `RTCIceCandidateInit`.
/// An empty `candidate` string means end-of-candidates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// `candidate:…` attribute text, or empty for end-of-candidates.
    pub candidate: String,
    /// The media section the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// Index of that media section.
    #[serde(
        default,
        rename = "sdpMLineIndex",
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_m_line_index: Option<u16>,
    /// ICE username fragment of the generation the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// Microphone.
    Audio,
    /// Camera.
    Video,
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Audio => "audio",
            Self::Video => "video",
        })
    }
}

/// Which other participant's media a receiving `m=` section carries. The same information is
/// in the SDP (`a=msid:<userId> <trackId>`), repeated here so a client need not parse SDP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    /// The `m=` section (`transceiver.mid` in the browser).
    pub mid: String,
    /// The publisher's user id; also the MediaStream id (`event.streams[0].id`).
    pub user_id: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// The MediaStreamTrack id in `a=msid` (unique per subscription).
    pub track_id: String,
}

/// A server offer or answer: the SDP plus the current map of forwarded tracks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescriptionPayload {
    /// The complete session description.
    pub sdp: String,
    /// Every track this connection currently receives from other participants.
    pub tracks: Vec<TrackInfo>,
}

/// Browser → SFU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSignal {
    /// `sfu:offer`: the client publishes (or re-publishes) its media.
    Offer(SdpPayload),
    /// `sfu:answer`: the client accepts a server offer.
    Answer(SdpPayload),
    /// `sfu:candidate`: a trickled client ICE candidate.
    Candidate(IceCandidate),
}

impl ClientSignal {
    /// The Socket.IO event names a client may send, in the order of the variants.
    pub const EVENT_NAMES: [&'static str; 3] = ["sfu:offer", "sfu:answer", "sfu:candidate"];

    /// Decodes one client event; the gateway calls this with the event name and JSON payload.
    pub fn from_event(event: &str, payload: serde_json::Value) -> Result<Self, SfuError> {
        let bad = |e: serde_json::Error| SfuError::MalformedMessage(e.to_string());
        match event {
            "sfu:offer" => Ok(Self::Offer(serde_json::from_value(payload).map_err(bad)?)),
            "sfu:answer" => Ok(Self::Answer(serde_json::from_value(payload).map_err(bad)?)),
            "sfu:candidate" => Ok(Self::Candidate(
                serde_json::from_value(payload).map_err(bad)?,
            )),
            other => Err(SfuError::MalformedMessage(format!(
                "unknown event {other:?}"
            ))),
        }
    }
}

/// SFU → browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSignal {
    /// `sfu:offer`: the server renegotiates (tracks were added or removed); answer it.
    Offer(DescriptionPayload),
    /// `sfu:answer`: the server's answer to a client offer.
    Answer(DescriptionPayload),
    /// `sfu:candidate`: a trickled server ICE candidate.
    Candidate(IceCandidate),
    /// `sfu:video`: the video forwarded to this participant was paused (its downlink is losing
    /// packets: audio first) or resumed.
    Video(VideoState),
}

/// Payload of `sfu:video`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoState {
    /// True while no video reaches this participant.
    pub paused: bool,
    /// Why: `congestion` (the only reason today).
    pub reason: &'static str,
}

impl ServerSignal {
    /// The Socket.IO event this message travels as.
    pub fn event_name(&self) -> &'static str {
        match self {
            Self::Offer(_) => "sfu:offer",
            Self::Answer(_) => "sfu:answer",
            Self::Candidate(_) => "sfu:candidate",
            Self::Video(_) => "sfu:video",
        }
    }

    /// The event's JSON payload.
    pub fn payload(&self) -> serde_json::Value {
        let value = match self {
            Self::Offer(p) | Self::Answer(p) => serde_json::to_value(p),
            Self::Candidate(c) => serde_json::to_value(c),
            Self::Video(v) => serde_json::to_value(v),
        };
        value.unwrap_or(serde_json::Value::Null)
    }
}

/// Why the SFU dropped a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CloseReason {
    /// `leave` was called (or the gateway saw the socket go).
    Left,
    /// `kick` was called.
    Kicked,
    /// `end_room` was called.
    RoomEnded,
    /// ICE/DTLS failed or the connection closed from the client side.
    ConnectionFailed,
    /// The client did not answer a server offer in time (`sfu.answer_timeout_ms`).
    AnswerTimeout,
    /// The media connection was not up in time (`sfu.connect_timeout_ms`): no client offer
    /// after a publishing join, or no ICE + DTLS after the first offer/answer.
    ConnectTimeout,
    /// The SFU is shutting down.
    Shutdown,
}

/// What the SFU tells the gateway about one participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuEventKind {
    /// Forward to the participant's socket as `signal.event_name()` with `signal.payload()`.
    Signal(ServerSignal),
    /// The participant's media connection is up (ICE + DTLS done).
    Connected,
    /// The participant's SFU state is gone; no more events follow.
    Closed(CloseReason),
}

/// An event for one participant, keyed by room and user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfuEvent {
    /// The room the participant joined.
    pub room_id: String,
    /// The participant.
    pub user_id: String,
    /// What happened.
    pub kind: SfuEventKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_uses_browser_field_names() {
        let json = serde_json::json!({
            "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
            "usernameFragment": "abcd"
        });
        let signal = ClientSignal::from_event("sfu:candidate", json.clone()).expect("parses");
        let ClientSignal::Candidate(c) = &signal else {
            panic!("wrong variant {signal:?}");
        };
        assert_eq!(c.sdp_m_line_index, Some(0));
        assert_eq!(serde_json::to_value(c).expect("serializes"), json);
    }

    #[test]
    fn bad_payload_and_unknown_event_are_errors() {
        let err = ClientSignal::from_event("sfu:offer", serde_json::json!({"spd": 1}))
            .expect_err("missing sdp");
        assert!(matches!(err, SfuError::MalformedMessage(_)), "{err:?}");
        assert!(ClientSignal::from_event("sfu:nope", serde_json::json!({})).is_err());
    }

    #[test]
    fn server_offer_payload_is_camel_case() {
        let offer = ServerSignal::Offer(DescriptionPayload {
            sdp: "v=0".into(),
            tracks: vec![TrackInfo {
                mid: "2".into(),
                user_id: "u1".into(),
                kind: MediaKind::Video,
                track_id: "t".into(),
            }],
        });
        assert_eq!(offer.event_name(), "sfu:offer");
        assert_eq!(offer.payload()["tracks"][0]["userId"], "u1");
        assert_eq!(offer.payload()["tracks"][0]["kind"], "video");
    }

    #[test]
    fn close_reasons_are_camel_case() {
        let reason = serde_json::to_value(CloseReason::ConnectTimeout).expect("serializes");
        assert_eq!(reason, "connectTimeout");
    }
}

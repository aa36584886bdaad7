//! Building one server-side peer connection: codecs, interceptors, sockets, and the
//! rewriting of host addresses to the announced public IP.

use super::config::SfuConfig;
use super::error::{SfuError, internal};
use super::rtcp::{FEEDBACK_MARKER_SLOT, FeedbackMarker};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Slot;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, Registry,
    SettingEngineBuilder, register_default_interceptors,
};

/// Header extensions whose value means the same on every hop and is therefore forwarded
/// (remapped to the subscriber's id). Everything else (mid, rid, transport-cc, …) is hop-by-hop.
pub(crate) const FORWARDED_EXTENSIONS: [&str; 2] = [
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "urn:3gpp:video-orientation",
];

/// Opus for audio; VP8 first for video, H.264 (constrained baseline, packetization-mode 1)
/// where offered. No RTX: retransmissions then come on the media SSRC, which keeps forwarding
/// one SSRC per track.
fn media_engine() -> Result<MediaEngine, SfuError> {
    let mut engine = MediaEngine::default();
    let video_feedback = vec![
        RTCPFeedback {
            typ: "ccm".to_owned(),
            parameter: "fir".to_owned(),
        },
        RTCPFeedback {
            typ: "nack".to_owned(),
            parameter: String::new(),
        },
        RTCPFeedback {
            typ: "nack".to_owned(),
            parameter: "pli".to_owned(),
        },
    ];
    let codecs = [
        (
            RtpCodecKind::Audio,
            MIME_TYPE_OPUS,
            48000,
            2,
            "minptime=10;useinbandfec=1",
            111,
        ),
        (RtpCodecKind::Video, MIME_TYPE_VP8, 90000, 0, "", 96),
        (
            RtpCodecKind::Video,
            MIME_TYPE_H264,
            90000,
            0,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            102,
        ),
        (
            RtpCodecKind::Video,
            MIME_TYPE_H264,
            90000,
            0,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
            108,
        ),
    ];
    for (kind, mime, clock_rate, channels, fmtp, payload_type) in codecs {
        let feedback = if kind == RtpCodecKind::Video {
            video_feedback.clone()
        } else {
            vec![]
        };
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: RTCRtpCodec {
                        mime_type: mime.to_owned(),
                        clock_rate,
                        channels,
                        sdp_fmtp_line: fmtp.to_owned(),
                        rtcp_feedback: feedback,
                    },
                    payload_type,
                },
                kind,
            )
            .map_err(|e| internal("register codec", e))?;
    }
    for (uri, kind) in [
        (FORWARDED_EXTENSIONS[0], RtpCodecKind::Audio),
        (FORWARDED_EXTENSIONS[1], RtpCodecKind::Video),
    ] {
        engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: uri.to_owned(),
                },
                kind,
                None,
            )
            .map_err(|e| internal("register header extension", e))?;
    }
    Ok(engine)
}

/// Builds a connection bound on `port` (UDP, and TCP when ICE-TCP is on) with mDNS off and
/// the feedback marker appended to the default interceptors.
pub(crate) async fn build_peer_connection(
    config: &SfuConfig,
    port: u16,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>, SfuError> {
    let mut engine = media_engine()?;
    let registry = register_default_interceptors(Registry::new(), &mut engine)
        .map_err(|e| internal("register interceptors", e))?
        .with(Slot::from(FEEDBACK_MARKER_SLOT), FeedbackMarker::default());
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .build();
    let addrs: Vec<SocketAddr> = config.bind_addrs(port);
    let tcp_addrs = if config.ice_tcp {
        addrs.clone()
    } else {
        vec![]
    };
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(handler)
        .with_udp_addrs(addrs)
        .with_tcp_addrs(tcp_addrs)
        .build()
        .await
        .map_err(|e| {
            tracing::warn!(port, error = %e, "sfu: peer connection could not bind");
            SfuError::NoFreePort
        })?;
    Ok(Arc::new(pc))
}

/// Rewrites the address of a host candidate that names one of our bound, non-loopback
/// addresses to `announced` (1:1 NAT). Loopback and other candidates pass unchanged.
pub(crate) fn announce_candidate(candidate: &str, announced: Option<IpAddr>) -> String {
    let Some(announced) = announced else {
        return candidate.to_owned();
    };
    let mut fields: Vec<&str> = candidate.split(' ').collect();
    // candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> …
    let is_host = fields.get(6) == Some(&"typ") && fields.get(7) == Some(&"host");
    let announced_text = announced.to_string();
    if let Some(address) = fields.get(4).and_then(|a| a.parse::<IpAddr>().ok())
        && is_host
        && !address.is_loopback()
        && address.is_ipv4() == announced.is_ipv4()
    {
        fields[4] = &announced_text;
        return fields.join(" ");
    }
    candidate.to_owned()
}

/// Applies [`announce_candidate`] to every `a=candidate:` line of an SDP.
pub(crate) fn announce_sdp(sdp: &str, announced: Option<IpAddr>) -> String {
    if announced.is_none() {
        return sdp.to_owned();
    }
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("a=") {
            if rest.starts_with("candidate:") {
                let trimmed = rest.trim_end_matches(['\r', '\n']);
                let ending = &rest[trimmed.len()..];
                out.push_str("a=");
                out.push_str(&announce_candidate(trimmed, announced));
                out.push_str(ending);
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host";

    #[test]
    fn host_candidate_gets_public_address() {
        let public = Some(IpAddr::from([203, 0, 113, 7]));
        assert_eq!(
            announce_candidate(HOST, public),
            "candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host"
        );
        let loopback = "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host";
        assert_eq!(announce_candidate(loopback, public), loopback);
        let srflx = "candidate:2 1 udp 1 198.51.100.1 4000 typ srflx raddr 10.0.0.5 rport 40000";
        assert_eq!(announce_candidate(srflx, public), srflx);
        assert_eq!(announce_candidate(HOST, None), HOST);
    }

    #[test]
    fn sdp_candidate_lines_are_rewritten_and_the_rest_kept() {
        let sdp = format!("v=0\r\na=mid:0\r\na={HOST}\r\na=end-of-candidates\r\n");
        let out = announce_sdp(&sdp, Some(IpAddr::from([203, 0, 113, 7])));
        assert!(out.contains("203.0.113.7 40000 typ host\r\n"));
        assert!(!out.contains("10.0.0.5"));
        assert!(out.starts_with("v=0\r\na=mid:0\r\n"));
        assert!(out.ends_with("a=end-of-candidates\r\n"));
    }

    #[test]
    fn media_engine_registers() {
        assert!(media_engine().is_ok());
    }
}
